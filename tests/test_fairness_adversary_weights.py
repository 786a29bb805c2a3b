"""The adversary's loss on the predictor's row weights (fairness.adversary_weights "rows"; not the default): the
weighted loss against a hand-computed float64 reference, rows of weight zero reaching neither the adversary
nor the predictor through it, the weights taken once a step, the trainer's wiring (the start at the weighted
base rates, config errors, the resume check), and (slow) the same losses on two gloo ranks as in one
process."""

import numpy as np
import pytest
import torch

from _adversary_runs import TINY, assert_two_ranks_train_the_same
from steward.config import ConfigError, load_config
from steward.fairness.adversary import Adversary, adversarial_step, adversary_loss
from steward.train.checks import check_job


def test_weighted_adversary_loss_equals_a_float64_reference():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.7, 0.4]], dtype=torch.float64)
    ident = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    w = torch.tensor([0.5, 2.0, 1.25], dtype=torch.float64)
    cells = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    z, t = logits.numpy(), ident.numpy()
    bce = -(t * np.log(1 / (1 + np.exp(-z))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-z))))
    ref = float((bce * w.numpy()[:, None]).sum() / 6)
    assert float(adversary_loss(logits, ident, weights=w)) == pytest.approx(ref, rel=1e-12)
    ref_cells = float((bce * cells.numpy() * w.numpy()[:, None]).sum() / 6)
    assert float(adversary_loss(logits, ident, cells, w)) == pytest.approx(ref_cells, rel=1e-12)
    # weights of one: the unweighted loss
    assert float(adversary_loss(logits, ident, weights=torch.ones(3, dtype=torch.float64))) == pytest.approx(
        float(adversary_loss(logits, ident)), rel=1e-12)


def _step(x: torch.Tensor, weights: torch.Tensor, weigh: bool, calls: list[int]):
    """One demographic-parity adversarial step (probability input: each row's input is its own) of a linear
    predictor on features `x` [6, 2]; returns the adversary's and the predictor's gradients."""
    torch.manual_seed(0)
    pred = torch.nn.Linear(2, 1).double()
    adv = Adversary(1, 1).double()
    with torch.no_grad():
        adv.net.weight.fill_(0.8)
    batch = {"x": x, "y": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64),
             "identity": torch.tensor([[1.0], [1.0], [0.0], [0.0], [1.0], [0.0]], dtype=torch.float64)}

    def row_weights(micro):
        calls.append(1)
        return [weights for _ in micro]

    adversarial_step(lambda b: (None, pred(b["x"]).squeeze(-1)), [batch], list(pred.parameters()), adv,
                     "demographic_parity", 1.0, "probability", row_weights=row_weights, weigh_adversary=weigh,
                     distributed=False)
    return [p.grad.clone() for p in adv.parameters()], [p.grad.clone() for p in pred.parameters()]


def test_a_row_weighted_zero_reaches_neither_the_adversary_nor_the_predictor_and_weights_are_taken_once():
    """With the adversary weighted, moving a row of weight zero changes neither the adversary's gradient nor
    the predictor's projected one; with the adversary unweighted it changes both (the row still reaches the
    adversary). The row weights are taken once per step for both losses (group DRO's q must move once)."""
    x = torch.tensor([[0.2, 1.0], [-0.5, 0.3], [1.1, -0.2], [0.0, 0.7], [0.4, 0.4], [-1.0, 0.1]], dtype=torch.float64)
    moved = x.clone()
    moved[0] += torch.tensor([3.0, -2.0], dtype=torch.float64)
    w = torch.tensor([0.0, 1.5, 0.5, 1.0, 1.0, 2.0], dtype=torch.float64)
    calls: list[int] = []
    adv_a, pred_a = _step(x, w, True, calls)
    assert len(calls) == 1
    adv_b, pred_b = _step(moved, w, True, calls)
    for a, b in zip([*adv_a, *pred_a], [*adv_b, *pred_b]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    adv_u, pred_u = _step(x, w, False, [])
    adv_v, pred_v = _step(moved, w, False, [])
    assert not all(torch.allclose(a, b) for a, b in zip(adv_u, adv_v))
    assert not all(torch.allclose(a, b) for a, b in zip(pred_u, pred_v))
    assert not all(torch.allclose(a, b) for a, b in zip(pred_a, pred_u))  # the weights change the push


def test_trainer_weighs_the_adversary_refuses_bad_settings_and_resumes_only_with_the_same(tmp_path):
    from steward.classify.trainer import ClassifyTrainer

    assert load_config(None, TINY).fairness.adversary_weights == "none"
    with pytest.raises(ConfigError, match="fairness.adversary_weights: rows needs an adversary and the predictor's"):
        check_job(load_config(None, [*TINY, "--fairness.loss_weights", "none", "--fairness.adversary_weights", "rows"]))
    with pytest.raises(ConfigError, match="fairness.adversary_weights: rows does not combine"):
        check_job(load_config(None, [*TINY, "--fairness.adversary_weights", "rows",
                                     "--fairness.adversary_direction", "association_label"]))
    with pytest.raises(ConfigError, match="fairness.adversary_weights: must be one of"):
        check_job(load_config(None, [*TINY, "--fairness.adversary_weights", "some"]))
    t = ClassifyTrainer(load_config(None, [*TINY, "--fairness.adversary_weights", "rows", "--fairness.adversary_cells",
                                           "clean", "--job.out", str(tmp_path / "start")]), callbacks=[])
    t.setup()
    enc = t.data.train_enc
    target = enc.columns["adversary_target"].numpy().astype(np.float64)
    w = enc.columns["weight"].numpy().astype(np.float64)
    cells = t.adversary.cell_rows(enc.labels).numpy()
    rate = np.clip((target * cells * w[:, None]).sum(0) / (cells * w[:, None]).sum(0), 1e-4, 1 - 1e-4)
    torch.testing.assert_close(t.adversary.net.bias.double(), torch.as_tensor(np.log(rate / (1 - rate))),
                               rtol=1e-5, atol=1e-5)
    unweighted = np.clip((target * cells).sum(0) / cells.sum(0), 1e-4, 1 - 1e-4)
    assert np.abs(rate - unweighted).max() > 1e-3  # the weighted start differs from the plain one here
    out = tmp_path / "rows"
    ClassifyTrainer(load_config(None, [*TINY, "--fairness.adversary_weights", "rows", "--checkpoint.every", "1",
                                       "--job.out", str(out)]), callbacks=[]).run()
    with pytest.raises(ConfigError, match="fairness.adversary_weights: .* was trained with 'rows'; "
                                          "resume with --fairness.adversary_weights rows"):
        ClassifyTrainer(load_config(None, [*TINY, "--job.out", str(tmp_path / "x"), "--checkpoint.resume",
                                           str(out / "checkpoints" / "step-1")]), callbacks=[]).run()


@pytest.mark.slow
def test_weighted_adversary_trains_the_same_on_two_ranks(tmp_path):
    """Each rank weighs its rows by the weights of the whole training split and takes the mean over its
    rows, as the predictor's loss does, so a 2-rank DDP run's losses equal one process's (float64, 1e-9)."""
    assert_two_ranks_train_the_same(tmp_path, ["--fairness.adversary_weights", "rows"])
