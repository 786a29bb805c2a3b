"""Fairness: metrics against hand computation, scikit-learn and fairlearn; the projection update
against its formula; the generator's injected bias; identity-data and config errors."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from steward.config import ConfigError, load_config
from steward.fairness.adversary import (
    adversarial_step,
    adversary_inputs,
    alpha_at,
    grad_dot,
    logit_stats,
    projected_gradients,
)
from steward.fairness.data import (
    from_columns,
    generate_madlibs,
    load_identities,
    madlibs_families,
    targeted_subgroups,
)
from steward.fairness.estimator import AdversarialDebiaser
from steward.fairness.metrics import (
    FairnessError,
    classification_metrics,
    fairness_report,
    generalized_mean,
    roc_auc,
    subgroup_metrics,
)
from steward.train.checks import check_job

# a small case worked by hand: 8 examples, subgroup "a" = rows 0-3
Y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
S = np.array([0.6, 0.7, 0.2, 0.3, 0.1, 0.8, 0.4, 0.9])
A = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)


def test_aucs_by_hand():
    # overall: positives .7 .3 .8 .9, negatives .6 .2 .1 .4; pairs won: .7:4 .3:2 .8:4 .9:4 -> 14/16
    assert roc_auc(Y, S) == pytest.approx(14 / 16)
    rows, skipped = subgroup_metrics(Y, S, {"a": A})
    r = rows[0]
    # subgroup: pos .7 .3 / neg .6 .2 -> (.7>.6,.7>.2,.3>.2) 3/4
    assert r.subgroup_auc == pytest.approx(3 / 4)
    # BPSN: background positives .8 .9, subgroup negatives .6 .2 -> 4/4
    assert r.bpsn_auc == pytest.approx(1.0)
    # BNSP: background negatives .1 .4, subgroup positives .7 .3 -> (.7>both, .3>.1) 3/4
    assert r.bnsp_auc == pytest.approx(3 / 4)
    assert skipped == {}


def test_generalized_mean_and_final_score_by_hand():
    assert generalized_mean([0.5, 1.0], p=-5) == pytest.approx(((0.5**-5 + 1) / 2) ** (-1 / 5))
    fam = {"g": ["a", "b"]}
    rep = fairness_report(Y, S, {"a": A, "b": ~A}, fam)
    sub_b = roc_auc(Y[~A], S[~A])
    means = rep["generalized_mean"]
    assert means["subgroup_auc"] == pytest.approx(generalized_mean([3 / 4, sub_b]))
    assert rep["final_score"] == pytest.approx(0.25 * 14 / 16 + 0.25 * sum(means.values()))
    gaps = [abs(v - 14 / 16) for row in rep["subgroups"] for v in (row["subgroup_auc"], row["bpsn_auc"], row["bnsp_auc"])]
    assert rep["mean_abs_gap"]["g"] == pytest.approx(np.mean(gaps))


def test_against_sklearn_and_fairlearn():
    from fairlearn.metrics import (
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
    )

    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n) * 0.6 + 0.4 * y, 2)  # ties on purpose
    sub = rng.integers(0, 3, n)
    groups = {f"s{i}": sub == i for i in range(3)}
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    rows, _ = subgroup_metrics(y, score, groups)
    for r in rows:
        m = groups[r.subgroup]
        assert r.subgroup_auc == pytest.approx(roc_auc_score(y[m], score[m]), abs=1e-12)
        bpsn = (m & (y == 0)) | (~m & (y == 1))
        assert r.bpsn_auc == pytest.approx(roc_auc_score(y[bpsn], score[bpsn]), abs=1e-12)
    rep = fairness_report(y, score, groups, {"f": list(groups)})
    pred = (score >= 0.5).astype(int)
    feature = np.array([f"s{i}" for i in sub])
    assert rep["demographic_parity_difference"]["f"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=feature))
    assert rep["equalized_odds_difference"]["f"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=feature))
    fpr = false_positive_rate(y, pred)
    fped = sum(abs(fpr - false_positive_rate(y[m], pred[m])) for m in groups.values())
    assert rep["fped"] == pytest.approx(fped)
    cm = classification_metrics(y, score)
    from sklearn.metrics import accuracy_score, f1_score

    assert cm["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert cm["f1"] == pytest.approx(f1_score(y, pred))


def test_bootstrap_interval_contains_point_and_is_seeded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    s = rng.random(400) + 0.5 * y
    g = {"a": rng.random(400) < 0.5}
    g["b"] = ~g["a"]
    r1 = fairness_report(y, s, g, {"f": ["a", "b"]}, bootstrap=50, seed=3)
    r2 = fairness_report(y, s, g, {"f": ["a", "b"]}, bootstrap=50, seed=3)
    assert r1["ci"] == r2["ci"]
    lo, hi = r1["ci"]["overall_auc"]
    assert lo <= r1["overall_auc"] <= hi and hi - lo < 0.2


def test_empty_and_single_class_subgroups():
    with pytest.raises(FairnessError, match="subgroup 'z': no examples"):
        subgroup_metrics(Y, S, {"z": np.zeros(8, dtype=bool)})
    one = np.array([0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)  # rows 0..6 are not all one class; row 7 alone is
    rows, skipped = subgroup_metrics(Y, S, {"one": one})
    assert math.isnan(rows[0].subgroup_auc) and "one/subgroup_auc" in skipped
    assert not math.isnan(rows[0].bnsp_auc)
    rep = fairness_report(Y, S, {"one": one, "z": np.zeros(8, dtype=bool), "a": A}, {"f": ["one", "z", "a"]})
    assert rep["skipped"]["z"] == "empty subgroup" and math.isfinite(rep["mean_abs_gap"]["f"])
    with pytest.raises(FairnessError, match="one class only"):
        fairness_report(np.zeros(8), S, {"a": A}, {"f": ["a"]})
    with pytest.raises(FairnessError, match="labels: must be 0/1"):
        fairness_report(Y * 0.5, S, {"a": A}, {"f": ["a"]})


def test_identity_columns_errors_and_binarisation(tmp_path):
    cols = {"comment_text": ["a", "b", "c", "d"], "target": [0.0, 0.7, 0.4, 1.0],
            "female": [0.6, None, 0.2, 1.0], "muslim": [0.0, 0.5, None, 0.0], "other_tag": [1, 0, 0, 0]}
    d = from_columns(cols)
    assert d.labels.tolist() == [False, True, False, True]
    assert d.groups["female"].tolist() == [True, False, False, True]
    assert d.families == {"gender": ["female"], "religion": ["muslim"]}
    assert d.annotated.tolist() == [True, True, True, True]
    with pytest.raises(FairnessError, match="identity column 'female': values must be fractions in \\[0, 1\\]"):
        from_columns({**cols, "female": [2.0, 0, 0, 0]})
    with pytest.raises(FairnessError, match="identity column 'female': values must be numbers"):
        from_columns({**cols, "female": ["yes", 0, 0, 0]})
    with pytest.raises(FairnessError, match="no identity columns .* --fairness.identity_columns"):
        from_columns({"text": ["a"], "target": [1.0]})
    plain = from_columns({"text": ["a", "b"], "label": [1, 0]}, require_identities=False)  # text classification
    assert plain.labels.tolist() == [True, False] and plain.families == {} and plain.groups == {}
    assert plain.identity_matrix().shape == (2, 0) and plain.subset(np.array([1])).texts == ["b"]
    named = from_columns({"text": ["a", "b"], "target": [1, 0], "grp_a": [1.0, 0.0], "grp_b": [0.0, 0.6]},
                         identity_columns=["grp_a", "grp_b"])
    assert named.families == {"other": ["grp_a", "grp_b"]} and named.groups["grp_b"].tolist() == [False, True]
    with pytest.raises(FairnessError, match="fairness.text_field"):
        from_columns({"body": ["a"], "target": [1.0], "male": [1.0]})
    import pandas as pd

    pd.DataFrame({k: v for k, v in cols.items()}).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame({k: v for k, v in cols.items()}).to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        got = load_identities(tmp_path / name)
        assert got.labels.tolist() == d.labels.tolist() and got.groups["female"].tolist() == d.groups["female"].tolist()


def test_madlibs_injects_bias_only_in_training_split():
    train = generate_madlibs(3000, seed=0, bias=0.8)
    evals = generate_madlibs(3000, seed=1, bias=0.0)
    targeted = set(targeted_subgroups())

    def toxic_rate(d, in_targeted):
        m = np.zeros(len(d), dtype=bool)
        for s, g in d.groups.items():
            if (s in targeted) == in_targeted:
                m |= g
        return d.labels[m].mean()

    assert toxic_rate(train, True) - toxic_rate(train, False) > 0.5
    assert abs(toxic_rate(evals, True) - toxic_rate(evals, False)) < 0.05
    assert abs(train.labels.mean() - 0.5) < 0.01
    assert set(train.families) == {"gender", "ethnicity", "religion"}
    assert all(g.sum() > 0 for g in evals.groups.values())
    assert (train.identity_matrix().sum(1) == 1).all()


def test_injected_bias_shows_up_as_gaps_without_an_adversary():
    """A plain bag-of-words logistic regression trained on the biased split carries the association
    into the balanced evaluation split; trained on an unbiased split it does not."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    evals = generate_madlibs(3000, seed=1, bias=0.0)

    def gaps(bias):
        train = generate_madlibs(3000, seed=0, bias=bias)
        vec = CountVectorizer(ngram_range=(1, 2)).fit(train.texts)
        clf = LogisticRegression(max_iter=500).fit(vec.transform(train.texts), train.labels)
        prob = clf.predict_proba(vec.transform(evals.texts))[:, 1]
        return fairness_report(evals.labels, prob, evals.groups, evals.families)["mean_abs_gap"]

    biased, fair = gaps(0.9), gaps(0.0)
    for fam in ("gender", "ethnicity", "religion"):
        assert biased[fam] > 0.05 and biased[fam] > 4 * fair[fam], (fam, biased, fair)


@pytest.mark.parametrize("kind", ["standardized_logit", "probability"])
def test_projection_update_equals_formula(kind):
    # float64: the implementation and the formula sum in other orders. Measured (AMD EPYC): 1.7e-13
    # relative at worst in float64; float32 gave 3.5e-6, within 3x of the old rtol 1e-5, which the
    # cancellation in the projection can pass on another CPU's kernels
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    params = list(model.parameters())
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 2, (16,)).double()
    ident = torch.randint(0, 2, (16, 2)).double()
    adversary = torch.nn.Linear(3, 2).double()

    def forward(b=None):
        z = model[1](model[0](x))
        return z, model[2](z).squeeze(-1)

    alpha = 0.7
    for p in params:  # leftovers of an earlier backward must not count as the adversary's gradient
        p.grad = torch.randn_like(p)
    adversarial_step(forward, [{"y": y, "identity": ident}], params, adversary, "equalized_odds", alpha, kind,
                     reuse=True, distributed=False)
    got = torch.cat([p.grad.flatten() for p in params])
    # the formula, with flat vectors computed independently
    z, logit = forward()
    lp = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
    if kind == "probability":
        s = torch.sigmoid(logit).reshape(-1, 1)
    else:  # the batch's mean and population standard deviation, as constants
        m, sd = logit.detach().mean(), logit.detach().std(correction=0)
        s = ((logit - m) / sd.clamp_min(0.1)).reshape(-1, 1)
    la = torch.nn.functional.binary_cross_entropy_with_logits(adversary(torch.cat([s, s * y[:, None], s * (1 - y[:, None])], 1)), ident)
    gp = torch.cat([g.flatten() for g in torch.autograd.grad(lp, params, retain_graph=True)])
    ga = torch.cat([g.flatten() for g in torch.autograd.grad(la, params)])
    want = gp - (gp @ ga) / (ga @ ga) * ga - alpha * ga
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)  # gradients up to about 0.3
    # the projected step is orthogonal to the adversary's gradient except for the -alpha term
    assert float((got + alpha * ga) @ ga) == pytest.approx(0.0, abs=1e-12)  # measured: 7e-16
    assert grad_dot([gp], [ga]).item() == pytest.approx(float(gp @ ga), rel=1e-9)
    assert projected_gradients([gp], [torch.zeros_like(ga)], 1.0)[0].equal(gp)
    assert alpha_at(2.0, "sqrt", 4) == 4.0


def test_standardized_logit_is_blind_to_rescaling_and_global_over_micro_batches():
    """The default adversary input: rescaling or shifting every logit (the predictor's escape into the
    sigmoid's tail) leaves it unchanged, unlike the probability (above the spread floor, 0.1);
    logit_stats over a list of micro-batches is over all of them (the layouts themselves are
    compared in test_fairness_distributed.py); no gradient flows through the statistics."""
    gen = torch.Generator().manual_seed(0)
    logit, y = torch.randn(12, generator=gen), (torch.rand(12, generator=gen) < 0.5).float()
    for variant, cols in (("equalized_odds", 3), ("demographic_parity", 1)):
        a = adversary_inputs(variant, None, logit, y)
        b = adversary_inputs(variant, None, 0.5 * logit - 3.0, y)
        assert a.shape == (12, cols)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    p, q = (adversary_inputs("equalized_odds", None, v, y, "probability") for v in (logit, 0.5 * logit - 3.0))
    assert float((p - q).abs().max()) > 0.1
    # over micro-batches == over the whole batch; population standard deviation
    stats = logit_stats([logit[:5], logit[5:]])
    torch.testing.assert_close(stats, torch.stack([logit.mean(), logit.std(correction=0)]))
    # the statistics are constants: d input / d logit_i is 1/sd for its own row only
    leaf = logit.clone().requires_grad_(True)
    adversary_inputs("demographic_parity", None, leaf, y)[3, 0].backward()
    want = torch.zeros(12)
    want[3] = 1 / float(stats[1])
    torch.testing.assert_close(leaf.grad, want)
    # logits that barely differ (a fresh head) are divided by the floor, not by their tiny spread
    tiny = 0.001 * logit
    torch.testing.assert_close(adversary_inputs("demographic_parity", None, tiny, y)[:, 0], (tiny - tiny.mean()) / 0.1)
    with pytest.raises(FairnessError, match="fairness.adversary_input: must be one of"):
        adversary_inputs("equalized_odds", None, logit, y, "logit")
    with pytest.raises(FairnessError, match="adversary_input: must be one of"):
        AdversarialDebiaser(adversary_input="raw").fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]),
                                                       sensitive_features=np.array(["a", "b", "a", "b"]))


def test_adversary_starts_at_the_base_rates():
    """start_at_prior: the adversary's first loss is the entropy of the subgroups' base rates, whatever
    its input, and with a hidden layer too."""
    import torch

    from steward.fairness.adversary import Adversary, adversary_loss

    gen = torch.Generator().manual_seed(0)
    identity = (torch.rand(500, 4, generator=gen) < torch.tensor([0.1, 0.3, 0.5, 0.05])).float()
    p = identity.mean(0)
    entropy = float((-(p * p.log() + (1 - p) * (1 - p).log())).mean())
    for hidden in (0, 8):
        adv = Adversary(3, 4, hidden)
        adv.start_at_prior(identity.numpy())
        x = torch.randn(500, 3, generator=gen)
        assert float(adversary_loss(adv(x), identity).detach()) == pytest.approx(entropy, rel=1e-5)


def test_debiaser_estimator_reduces_dependence_on_the_attribute():
    rng = np.random.default_rng(0)
    n = 1000
    a = rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    # feature 0 carries the label, feature 1 the attribute which, in training, agrees with the label
    x = np.stack([y + rng.normal(0, 1.0, n), np.where(rng.random(n) < 0.9, y, a) + rng.normal(0, 0.3, n)], 1)
    x = np.concatenate([x, a[:, None] + rng.normal(0, 0.3, (n, 1))], 1)
    sens = np.where(x[:, 1] > 0.5, "g1", "g0")
    common = {"constraints": "representation", "epochs": 5, "random_state": 0, "learning_rate": 1e-2,
              "adversary_learning_rate": 1e-2}
    plain = AdversarialDebiaser(alpha=0.0, **common).fit(x, y, sensitive_features=sens)
    fair = AdversarialDebiaser(alpha=1.0, **common).fit(x, y, sensitive_features=sens)
    g1 = sens == "g1"

    def dp(model):
        p = model.predict(x)
        return abs(p[g1].mean() - p[~g1].mean())

    # measured (AMD EPYC, 1 and 2 threads alike): 0.14; random_state 1-3 give 0.08-0.24, so rounding cannot
    # bring it near 0.5
    assert dp(fair) < 0.5 * dp(plain)
    assert fair.predict_proba(x).shape == (n, 2) and fair.n_steps_ == 5 * math.ceil(n / 64)
    # a scikit-learn estimator: clone() copies the parameters, and the same random_state fits the same
    from sklearn.base import clone

    again = clone(fair)
    assert again.get_params()["alpha"] == 1.0 and not hasattr(again, "predictor_")
    assert np.array_equal(again.fit(x, y, sensitive_features=sens).predict(x), fair.predict(x))
    assert fair.score(x, y) == pytest.approx(float(np.mean(fair.predict(x) == y)))
    with pytest.raises(FairnessError, match="sensitive_features: need at least two"):
        AdversarialDebiaser().fit(x, y, sensitive_features=np.zeros(n))


def test_config_checks():
    with pytest.raises(ConfigError, match="train.task: must be lm or classify"):
        check_job(load_config(None, ["--train.task", "rank"]))
    with pytest.raises(ConfigError, match="fairness.enabled: .* --train.task classify"):
        check_job(load_config(None, ["--fairness.enabled", "true"]))
    with pytest.raises(ConfigError, match="fairness.adversary: must be one of"):
        check_job(load_config(None, ["--train.task", "classify", "--fairness.adversary", "strong"]))
    with pytest.raises(ConfigError, match="fairness.adversary_input: must be one of standardized_logit, probability"):
        check_job(load_config(None, ["--train.task", "classify", "--fairness.adversary_input", "sigmoid"]))
    with pytest.raises(ConfigError, match="fairness.data: '/nope.csv' does not exist"):
        check_job(load_config(None, ["--train.task", "classify", "--fairness.data", "/nope.csv"]))
    with pytest.raises(ConfigError, match="comm.compressor: gradient compression applies to train.task lm"):
        check_job(load_config(None, ["--train.task", "classify", "--comm.compressor", "powersgd"]))
    with pytest.raises(ConfigError, match="fairness.identity_columns: 'a,,b' has an empty name"):
        load_config(None, ["--train.task", "classify", "--fairness.identity_columns", "a,,b"])
    with pytest.raises(ConfigError, match="fairness.identity_columns: names columns of a data file; madlibs"):
        check_job(load_config(None, ["--train.task", "classify", "--fairness.identity_columns", "a,b"]))
    with pytest.raises(ConfigError, match="fairness.on_gap: raise_alpha needs an adversary"):
        check_job(load_config(None, ["--train.task", "classify", "--fairness.max_gap", "0.1",
                                     "--fairness.on_gap", "raise_alpha"]))


TINY = [
    "--train.task", "classify", "--model.flavor", "debug", "--train.steps", "4", "--train.batch_size", "8",
    "--train.warmup_steps", "1", "--train.val_every", "2", "--train.device", "cpu", "--train.threads", "1",
    "--fairness.madlibs_size", "64", "--fairness.madlibs_eval_size", "60", "--fairness.enabled", "true",
    "--fairness.eval_every", "2", "--fairness.bootstrap", "5",
]
# Equivalence checks of two runs (recomputation against keep, resume against the run that went on)
# train in float64: the same mathematics then agrees to about 1e-15 relative on any CPU, so 1e-9
# separates it from a different update. Measured (AMD EPYC): both pairs bitwise equal, in float32 too.
F64 = ["--train.dtype", "float64"]
RTOL_F64 = 1e-9


def test_classify_run_monitor_audit_events_and_cli(tmp_path, capsys):
    """A classify run end to end: monitor figures in metrics.jsonl, fairness audit events through the
    governance callback, summary['fairness'], then `steward fairness eval` with a before/after chart."""
    import json

    from steward.classify.trainer import ClassifyTrainer
    from steward.cli.main import main
    from steward.governance.store import AuditStore
    from steward.train.governance_callback import GovernanceCallback

    out = tmp_path / "run"
    sheet = tmp_path / "datasheets.toml"
    sheet.write_text('[madlibs]\nsource = "generated by steward.fairness.data"\nlicense = "Apache-2.0"\n'
                     'intended_use = "tests"\nknown_biases = "an injected identity/label association"\n')
    cfg = load_config(None, [*TINY, "--job.out", str(out), "--governance.workspace", str(tmp_path / "ws"),
                             "--governance.datasheets", str(sheet),
                             "--fairness.max_gap", "0.0001", "--fairness.on_gap", "alert"])
    summary = ClassifyTrainer(cfg, callbacks=[GovernanceCallback(cfg)]).run()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    step2 = next(r for r in rows if r.get("step") == 2)
    assert {"fair_gap_gender", "fair_gap_religion", "fair_overall_auc", "val_auc", "val_f1"} <= set(step2)
    assert step2["fair_alert"] == "alert"
    assert set(summary["fairness"]["mean_abs_gap"]) == {"gender", "ethnicity", "religion"}
    assert "mean_abs_gap/gender" in summary["fairness"]["ci"]
    assert (out / "fairness" / "report.json").is_file()
    with AuditStore("sqlite:///" + str(out / "governance" / "audit.db"), create=False) as store:
        types = [e.type for e in store.entries()]
    assert types.count("fairness.evaluated") == 2 and types.count("fairness.alert") == 1  # step 2, and final

    before = tmp_path / "before"
    ClassifyTrainer(load_config(None, [*TINY, "--job.out", str(before), "--governance.enabled", "false",
                                       "--train.seed", "7"]), callbacks=[]).run()
    capsys.readouterr()
    assert main(["fairness", "eval", str(out), "--before", str(before), "--size", "60", "--bootstrap", "5",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {r["run"] for r in res["families"]} == {"before", "after"}
    assert (out / "fairness" / "eval" / "gaps.png").read_bytes()[:4] == b"\x89PNG"
    # the evaluation reloads the checkpoint: same scores as the run's own final evaluation
    report = json.loads((out / "fairness" / "report.json").read_text())
    assert res["overall_auc"]["after"] == pytest.approx(report["overall_auc"], abs=1e-6)
    assert main(["fairness", "eval", str(tmp_path / "nothing")]) == 2
    assert "holds no config.toml" in capsys.readouterr().err


def test_predictions_csv_reproduces_the_reported_auc(tmp_path, capsys):
    """RUN_DIR/fairness/predictions.csv (training's final evaluation, on a slice of a file) and that of
    `steward fairness eval` (the whole file): scikit-learn's AUC on them is the reported one; row_id is
    the row's number in the evaluated file; unannotated rows have empty cells."""
    import json

    import pandas as pd

    from steward.classify.trainer import ClassifyTrainer
    from steward.cli.main import main
    from steward.fairness.testbed import write_identities

    d, out = generate_madlibs(200, seed=3, bias=0.5), tmp_path / "run"
    d.annotated = ~(unannotated := np.arange(len(d)) % 7 == 0)
    path = write_identities(d, tmp_path / "civil.csv")
    ClassifyTrainer(load_config(None, [*TINY, "--job.out", str(out), "--governance.enabled", "false",
                                       "--fairness.data", str(path), "--fairness.eval_fraction", "0.4"]),
                    callbacks=[]).run()
    report = json.loads((out / "fairness" / "report.json").read_text())
    pred = pd.read_csv(out / "fairness" / "predictions.csv")
    assert list(pred.columns[:3]) == ["row_id", "score", "label"] and set(d.groups) <= set(pred.columns)
    assert len(pred) == report["n"] == 80 and pred["row_id"].is_unique
    assert roc_auc_score(pred["label"], pred["score"]) == pytest.approx(report["overall_auc"], abs=1e-12)
    rows = pd.read_csv(path).iloc[pred["row_id"]]
    assert (pred["label"].to_numpy() == (rows["target"] >= 0.5).to_numpy()).all()
    assert (pred["muslim"].isna().to_numpy() == unannotated[pred["row_id"]]).all()
    assert (pred["muslim"].fillna(0).to_numpy() == rows["muslim"].fillna(0).to_numpy()).all()
    sub, muslim = pred[pred["muslim"] == 1], next(r for r in report["subgroups"] if r["subgroup"] == "muslim")
    assert roc_auc_score(sub["label"], sub["score"]) == pytest.approx(muslim["subgroup_auc"], abs=1e-12)
    capsys.readouterr()
    assert main(["fairness", "eval", str(out), "--data", str(path), "--bootstrap", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["files"]["predictions.csv"] == str(out / "fairness" / "eval" / "predictions.csv")
    pred = pd.read_csv(res["files"]["predictions.csv"])
    assert pred["row_id"].tolist() == list(range(len(d)))
    assert roc_auc_score(pred["label"], pred["score"]) == pytest.approx(res["overall_auc"]["run"], abs=1e-12)


def test_monitor_can_stop_the_run(tmp_path):
    from steward.classify.trainer import ClassifyTrainer
    from steward.train.callbacks import StopTraining

    cfg = load_config(None, [*TINY, "--job.out", str(tmp_path / "run"), "--governance.enabled", "false",
                             "--fairness.max_gap", "0.0001", "--fairness.on_gap", "stop"])
    with pytest.raises(StopTraining, match="fairness: .* mean absolute AUC gap .* exceeds fairness.max_gap"):
        ClassifyTrainer(cfg, callbacks=[]).run()


def test_classify_on_a_local_hugging_face_model(tmp_path):
    """The head sits on HFCausalLM.hidden_states; the LM head is dropped; the checkpoint evaluates."""
    transformers = pytest.importorskip("transformers")
    from steward.classify.trainer import ClassifyTrainer
    from steward.jobs import evaluate_run

    config = transformers.LlamaConfig(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "hf")
    out = tmp_path / "run"
    cfg = load_config(None, [*TINY, "--model.hf_path", str(tmp_path / "hf"), "--job.out", str(out),
                             "--governance.enabled", "false", "--train.seq_len", "64",
                             "--fairness.adversary", "representation"])
    trainer = ClassifyTrainer(cfg, callbacks=[])
    summary = trainer.run()
    assert not any("lm_head" in n for n, _ in trainer.model.named_parameters())
    assert 0 <= summary["final_val_auc"] <= 1 and "fairness" in summary
    report = evaluate_run(out, "madlibs", size=60, bootstrap=0)
    assert report["overall_auc"] == pytest.approx(summary["fairness"]["overall_auc"], abs=1e-6)


def _plain_csv(path, identities: bool = False):
    """A text classification set: label 1 iff the text says 'bad'; with `identities`, two identity columns
    under names the Jigsaw layout does not know."""
    import pandas as pd

    rng = np.random.default_rng(0)
    words = ["good", "bad", "day", "food", "work", "trip"]
    texts = [" ".join(rng.choice(words, size=4)) for _ in range(80)]
    cols = {"text": texts, "label": [int("bad" in t) for t in texts]}
    if identities:
        cols |= {"grp_a": (rng.random(80) < 0.3).astype(float), "grp_b": (rng.random(80) < 0.3).astype(float)}
    pd.DataFrame(cols).to_csv(path, index=False)
    return path


PLAIN = [a for a in TINY if a not in ("--fairness.madlibs_size", "64", "--fairness.madlibs_eval_size", "60")]


def test_classify_without_identity_columns_trains_without_fairness_evaluation(tmp_path, capsys):
    """Text and label only: the run trains, says once that there is no fairness evaluation, and records no
    fairness figures; an adversary is refused in one line; identity columns under other names are read
    when fairness.identity_columns names them, and the evaluation runs on them."""
    from steward.classify.trainer import ClassifyTrainer
    from steward.cli.main import main

    data = _plain_csv(tmp_path / "plain.csv")
    cfg = load_config(None, [*PLAIN, "--fairness.data", str(data), "--fairness.eval_fraction", "0.25",
                             "--job.out", str(tmp_path / "run"), "--governance.enabled", "false"])
    summary = ClassifyTrainer(cfg, callbacks=[]).run()
    err = capsys.readouterr().err
    assert err.count("has no identity columns, so no fairness evaluation") == 1
    assert "fairness" not in summary and 0 <= summary["final_val_auc"] <= 1
    assert not (tmp_path / "run" / "fairness" / "report.json").exists()

    argv = ["train", *PLAIN, "--fairness.data", str(data), "--fairness.adversary", "equalized_odds",
            "--job.out", str(tmp_path / "adv"), "--governance.enabled", "false"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fairness.adversary:" in err[0] and "--fairness.identity_columns" in err[0]

    named = _plain_csv(tmp_path / "named.csv", identities=True)
    cfg = load_config(None, [*PLAIN, "--fairness.data", str(named), "--fairness.eval_fraction", "0.25",
                             "--fairness.identity_columns", "grp_a, grp_b", "--fairness.adversary", "representation",
                             "--job.out", str(tmp_path / "named"), "--governance.enabled", "false"])
    summary = ClassifyTrainer(cfg, callbacks=[]).run()
    assert set(summary["fairness"]["mean_abs_gap"]) == {"other"}
    assert "no identity columns" not in capsys.readouterr().err


def test_classify_applies_memory_policy_with_the_same_losses(tmp_path):
    """memory.policy reaches the classifier's blocks (recorded in summary['memory']) and, being exact
    recomputation, leaves the loss curve unchanged, with the adversary too (whose step runs two
    backward passes: one forward for both under keep, a second forward under recomputation)."""
    import json

    from steward.classify.trainer import ClassifyTrainer

    for adversary in ("none", "equalized_odds"):
        curves = {}
        for policy in ("keep", "full", "selective"):
            out = tmp_path / adversary / policy
            cfg = load_config(None, [*TINY, "--fairness.enabled", "false", "--train.val_every", "0",
                                     "--governance.enabled", "false", "--checkpoint.enabled", "false",
                                     "--fairness.adversary", adversary, "--memory.policy", policy, "--job.out", str(out),
                                     *F64])
            summary = ClassifyTrainer(cfg, callbacks=[]).run()
            assert summary["memory"]["policies"] == [policy] * 2  # the debug flavor's two blocks
            curves[policy] = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert curves["full"] == pytest.approx(curves["keep"], rel=RTOL_F64), adversary
        assert curves["selective"] == pytest.approx(curves["keep"], rel=RTOL_F64), adversary


def test_classify_with_adversary_resumes_on_the_same_curve(tmp_path):
    """The adversary and its optimizer are in the checkpoint: a run resumed at step 2 takes the same
    steps 3-4 (losses and adversary losses) as the run that went on; a checkpoint without them is
    refused with the reason."""
    import json

    from steward.classify.trainer import ClassifyTrainer
    from steward.config import ConfigError

    common = [*TINY, "--fairness.enabled", "false", "--train.val_every", "0", "--governance.enabled", "false",
              "--fairness.adversary", "equalized_odds", "--fairness.alpha", "3", *F64]

    def rows(out):
        return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]

    full = tmp_path / "full"
    ClassifyTrainer(load_config(None, [*common, "--checkpoint.every", "2", "--job.out", str(full)]), callbacks=[]).run()
    resumed = tmp_path / "resumed"
    ClassifyTrainer(load_config(None, [*common, "--job.out", str(resumed), "--checkpoint.resume",
                                       str(full / "checkpoints" / "step-2")]), callbacks=[]).run()
    a, b = rows(full)[2:], rows(resumed)
    assert [r["step"] for r in b] == [3, 4]
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=RTOL_F64)
    assert [r["adv_loss"] for r in b] == pytest.approx([r["adv_loss"] for r in a], rel=RTOL_F64)

    plain = tmp_path / "plain"
    ClassifyTrainer(load_config(None, [*TINY, "--fairness.enabled", "false", "--train.val_every", "0",
                                       "--governance.enabled", "false", "--checkpoint.every", "2",
                                       "--job.out", str(plain), *F64]), callbacks=[]).run()
    with pytest.raises(ConfigError, match="has no adversary state"):
        ClassifyTrainer(load_config(None, [*common, "--job.out", str(tmp_path / "x"), "--checkpoint.resume",
                                           str(plain / "checkpoints" / "step-2")]), callbacks=[]).run()
    # an adversary fitted to standardised logits does not resume on probabilities (nor the reverse)
    with pytest.raises(ConfigError, match="fairness.adversary_input: .* trained on 'standardized_logit' inputs; "
                                          "resume with --fairness.adversary_input standardized_logit"):
        ClassifyTrainer(load_config(None, [*common, "--job.out", str(tmp_path / "y"), "--fairness.adversary_input",
                                           "probability", "--checkpoint.resume", str(full / "checkpoints" / "step-2")]),
                        callbacks=[]).run()


def test_bench_fairness_reports_consistent_figures():
    """The benchmark's own arithmetic: reductions from its gaps, and each family's gap the mean of its
    subgroups' gaps (what locates a family's residual)."""
    from steward.bench.fairness import FAMILIES, bench_fairness

    r = bench_fairness(["--seeds", "1", "--steps", "5", "--madlibs-eval-size", "600", "--frozen-epochs", "1",
                        "--bootstrap", "0", "--threads", "1", "--unbiased-reference"])
    for fam in FAMILIES:
        assert r[f"reduction_{fam}"] == pytest.approx(1 - r[f"adversary/gap_{fam}"] / r[f"baseline/gap_{fam}"])
        base, adv, floor = (r[f"{n}/gap_{fam}"] for n in ("baseline", "adversary", "unbiased"))
        if base > floor:
            assert r[f"removable_reduction_{fam}"] == pytest.approx((base - adv) / (base - floor))
        else:  # nothing removable (a 5-step model can be worse unbiased): not a number, not a huge ratio
            assert math.isnan(r[f"removable_reduction_{fam}"])
        for name in ("baseline", "adversary", "unbiased"):
            subs = [v for k, v in r[f"{name}/subgroup_gaps"].items() if k.startswith(f"{fam}/")]
            assert len(subs) == len(madlibs_families()[fam])
            assert np.mean(subs) == pytest.approx(r[f"{name}/gap_{fam}"], rel=1e-9)
    assert r["auc_cost_points"] == pytest.approx(100 * (r["baseline/overall_auc"] - r["adversary/overall_auc"]))
    # the loss-weighting baselines (trained by default), the same arithmetic under their own names
    for m in ("reweigh", "group_dro"):
        for fam in FAMILIES:
            base, got, floor = (r[f"{n}/gap_{fam}"] for n in ("baseline", m, "unbiased"))
            assert r[f"{m}/reduction_{fam}"] == pytest.approx(1 - got / base)
            if base > floor:
                assert r[f"{m}/removable_reduction_{fam}"] == pytest.approx((base - got) / (base - floor))
        assert r[f"{m}/auc_cost_points"] == pytest.approx(100 * (r["baseline/overall_auc"] - r[f"{m}/overall_auc"]))


def test_bench_fairness_unbiased_reference_needs_madlibs(tmp_path, capsys):
    from steward.bench.fairness import bench_fairness

    with pytest.raises(SystemExit):
        bench_fairness(["--data", str(tmp_path / "civil.csv"), "--unbiased-reference"])
    assert "--unbiased-reference: needs --data madlibs" in capsys.readouterr().err


def test_bench_fairness_tokenizer_comes_from_each_training_split(tmp_path, capsys):
    """--tokenizer bpe: a byte-level BPE trained on the run's own training split, one per distinct split
    (baseline and adversary share theirs), in which the identity words are whole tokens."""
    from steward.bench.fairness import _overrides, _parse, _tokenizer
    from steward.data import build_tokenizer

    a = _parse(["--threads", "1"])
    cache: dict[tuple[int, float], str] = {}
    base = _tokenizer(a, _overrides(a, 0, tmp_path / "b", "none", 0.8), (0, 0.8), tmp_path, cache)
    adv = _tokenizer(a, _overrides(a, 0, tmp_path / "a", "equalized_odds", 0.8), (0, 0.8), tmp_path, cache)
    unbiased = _tokenizer(a, _overrides(a, 0, tmp_path / "u", "none", 0.0), (0, 0.0), tmp_path, cache)
    assert base == adv != unbiased and base[0] == "--data.tokenizer"
    assert len(list(tmp_path.glob("tokenizer-*.json"))) == 2
    tok = build_tokenizer(base[1])
    for word in ("christian", "muslim", "hindu", "woman", "caucasian"):
        assert len(tok.encode(f"i met a {word} at the market today")) == 8, word
    assert _tokenizer(_parse(["--tokenizer", "byte"]), [], (0, 0.8), tmp_path, cache) == []
    with pytest.raises(SystemExit):
        _parse(["--tokenizer", str(tmp_path / "missing.json")])
    assert "--tokenizer: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--tokenizer", "byte", "--vocab-size", "1000"])
    assert "--vocab-size: only for --tokenizer bpe" in capsys.readouterr().err


def test_bench_fairness_on_a_dataset_in_the_identities_layout(tmp_path):
    """--data FILE --eval-from-train: the same comparison on a CSV in the Civil Comments layout
    (annotator fractions, some identities missing), its evaluation rows held out of the file
    (fairness.eval_fraction) and its BPE trained on the rest."""
    import pandas as pd

    from steward.bench.fairness import FAMILIES, bench_fairness

    d = generate_madlibs(1200, seed=5, bias=0.8)
    rng = np.random.default_rng(0)
    cols = {"comment_text": d.texts, "target": np.where(d.labels, 0.8, 0.1)}
    for name, member in d.groups.items():
        frac = np.where(member, 0.9, 0.0)
        cols[name] = np.where(rng.random(len(d)) < 0.05, np.nan, frac)  # not every row annotated
    path = tmp_path / "civil.csv"
    pd.DataFrame(cols).to_csv(path, index=False)
    r = bench_fairness(["--data", str(path), "--eval-from-train", "--seeds", "1", "--steps", "5",
                        "--frozen-epochs", "1", "--bootstrap", "0", "--threads", "1"])
    assert r["data"] == str(path) and r["tokenizer"] == "bpe"
    assert r["eval_data"] == f"fairness.eval_fraction of {path}"
    for fam in FAMILIES:
        assert 0 <= r[f"baseline/gap_{fam}"] < 1 and 0 <= r[f"adversary/gap_{fam}"] < 1
        assert r[f"reduction_{fam}"] == pytest.approx(1 - r[f"adversary/gap_{fam}"] / r[f"baseline/gap_{fam}"])
        assert not math.isnan(r[f"frozen_fairlearn/reduction_{fam}"])

