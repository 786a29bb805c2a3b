"""The AUC-cost guard (fairness.control guard, `steward.fairness.control.CostGuard`): its reference from
the unconstrained warm-up, its decisions and selection on synthetic evaluations, the warm-up's
unprojected step, and a run that ends with the latest state within the budget."""

import json

import pytest
import torch

from steward.config import load_config
from steward.fairness.adversary import Adversary, adversarial_step, predictor_backward
from steward.fairness.control import FLOOR_DIVISOR, CostGuard, GuardSelection


def _guard(aucs, warmup=100, every=25, max_cost=0.02):
    """Feeds weighted slice AUCs at steps every, 2 every, ... (the last one 'end') through a guard and its
    selection."""
    g, sel = CostGuard(alpha=3.0, max_cost=max_cost, warmup=warmup), GuardSelection(max_cost)
    for i, auc in enumerate(aucs):
        g.decide(every * (i + 1), 0.0, auc, last=i == len(aucs) - 1)
        sel.consider(g.decisions[-1])
    return g, sel


def test_guard_takes_its_reference_from_the_warm_up_and_lowers_alpha_on_cost():
    # warm-up evaluations at 25, 50, 75, 100: the reference is the best of them (0.90 at step 100)
    g, _ = _guard([0.60, 0.80, 0.85, 0.90, 0.87, 0.86, 0.80, 0.80, 0.80])
    assert g.reference == pytest.approx(0.90)
    # smoothed over the evaluations from step 100 on: 0.90, 0.885 (cost 0.015: within 0.02), 0.8767,
    # 0.8433, 0.82 (the warm-up's weaker states are not averaged in)
    assert [d["cost"] for d in g.decisions[3:8]] == pytest.approx([0.0, 0.015, 0.07 / 3, 0.17 / 3, 0.08])
    assert [d["action"] for d in g.decisions] == ["warmup"] * 3 + ["start", "keep", "lower", "lower", "lower", "end"]
    assert [d["alpha"] for d in g.decisions] == [0.0] * 3 + [3.0, 3.0, 1.5, 0.75, 0.375, 0.375]


def test_guard_lowers_only_past_the_budget_and_not_below_its_floor():
    g, _ = _guard([0.90, 0.90, 0.90, 0.90, 0.89, 0.88, 0.70, 0.70, 0.70, 0.70, 0.70, 0.70])
    actions = [d["action"] for d in g.decisions]
    # smoothed at 125: 0.8967 (cost 0.0033), 150: 0.89 (0.01), 175: 0.8233 (0.0767): the first "lower"
    assert actions[4:7] == ["keep", "keep", "lower"]
    assert actions[-1] == "end" and actions[7:11] == ["lower"] * 4
    assert g.boost == pytest.approx(1.0 / FLOOR_DIVISOR) and g.decisions[-1]["alpha"] == pytest.approx(3.0 / 8)
    restored = CostGuard(alpha=3.0, max_cost=0.02, warmup=100)
    restored.load_state_dict(json.loads(json.dumps(g.state_dict())))
    assert json.dumps(restored.state_dict()) == json.dumps(g.state_dict())


def test_guard_selection_returns_the_latest_state_within_the_budget():
    # within budget up to step 150; the collapse after it never recovers: step 150 is returned
    _, sel = _guard([0.90, 0.90, 0.90, 0.90, 0.89, 0.88, 0.70, 0.70, 0.70])
    assert sel.choice()["step"] == 150 and sel.steps() == {150}
    # a run that recovers within the budget ends with its end state
    _, sel = _guard([0.90, 0.90, 0.90, 0.90, 0.70, 0.90, 0.95, 0.95, 0.95])
    assert sel.choice()["step"] == 225 and sel.choice()["action"] == "end"
    # a run that never meets the budget after the warm-up returns the warm-up's end (cost 0)
    _, sel = _guard([0.90, 0.90, 0.90, 0.90, 0.50, 0.50, 0.50])
    assert sel.choice()["step"] == 100 and sel.choice()["action"] == "start"
    # the warm-up's end is kept whatever its cost (a noisy best at step 25 makes it 0.15 here)
    _, sel = _guard([0.95, 0.80, 0.80, 0.80, 0.50])
    assert sel.choice()["step"] == 100 and sel.choice()["cost"] == pytest.approx(0.15)
    # warm-up evaluations are never candidates, and a run shorter than its warm-up ends with its end state
    _, sel = _guard([0.90, 0.90])
    assert sel.choice()["step"] == 50 and sel.choice()["action"] == "end"
    assert GuardSelection(0.02).choice() is None


def test_an_unprojected_step_leaves_the_predictors_own_gradient_and_trains_the_adversary():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1, dtype=torch.float64)
    adv = Adversary(3, 2).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    micro = [{"x": x, "y": (torch.rand(16) < 0.5).double(), "identity": (torch.rand(16, 2) < 0.3).double()}]

    def forward(b):
        return None, net(b["x"]).squeeze(-1)

    params = list(net.parameters())
    predictor_backward(lambda b, i: forward(b)[1], micro)
    own = [p.grad.clone() for p in params]
    adversarial_step(forward, micro, params, adv, "equalized_odds", 3.0, distributed=False, project=False)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, own))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in adv.parameters())
    adv.zero_grad()
    adversarial_step(forward, micro, params, adv, "equalized_odds", 3.0, distributed=False)
    assert not all(torch.equal(p.grad, g) for p, g in zip(params, own))  # projected: another step


RUN = [
    "--train.task", "classify", "--model.flavor", "debug", "--train.steps", "8", "--train.batch_size", "8",
    "--train.warmup_steps", "1", "--train.val_every", "0", "--train.device", "cpu", "--train.threads", "1",
    "--fairness.madlibs_size", "1000", "--fairness.madlibs_eval_size", "40", "--fairness.control_fraction", "0.5",
    "--fairness.adversary", "equalized_odds", "--fairness.control", "guard", "--fairness.control_warmup", "4",
    "--fairness.control_every", "2", "--governance.enabled", "false", "--checkpoint.enabled", "false",
    "--train.dtype", "float64",
]


def test_a_guarded_run_warms_up_unconstrained_and_ends_within_its_budget(tmp_path, monkeypatch):
    """Slice AUCs 0.8 at steps 2 and 4 (the warm-up: reference 0.8), 0.79 at 6, 0.6 at 8 (the end): alpha is
    0 up to step 4 and fairness.alpha after it, and the run returns the weights of step 6, the latest
    state within 0.02 of the reference (step 8's smoothed AUC, 0.73, is not)."""
    from steward.classify import monitor
    from steward.classify.trainer import ClassifyTrainer

    queue = [0.8, 0.8, 0.79, 0.6]
    monkeypatch.setattr(monitor, "excess_gap", lambda *a, **k: (0.0, queue.pop(0)))

    from test_fairness_control import _Weights  # the weights at every step before the last

    spy = _Weights()
    trainer = ClassifyTrainer(load_config(None, [*RUN, "--job.out", str(tmp_path / "run")]), callbacks=[spy])
    summary = trainer.run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    alphas = {r["step"]: r["alpha"] for r in rows if "alpha" in r}
    assert [alphas[s] for s in range(1, 9)] == [0.0] * 4 + [3.0] * 4
    decisions = summary["alpha_control"]["decisions"]
    assert [(d["step"], d["action"]) for d in decisions] == [(2, "warmup"), (4, "start"), (6, "keep"), (8, "end")]
    assert summary["alpha_control"]["selected"]["step"] == 6
    trained = trainer._inner().state_dict()
    assert trained.keys() == spy.at[6].keys() and all(torch.equal(trained[k], spy.at[6][k]) for k in trained)
    assert not all(torch.equal(spy.at[6][k], spy.at[7][k]) for k in trained)

