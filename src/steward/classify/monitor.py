"""The real-time fairness monitor: a trainer callback for train.task = classify runs.

Every fairness.eval_every steps it scores the first fairness.eval_examples rows of the held-out
identity set (one forward pass over a few hundred short texts: small next to the steps in between),
computes the per-family gaps, and

- adds them to this step's metrics.jsonl record (fair_gap_<family>, fair_overall_auc, ...),
- prints one line on the progress output,
- records a `fairness.evaluated` audit event through the governance callback's run session,
- acts when a family's mean absolute gap exceeds fairness.max_gap: `alert` (a `fairness.alert`
  audit event and a message), `raise_alpha` (doubles the adversary weight from the next step) or
  `stop` (ends the run with a one-line reason).

At the end (on_summary) it evaluates on the whole held-out set with bootstrap confidence intervals,
writes RUN_DIR/fairness/report.json and the per-example scores (RUN_DIR/fairness/predictions.csv,
see steward.fairness.predictions), and puts the compact figures under summary["fairness"], which
the release policy reads. Every rank runs the evaluation (the forward passes are collective) and
gets the same scores, so every rank takes the same decision without a broadcast.

`AlphaControl` is the monitor acting as a controller (fairness.control = validation, or the cost
guard of fairness.control = guard, `steward.fairness.control.CostGuard`): every
fairness.control_every steps it scores the controller's validation slice of the training data (never
the evaluation set) and lets `steward.fairness.control.AlphaController` double, halve or keep the
adversary weight. Rank 0 decides and broadcasts the controller's state, so every rank trains with the
same alpha. After the last step it evaluates the slice once more and restores the predictor's weights
of the evaluation that `steward.fairness.control.Selection` chose (smallest gap above target within the
AUC cost in hindsight, then the highest AUC).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from steward.fairness.control import AlphaController, CostGuard, GuardSelection, Selection, excess_gap
from steward.fairness.data import IdentityData
from steward.fairness.metrics import fairness_report, summary_figures
from steward.fairness.predictions import write_predictions
from steward.io import atomic_write_json
from steward.train.callbacks import Callback, StopTraining, governance_session
from steward.train.distributed import broadcast_object

if TYPE_CHECKING:
    import torch

    from steward.classify.trainer import ClassifyTrainer
    from steward.config import JobConfig


def compact(report: dict[str, Any]) -> dict[str, Any]:
    """What summary.json and the audit log carry: headline figures (and their intervals when computed)."""
    out = {
        "n": report["n"],
        "overall_auc": report["overall_auc"],
        "final_score": report["final_score"],
        "mean_abs_gap": report["mean_abs_gap"],
        "generalized_mean": report["generalized_mean"],
        "fped": report["fped"],
        "fned": report["fned"],
        "demographic_parity_difference": report["demographic_parity_difference"],
        "equalized_odds_difference": report["equalized_odds_difference"],
    }
    if "ci" in report:
        out["ci"] = {k: v for k, v in report["ci"].items() if k.startswith(("mean_abs_gap/", "overall_auc"))}
    return out


class FairnessMonitor(Callback):
    def __init__(self, cfg: JobConfig):
        self.cfg = cfg
        self.history: list[dict[str, Any]] = []
        self.alerts = 0

    def scores(self, trainer: ClassifyTrainer, limit: int) -> tuple[IdentityData, np.ndarray]:
        """The first `limit` held-out rows (0: all) and the model's probabilities for them."""
        enc = trainer.data.eval_enc
        prob = trainer.predict(enc, limit=limit)
        data = enc.data if not limit or limit >= len(enc) else enc.data.subset(np.arange(len(prob)))
        return data, prob

    def report(self, data: IdentityData, prob: np.ndarray, bootstrap: int) -> dict[str, Any]:
        return fairness_report(data.labels, prob, data.groups, data.families, bootstrap=bootstrap,
                               seed=self.cfg.train.seed)

    def on_step_end(self, trainer: ClassifyTrainer, step: int, metrics: dict[str, Any]) -> None:
        f = self.cfg.fairness
        if not f.eval_every or step % f.eval_every or step >= self.cfg.train.steps or not trainer.data.has_identities:
            return
        report = self.report(*self.scores(trainer, f.eval_examples), 0)
        figures = summary_figures(report)
        metrics.update(figures)
        self.history.append({"step": step, **figures})
        gaps = report["mean_abs_gap"]
        worst = max(gaps, key=lambda k: -1 if gaps[k] != gaps[k] else gaps[k])
        trainer.progress.message(
            f"fairness step {step}: auc {report['overall_auc']:.3f} gaps "
            + " ".join(f"{k} {v:.3f}" for k, v in gaps.items())
        )
        gov = governance_session(trainer) if trainer.rank == 0 else None
        if gov is not None:
            gov.record("fairness.evaluated", {"step": int(step), "final": False, **compact(report)})
        if not f.max_gap or not gaps[worst] > f.max_gap:
            return
        reason = (f"fairness: {worst} mean absolute AUC gap {gaps[worst]:.3f} exceeds fairness.max_gap "
                  f"{f.max_gap:g} at step {step}")
        self.alerts += 1
        action = f.on_gap
        if action == "raise_alpha":
            trainer.figures["alpha_boost"] = trainer.figures.get("alpha_boost", 1.0) * 2.0
            reason += f"; adversary weight raised x{trainer.figures['alpha_boost']:g}"
        metrics["fair_alert"] = action
        if gov is not None:
            gov.record("fairness.alert", {"step": int(step), "family": worst, "gap": gaps[worst],
                                          "threshold": f.max_gap, "action": action})
        trainer.progress.message(reason)
        if action == "stop":
            raise StopTraining(reason)

    def on_summary(self, trainer: ClassifyTrainer, summary: dict[str, Any]) -> None:
        if not trainer.data.has_identities:  # the trainer said so when it loaded the data
            return
        data, prob = self.scores(trainer, 0)
        report = self.report(data, prob, self.cfg.fairness.bootstrap)
        report["history"] = self.history
        report["alerts"] = self.alerts
        fig = compact(report)
        summary["fairness"] = fig
        if trainer.rank == 0:
            atomic_write_json(trainer.run_dir / "fairness" / "report.json", report)
            write_predictions(trainer.run_dir / "fairness" / "predictions.csv", data, prob)
            gov = governance_session(trainer)
            if gov is not None:
                gov.record("fairness.evaluated", {"step": int(trainer.step), "final": True, **fig})


class AlphaControl(Callback):
    """The adversary weight chosen while training and the selection of the state the run ends with (see
    the module docstring). The controller's state is in trainer.figures["alpha_control"], so a resumed
    run goes on with the same alpha and reference; the candidates' weights (one copy of the predictor's
    state per candidate, on its device) are kept in memory only, so a resumed run's selection starts again
    from the first evaluation after the resume."""

    def __init__(self, cfg: JobConfig):
        f = cfg.fairness
        self.cfg = cfg
        self.controller: AlphaController | CostGuard
        self.selection: Selection | GuardSelection
        if f.control == "guard":  # evaluations from the first control_every on: the warm-up's give the reference
            self.controller = CostGuard(f.alpha, f.control_max_cost, f.control_warmup)
            self.selection = GuardSelection(f.control_max_cost)
            self.first = f.control_every
        else:
            self.controller = AlphaController(f.alpha, f.control_target, f.control_max_cost, f.control_max_alpha)
            self.selection = Selection(f.control_target, f.control_max_cost)
            self.first = f.control_warmup
        self.weights: dict[int, dict[str, torch.Tensor]] = {}  # the candidates' (selection.front's)

    def on_step_end(self, trainer: ClassifyTrainer, step: int, metrics: dict[str, Any]) -> None:
        f = self.cfg.fairness
        last = step >= self.cfg.train.steps
        if not last and (step < self.first or step % f.control_every):
            return
        state = trainer.figures.get("alpha_control")  # a resumed run's (every rank loads the figures)
        if state is not None:
            self.controller.load_state_dict(state)
        enc = trainer.data.control_enc
        prob = trainer.predict(enc)  # collective: every rank takes part
        if trainer.rank == 0:
            gap, auc = excess_gap(enc.labels.numpy(), prob, enc.identity.numpy(), seed=self.cfg.train.seed)
            self.controller.decide(step, gap, auc, last=last)
        # rank 0 decides; every rank takes its alpha, reference and record, so every rank selects alike
        self.controller.load_state_dict(broadcast_object(self.controller.state_dict()))
        record = self.controller.decisions[-1]
        if self.selection.consider(record):
            self.weights[step] = {k: v.detach().clone() for k, v in trainer._inner().state_dict().items()}
            self.weights = {s: w for s, w in self.weights.items() if s in self.selection.steps()}
        trainer.figures["alpha_boost"] = self.controller.boost
        trainer.figures["alpha_control"] = self.controller.state_dict()
        metrics.update({"ctl_gap": record["gap"], "ctl_auc": record["auc"], "ctl_action": record["action"],
                        "ctl_alpha": record["alpha"]})
        trainer.progress.message(f"alpha control step {step}: validation gap {record['gap']:.4f} auc "
                                 f"{record['auc']:.4f} -> {record['action']}, alpha {record['alpha']:g}")
        if last:
            self.restore_best(trainer, step, metrics)

    def restore_best(self, trainer: ClassifyTrainer, step: int, metrics: dict[str, Any]) -> None:
        """After the last step: load the selected evaluation's weights into the predictor (unless it is
        this step's) and evaluate them again, so val_* figures, the fairness report and the final
        checkpoint all describe the model the run returns."""
        best = self.selection.choice()
        if best is None or best["step"] == step:
            return
        trainer._inner().load_state_dict(self.weights[best["step"]])
        metrics["val_loss"] = trainer.figures["final_val_loss"] = trainer.evaluate()
        metrics.update({f"val_{k}": v for k, v in trainer.last_eval.items()})
        trainer.progress.message(f"alpha control: restored the weights of step {best['step']} (alpha "
                                 f"{best['alpha']:g}, validation gap {best['gap']:.4f}, smoothed auc "
                                 f"{best['smooth_auc']:.4f})")

    def on_summary(self, trainer: ClassifyTrainer, summary: dict[str, Any]) -> None:
        summary["alpha_control"] = {"final_alpha": self.cfg.fairness.alpha * self.controller.boost,
                                    "decisions": list(self.controller.decisions), "selected": self.selection.choice()}
