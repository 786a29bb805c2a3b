"""The fresh held-out planted-rule tasks: generators, labels, designed rates and lengths, their own
vocabulary, and `--planted` selecting them (parsing only: no model is trained here)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from steward.explain import ExplainError
from steward.explain.formula import holds
from steward.explain.planted import TASKS, TUNING_TASKS, PlantedTask
from steward.explain.planted_fresh import FRESH_TASKS, LENGTHS, PLANTED, planted_names

_FUNCTION = ("the a an and or of to in on at by for with from through over near into as then while after before "
             "during because since that so it was had our we i they until once more why each all who whose where")
FUNCTION_WORDS = frozenset(_FUNCTION.split())
"""Words any two tasks may share; every other word belongs to one task only."""

N_TRAIN = 4000


def vocabulary(task: PlantedTask) -> set[str]:
    return ({w for words in task.slots.values() for w in words} | set(task.insert) |
            {w for t in task.templates for w in t.split() if not w.startswith("{")})


def train_split(name: str):
    return FRESH_TASKS[name].splits(N_TRAIN, 10, seed=0)[0]


def word_rate(texts: list[str], word: str) -> float:
    return float(np.mean([word in t.split() for t in texts]))


PINNED = {"chat_rare": "e59fecb83179aa3c", "mine_negation": "bef74ec165c0e97a", "ward_disjunction": "64306a21268ae40b",
          "film_conjunction": "f5aaea33537a9b41", "deploy_order": "a306f60e295ce785", "camp_count": "883fbd74af1db90c",
          "plaza_control": "7a23ea37c8d393b5"}
"""Digests of each task's texts and labels at seed 3: held-out data must not change under a result."""


def digest(task: PlantedTask, seed: int) -> str:
    h = hashlib.sha256()
    for split in task.splits(200, 50, seed=seed):
        h.update("\n".join(split.texts).encode() + split.labels.astype("<i8").tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name", list(FRESH_TASKS))
def test_fresh_generator_is_deterministic_pinned_and_seeded(name):
    task = FRESH_TASKS[name]
    assert digest(task, 3) == digest(task, 3) == PINNED[name]
    assert digest(task, 4) != PINNED[name]
    train, test = task.splits(200, 50, seed=3)
    assert train.texts[:50] != test.texts  # separate streams for training and test


@pytest.mark.parametrize("name", [n for n, t in FRESH_TASKS.items() if t.rule is not None])
def test_fresh_label_is_the_formula_on_the_text(name):
    task = FRESH_TASKS[name]
    train, test = task.splits(400, 100, seed=1)
    for split in (train, test):
        assert [int(holds(task.rule, t.split())) for t in split.texts] == split.labels.tolist()
        assert [task.label(t) for t in split.texts] == split.labels.tolist()
    assert 0 < train.labels.sum() < len(train.labels)
    filler = vocabulary(task) - set(task.insert)
    assert not filler & set(task.rule_words)  # rule words come only from insertion


@pytest.mark.parametrize("name", list(FRESH_TASKS))
def test_fresh_lengths_as_designed(name):
    lo, hi = LENGTHS[name]
    lengths = [len(t.split()) for t in train_split(name).texts]
    assert lo <= min(lengths) and max(lengths) <= hi
    assert max(lengths) - min(lengths) >= 2


def test_fresh_lengths_vary_between_tasks():
    assert min(hi for hi in (h for _, h in LENGTHS.values())) <= 6  # short texts
    assert sum(lo >= 25 for lo, _ in LENGTHS.values()) >= 3  # long ones
    assert set(LENGTHS) == set(FRESH_TASKS)


def test_balanced_tasks_are_balanced():
    balanced = [n for n, t in FRESH_TASKS.items() if t.balanced and t.rule is not None]
    assert set(balanced) == {"ward_disjunction", "deploy_order", "camp_count"}
    for name in balanced:
        assert train_split(name).labels.mean() == 0.5, name


def test_rare_trigger_rate_and_frequent_distractor():
    split = train_split("chat_rare")
    assert 0.03 < split.labels.mean() < 0.05
    assert 0.03 < word_rate(split.texts, "bestie") < 0.05
    lol = np.array(["lol" in t.split() for t in split.texts])
    assert 0.55 < lol.mean() < 0.65
    assert abs(lol[split.labels == 1].mean() - lol[split.labels == 0].mean()) < 0.15  # decides nothing


def test_negation_of_the_frequent_word():
    task = FRESH_TASKS["mine_negation"]
    assert task.rule == ("and", ("not", "quartz"), "pickaxe")
    split = train_split("mine_negation")
    assert 0.5 < word_rate(split.texts, "quartz") < 0.6 and 0.85 < word_rate(split.texts, "pickaxe") < 0.95
    assert 0.35 < split.labels.mean() < 0.45


def test_three_word_disjunction():
    task = FRESH_TASKS["ward_disjunction"]
    assert task.rule[0] == "or" and len(task.rule_words) == 3
    split = train_split("ward_disjunction")
    for w in task.rule_words:  # each word alone makes a positive
        alone = [y for t, y in zip(split.texts, split.labels)
                 if w in t.split() and not any(v in t.split() for v in task.rule_words if v != w)]
        assert alone and all(alone), w


def test_skewed_conjunction_rates():
    split = train_split("film_conjunction")
    assert 0.55 < word_rate(split.texts, "popcorn") < 0.65
    assert 0.12 < word_rate(split.texts, "subtitles") < 0.18
    assert 0.06 < split.labels.mean() < 0.12


def test_order_twist_presence_decides_nothing():
    split = train_split("deploy_order")
    both_neg = [t for t, y in zip(split.texts, split.labels) if y == 0 and {"deploy", "compile"} <= set(t.split())]
    both_pos = [t for t, y in zip(split.texts, split.labels) if y == 1]
    assert both_neg and all(t.split().index("compile") < t.split().index("deploy") for t in both_neg)
    assert all(t.split().index("deploy") < t.split().index("compile") for t in both_pos)
    assert word_rate(split.texts, "compile") > 0.85 and word_rate(split.texts, "deploy") > 0.7


def test_count_rule_two_of_four():
    task = FRESH_TASKS["camp_count"]
    assert task.rule[:2] == ("atleast", 2) and len(task.rule_words) == 4
    split = train_split("camp_count")
    counts = np.array([sum(w in t.split() for w in task.rule_words) for t in split.texts])
    assert np.array_equal(counts >= 2, split.labels == 1)
    assert set(counts.tolist()) == {0, 1, 2, 3, 4}


def test_fresh_control_is_random_with_its_own_decoys():
    task = FRESH_TASKS["plaza_control"]
    assert task.rule is None and set(task.insert) == {"velvet", "marble", "thunder"}
    split = train_split("plaza_control")
    assert 0.45 < split.labels.mean() < 0.55
    for w in task.insert:
        has = np.array([w in t.split() for t in split.texts])
        assert abs(split.labels[has].mean() - split.labels[~has].mean()) < 0.06
    with pytest.raises(ValueError, match="no rule"):
        task.label(split.texts[0])


def test_no_content_word_shared_with_earlier_tasks_or_between_fresh_ones():
    earlier = set().union(*(vocabulary(t) for t in TASKS.values()))
    seen: dict[str, str] = {}
    for name, task in FRESH_TASKS.items():
        content = vocabulary(task) - FUNCTION_WORDS
        assert not content & earlier, (name, content & earlier)
        assert not {"yes", "no", "=>"} & vocabulary(task)  # the language-model form's label words
        for w in content:
            assert seen.setdefault(w, name) == name, (w, seen[w], name)
        assert set(task.insert) <= content


def test_fresh_tasks_are_held_out_and_separate():
    assert len(FRESH_TASKS) >= 6 and not set(FRESH_TASKS) & set(TASKS) and not set(FRESH_TASKS) & set(TUNING_TASKS)
    assert PLANTED == {**TASKS, **FRESH_TASKS}


def test_planted_names_resolves_groups_and_names():
    assert planted_names("all") == list(TASKS) and planted_names("") == list(TASKS)
    assert planted_names("fresh") == list(FRESH_TASKS)
    assert planted_names("camp_count, order") == ["camp_count", "order"]
    assert planted_names("fresh,negation") == [*FRESH_TASKS, "negation"]
    with pytest.raises(ExplainError, match="--planted: unknown task 'nope'; choose from all, fresh, "):
        planted_names("chat_rare,nope")


def test_bench_planted_flag_selects_fresh_tasks(monkeypatch):
    """`steward bench explain --planted NAME,...` runs the named fresh tasks (run_task replaced: no training)."""
    import steward.bench.explain_planted as ep
    from steward.bench.explain import bench_explain

    ran: list[PlantedTask] = []

    def fake_run(task, args, form):
        ran.append(task)
        return {"description": task.description, "model_accuracy": 1.0, "train_s": 0.0, "explain_s": 0.0}

    monkeypatch.setattr(ep, "run_task", fake_run)
    monkeypatch.setattr(ep, "summarise", lambda results: {"target_met": False, "met": {}})
    monkeypatch.setattr(ep, "format_planted", lambda results: "")
    out = bench_explain(["--planted", "deploy_order,chat_rare"])
    assert [t.name for t in ran] == ["deploy_order", "chat_rare"] == list(out["planted"])
    assert ran[0] is FRESH_TASKS["deploy_order"]
    ran.clear()
    bench_explain(["--planted", "fresh"])
    assert [t.name for t in ran] == list(FRESH_TASKS)
    with pytest.raises(ExplainError, match="unknown task 'nope'"):
        bench_explain(["--planted", "nope"])
