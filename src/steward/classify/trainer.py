"""train.task = "classify": binary classification fine-tuning with a head on the decoder's pooled
representation, optionally with adversarial debiasing (steward.fairness.adversary).

`ClassifyTrainer` reuses the Trainer's whole set-up, loop, checkpoints and callbacks; it replaces
only what differs from language modelling: the data (texts with labels and identities, from
fairness.data: `steward.classify.data`), the model (a `SequenceClassifier` around the same decoder or HF
model: `classifier_factory`, built by the trainers' one `build_parallel_model`), the step (binary
cross-entropy; with an adversary, the one projected debiasing step `adversarial_step`) and the
evaluation (loss, AUC, accuracy, F1 on the held-out set).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steward.classify.data import ClassifyData, Encoded, check_identity_needs, load_splits
from steward.config import ConfigError, JobConfig
from steward.fairness.adversary import (
    ADAM_EPS,
    Adversary,
    adversarial_step,
    adversary_input_dim,
    adversary_rows,
    adversary_targets,
    alpha_at,
    learning_rows,
    predictor_backward,
    reads_label,
)
from steward.fairness.identity_words import STATE, saved_words
from steward.fairness.metrics import classification_metrics
from steward.fairness.robust_loss import row_loss
from steward.fairness.weighting import GroupDRO, group_dro_weights, training_columns
from steward.models import build_model, load_hf_causal_lm
from steward.models.gpt import upcast
from steward.models.heads import SequenceClassifier
from steward.parallel import dp_rank, reshard_after_inference, set_gradient_sync
from steward.train import checkpoint as ckpt
from steward.train.build import ModelFactory
from steward.train.callbacks import Callback
from steward.train.checks import allowed_changes
from steward.train.distributed import gather_objects, start_all_reduce_mean
from steward.train.trainer import Trainer, clip_grad_norm, decoder_args


class ClassifyMetrics(Callback):
    """Puts the latest evaluation's AUC, accuracy and F1 next to val_loss in metrics.jsonl and summary."""

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, Any]) -> None:
        if "val_loss" in metrics and trainer.last_eval:
            metrics.update({f"val_{k}": v for k, v in trainer.last_eval.items()})
        if getattr(trainer, "adv_loss", None) is not None:
            metrics["adv_loss"] = trainer.adv_loss
            metrics["alpha"] = trainer.alpha

    def on_summary(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        summary["task"] = "classify"
        if trainer.data.identity_words is not None:
            summary["identity_words"] = trainer.data.identity_words
        summary.update({f"final_val_{k}": v for k, v in trainer.last_eval.items()})


ADVERSARY_SETTINGS = (
    ("input", "adversary_input", "probability", "was trained on {} inputs"),
    ("target", "adversary_target", "subgroups", "predicts {}"),
    ("direction", "adversary_direction", "both", "was trained with {}"),
    ("cells", "adversary_cells", "all", "was trained with {}"),
    ("weights", "adversary_weights", "none", "was trained with {}"),
)
"""The fairness settings an adversary's checkpoint records and a resume must repeat: (state key, config
field, the value of checkpoints saved before the setting existed, how the error names the saved value).
The input does not apply to a 'representation' adversary."""

PREDICTOR_LOSS_PARAMETER = {"gce": ("q", "loss_q"), "truncated": ("floor", "loss_floor")}
"""fairness.predictor_loss -> (state key, config field) of the parameter its checkpoint records and a
resume must repeat (rank state "predictor_loss", saved for any loss but 'bce', with or without an adversary)."""

class ClassifyTrainer(Trainer):
    """The Trainer with a classification head, for train.task = classify (see the module docstring)."""

    last_eval: dict[str, float]
    adversary: Adversary | None
    alpha: float
    group_dro: GroupDRO | None

    def __init__(self, cfg: JobConfig, callbacks: list[Callback] | None = None, monitor: bool = True):
        self.monitor = monitor  # before the Trainer's __init__, which asks task_callbacks()
        super().__init__(cfg, callbacks)
        self.last_eval = {}
        self.adversary = None
        self.adv_loss: float | None = None
        self.alpha = cfg.fairness.alpha

    def task_callbacks(self) -> list[Callback]:
        own: list[Callback] = [ClassifyMetrics()]
        if self.monitor and self.cfg.fairness.enabled:
            from steward.classify.monitor import FairnessMonitor

            own.append(FairnessMonitor(self.cfg))
        if self.cfg.fairness.controls_alpha:
            from steward.classify.monitor import AlphaControl

            own.append(AlphaControl(self.cfg))
        return own

    def _build_data(self) -> ClassifyData:
        data = ClassifyData(self.cfg, self.tokenizer, dp_rank(self.mesh), self.dims.dp)
        self.tokenizer = data.tokenizer  # fairness.identity_words remove: the identity words taken out
        f = self.cfg.fairness
        enc = data.train_enc
        columns, groups = training_columns(f.row_weights, enc.identity.numpy(), enc.labels.numpy())
        enc.columns.update(columns)
        if f.adversary != "none" and f.adversary_target != "subgroups":
            sizes = [len(subs) for subs in enc.data.families.values()]
            enc.columns["adversary_target"] = torch.as_tensor(
                adversary_targets(enc.identity.numpy(), f.adversary_target, sizes))
        self.group_dro = GroupDRO(groups, f.group_dro_step) if f.row_weights == "group_dro" else None
        if f.enabled and not data.has_identities:
            self.progress.message(f"fairness: {f.eval_data or f.data} has no identity columns, so no fairness "
                                  "evaluation (name them with --fairness.identity_columns)")
        return data

    def _model_factory(self) -> ModelFactory:
        if self.dims.model_parallel:
            raise ConfigError("train.task: classify supports data parallelism (DDP, FSDP2, HSDP); set parallel.tp "
                              "and parallel.pp to 1")
        return classifier_factory(self.cfg, self.tokenizer, self.data.train_enc.tokens.shape[1])

    def _build_grad_sync(self):
        return None  # the wrappers' own all-reduce: gradient compression is for language modelling

    def _build_model(self) -> None:
        super()._build_model()
        f = self.cfg.fairness
        if f.adversary != "none":
            dim = self._inner().head.in_features
            torch.manual_seed(self.cfg.train.seed + 1)
            enc = self.data.train_enc
            target = enc.columns.get("adversary_target", enc.identity)
            self.adversary = Adversary(adversary_input_dim(f.adversary, dim, f.adversary_direction), target.shape[1],
                                       f.adversary_hidden).to(self.dist.device, self.dtype)
            self.adversary.start_at_prior(target, adversary_rows(f.adversary, enc.labels.numpy()))
            if f.adversary_direction != "both":
                self.adversary.orient(target.numpy(), enc.labels.numpy(), reads_label(f.adversary, f.adversary_direction))
            if f.adversary_cells == "clean":
                self.adversary.use_clean_cells(target.numpy(), enc.labels.numpy())
            if f.adversary_weights == "rows":  # start at the weighted base rates its loss is taken on
                self.adversary.start_at_prior(target, learning_rows(self.adversary, f.adversary, enc.labels),
                                              enc.columns["weight"])
            self.adv_optimizer = torch.optim.Adam(self.adversary.parameters(), lr=f.adversary_lr, eps=ADAM_EPS)

    # ---- checkpoints: the adversary and its optimizer (the same on every rank) -------------------

    def _rank_states(self) -> dict[str, Any]:
        states = super()._rank_states()
        if self.adversary is not None:
            states["adversary"] = {"model": self.adversary.state_dict(), "optim": self.adv_optimizer.state_dict(),
                                   **{key: getattr(self.cfg.fairness, field) for key, field, *_ in ADVERSARY_SETTINGS}}
        if self.group_dro is not None:
            states["group_dro"] = self.group_dro.state_dict()
        f = self.cfg.fairness
        if f.predictor_loss != "bce":
            states["predictor_loss"] = {"loss": f.predictor_loss, "q": f.loss_q, "floor": f.loss_floor}
        if self.data.identity_words is not None:  # what `steward.jobs.load_trained` removes again
            states[STATE] = {"words": self.data.identity_words, "min_count": f.identity_words_min_count,
                             "precision": f.identity_words_precision}
        return states

    def _check_data(self, cfg: JobConfig) -> None:
        """Rank 0, before the run directory is written: the options that need identity columns find them in
        the training split (`check_identity_needs`; ClassifyData checks again on every rank)."""
        train, _ = load_splits(cfg)
        check_identity_needs(cfg, train)

    def _check_rank_states(self, resume: Path) -> None:
        """Rank 0, before the run directory is written: the checkpoint has the group DRO weights and the
        adversary this run needs, trained with the same settings (ADVERSARY_SETTINGS), its predictor
        loss (`_check_predictor_loss`) and its identity words (`_check_identity_words`)."""
        f = self.cfg.fairness
        if f.row_weights == "group_dro" and self._saved(resume, "group_dro") is None:
            raise ConfigError(f"checkpoint.resume: {resume} has no group DRO weights (saved without "
                              "fairness.loss_weights group_dro); start a new run")
        self._check_predictor_loss(resume)
        if f.adversary != "none":
            self._check_adversary(resume)
        self._check_identity_words(resume)

    def _check_adversary(self, resume: Path) -> None:
        """ConfigError unless the checkpoint has an adversary trained with this run's ADVERSARY_SETTINGS."""
        f = self.cfg.fairness
        state = self._saved(resume, "adversary")
        if state is None:
            raise ConfigError(f"checkpoint.resume: {resume} has no adversary state (saved without "
                              "fairness.adversary, or by an older version); start a new run")
        for key, field, before, trained in ADVERSARY_SETTINGS:
            saved = state.get(key, before)  # `before`: what checkpoints from before the option existed used
            if saved != getattr(f, field) and not (key == "input" and f.adversary == "representation"):
                raise ConfigError(f"fairness.{field}: {resume}'s adversary {trained.format(repr(saved))}; resume "
                                  f"with --fairness.{field} {saved} or start a new run")

    def _check_predictor_loss(self, resume: Path) -> None:
        """ConfigError unless this run repeats the checkpoint's fairness.predictor_loss and its q or floor.
        Checkpoints without the state were trained with 'bce'."""
        saved = self._saved(resume, "predictor_loss") or {"loss": "bce"}
        f = self.cfg.fairness
        if saved["loss"] != f.predictor_loss:
            raise ConfigError(f"fairness.predictor_loss: {resume} was trained with a predictor loss "
                              f"{saved['loss']!r}; resume with --fairness.predictor_loss {saved['loss']} or "
                              "start a new run")
        key, field = PREDICTOR_LOSS_PARAMETER.get(f.predictor_loss, (None, None))
        if key in saved and saved[key] != getattr(f, field):
            raise ConfigError(f"fairness.{field}: {resume} was trained with fairness.{field} {saved[key]}; resume "
                              f"with --fairness.{field} {saved[key]} or start a new run")

    def _check_identity_words(self, resume: Path) -> None:
        """ConfigError unless this run repeats the checkpoint's fairness.identity_words and its settings (the
        model was trained on texts without those words)."""
        saved, f = self._saved(resume, STATE), self.cfg.fairness
        if (saved is not None) != f.removes_identity_words:
            was, done = ("keep", "kept") if saved is None else ("remove", "removed")
            # 'auto' is what a config.toml from before v8 reads: resuming in that run's directory changes it
            allow = dict.fromkeys([*allowed_changes(self.cfg), "fairness.identity_words"])
            also = f" --checkpoint.allow_changes {','.join(allow)}" if f.identity_words == "auto" else ""
            raise ConfigError(f"fairness.identity_words: {resume} was trained with the identity words {done}; "
                              f"resume with --fairness.identity_words {was}{also} or start a new run")
        if saved is None:
            return
        try:
            saved_words(saved)
        except ValueError as e:
            raise ConfigError(f"checkpoint.resume: {resume / STATE / 'rank-0.pt'}: {e}; start a new run") from None
        for key in ("min_count", "precision"):
            if saved[key] != getattr(f, f"identity_words_{key}"):
                raise ConfigError(f"fairness.identity_words_{key}: {resume} was trained with "
                                  f"fairness.identity_words_{key} {saved[key]}; resume with "
                                  f"--fairness.identity_words_{key} {saved[key]} or start a new run")

    def _saved(self, resume: Path, name: str) -> Any | None:
        """The checkpoint's state NAME, the same on every rank (None: saved without it)."""
        return ckpt.load_rank_state(resume, name, self.rank, self.world_size, replicated=True)

    def _load_rank_states(self, resume: Path) -> None:
        super()._load_rank_states(resume)  # `_check_rank_states` has seen that the states are there
        if self.group_dro is not None:
            self.group_dro.load_state_dict(self._saved(resume, "group_dro"))
        if self.adversary is not None:
            state = self._saved(resume, "adversary")
            self.adversary.load_state_dict(state["model"])
            self.adv_optimizer.load_state_dict(state["optim"])

    def _inner(self) -> SequenceClassifier:
        return getattr(self.model, "module", self.model)

    # ---- steps --------------------------------------------------------------------------------

    def _forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            z, logits = self.model(b["tokens"], b["mask"])
        return upcast(z), upcast(logits).squeeze(-1)

    def train_step(self) -> tuple[float, float]:
        accum = self.dims.grad_accum
        batch = {k: v.to(self.dist.device) for k, v in self.data.train.next_batch().items()}
        micro = [dict(zip(batch, vals)) for vals in zip(*(v.chunk(accum) for v in batch.values()))]

        def sync(i: int):  # the data-parallel all-reduce on the last micro-batch only
            return set_gradient_sync(self.model, i == accum - 1)

        if self.adversary is not None:
            f = self.cfg.fairness
            # fairness.control guard: steps up to control_warmup train unconstrained (the guard's reference)
            warm = f.control == "guard" and self.step < f.control_warmup
            boost = 0.0 if warm else self.figures.get("alpha_boost", 1.0)
            self.alpha = alpha_at(f.alpha, f.alpha_schedule, self.step + 1) * boost
            params = [p for p in self.model.parameters() if p.requires_grad]
            # one process, one micro-batch, nothing recomputed: the predictor's loss reuses the
            # adversary pass's forward (see adversarial_step)
            reuse = self.world_size == 1 and accum == 1 and self.cfg.memory.policy == "keep"
            adv, total = adversarial_step(self._forward, micro, params, self.adversary, f.adversary, self.alpha,
                                          f.adversary_input, sync=sync, reuse=reuse, row_weights=self._row_weights(),
                                          project=not warm, weigh_adversary=f.adversary_weights == "rows",
                                          row_loss=self._row_loss())
            adv_mean = start_all_reduce_mean(adv)
        else:
            total = predictor_backward(lambda b, i: self._forward(b)[1], micro, sync, self._row_weights(),
                                       self._row_loss())
        # the losses are averaged over the ranks while clipping and the optimizer steps run
        mean_loss = start_all_reduce_mean(total)
        grad_norm = clip_grad_norm(self.model, self.cfg.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.adversary is not None:
            self.adv_optimizer.step()
            self.adversary.constrain_()  # fairness.adversary_direction association; nothing otherwise
            self.adv_optimizer.zero_grad(set_to_none=True)
            self.adv_loss = float(adv_mean())
        return float(mean_loss()), grad_norm

    def _row_loss(self):
        """fairness.predictor_loss as a per-row loss for `predictor_backward` (None: the cross-entropy)."""
        f = self.cfg.fairness
        return row_loss(f.predictor_loss, f.loss_q, f.loss_floor)

    def _row_weights(self):
        """fairness.loss_weights' row weights for `predictor_backward` (None: unweighted). Group DRO
        moves its weights on this step's losses, from a forward without a graph before any backward."""
        method = self.cfg.fairness.row_weights
        if method == "reweigh":
            return lambda micro: [b["weight"] for b in micro]
        if method == "group_dro":
            def dro(micro):
                with torch.no_grad():
                    return group_dro_weights(self.group_dro, [self._forward(b)[1] for b in micro], micro)
            return dro
        return None

    @torch.no_grad()
    def predict(self, enc: Encoded, limit: int = 0, batch_size: int = 256) -> np.ndarray:
        """Probabilities for the first `limit` rows of `enc` (0: all). Collective: every rank scores a
        share, the shares are gathered (FSDP2 needs every rank in every forward)."""
        n = len(enc) if not limit else min(limit, len(enc))
        dp, r = self.dims.dp, dp_rank(self.mesh)
        per_rank = math.ceil(n / dp)
        steps = math.ceil(per_rank / batch_size)
        idx = np.arange(r * per_rank, (r + 1) * per_rank)
        idx = np.where(idx < n, idx, 0)  # padding rows, dropped below
        was_training = self.model.training
        self.model.eval()
        out = []
        for s in range(steps):
            rows = idx[s * batch_size: (s + 1) * batch_size]
            b = {k: v.to(self.dist.device) for k, v in enc.rows(rows).items()}
            out.append(torch.sigmoid(self._forward(b)[1]).cpu().numpy())
        reshard_after_inference(self.model)
        if was_training:
            self.model.train()
        mine = np.concatenate(out) if out else np.zeros(0)
        if self.dims.dp > 1 and self.mesh is not None:
            # every data-parallel rank's share; tp/pp are refused for classify, so the world is dp
            shares = gather_objects(mine)
        else:
            shares = [mine]
        return np.concatenate(shares)[:n]

    def evaluate(self) -> float:
        enc = self.data.eval_enc
        prob = self.predict(enc)
        y = enc.labels.numpy()
        p = np.clip(prob, 1e-7, 1 - 1e-7)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        self.last_eval = classification_metrics(y, prob)
        self.last_prob = prob
        return loss


def classifier_factory(cfg: JobConfig, tokenizer, seq_len: int) -> ModelFactory:
    """The classifier of a classify config: a `SequenceClassifier` (fairness.pooling, one logit) around the
    Hugging Face model of model.hf_path or the decoder flavor. `seq_len`: the longest encoded text (for
    the FLOPs per token)."""
    f, m = cfg.fairness, cfg.model
    if m.hf_path:
        def load() -> SequenceClassifier:
            backbone = load_hf_causal_lm(m.hf_path)
            if tokenizer.vocab_size > backbone.vocab_size:
                raise ConfigError(f"data.tokenizer: vocabulary {tokenizer.vocab_size} exceeds the model's "
                                  f"{backbone.vocab_size}; use the model's own tokenizer.json")
            model = SequenceClassifier(backbone, backbone.config.hidden_size, 1, f.pooling)
            torch.nn.init.normal_(model.head.weight, std=m.init_std)  # a fresh head on the pretrained body
            torch.nn.init.zeros_(model.head.bias)
            return model

        return ModelFactory(make=load, init=lambda model: None, pretrained=True,
                            flops=lambda model, n: model.backbone.flops_per_token(seq_len))
    args = decoder_args(cfg, tokenizer)

    def flops(model, n: int) -> float:
        # the LM head is gone: 6 N per token (Kaplan et al. 2020) with N the classifier's
        # non-embedding parameters, plus attention's 12 L d T
        return 6.0 * (n - args.vocab_size * args.dim) + 12.0 * args.n_layers * args.dim * seq_len

    # the rematerialization plan's profile counts the LM head's logits, so its predicted peak is an
    # upper bound for the classifier's smaller head
    def make() -> SequenceClassifier:
        with torch.device("meta"):  # the head too: nothing allocated, no random numbers drawn
            return SequenceClassifier(build_model(args, device="meta"), args.dim, 1, f.pooling)

    return ModelFactory(make=make, init=lambda model: model.init_weights(std=m.init_std), flops=flops, args=args)
