"""train.task = "classify": binary classification fine-tuning with a head on the decoder's pooled
representation, optionally with adversarial debiasing (steward.fairness.adversary).

`ClassifyTrainer` reuses the Trainer's whole set-up, loop, checkpoints and callbacks; it replaces
only what differs from language modelling: the data (texts with labels and identities, from
fairness.data), the model (a `SequenceClassifier` around the same decoder or HF model, sharded the
same way), the step (binary cross-entropy; with an adversary, the projected update over the
predictor's full parameter vector) and the evaluation (loss, AUC, accuracy, F1 on the held-out set).
The language-model Trainer is untouched by this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steward.config import ConfigError, JobConfig
from steward.fairness.adversary import (
    ADAM_EPS,
    Adversary,
    adversary_input_dim,
    adversary_inputs,
    adversary_loss,
    all_reduce_grads_mean,
    alpha_at,
    logit_stats,
    projected_gradients,
)
from steward.fairness.data import IdentityData, load_fairness_data
from steward.fairness.metrics import FairnessError, classification_metrics
from steward.models import build_model, build_model_args, load_hf_causal_lm
from steward.models.heads import SequenceClassifier
from steward.parallel import apply_data_parallel, blocks_of, dp_rank, set_gradient_sync
from steward.train import checkpoint as ckpt
from steward.train.callbacks import Callback
from steward.train.distributed import all_reduce_mean, broadcast_object, gather_objects
from steward.train.remat import plan_and_apply
from steward.train.trainer import Trainer, broadcast_full_weights, clip_grad_norm


def encode_texts(tokenizer, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [N, T] (right-padded with 0) and mask [N, T]; T = the longest text, at most max_len."""
    ids = [t[:max_len] or [0] for t in tokenizer.encode_batch(texts)]
    T = max(len(t) for t in ids)
    tokens = torch.zeros(len(ids), T, dtype=torch.long)
    mask = torch.zeros(len(ids), T, dtype=torch.bool)
    for i, t in enumerate(ids):
        tokens[i, : len(t)] = torch.tensor(t)
        mask[i, : len(t)] = True
    return tokens, mask


class Encoded:
    """One split, encoded: tokens, mask, labels, identity matrix, and the IdentityData it came from."""

    def __init__(self, data: IdentityData, tokenizer, max_len: int):
        self.data = data
        self.tokens, self.mask = encode_texts(tokenizer, data.texts, max_len)
        self.labels = torch.as_tensor(data.labels.astype(np.float32))
        self.identity = torch.as_tensor(data.identity_matrix())

    def __len__(self) -> int:
        return len(self.data)

    def rows(self, idx: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return {"tokens": self.tokens[idx], "mask": self.mask[idx], "y": self.labels[idx], "identity": self.identity[idx]}


class ClassifyBatches:
    """The training stream: a seeded permutation per epoch, global batches of train.batch_size, this
    rank's contiguous share of each (so the global batch is the same at any data-parallel degree)."""

    def __init__(self, enc: Encoded, batch_size: int, rank: int, dp: int, seed: int):
        self.enc, self.batch_size, self.rank, self.dp, self.seed = enc, batch_size, rank, dp, seed
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.enc))

    def next_batch(self) -> dict[str, torch.Tensor]:
        if self.pos + self.batch_size > len(self._perm):
            self.epoch, self.pos = self.epoch + 1, 0
            self._perm = self._permutation()
        idx = self._perm[self.pos: self.pos + self.batch_size]
        self.pos += self.batch_size
        local = self.batch_size // self.dp
        return self.enc.rows(idx[self.rank * local: (self.rank + 1) * local])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation()


def identity_data_fingerprint(data: IdentityData) -> str:
    """SHA-256 of the texts, labels and subgroup memberships, hex: what the dataset registry records."""
    h = hashlib.sha256()
    for t, y in zip(data.texts, data.labels.tolist()):
        h.update(t.encode())
        h.update(b"\x01" if y else b"\x00")
    for name in sorted(data.groups):
        h.update(name.encode())
        h.update(np.packbits(data.groups[name]).tobytes())
    return h.hexdigest()


def load_splits(cfg: JobConfig) -> tuple[IdentityData, IdentityData]:
    """The (training, evaluation) splits of fairness.data / fairness.eval_data for this config: madlibs'
    two generated splits, a separate eval_data, or fairness.eval_fraction held out of fairness.data."""
    f, t = cfg.fairness, cfg.train
    try:
        train = load_fairness_data(f.data, split="train", n=f.madlibs_size, seed=t.seed, bias=f.madlibs_bias,
                                   text_field=f.text_field, target_field=f.target_field)
        if f.eval_data:
            evald = load_fairness_data(f.eval_data, split="eval" if f.eval_data == "madlibs" else "validation",
                                       n=f.madlibs_eval_size, seed=t.seed, bias=0.0,
                                       text_field=f.text_field, target_field=f.target_field)
        elif f.data == "madlibs":
            evald = load_fairness_data("madlibs", split="eval", n=f.madlibs_eval_size, seed=t.seed, bias=0.0)
        else:
            perm = np.random.default_rng(t.seed).permutation(len(train))
            n_eval = max(2, int(round(len(train) * f.eval_fraction)))
            evald, train = train.subset(np.sort(perm[:n_eval])), train.subset(np.sort(perm[n_eval:]))
    except FairnessError as e:
        raise ConfigError(str(e)) from None
    return train, evald


def train_split_tokenizer(cfg: JobConfig, vocab_size: int, out: str | Path) -> tuple[Path, IdentityData]:
    """A byte-level BPE trained on the training split of fairness.data (never its evaluation split),
    written to `out`; returns its path and that split."""
    from steward.data import train_bpe

    train, _ = load_splits(cfg)
    return train_bpe(train.texts, vocab_size, out), train


class ClassifyData:
    """Training and evaluation splits for train.task = classify."""

    def __init__(self, cfg: JobConfig, tokenizer, rank: int, dp: int):
        t = cfg.train
        if t.batch_size % dp:
            raise ConfigError(f"train.batch_size: {t.batch_size} is not divisible by the data-parallel degree {dp}")
        train, evald = load_splits(cfg)
        if len(train) < t.batch_size:
            raise ConfigError(f"train.batch_size: {t.batch_size} exceeds the {len(train)} training examples of fairness.data")
        self.train_data, self.eval_data = train, evald
        self.train_enc = Encoded(train, tokenizer, t.seq_len)
        self.eval_enc = Encoded(evald, tokenizer, t.seq_len)
        self.train = ClassifyBatches(self.train_enc, t.batch_size, rank, dp, t.seed)
        self.source = cfg.fairness.data

    def datasets(self) -> list[dict[str, Any]]:
        rows = []
        for split, d in (("train", self.train_data), ("validation", self.eval_data)):
            rows.append({
                "source": d.meta.get("source", self.source), "kind": "identities", "split": split,
                "num_documents": len(d), "positives": int(d.labels.sum()),
                "subgroups": {s: int(d.groups[s].sum()) for s in d.subgroup_names()},
                "fingerprint": identity_data_fingerprint(d), "madlibs_bias": d.meta.get("bias"),
            })
        return rows


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
        summary.update({f"final_val_{k}": v for k, v in trainer.last_eval.items()})


class ClassifyTrainer(Trainer):
    """The Trainer with a classification head, for train.task = classify (see the module docstring)."""

    last_eval: dict[str, float]
    adversary: Adversary | None
    alpha: float

    def __init__(self, cfg: JobConfig, callbacks: list[Callback] | None = None, monitor: bool = True):
        super().__init__(cfg, callbacks)
        self.last_eval = {}
        self.adversary = None
        self.adv_loss: float | None = None
        self.alpha = cfg.fairness.alpha
        extra: list[Callback] = [ClassifyMetrics()]
        if monitor and cfg.fairness.enabled:
            from steward.fairness.monitor import FairnessMonitor

            extra.append(FairnessMonitor(cfg))
        # ours first: the governance callback then sees the figures they add
        self.callbacks.callbacks[:0] = extra

    def _build_data(self) -> ClassifyData:
        return ClassifyData(self.cfg, self.tokenizer, dp_rank(self.mesh), self.dims.dp)

    def _build_model(self) -> None:
        cfg, device = self.cfg, self.dist.device
        if self.dims.model_parallel:
            raise ConfigError("train.task: classify supports data parallelism (DDP, FSDP2, HSDP); set parallel.tp "
                              "and parallel.pp to 1")
        self.grad_sync = None  # gradient compression is for language modelling (config refuses it here)
        torch.manual_seed(cfg.train.seed)
        use_bf16 = cfg.train.mixed_precision == "bf16" or (cfg.train.mixed_precision == "auto" and device.type == "cuda")
        self.amp_dtype = torch.bfloat16 if use_bf16 else None
        sharded = self.dims.uses_fsdp
        pooling = cfg.fairness.pooling
        seq_len = self.data.train_enc.tokens.shape[1]
        if cfg.model.hf_path:
            backbone = load_hf_causal_lm(cfg.model.hf_path)
            if self.tokenizer.vocab_size > backbone.vocab_size:
                raise ConfigError(f"data.tokenizer: vocabulary {self.tokenizer.vocab_size} exceeds the model's "
                                  f"{backbone.vocab_size}; use the model's own tokenizer.json")
            model = SequenceClassifier(backbone, backbone.config.hidden_size, 1, pooling)
            torch.nn.init.normal_(model.head.weight, std=cfg.model.init_std)
            torch.nn.init.zeros_(model.head.bias)
            model = model.to(device)
            self.num_params = sum(p.numel() for p in model.parameters())
            self.flops_per_token = backbone.flops_per_token(seq_len)
            # memory.policy as in language modelling: a fixed policy per block (no flavor shapes to plan)
            self.memory = plan_and_apply(cfg, blocks_of(model), self.dims, device, None, self.dist.is_main,
                                         broadcast_object)
            model = apply_data_parallel(model, self.dims, self.mesh, self.amp_dtype)
        else:
            vocab = cfg.model.vocab_size or self.tokenizer.vocab_size
            if vocab < self.tokenizer.vocab_size:
                raise ConfigError(f"model.vocab_size: {vocab} is smaller than the tokenizer's {self.tokenizer.vocab_size}")
            args = dataclasses.replace(build_model_args(cfg.model.flavor, vocab_size=vocab, max_seq_len=cfg.train.seq_len),
                                       init_std=cfg.model.init_std)
            self.model_args = args

            def build(device_: str) -> SequenceClassifier:
                return SequenceClassifier(build_model(args, device=device_), args.dim, 1, pooling).to(device_)

            with torch.device("meta"):
                model = build("meta")
            self.num_params = sum(p.numel() for p in model.parameters())
            # the LM head is gone: 6 N per token (Kaplan et al. 2020) with N the classifier's
            # non-embedding parameters, plus attention's 12 L d T
            self.flops_per_token = 6.0 * (self.num_params - args.vocab_size * args.dim) + 12.0 * args.n_layers * args.dim * seq_len
            # rematerialization per block (memory.policy), then compile and data parallel: the
            # language-model trainer's order. The plan's profile counts the LM head's logits, so its
            # predicted peak is an upper bound for the classifier's smaller head.
            self.memory = plan_and_apply(cfg, blocks_of(model), self.dims, device, args, self.dist.is_main,
                                         broadcast_object)
            if cfg.train.compile:
                for block in blocks_of(model):
                    block.compile()
            if sharded:
                model = apply_data_parallel(model, self.dims, self.mesh, self.amp_dtype)
                model.to_empty(device=device)
                with torch.no_grad():
                    model.init_weights(std=cfg.model.init_std)
                seed = cfg.train.seed

                def full() -> SequenceClassifier:
                    # exactly the single-process path: built on meta, seeded, then initialised
                    with torch.device("meta"):
                        m = build("meta")
                    m.to_empty(device="cpu")
                    torch.manual_seed(seed)
                    with torch.no_grad():
                        m.init_weights(std=cfg.model.init_std)
                    return m

                # every rank gets exactly the single-process initial weights
                broadcast_full_weights(model, full, self.rank)
            else:
                model.to_empty(device=device)
                with torch.no_grad():
                    model.init_weights(std=cfg.model.init_std)
                model = apply_data_parallel(model, self.dims, self.mesh, self.amp_dtype)
        self.model = model
        self.autocast = (torch.autocast(device_type=device.type, dtype=self.amp_dtype)
                         if self.amp_dtype is not None and not sharded else nullcontext())
        self.pipeline = None
        f = cfg.fairness
        if f.adversary != "none":
            dim = self._inner().head.in_features
            torch.manual_seed(cfg.train.seed + 1)
            self.adversary = Adversary(adversary_input_dim(f.adversary, dim), self.data.train_enc.identity.shape[1],
                                       f.adversary_hidden).to(device)
            self.adversary.start_at_prior(self.data.train_enc.identity)
            self.adv_optimizer = torch.optim.Adam(self.adversary.parameters(), lr=f.adversary_lr, eps=ADAM_EPS)

    # ---- checkpoints: the adversary and its optimizer (the same on every rank) -------------------

    def _rank_states(self) -> dict[str, Any]:
        states = super()._rank_states()
        if self.adversary is not None:
            states["adversary"] = {"model": self.adversary.state_dict(), "optim": self.adv_optimizer.state_dict(),
                                   "input": self.cfg.fairness.adversary_input}
        return states

    def _load_rank_states(self, resume: Path) -> None:
        super()._load_rank_states(resume)
        if self.adversary is None:
            return
        state = ckpt.load_rank_state(resume, "adversary", self.rank, self.world_size, replicated=True)
        if state is None:
            raise ConfigError(f"checkpoint.resume: {resume} has no adversary state (saved without "
                              "fairness.adversary, or by an older version); start a new run")
        # checkpoints from before the option existed were trained on the probability
        saved = state.get("input", "probability")
        if self.cfg.fairness.adversary != "representation" and saved != self.cfg.fairness.adversary_input:
            raise ConfigError(f"fairness.adversary_input: {resume}'s adversary was trained on {saved!r} inputs; resume "
                              f"with --fairness.adversary_input {saved} or start a new run")
        self.adversary.load_state_dict(state["model"])
        self.adv_optimizer.load_state_dict(state["optim"])

    def _inner(self) -> SequenceClassifier:
        return getattr(self.model, "module", self.model)

    # ---- steps --------------------------------------------------------------------------------

    def _forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            z, logits = self.model(b["tokens"], b["mask"])
        return z.float(), logits.float().squeeze(-1)

    def train_step(self) -> tuple[float, float]:
        accum = self.dims.grad_accum
        batch = {k: v.to(self.dist.device) for k, v in self.data.train.next_batch().items()}
        micro = [dict(zip(batch, vals)) for vals in zip(*(v.chunk(accum) for v in batch.values()))]
        params = [p for p in self.model.parameters() if p.requires_grad]
        g_a = None
        # One process, one micro-batch, nothing recomputed: the predictor's loss reuses the adversary
        # pass's forward (its graph kept for a second backward). Under DDP/FSDP each backward must
        # follow its own forward, a selectively checkpointed region allows one backward, and keeping
        # every micro-batch's graph would multiply the activation memory: there it runs again.
        reuse = self.world_size == 1 and accum == 1 and self.cfg.memory.policy == "keep"
        logits: list[torch.Tensor] = []
        if self.adversary is not None:
            self.alpha = alpha_at(self.cfg.fairness.alpha, self.cfg.fairness.alpha_schedule, self.step + 1) * (
                self.figures.get("alpha_boost", 1.0))
            adv_total = torch.zeros((), device=self.dist.device)
            f = self.cfg.fairness
            standardize = f.adversary != "representation" and f.adversary_input == "standardized_logit"
            stats = None
            if standardize and accum > 1:
                # the global batch's logit statistics before any micro-batch's backward: one
                # forward without a graph (with a single micro-batch they come from its forward).
                # A model with dropout (a Hugging Face one) draws other masks in this pass, so its
                # statistics are those of a neighbouring forward, not of the one trained on.
                with torch.no_grad():
                    stats = logit_stats([self._forward(b)[1] for b in micro])
            for i, b in enumerate(micro):
                with set_gradient_sync(self.model, i == accum - 1):
                    z, logit = self._forward(b)
                    if standardize and stats is None:
                        stats = logit_stats([logit])
                    a_in = adversary_inputs(f.adversary, z, logit, b["y"], f.adversary_input, stats)
                    la = adversary_loss(self.adversary(a_in), b["identity"]) / accum
                    # 0 * logit: the head gets a (zero) gradient, so DDP sees every parameter used
                    (la + 0.0 * logit.sum()).backward(retain_graph=reuse)
                adv_total += la.detach()
                if reuse:
                    logits.append(logit)
            g_a = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
            for p in params:
                p.grad = None
            all_reduce_grads_mean(list(self.adversary.parameters()))
            self.adv_loss = float(all_reduce_mean(adv_total))
        total = torch.zeros((), device=self.dist.device)
        for i, b in enumerate(micro):
            with set_gradient_sync(self.model, i == accum - 1):
                logit = logits[i] if logits else self._forward(b)[1]
                loss = F.binary_cross_entropy_with_logits(logit, b["y"]) / accum
                loss.backward()
            total += loss.detach()
        if g_a is not None:
            g_p = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            for p, g in zip(params, projected_gradients(g_p, g_a, self.alpha)):
                p.grad = g
        grad_norm = clip_grad_norm(self.model, self.cfg.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.adversary is not None:
            self.adv_optimizer.step()
            self.adv_optimizer.zero_grad(set_to_none=True)
        return float(all_reduce_mean(total)), grad_norm

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


def build_classifier(cfg: JobConfig, tokenizer, device: torch.device) -> SequenceClassifier:
    """The classifier of a classify config, whole and in one process (for evaluation after training:
    load a checkpoint into it). Initialised as the trainer initialises it."""
    torch.manual_seed(cfg.train.seed)
    if cfg.model.hf_path:
        backbone = load_hf_causal_lm(cfg.model.hf_path)
        model = SequenceClassifier(backbone, backbone.config.hidden_size, 1, cfg.fairness.pooling)
        return model.to(device)
    vocab = cfg.model.vocab_size or tokenizer.vocab_size
    args = dataclasses.replace(build_model_args(cfg.model.flavor, vocab_size=vocab, max_seq_len=cfg.train.seq_len),
                               init_std=cfg.model.init_std)
    with torch.device("meta"):
        model = SequenceClassifier(build_model(args, device="meta"), args.dim, 1, cfg.fairness.pooling)
    model.to_empty(device=device)
    with torch.no_grad():
        model.init_weights(std=cfg.model.init_std)
    return model
