"""The data of train.task = "classify": texts with labels (and identities, when the set has them)
from fairness.data, encoded, split, batched the same way at every data-parallel degree."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steward.config import ConfigError, JobConfig
from steward.fairness.data import IdentityData, load_fairness_data
from steward.fairness.identity_words import IdentityWordFilter, learn_identity_words
from steward.fairness.metrics import FairnessError


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
        self.columns: dict[str, torch.Tensor] = {}
        """Further per-row tensors a batch carries (fairness.loss_weights' row weights or groups)."""

    def __len__(self) -> int:
        return len(self.data)

    def rows(self, idx: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return {"tokens": self.tokens[idx], "mask": self.mask[idx], "y": self.labels[idx], "identity": self.identity[idx],
                **{k: v[idx] for k, v in self.columns.items()}}


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


def identity_columns(cfg: JobConfig) -> list[str] | None:
    """fairness.identity_columns as a list (None: find the Jigsaw names in the data)."""
    names = [c.strip() for c in cfg.fairness.identity_columns.split(",") if c.strip()]
    return names or None


def load_splits(cfg: JobConfig) -> tuple[IdentityData, IdentityData]:
    """The (training, evaluation) splits of fairness.data / fairness.eval_data for this config: madlibs'
    two generated splits, a separate eval_data, or fairness.eval_fraction held out of fairness.data. A
    data set without identity columns gives splits with no subgroups (plain text classification)."""
    f, t = cfg.fairness, cfg.train
    columns = {"text_field": f.text_field, "target_field": f.target_field,
               "identity_columns": identity_columns(cfg), "require_identities": False}
    try:
        train = load_fairness_data(f.data, split="train", n=f.madlibs_size, seed=t.seed, bias=f.madlibs_bias,
                                   **columns)
        if f.eval_data:
            evald = load_fairness_data(f.eval_data, split="eval" if f.eval_data == "madlibs" else "validation",
                                       n=f.madlibs_eval_size, seed=t.seed, bias=0.0, **columns)
        elif f.data == "madlibs":
            evald = load_fairness_data("madlibs", split="eval", n=f.madlibs_eval_size, seed=t.seed, bias=0.0)
        else:
            perm = np.random.default_rng(t.seed).permutation(len(train))
            n_eval = max(2, int(round(len(train) * f.eval_fraction)))
            evald, train = train.subset(np.sort(perm[:n_eval])), train.subset(np.sort(perm[n_eval:]))
    except FairnessError as e:
        raise ConfigError(str(e)) from None
    return train, evald


def check_identity_needs(cfg: JobConfig, train: IdentityData) -> None:
    """ConfigError (one line) when an option that needs identity columns is on and the training split has none."""
    f = cfg.fairness
    # (on, field, what for, the value that turns it off)
    for on, field, purpose, off in ((f.adversary != "none", "adversary", "for the adversary to predict", "none"),
                                    (f.removes_identity_words, "identity_words", "to learn the identity words from",
                                     "keep"),
                                    (f.row_weights != "none", "loss_weights", "to form groups from", "none")):
        if on and not train.subgroup_names():
            raise ConfigError(f"fairness.{field}: {f.data} has no identity columns {purpose}; name them with "
                              f"--fairness.identity_columns or set --fairness.{field} {off}")


def control_split(train: IdentityData, fraction: float, seed: int) -> tuple[IdentityData, IdentityData]:
    """(the rows trained on, the controller's validation slice): `fraction` of the training split, drawn
    with its own seeded permutation (the same on every rank)."""
    perm = np.random.default_rng([seed, 17]).permutation(len(train))
    n = max(2, int(round(len(train) * fraction)))
    return train.subset(np.sort(perm[n:])), train.subset(np.sort(perm[:n]))


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
        check_identity_needs(cfg, train)
        f = cfg.fairness
        if len(train) < t.batch_size:
            raise ConfigError(f"train.batch_size: {t.batch_size} exceeds the {len(train)} training examples of fairness.data")
        self.identity_words: list[str] | None = None
        """The words fairness.identity_words takes out (learned from the whole training split, the
        controller's slice included), or None; `tokenizer` then removes them (IdentityWordFilter)."""
        if f.removes_identity_words:
            self.identity_words = learn_identity_words(train, min_count=f.identity_words_min_count,
                                                       precision=f.identity_words_precision)
            tokenizer = IdentityWordFilter(tokenizer, self.identity_words)
        self.tokenizer = tokenizer
        """The tokenizer every text of this run is encoded with."""
        self.control_enc: Encoded | None = None
        """The controller's validation slice of the training data (fairness.control), or None."""
        if cfg.fairness.controls_alpha:
            train, control = control_split(train, cfg.fairness.control_fraction, t.seed)
            if len(train) < t.batch_size:
                raise ConfigError(f"fairness.control_fraction: {cfg.fairness.control_fraction:g} leaves {len(train)} "
                                  f"training examples, fewer than train.batch_size {t.batch_size}; lower it")
            self.control_enc = Encoded(control, tokenizer, t.seq_len)
        self.train_data, self.eval_data = train, evald
        self.train_enc = Encoded(train, tokenizer, t.seq_len)
        self.eval_enc = Encoded(evald, tokenizer, t.seq_len)
        self.train = ClassifyBatches(self.train_enc, t.batch_size, rank, dp, t.seed)
        self.source = cfg.fairness.data

    @property
    def has_identities(self) -> bool:
        """Whether the evaluation split has identity subgroups (the fairness evaluation needs them)."""
        return bool(self.eval_data.subgroup_names())

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
