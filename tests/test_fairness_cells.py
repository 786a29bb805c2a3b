"""The clean-cell adversary (fairness.adversary_cells "clean"; not the default): which label cell each output
learns from, its start at that cell's base rate, that the other cell's rows do not reach the predictor
through it, the trainer's wiring, config errors and resume check, and (slow) the same losses on two gloo
ranks as in one process."""

import numpy as np
import pytest
import torch

from _adversary_runs import TINY, assert_two_ranks_train_the_same
from steward.config import ConfigError, load_config
from steward.fairness.adversary import Adversary, adversary_loss
from steward.train.checks import check_job


def test_each_output_learns_from_the_cell_opposite_its_association_and_starts_at_its_rate():
    # column 0 goes with toxic (2 of 3 toxic rows, 1 of 3 friendly), column 1 with friendly, column 2 neither
    target = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0], [0, 1, 1]], dtype=np.float32)
    y = np.array([1, 1, 1, 0, 0, 0])
    adv = Adversary(3, 3)
    adv.use_clean_cells(target, y)
    assert adv.cell_signs.tolist() == [1.0, -1.0, 0.0]
    rows = adv.cell_rows(torch.as_tensor(y))
    assert rows.tolist() == [[0, 1, 1]] * 3 + [[1, 0, 1]] * 3
    logit = lambda r: float(np.log(r / (1 - r)))  # noqa: E731
    # column 0: its rate among the friendly rows (1/3); column 1: among the toxic rows (0, clamped); column 2: all
    torch.testing.assert_close(adv.net.bias, torch.tensor([logit(1 / 3), logit(1e-4), logit(2 / 3)]))
    assert (adv.net.weight == 0).all()
    # rows outside an output's cell count zero, and the mean is still over every example and output
    logits, ident = torch.zeros(6, 3), torch.as_tensor(target)
    full = torch.nn.functional.binary_cross_entropy_with_logits(logits, ident, reduction="none")
    assert float(adversary_loss(logits, ident, rows)) == pytest.approx(float((full * rows).sum() / 18))


def test_the_clean_cell_adversary_ignores_the_other_cell():
    """Changing the logits of rows outside an output's clean cell changes neither that output's loss nor the
    predictor's gradient through it; on every cell ('all') it does."""
    target = np.array([[1.0], [1.0], [0.0], [1.0], [0.0], [0.0]], dtype=np.float32)
    y = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # the target goes with toxic: its clean cell is y = 0
    ident = torch.as_tensor(target)

    def grad(cells: str, logit: torch.Tensor) -> torch.Tensor:
        adv = Adversary(3, 1)
        if cells == "clean":
            adv.use_clean_cells(target, y.numpy())
        with torch.no_grad():
            adv.net.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        logit = logit.clone().requires_grad_(True)
        x = torch.cat([logit[:, None], (logit * y)[:, None], (logit * (1 - y))[:, None]], 1)
        rows = adv.cell_rows(y) if cells == "clean" else None
        adversary_loss(adv(x), ident, rows).backward()
        return logit.grad

    base = torch.tensor([0.1, -0.3, 0.4, 0.2, -0.5, 0.3])
    moved = base + torch.tensor([2.0, -1.0, 0.5, 0.0, 0.0, 0.0])  # only the toxic rows move
    assert (grad("clean", base)[:3] == 0).all() and (grad("clean", base)[3:] != 0).all()
    torch.testing.assert_close(grad("clean", base), grad("clean", moved))
    assert not torch.allclose(grad("all", base), grad("all", moved))


def test_trainer_uses_the_clean_cells_refuses_bad_settings_and_resumes_only_with_the_same(tmp_path):
    from steward.classify.trainer import ClassifyTrainer
    from steward.fairness.adversary import association_signs

    assert load_config(None, TINY).fairness.adversary_cells == "all"
    with pytest.raises(ConfigError, match="fairness.adversary_cells: clean needs --fairness.adversary equalized_odds"):
        check_job(load_config(None, [*TINY, "--fairness.adversary", "demographic_parity",
                                     "--fairness.adversary_cells", "clean"]))
    with pytest.raises(ConfigError, match="fairness.adversary_cells: must be one of"):
        check_job(load_config(None, [*TINY, "--fairness.adversary_cells", "some"]))
    out = tmp_path / "clean"
    t = ClassifyTrainer(load_config(None, [*TINY, "--fairness.adversary_cells", "clean", "--checkpoint.every", "1",
                                           "--job.out", str(out)]), callbacks=[])
    t.run()
    enc = t.data.train_enc
    signs = association_signs(enc.columns["adversary_target"].numpy(), enc.labels.numpy())
    assert t.adversary.cell_signs.tolist() == signs.tolist()
    with pytest.raises(ConfigError, match="fairness.adversary_cells: .* was trained with 'clean'; "
                                          "resume with --fairness.adversary_cells clean"):
        ClassifyTrainer(load_config(None, [*TINY, "--job.out", str(tmp_path / "x"), "--checkpoint.resume",
                                           str(out / "checkpoints" / "step-1")]), callbacks=[]).run()


@pytest.mark.slow
def test_clean_cell_adversary_trains_the_same_on_two_ranks(tmp_path):
    """Every rank computes the same signs from the whole training split and masks its rows alike, so a 2-rank
    DDP run's losses equal one process's (float64, 1e-9)."""
    assert_two_ranks_train_the_same(tmp_path, ["--fairness.adversary_cells", "clean"])
