"""The adversary-weight controller (fairness.control): its signal on synthetic scores, its decision
rule, that a run's controller reads only its validation slice of the training data (never the
evaluation set), its config errors, and (slow) the same decisions on 2 gloo ranks as in one process."""

import json

import numpy as np
import pytest
import torch

from steward.config import ConfigError, load_config
from steward.fairness.control import FLOOR_DIVISOR, AlphaController, Selection, excess_gap, weighted_auc
from steward.fairness.metrics import roc_auc
from steward.train.checks import check_job


def test_weighted_auc_is_the_auc_with_equal_weights_and_weighs_pairs():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = np.round(rng.normal(size=300) + y, 1)  # with ties
    assert weighted_auc(y, s, np.full(300, 2.5)) == pytest.approx(roc_auc(y, s), abs=1e-12)
    # a row of weight 3 counts as three copies of it
    w = np.ones(300)
    w[0] = 3.0
    rep = np.r_[np.arange(300), 0, 0]
    assert weighted_auc(y, s, w) == pytest.approx(roc_auc(y[rep], s[rep]), abs=1e-12)
    assert np.isnan(weighted_auc(np.ones(5, bool), np.arange(5.0), np.ones(5)))


def _biased_slice(n=1500, seed=0):
    """A slice whose subgroup 0 is mostly toxic (the training data's association) and two other subgroups."""
    rng = np.random.default_rng(seed)
    ident = np.zeros((n, 3))
    ident[np.arange(n), rng.integers(0, 4, n).clip(max=2)] = 1
    ident[rng.random(n) < 0.25] = 0  # rows that mention no identity
    y = np.where(ident[:, 0] == 1, rng.random(n) < 0.85, rng.random(n) < 0.35)
    return y, ident, rng


def test_excess_gap_sees_a_shortcut_and_not_the_slice_composition():
    y, ident, rng = _biased_slice()
    fair = y + rng.normal(size=len(y))  # the score depends on the label only
    shortcut = fair + 1.5 * ident[:, 0]  # plus an offset for subgroup 0
    gap_fair, auc_fair = excess_gap(y, fair, ident, seed=1)
    gap_short, _ = excess_gap(y, shortcut, ident, seed=1)
    assert abs(gap_fair) < 0.01
    assert gap_short > 0.05
    # the importance weights take the association out of the overall AUC: a score that is the
    # identity alone ranks the weighted slice at chance, though it ranks the plain slice well above
    ident_only = ident[:, 0] + 1e-3 * rng.random(len(y))
    assert roc_auc(y, ident_only) > 0.6
    assert abs(excess_gap(y, ident_only, ident)[1] - 0.5) < 0.02
    assert 0.7 < auc_fair < 0.85
    # deterministic given the seed (every rank computes the same figure)
    assert excess_gap(y, shortcut, ident, seed=1) == excess_gap(y, shortcut, ident, seed=1)


def test_controller_raises_on_gap_lowers_on_cost_and_keeps_its_bounds():
    c = AlphaController(alpha=3.0, target=0.01, max_cost=0.02, max_alpha=12.0)
    assert c.decide(50, gap=0.05, auc=0.90) == "raise" and c.boost * 3.0 == 6.0
    assert c.decide(75, gap=0.05, auc=0.91) == "raise" and c.boost * 3.0 == 12.0
    assert c.decide(100, gap=0.05, auc=0.905) == "raise" and c.boost * 3.0 == 12.0  # the ceiling
    assert c.decide(125, gap=0.005, auc=0.90) == "keep" and c.boost * 3.0 == 12.0
    # the AUC of the last 3 evaluations (0.905, 0.90, 0.84) is 0.0233 below its best (0.905): the cost
    # wins over a gap above target
    assert c.decide(150, gap=0.05, auc=0.84) == "lower" and c.boost * 3.0 == 6.0
    for step in range(175, 300, 25):
        assert c.decide(step, gap=0.0, auc=0.80) == "lower"
    assert c.boost * 3.0 == pytest.approx(3.0 / FLOOR_DIVISOR)  # the floor
    assert [d["action"] for d in c.decisions[:5]] == ["raise", "raise", "raise", "keep", "lower"]
    restored = AlphaController(alpha=3.0, target=0.01, max_cost=0.02, max_alpha=12.0)
    restored.load_state_dict(json.loads(json.dumps(c.state_dict())))
    assert (restored.boost, restored.best_auc) == (c.boost, c.best_auc)
    assert json.dumps(restored.state_dict()) == json.dumps(c.state_dict())


def test_controller_smooths_the_auc_and_holds_without_a_measurable_gap():
    c = AlphaController(alpha=3.0, target=0.01, max_cost=0.02, max_alpha=48.0)
    for step, auc in ((50, 0.90), (75, 0.90)):
        assert c.decide(step, gap=0.0, auc=auc) == "keep"
    # one evaluation 0.03 below: the mean of the last three is 0.01 below, within the limit
    assert c.decide(100, gap=0.0, auc=0.87) == "keep"
    assert c.decide(125, gap=float("nan"), auc=0.90) == "keep"  # no subgroup to measure: no move
    assert c.boost == 1.0


def _select(evaluations, target=0.01, max_cost=0.02):
    """Feeds (gap, auc) evaluations at steps 50, 75, ... (the last one 'end') through a controller and a
    selection; returns both and the steps the selection kept weights for at some point."""
    c = AlphaController(alpha=3.0, target=target, max_cost=max_cost, max_alpha=48.0)
    sel = Selection(target=target, max_cost=max_cost)
    joined = []
    for i, (gap, auc) in enumerate(evaluations):
        c.decide(50 + 25 * i, gap, auc, last=i == len(evaluations) - 1)
        if sel.consider(c.decisions[-1]):
            joined.append(50 + 25 * i)
    return c, sel, joined


def test_selection_takes_the_smallest_gap_above_target_within_the_auc_cost_in_hindsight():
    # smoothed AUCs (mean of the last 3): 0.80, 0.80, 0.80, 0.8333, 0.87, 0.90, 0.90, 0.90
    c, sel, joined = _select([(0.002, 0.80), (0.05, 0.80), (0.03, 0.80), (0.004, 0.90), (0.04, 0.91),
                              (float("nan"), 0.89), (0.03, 0.90), (0.02, 0.91)])
    smooth = [d["smooth_auc"] for d in c.decisions]
    assert smooth == pytest.approx([0.80, 0.80, 0.80, 0.8333333, 0.87, 0.90, 0.90, 0.90])
    assert c.decisions[-1]["action"] == "end" and c.decisions[-1]["alpha"] == c.decisions[-2]["alpha"]
    # step 50 met the target with no cost at the time (its AUC was the best so far), but the run's best
    # smoothed AUC is 0.90: 0.10 below it, it is no longer a candidate; neither is step 125 (0.067 below).
    # Within 0.02 of 0.90: steps 150 (gap 0.04), 200 (0.03) and 225 (0.02, the end): the smallest gap wins
    assert sel.choice()["step"] == 225
    assert 175 not in joined  # a NaN gap is no candidate
    # step 75 (gap 0.05, AUC 0.80) is beaten by step 50 (gap 0.002, same AUC): never kept
    assert 75 not in joined and sel.steps() == {125, 225}


def test_selection_treats_gaps_below_target_alike_and_then_takes_the_highest_auc():
    # every gap meets the target 0.01 (one is negative, a noise figure): the AUC decides, not the gap
    c, sel, _ = _select([(0.009, 0.85), (-0.03, 0.84), (0.008, 0.90), (0.009, 0.89), (0.0, 0.88)])
    # smoothed: 0.85, 0.845, 0.8633, 0.8767, 0.89: the end state is best
    assert sel.choice()["step"] == 150 and sel.steps() == {150}
    # no candidate meets the target: the smallest gap within the cost, the latest on a tie
    _, sel, _ = _select([(0.05, 0.85), (0.03, 0.85), (0.03, 0.85), (0.04, 0.85)], target=0.01)
    assert sel.choice()["step"] == 100
    assert _select([(float("nan"), 0.9)])[1].choice() is None


def _scripted_gaps(monkeypatch, gaps):
    """The controller's slice signal replaced by `gaps` in call order (AUC 0.8 each: no cost)."""
    from steward.classify import monitor

    queue = list(gaps)
    monkeypatch.setattr(monitor, "excess_gap", lambda *a, **k: (queue.pop(0), 0.8))


class _Weights:
    """A callback after the trainer's own (so after AlphaControl) that copies the predictor's weights
    at every step before the last (at the last one it would see the restored weights)."""

    def __init__(self):
        self.at = {}

    def __getattr__(self, hook):
        return lambda *a: None

    def on_step_end(self, trainer, step, metrics):
        if step < trainer.cfg.train.steps:
            self.at[step] = {k: v.clone() for k, v in trainer._inner().state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_run_ends_with_the_selected_steps_weights(tmp_path, monkeypatch):
    """Evaluations at steps 2, 4, 6, 8 (the last); the gap is smallest at step 4, so the run returns the
    weights of step 4, bitwise, and its closing figures are those of that model."""
    from steward.classify.trainer import ClassifyTrainer

    _scripted_gaps(monkeypatch, [0.05, 0.01, 0.03, 0.04])
    spy = _Weights()
    trainer = ClassifyTrainer(load_config(None, [*RUN, "--train.steps", "8", "--job.out", str(tmp_path / "run")]),
                              callbacks=[spy])
    summary = trainer.run()
    assert summary["alpha_control"]["selected"]["step"] == 4
    assert [d["step"] for d in summary["alpha_control"]["decisions"]] == [2, 4, 6, 8]
    assert not _same(spy.at[4], spy.at[7])  # training moved the weights after step 4
    assert _same(trainer._inner().state_dict(), spy.at[4])
    assert summary["final_val_loss"] == pytest.approx(trainer.evaluate(), rel=1e-12)


def test_a_run_whose_end_state_is_best_keeps_it(tmp_path, monkeypatch):
    from steward.classify.trainer import ClassifyTrainer

    _scripted_gaps(monkeypatch, [0.05, 0.04, 0.03, 0.01])
    seen = []

    class Spy(ClassifyTrainer):
        def evaluate(self):
            seen.append(self.step)
            return super().evaluate()

    trainer = Spy(load_config(None, [*RUN, "--train.steps", "8", "--job.out", str(tmp_path / "run")]), callbacks=[])
    assert trainer.run()["alpha_control"]["selected"]["step"] == 8
    assert seen == [8]  # no restore, no second evaluation


RUN = [
    "--train.task", "classify", "--model.flavor", "debug", "--train.steps", "6", "--train.batch_size", "8",
    "--train.warmup_steps", "1", "--train.val_every", "0", "--train.device", "cpu", "--train.threads", "1",
    "--fairness.madlibs_size", "1000", "--fairness.madlibs_eval_size", "40", "--fairness.control_fraction", "0.5",
    "--fairness.adversary",
    "equalized_odds", "--fairness.control", "validation", "--fairness.control_warmup", "2",
    "--fairness.control_every", "2", "--fairness.control_target", "0", "--governance.enabled", "false",
    "--checkpoint.enabled", "false", "--train.dtype", "float64",
    "--fairness.loss_weights", "none",  # the controller's tests predate v7's reweighing default
    "--fairness.identity_words", "keep",  # and v8's identity-word removal (its scripted decisions read the words)
]


def test_controller_reads_only_its_slice_of_the_training_data(tmp_path):
    from steward.classify.data import load_splits
    from steward.classify.trainer import ClassifyTrainer

    seen = []

    class Spy(ClassifyTrainer):
        def predict(self, enc, **kw):
            seen.append((self.step, enc))
            return super().predict(enc, **kw)

    trainer = Spy(load_config(None, [*RUN, "--job.out", str(tmp_path / "run")]), callbacks=[])
    summary = trainer.run()
    data = trainer.data
    control, train = data.control_enc.data, data.train_data
    assert len(control) == len(train) == 500  # fairness.control_fraction 0.5 of the 1000 rows
    full_train, evald = load_splits(load_config(None, [*RUN, "--fairness.control", "off"]))
    assert sorted(control.texts + train.texts) == sorted(full_train.texts)
    # fairness.enabled is off and train.val_every 0: while training, the only scoring is the controller's,
    # on its slice; the evaluation set is scored once, by the run's closing evaluation after the last step
    # (and once more after the last step, for the selection; restoring an earlier step's weights scores
    # the evaluation set again, after that)
    assert [step for step, enc in seen if enc is data.control_enc] == [2, 4, 6]
    evals = [(step, enc) for step, enc in seen if enc is not data.control_enc]
    assert evals[0] == (6, data.eval_enc) and set(evals) == {(6, data.eval_enc)}
    decisions = trainer.figures["alpha_control"]["decisions"]
    assert [(d["step"], d["action"]) for d in decisions][2] == (6, "end")
    assert [d["step"] for d in decisions] == [2, 4, 6]
    assert summary["alpha_control"]["final_alpha"] == decisions[-1]["alpha"]
    assert summary["alpha_control"]["decisions"] == decisions
    assert len(evals) == (1 if summary["alpha_control"]["selected"]["step"] == 6 else 2)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    alphas = {r["step"]: r["alpha"] for r in rows if "alpha" in r}
    # control_target 0: the first decision raises alpha; it applies from step 3 on
    assert alphas[1] == alphas[2] == 3.0 and decisions[0]["action"] == "raise"
    assert alphas[3] == alphas[4] == decisions[0]["alpha"] == 6.0
    assert alphas[5] == decisions[1]["alpha"]


def _curve(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"], r["alpha"], r.get("ctl_action")) for r in rows if "loss" in r}


def test_a_resumed_run_goes_on_with_the_controllers_alpha(tmp_path):
    """Resumed at step 4 (after two decisions), a run takes the same alphas, decisions (the one at step 6
    reads the restored AUC history) and losses at steps 5-8 as the run that went on."""
    from steward.classify.trainer import ClassifyTrainer

    common = [a if a != "false" or RUN[i - 1] != "--checkpoint.enabled" else "true" for i, a in enumerate(RUN)]
    common += ["--train.steps", "8", "--fairness.control_target", "0.01"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    ClassifyTrainer(load_config(None, [*common, "--checkpoint.every", "4", "--job.out", str(full)]), callbacks=[]).run()
    ClassifyTrainer(load_config(None, [*common, "--job.out", str(resumed), "--checkpoint.resume",
                                       str(full / "checkpoints" / "step-4")]), callbacks=[]).run()
    a, b = _curve(full), _curve(resumed)
    assert sorted(b) == [5, 6, 7, 8]
    # the step-6 decision lowers alpha against the best AUC of earlier evaluations: a controller that
    # forgot its history on resume would see no cost there
    assert [a[s][2] for s in (2, 4, 6, 8)] == ["keep", "lower", "lower", "end"]
    for step in (5, 6, 7, 8):
        assert b[step][1:] == a[step][1:]
        assert b[step][0] == pytest.approx(a[step][0], rel=1e-9)


def test_a_resumed_run_selects_among_the_evaluations_after_the_resume(tmp_path, monkeypatch):
    """The best weights are not in the checkpoint: resumed at step 4, the selection starts again from the
    evaluation at step 6 (the run that went on keeps step 2's weights, the smallest gap)."""
    from steward.classify.trainer import ClassifyTrainer

    common = [a if a != "false" or RUN[i - 1] != "--checkpoint.enabled" else "true" for i, a in enumerate(RUN)]
    common += ["--train.steps", "8"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    _scripted_gaps(monkeypatch, [0.01, 0.02, 0.05, 0.08])
    one = ClassifyTrainer(load_config(None, [*common, "--checkpoint.every", "4", "--job.out", str(full)]), callbacks=[])
    assert one.run()["alpha_control"]["selected"]["step"] == 2
    _scripted_gaps(monkeypatch, [0.05, 0.08])
    spy = _Weights()
    two = ClassifyTrainer(load_config(None, [*common, "--job.out", str(resumed), "--checkpoint.resume",
                                             str(full / "checkpoints" / "step-4")]), callbacks=[spy])
    summary = two.run()
    assert summary["alpha_control"]["selected"]["step"] == 6
    assert [d["step"] for d in summary["alpha_control"]["decisions"]] == [2, 4, 6, 8]  # the record goes on
    assert _same(two._inner().state_dict(), spy.at[6])


def test_control_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fairness.control: must be one of off, validation"):
        load_config(None, ["--train.task", "classify", "--fairness.control", "on"])
    with pytest.raises(ConfigError, match=r"fairness.control_fraction: .*\(0, 0.5\]"):
        load_config(None, ["--train.task", "classify", "--fairness.control_fraction", "0"])
    with pytest.raises(ConfigError, match="fairness.control_every"):
        load_config(None, ["--train.task", "classify", "--fairness.control_every", "0"])
    with pytest.raises(ConfigError, match="fairness.on_gap: raise_alpha and fairness.control both set alpha"):
        load_config(None, ["--train.task", "classify", "--fairness.adversary", "equalized_odds", "--fairness.control",
                           "validation", "--fairness.max_gap", "0.1", "--fairness.on_gap", "raise_alpha"])
    # without an adversary the controller has nothing to set and is ignored
    check_job(load_config(None, ["--train.task", "classify", "--fairness.control", "validation"]))
    with pytest.raises(ConfigError, match="fairness.control_fraction: 0.5 leaves 32 training examples, fewer than "
                                          "train.batch_size 64"):
        from steward.classify.trainer import ClassifyTrainer

        ClassifyTrainer(load_config(None, [*RUN, "--fairness.madlibs_size", "64", "--fairness.control_fraction", "0.5",
                                           "--train.batch_size", "64", "--job.out", str(tmp_path / "run")]),
                        callbacks=[]).run()


GUARD = ["--fairness.control", "guard", "--fairness.control_warmup", "2", "--fairness.control_max_cost", "0"]
"""The AUC-cost guard (`tests/test_fairness_guard.py`): warm-up to step 2, then any cost halves alpha."""


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["dp_replicate", "dp_shard"], ids=["ddp", "fsdp2"])
@pytest.mark.parametrize("mode", ["validation", "guard"])
def test_controller_decides_the_same_on_two_ranks(tmp_path, layout, mode):
    """Rank 0 decides and broadcasts: the 2-rank DDP run takes the one-process run's decisions, and its
    losses equal the one-process ones (float64, 1e-9), which a rank training with another alpha would
    break (the update averages both ranks' projected gradients). The same for the guard, whose warm-up
    (alpha 0, unprojected) every rank takes alike."""
    from steward.classify.trainer import ClassifyTrainer
    from steward.jobs import launch_local

    args = [*RUN, *(GUARD if mode == "guard" else [])]
    ClassifyTrainer(load_config(None, [*args, "--job.out", str(tmp_path / "one")]), callbacks=[]).run()
    launch_local(None, [*args, "--job.out", str(tmp_path / "two"), f"--parallel.{layout}", "2"], nproc=2)
    one, two = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 7))
    assert [one[s][2] for s in (2, 4)] == [two[s][2] for s in (2, 4)] and one[2][2] is not None
    if mode == "guard":
        assert one[1][1] == one[2][1] == 0.0 and one[2][2] == "start" and one[3][1] == 3.0
    for step in one:
        assert two[step][1] == one[step][1], step
        assert two[step][0] == pytest.approx(one[step][0], rel=1e-9), step
    # the same evaluation selected (rank 0's records, broadcast) and the same restored model's closing loss
    s1, s2 = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two"))
    assert s1["alpha_control"]["selected"]["step"] == s2["alpha_control"]["selected"]["step"]
    assert s2["final_val_loss"] == pytest.approx(s1["final_val_loss"], rel=1e-9)


def test_bench_forwards_fairness_keys_to_the_adversary_run(tmp_path, capsys):
    from steward.bench.fairness import _overrides, _parse

    a = _parse(["--adversary-set", "control=off", "--adversary-set", "loss_weights=reweigh"])
    assert a.adversary_overrides == ["--fairness.control", "off", "--fairness.loss_weights", "reweigh"]
    cfg = load_config(None, _overrides(a, 0, tmp_path / "run", "equalized_odds", 0.8) + a.adversary_overrides)
    assert (cfg.fairness.control, cfg.fairness.loss_weights) == ("off", "reweigh")
    for bad in ("control", "fairness.control=off"):
        with pytest.raises(SystemExit):
            _parse(["--adversary-set", bad])
        assert "--adversary-set: " in capsys.readouterr().err.splitlines()[-1]
