"""The fairness test bed: each source is deterministic, has the identities layout, carries its injected
association in the training split (in the data, and in what a bag-of-words model learns from it) and
not in its unbiased twin; `steward bench fairness` on its sources and on separate train/test files."""

import math

import numpy as np
import pytest

from _fairness_sources import bag_of_words_gaps, carrying_gap
from steward.config import load_config
from steward.fairness.data import load_identities
from steward.fairness.metrics import FairnessError
from steward.fairness.testbed import (
    FAMILIES,
    SEEN_SOURCES,
    SOURCES,
    TUNING_SOURCES,
    association,
    check_sources,
    generate_source,
    held_out_sources,
    source_role,
    write_identities,
)

_V8_MEASURED = {"forum", "reviews", "profiles", "threads", "news", "chat", "letters", "qna", "tickets", "modqueue",
                "listings", "terraces", "appstore", "boardroom", "voicemail", "appraisals", "carpool", "apiary",
                "seating", "stargazing", "recipes", "bouldering", "couriers", "tracker", "allotments", "tutors",
                "matinee", "laundry", "ferry", "suggestions", "vetclinic", "chessclub", "bikecoop", "choir",
                "campsite", "foodbank", "skischool", "phonein", "dental", "cleanup"}
"""Every source measured before v8 froze (heldout_sources.py .. heldout_sources_o.py and the first five)."""


def test_five_sources_two_for_tuning_the_rest_held_out():
    assert len(SOURCES) >= 5 and len(TUNING_SOURCES) <= 2 and set(TUNING_SOURCES) <= set(SOURCES)
    assert TUNING_SOURCES == ("campsite", "cleanup")  # v8's, declared in the README
    assert set(held_out_sources()) == set(SOURCES) - set(TUNING_SOURCES) - set(SEEN_SOURCES)
    assert {source_role(s) for s in ("cleanup", "qna", "a-source-added-later")} == {"tuning", "seen", "held_out"}
    # v8 froze after every source of heldout_sources.py .. heldout_sources_o.py had been measured
    assert not set(TUNING_SOURCES) & set(SEEN_SOURCES)
    assert {s for s in SOURCES if source_role(s) == "held_out"} <= set(SOURCES) - _V8_MEASURED
    with pytest.raises(FairnessError, match="--sources: unknown source 'madlibs'; choose from forum"):
        check_sources(["forum", "madlibs"])
    texts = {s: set(generate_source(s, 300, seed=0, split="test").texts) for s in SOURCES}
    for a in SOURCES:  # no text is shared between sources
        for b in SOURCES:
            if a < b:
                assert not texts[a] & texts[b], (a, b)


@pytest.mark.parametrize("name", list(SOURCES))
def test_source_is_deterministic_and_in_the_identities_layout(name, tmp_path):
    a = generate_source(name, 400, seed=3, split="train")
    b = generate_source(name, 400, seed=3, split="train")
    assert a.texts == b.texts and (a.labels == b.labels).all()
    assert all((a.groups[s] == b.groups[s]).all() for s in a.groups)
    assert generate_source(name, 400, seed=4, split="train").texts != a.texts
    assert generate_source(name, 400, seed=3, split="twin").texts != a.texts
    assert a.families == FAMILIES
    got = load_identities(write_identities(a, tmp_path / "train.csv"))
    assert got.texts == a.texts and (got.labels == a.labels).all() and got.families == a.families
    assert all((got.groups[s] == a.groups[s]).all() for s in a.groups)
    assert (got.annotated == a.annotated).all()
    test = generate_source(name, 2000, seed=3, split="test")
    assert test.annotated.all() and abs(test.labels.mean() - 0.5) < 0.05
    for subs in test.families.values():  # a family's subgroups about equally frequent
        sizes = np.array([test.groups[s].sum() for s in subs])
        assert sizes.min() > 0.6 * sizes.max(), sizes
    assert max(abs(association(test, s)) for s in test.subgroup_names()) < 0.15


def test_sources_differ_in_mention_length_and_annotation():
    words = {n: np.mean([len(t.split()) for t in generate_source(n, 300, seed=0, split="train").texts])
             for n in SOURCES}
    assert words["forum"] < 10 < words["reviews"] < words["news"], words
    threads = generate_source("threads", 300, seed=0, split="train")
    assert (threads.identity_matrix().sum(1) >= 2).all()  # several identities in one comment
    news = generate_source("news", 2000, seed=0, split="train")
    assert 0.25 < 1 - news.annotated.mean() < 0.45  # identity columns missing for some rows
    assert generate_source("news", 2000, seed=0, split="twin").annotated.mean() < 0.75
    reviews = generate_source("reviews", 2000, seed=0, split="train")
    assert 0.3 < (reviews.identity_matrix().sum(1) == 0).mean() < 0.6  # many reviews mention nobody


@pytest.mark.parametrize("name", list(SOURCES))
def test_injected_association_is_in_the_training_split_and_not_in_the_twin(name):
    """In the data (P(toxic | subgroup) against the rest, each carrying subgroup's taken in the direction
    the training split shows it: label noise can push a subgroup's rate down as well as up), and in what a
    bag-of-words logistic regression learns: its BPSN/BNSP gaps on the carrying subgroups of the balanced
    test split."""
    src = SOURCES[name]

    def measure(split: str) -> tuple[np.ndarray, float, float]:
        data = generate_source(name, 4000, seed=0, split=split)
        assoc = np.array([association(data, s) for s in src.carrying])
        return assoc, _association_se(data, src.carrying), carrying_gap(name, bag_of_words_gaps(name, split, 4000)[0])

    (assoc_b, se_b, gap_b), (assoc_t, se_t, gap_t) = measure("train"), measure("twin")
    direction = np.sign(assoc_b)
    # the sampling error decides the bounds where it is large (a rare carrying subgroup has ~100 rows in 4,000:
    # its twin association has a standard error near 0.05), fixed margins elsewhere
    assert np.mean(direction * assoc_b) > max(0.05, 4 * se_b), (assoc_b, se_b)
    assert abs(np.mean(direction * assoc_t)) < max(0.04, 3 * se_t), (assoc_t, se_t)
    assert gap_b > gap_t + 0.015, (gap_b, gap_t)


def _association_se(data, carrying) -> float:
    """The standard error of the carrying subgroups' mean `association` (two independent proportions each)."""
    annotated = np.ones(len(data), dtype=bool) if data.annotated is None else data.annotated
    var = 0.0
    for s in carrying:
        inside, outside = data.labels[data.groups[s]], data.labels[annotated & ~data.groups[s]]
        var += sum(x.mean() * (1 - x.mean()) / len(x) for x in (inside, outside))
    return float(np.sqrt(var) / len(carrying))


def test_bench_fairness_evaluates_a_file_only_on_a_separate_file_unless_asked(tmp_path, capsys):
    """--data FILE needs --eval-data TEST, or --eval-from-train to evaluate on a slice of FILE; with
    --eval-data the runs evaluate on every row of TEST."""
    import pandas as pd

    from steward.bench.fairness import _overrides, _parse, bench_fairness
    from steward.classify.data import load_splits

    train = write_identities(generate_source("forum", 300, seed=0, split="train"), tmp_path / "train.csv")
    test = write_identities(generate_source("forum", 200, seed=0, split="test"), tmp_path / "test.csv")
    for argv, message in ((["--data", str(train)], "--data: give --eval-data TEST (a held-out set), or --eval-from-train"),
                          (["--eval-from-train"], "--eval-from-train: only with --data FILE and no --eval-data"),
                          (["--sources", "forum", "--data", str(train)], "--sources: the test bed brings its own"),
                          (["--sources", "forum,usenet"], "--sources: unknown source 'usenet'; choose from forum")):
        with pytest.raises(SystemExit):
            _parse(argv)
        assert message in capsys.readouterr().err.splitlines()[-1]
    a = _parse(["--data", str(train), "--eval-data", str(test)])
    tr, ev = load_splits(load_config(None, _overrides(a, 0, tmp_path / "run", "none", 0.8)))
    assert len(tr) == 300 and ev.texts == pd.read_csv(test)["comment_text"].tolist()
    r = bench_fairness(["--data", str(train), "--eval-data", str(test), "--seeds", "1", "--steps", "3",
                        "--frozen-epochs", "1", "--bootstrap", "0", "--threads", "1"])
    assert r["eval_data"] == str(test) and 0 <= r["baseline/overall_auc"] <= 1


def test_bench_fairness_on_test_bed_sources():
    """--sources: per source a baseline and an adversary on its biased split and the unbiased twin, all
    evaluated on its balanced test split; the removable share from those gaps, its role declared."""
    from steward.bench.fairness import FAMILIES, bench_fairness
    from steward.fairness.testbed import SOURCES

    r = bench_fairness(["--sources", "profiles,forum", "--seeds", "1", "--steps", "3", "--source-size", "200",
                        "--source-eval-size", "300", "--frozen-epochs", "1", "--bootstrap", "0", "--threads", "1"])
    assert r["data"] == "testbed" and r["sources"] == "profiles,forum" and r["tuning_sources"] == "campsite,cleanup"
    assert r["profiles/role"] == "seen" and r["forum/role"] == "seen"
    for src in ("profiles", "forum"):
        for fam in FAMILIES:
            base, adv, floor = (r[f"{src}/{n}/gap_{fam}"] for n in ("baseline", "adversary", "unbiased"))
            if base > floor:
                assert r[f"{src}/removable_reduction_{fam}"] == pytest.approx((base - adv) / (base - floor))
            else:
                assert math.isnan(r[f"{src}/removable_reduction_{fam}"])
        subs = [k.split("/")[1] for k in r[f"{src}/baseline/subgroup_gaps"]]
        assert set(SOURCES[src].carrying) <= set(subs)
        assert 0 < r[f"{src}/baseline/carrying_gap"] < 1


def test_a_role_no_source_has_is_a_clear_error(monkeypatch, capsys):
    """Once every source has been tuned on or seen, `--sources held_out` says so instead of listing names."""
    from steward.bench.fairness import _parse
    from steward.fairness import testbed

    monkeypatch.setattr(testbed, "held_out_sources", lambda: [])
    with pytest.raises(SystemExit):
        _parse(["--sources", "held_out"])
    assert "--sources: no source has the role 'held_out' under the current defaults" in capsys.readouterr().err


def test_done_when_uses_the_carrying_share_where_a_family_s_removable_gap_is_within_resolution():
    """Issue 17's verdict per case: a family's removable-gap share; the carrying subgroups' share where the
    removable gap is at most the adversary's half-width or negative; 'within' without carrying subgroups;
    met only with every share >= 60% and the AUC cost <= 2 points."""
    from steward.bench.fairness import done_when

    r = {"auc_cost_points": 1.5, "carrying_removable_reduction": 0.7}
    for fam, (base, twin, hw, share) in {"gender": (0.05, 0.01, 0.008, 0.9),  # removable 0.04 > 0.008
                                         "ethnicity": (0.02, 0.015, 0.008, 3.0),  # 0.005 <= 0.008
                                         "religion": (0.02, 0.03, 0.008, float("nan"))}.items():  # negative
        r.update({f"baseline/gap_{fam}": base, f"unbiased/gap_{fam}": twin,
                  f"adversary/gap_{fam}_ci95_halfwidth": hw, f"removable_reduction_{fam}": share})
    out = done_when(r)
    assert out == {"done_when/gender": [0.9, "family"], "done_when/ethnicity": [0.7, "carrying"],
                   "done_when/religion": [0.7, "carrying"], "done_when/met": True}
    assert not done_when({**r, "carrying_removable_reduction": 0.59})["done_when/met"]
    assert not done_when({**r, "auc_cost_points": 2.01})["done_when/met"]
    assert not done_when({**r, "removable_reduction_gender": float("nan")})["done_when/met"]
    del r["carrying_removable_reduction"]  # madlibs: no carrying subgroups
    assert done_when(r)["done_when/ethnicity"] == [None, "within"] and done_when(r)["done_when/met"]
