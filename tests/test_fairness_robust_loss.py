"""The predictor's noise-robust per-row losses (fairness.predictor_loss gce / truncated; not the default):
each loss and its gradient in the logit against a hand-computed float64 reference, the row weights applied
on top, the config errors, the resume check, and (slow) the same losses on two gloo ranks as in one process."""

import numpy as np
import pytest
import torch

from _adversary_runs import TINY, assert_two_ranks_train_the_same
from steward.config import ConfigError, load_config
from steward.fairness.adversary import predictor_backward
from steward.fairness.robust_loss import gce_loss, row_loss, truncated_loss
from steward.train.checks import check_job

Z = np.array([2.0, -1.5, 0.3, -0.2, 3.0])
Y = np.array([1.0, 1.0, 0.0, 1.0, 0.0])  # rows 1 and 4: labels the logits contradict
W = np.array([0.5, 2.0, 1.0, 1.25, 0.75])


def _p_label() -> np.ndarray:
    p = 1 / (1 + np.exp(-Z))
    return np.where(Y == 1, p, 1 - p)


def _grad(kind: str, weighted: bool) -> tuple[float, np.ndarray]:
    """predictor_backward's loss and its gradient in the logits of the batch (Z, Y), float64."""
    logit = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    batch = {"y": torch.tensor(Y, dtype=torch.float64)}
    weights = (lambda micro: [torch.tensor(W, dtype=torch.float64)]) if weighted else None
    total = predictor_backward(lambda b, i: logit, [batch], None, weights, row_loss(kind, 0.7, 0.2))
    return float(total), logit.grad.numpy()


def test_gce_and_truncated_equal_a_float64_reference_with_and_without_row_weights():
    py = _p_label()
    p = 1 / (1 + np.exp(-Z))
    gce = (1 - py ** 0.7) / 0.7
    d_gce = py ** 0.7 * (p - Y)  # p_y^q times the cross-entropy's gradient
    keep = py >= 0.2
    assert keep.tolist() == [True, False, True, True, False]
    bce = -np.log(py)
    for weighted, w in ((False, np.ones(5)), (True, W)):
        loss, grad = _grad("gce", weighted)
        assert loss == pytest.approx(float((gce * w).mean()), rel=1e-12)
        np.testing.assert_allclose(grad, d_gce * w / 5, rtol=1e-12)
        loss, grad = _grad("truncated", weighted)
        assert loss == pytest.approx(float((bce * keep * w).mean()), rel=1e-12)
        np.testing.assert_allclose(grad, (p - Y) * keep * w / 5, rtol=1e-12, atol=1e-15)
    # the contradicted rows pull less under gce than under the cross-entropy, the others nearly as much
    ratio = d_gce / (p - Y)
    assert ratio[1] < 0.35 and ratio[4] < 0.15 and ratio[0] > 0.9
    # 'bce' is the plain path: no row loss, the cross-entropy's numbers
    assert row_loss("bce", 0.7, 0.2) is None
    loss, grad = _grad("bce", True)
    assert loss == pytest.approx(float((bce * W).mean()), rel=1e-12)
    z, y = torch.tensor(Z), torch.tensor(Y)
    torch.testing.assert_close(gce_loss(z, y, 1e-7), torch.tensor(bce), rtol=1e-5, atol=1e-6)  # q -> 0: CE
    torch.testing.assert_close(truncated_loss(z, y, 0.0), torch.tensor(bce), rtol=1e-12, atol=0)


def test_config_errors_and_the_resume_check(tmp_path):
    from steward.classify.trainer import ClassifyTrainer

    f = load_config(None, TINY).fairness
    assert (f.predictor_loss, f.loss_q, f.loss_floor) == ("bce", 0.7, 0.2)
    with pytest.raises(ConfigError, match="fairness.predictor_loss: must be one of"):
        check_job(load_config(None, [*TINY, "--fairness.predictor_loss", "mae"]))
    with pytest.raises(ConfigError, match="fairness.loss_q"):
        check_job(load_config(None, [*TINY, "--fairness.loss_q", "0"]))
    with pytest.raises(ConfigError, match="fairness.loss_floor"):
        check_job(load_config(None, [*TINY, "--fairness.loss_floor", "1"]))
    with pytest.raises(ConfigError, match="fairness.predictor_loss: group DRO moves its weights on the cross-entropy"):
        check_job(load_config(None, [*TINY, "--fairness.predictor_loss", "truncated", "--fairness.loss_weights",
                                     "group_dro"]))
    check_job(load_config(None, [*TINY, "--fairness.predictor_loss", "truncated", "--fairness.loss_weights", "reweigh"]))
    out = tmp_path / "gce"
    ClassifyTrainer(load_config(None, [*TINY, "--fairness.predictor_loss", "gce", "--checkpoint.every", "1",
                                       "--job.out", str(out)]), callbacks=[]).run()
    with pytest.raises(ConfigError, match="fairness.predictor_loss: .* was trained with a predictor loss 'gce'; "
                                          "resume with --fairness.predictor_loss gce"):
        ClassifyTrainer(load_config(None, [*TINY, "--job.out", str(tmp_path / "x"), "--checkpoint.resume",
                                           str(out / "checkpoints" / "step-1")]), callbacks=[]).run()


@pytest.mark.slow
def test_gce_trains_the_same_on_two_ranks(tmp_path):
    """Each rank takes the mean of its rows' losses, as with the cross-entropy, so a 2-rank DDP run with gce
    equals one process's (float64, 1e-9)."""
    assert_two_ranks_train_the_same(tmp_path, ["--fairness.predictor_loss", "gce"])


def test_the_predictor_loss_is_checked_on_resume_without_an_adversary_and_with_its_q(tmp_path):
    """The per-row loss (and its q or floor) is recorded in the checkpoint whether or not there is an
    adversary: a resume into another job.out (no config.toml to compare with) with another loss or q is
    refused, not silently trained on, before anything is written."""
    from steward.classify.trainer import ClassifyTrainer

    plain = [*TINY[:-1], "none", "--checkpoint.every", "1"]
    out = tmp_path / "gce"
    ClassifyTrainer(load_config(None, [*plain, "--fairness.predictor_loss", "gce", "--fairness.loss_q", "0.5",
                                       "--job.out", str(out)]), callbacks=[]).run()
    step = str(out / "checkpoints" / "step-1")
    with pytest.raises(ConfigError, match="fairness.predictor_loss: .* was trained with a predictor loss 'gce'; "
                                          "resume with --fairness.predictor_loss gce"):
        ClassifyTrainer(load_config(None, [*plain, "--job.out", str(tmp_path / "x"), "--checkpoint.resume", step]),
                        callbacks=[]).run()
    with pytest.raises(ConfigError, match="fairness.loss_q: .* was trained with fairness.loss_q 0.5; resume with "
                                          "--fairness.loss_q 0.5"):
        ClassifyTrainer(load_config(None, [*plain, "--fairness.predictor_loss", "gce", "--job.out",
                                           str(tmp_path / "y"), "--checkpoint.resume", step]), callbacks=[]).run()
    # refused before the run directory is written: the corrected command is not then refused for a
    # config.toml that the refused one left behind
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    ClassifyTrainer(load_config(None, [*plain, "--fairness.predictor_loss", "gce", "--fairness.loss_q", "0.5",
                                       "--job.out", str(tmp_path / "y"), "--checkpoint.resume", step]),
                    callbacks=[]).run()


def test_a_predictor_loss_other_than_bce_needs_the_classifier():
    with pytest.raises(ConfigError, match="fairness.predictor_loss: gce trains a classifier's rows; set "
                                          "--train.task classify or --fairness.predictor_loss bce"):
        check_job(load_config(None, ["--model.flavor", "debug", "--fairness.predictor_loss", "gce"]))
