"""Packing documents into fixed-length sequences and handing each data-parallel rank its shard.

Sequences are windows of `seq_len + 1` tokens cut from the documents joined with end-of-text
(each document is followed by eos): inputs are `w[:-1]`, targets `w[1:]`.

Global order. The global batch of optimizer step s is global samples [s*B, (s+1)*B) with
B = train.batch_size; data-parallel rank r of dp takes the contiguous slice [r*B/dp, (r+1)*B/dp).
The loader state counts global samples consumed and never depends on the world size, so a
checkpoint saved with one number of ranks resumes with another at exactly the next batch (as long
as train.batch_size, train.seq_len, train.seed and data.* stay the same).

Finite sources are read whole (data.max_docs caps them), split into training and validation
documents, tokenized into a numpy array (uint16 when the vocabulary fits, else int32) and cut into
non-overlapping windows. Sample i comes from epoch e = i // n and is window perm_e[i % n], with
perm_e a permutation seeded by (train.seed, e) when data.shuffle, else the identity.

Streams are not shuffled (data.shuffle does not apply): see `StreamTrainData`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from typing import Any

import numpy as np
import torch

from steward.data.corpus import documents_fingerprint
from steward.data.errors import DataError
from steward.data.sources import Source, open_source, read_documents
from steward.data.tokenizer import Tokenizer

SPLIT_SALT = b"steward-validation-split/1"
"""Which documents are held out depends only on their text and this salt: not on train.seed, the
world size, or the order of the documents, so runs with different seeds share a validation set."""

_ENCODE_CHUNK = 256


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.int32)


def split_documents(docs: list[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """(training indices, validation indices), both in document order.

    A document is held out when a salted SHA-256 of its text, read as a number in [0, 1), is below
    `val_fraction`: duplicates land on the same side, and adding documents moves no other. At least
    one document goes to each side."""
    if len(docs) < 2:
        raise DataError(
            f"data.source: only {len(docs)} document(s); need at least 2 to hold some out for validation "
            "(add data, or set data.text_split = 'paragraph' for text files)"
        )
    u = np.array(
        [int.from_bytes(hashlib.sha256(SPLIT_SALT + d.encode("utf-8")).digest()[:8], "little") / 2.0**64 for d in docs]
    )
    is_val = u < val_fraction
    if not is_val.any():
        is_val[int(np.argmin(u))] = True
    if is_val.all():
        is_val[int(np.argmax(u))] = False
    return np.flatnonzero(~is_val).tolist(), np.flatnonzero(is_val).tolist()


def tokenize_documents(tokenizer: Tokenizer, docs: list[str]) -> np.ndarray:
    """The documents' tokens, each document followed by end-of-text, as one flat array."""
    dtype = token_dtype(tokenizer.vocab_size)
    eos = np.array([tokenizer.eos_id], dtype=dtype)
    parts: list[np.ndarray] = []
    for i in range(0, len(docs), _ENCODE_CHUNK):
        for ids in tokenizer.encode_batch(docs[i : i + _ENCODE_CHUNK]):
            parts.append(np.asarray(ids, dtype=dtype))
            parts.append(eos)
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def pack_windows(tokens: np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping windows [n, seq_len + 1] (a view); the tail shorter than a window is dropped."""
    width = seq_len + 1
    n = len(tokens) // width
    return tokens[: n * width].reshape(n, width)


def _rank_slice(batch_size: int, dp_rank: int, dp_size: int) -> tuple[int, int]:
    if dp_size < 1 or not 0 <= dp_rank < dp_size:
        raise ValueError(f"dp_rank {dp_rank} is not in [0, dp_size={dp_size})")
    if batch_size % dp_size:
        raise DataError(f"train.batch_size: {batch_size} is not divisible by the data-parallel degree {dp_size}")
    local = batch_size // dp_size
    return dp_rank * local, local


def check_batch_memory(train_cfg, rows: int, memory_bytes: int | None = None) -> None:
    """Refuse, before anything is allocated, batches whose tokens alone outgrow this machine's memory
    (`memory_bytes`; default: the physical memory): `rows` sequences per batch held as int64, an
    evaluation's train.val_batches batches at once plus the training batch being built."""
    width, held = train_cfg.seq_len + 1, train_cfg.val_batches + 1
    need = rows * width * 8 * held
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > memory_bytes:
        raise DataError(
            f"train.batch_size: {rows} sequences x {width} tokens (train.seq_len + 1) per batch, {held} held at once "
            f"(train.val_batches = {held - 1} in an evaluation, plus one), take {need / 2**30:.1f} GiB as int64, more "
            f"than this machine's {memory_bytes / 2**30:.1f} GiB; lower train.batch_size, train.seq_len or "
            "train.val_batches"
        )


def _to_tensor(rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rows.astype(np.int64))


class PackedTrainData:
    """Training batches from a finite source: windows in memory, order set by (seed, epoch)."""

    def __init__(self, windows: np.ndarray, batch_size: int, dp_rank: int, dp_size: int, seed: int,
                 shuffle: bool, fingerprint: str, num_tokens: int = 0) -> None:
        if len(windows) < 1:
            raise DataError(
                f"data.source: the training documents give {num_tokens} tokens, fewer than one sequence of "
                f"train.seq_len + 1 = {windows.shape[1]}; lower train.seq_len or add data"
            )
        self.windows = windows
        self.num_sequences = len(windows)
        self.batch_size = batch_size
        self.offset, self.local_batch_size = _rank_slice(batch_size, dp_rank, dp_size)
        self.seed = seed
        self.shuffle = shuffle
        self.fingerprint = fingerprint
        self.samples = 0
        """Global samples consumed (all ranks together): the whole loader state."""
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng([self.seed % (1 << 63), epoch])
            self._perms[epoch] = rng.permutation(self.num_sequences)
        return self._perms[epoch]

    def global_indices(self, start: int, count: int) -> np.ndarray:
        """Window indices of global samples [start, start + count)."""
        i = np.arange(start, start + count)
        if not self.shuffle:
            return i % self.num_sequences
        epochs, pos = np.divmod(i, self.num_sequences)
        out = np.empty(count, dtype=np.int64)
        for e in np.unique(epochs):
            mask = epochs == e
            out[mask] = self._perm(int(e))[pos[mask]]
        return out

    def next_batch(self) -> torch.Tensor:
        """This rank's slice of the next global batch: int64 [batch_size / dp, seq_len + 1]."""
        idx = self.global_indices(self.samples + self.offset, self.local_batch_size)
        self.samples += self.batch_size
        return _to_tensor(self.windows[idx])

    @property
    def batches(self) -> int:
        return self.samples // self.batch_size

    @property
    def epoch(self) -> float:
        return self.samples / self.num_sequences

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "packed",
            "samples": self.samples,
            "batches": self.batches,
            "num_sequences": self.num_sequences,
            "seq_len": self.windows.shape[1] - 1,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "fingerprint": self.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, "packed", {
            "num_sequences": self.num_sequences, "seq_len": self.windows.shape[1] - 1, "seed": self.seed,
            "shuffle": self.shuffle, "fingerprint": self.fingerprint,
        })
        self.samples = int(state["samples"])


class StreamTrainData:
    """Training batches from a stream (a Hugging Face dataset with data.streaming).

    The first data.val_docs documents of the stream are the validation set; training reads from
    the next one on. Every rank reads and packs the same stream identically and keeps only its
    slice of each global batch: simple and exact, at the cost of each rank tokenizing everything.
    The state (documents read, the packer's leftover tokens, samples consumed, and the running
    fingerprint) is therefore the same on every rank and independent of the world size: a
    checkpoint resumes at exactly the next global batch at the same or any other world size (with
    the same train.batch_size). Resuming skips the documents already read by reading past them
    (for a hub stream, that downloads them again).
    When the stream ends, reading starts over after the validation documents (a new epoch).
    """

    def __init__(self, source: Source, tokenizer: Tokenizer, seq_len: int, batch_size: int, dp_rank: int,
                 dp_size: int, val_docs: int) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.offset, self.local_batch_size = _rank_slice(batch_size, dp_rank, dp_size)
        self.val_docs = val_docs
        self.dtype = token_dtype(tokenizer.vocab_size)
        self.position = val_docs
        """Index in the stream of the next document to read (validation documents included)."""
        self.epoch = 0
        self.samples = 0
        self.docs_read = 0
        """Training documents read, over all epochs."""
        self.buffer = np.empty(0, self.dtype)
        self._it = None

    def _next_document(self) -> str:
        while True:
            if self._it is None:
                self._it = self.source.documents(start=self.position)
            doc = next(self._it, None)
            if doc is not None:
                self.position += 1
                self.docs_read += 1
                return doc
            if self.position <= self.val_docs:
                raise DataError(
                    f"data.source: {self.source.name!r} has no documents after the first data.val_docs="
                    f"{self.val_docs} (kept for validation); lower data.val_docs"
                )
            self.epoch += 1  # the stream ended: start over after the validation documents
            self.position = self.val_docs
            self._it = None

    def next_batch(self) -> torch.Tensor:
        """This rank's slice of the next global batch: int64 [batch_size / dp, seq_len + 1]."""
        width = self.seq_len + 1
        need = self.batch_size * width
        # Read one document at a time so the leftover kept in the state is under one document.
        parts, have = [self.buffer], len(self.buffer)
        while have < need:
            tokens = tokenize_documents(self.tokenizer, [self._next_document()])
            parts.append(tokens)
            have += len(tokens)
        tokens = np.concatenate(parts) if len(parts) > 1 else self.buffer
        rows = tokens[:need].reshape(self.batch_size, width)[self.offset : self.offset + self.local_batch_size]
        batch = _to_tensor(rows)
        self.buffer = tokens[need:].copy()
        self.samples += self.batch_size
        return batch

    @property
    def batches(self) -> int:
        return self.samples // self.batch_size

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "stream",
            "source": self.source.name,
            "val_docs": self.val_docs,
            "samples": self.samples,
            "batches": self.batches,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "epoch": self.epoch,
            "position": self.position,
            "docs_read": self.docs_read,
            "buffer": self.buffer.tolist(),
            "tokenizer": self.tokenizer.fingerprint,
            **self.source.fingerprint_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, "stream", {"source": self.source.name, "val_docs": self.val_docs,
                                       "batch_size": self.batch_size, "seq_len": self.seq_len,
                                       "tokenizer": self.tokenizer.fingerprint})
        self.samples = int(state["samples"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.docs_read = int(state["docs_read"])
        self.buffer = np.asarray(state["buffer"], dtype=self.dtype)
        self.source.load_fingerprint_state(state)
        self._it = None


def _check_state(state: dict[str, Any], kind: str, expect: dict[str, Any]) -> None:
    if state.get("kind") != kind:
        raise DataError(
            f"checkpoint: the data state is for a {state.get('kind')!r} source but data.source gives a {kind!r} one; "
            "resume with the data settings of the checkpointed run"
        )
    for key, value in expect.items():
        if state.get(key) != value:
            raise DataError(
                f"checkpoint: the data state was saved with {key}={state.get(key)!r}, this run has {value!r}; "
                "resume with the same data.* settings and train.seq_len / train.batch_size / train.seed"
            )


class DataModule:
    """What the trainer uses: `train` (next_batch, state_dict, load_state_dict), `val_batches`,
    and `datasets()` for the governance record."""

    def __init__(self, source: Source, tokenizer: Tokenizer, train: PackedTrainData | StreamTrainData,
                 val_windows: np.ndarray, batch_size: int, dp_rank: int, dp_size: int,
                 splits: dict[str, dict[str, Any]]) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.train = train
        self.val_windows = val_windows
        self.batch_size = batch_size
        self.offset, self.local_batch_size = _rank_slice(batch_size, dp_rank, dp_size)
        self._splits = splits

    @property
    def num_val_sequences(self) -> int:
        return len(self.val_windows)

    def val_batches(self, num_batches: int) -> list[torch.Tensor]:
        """This rank's slice of each of the first `num_batches` global validation batches, the same
        every call; a validation set smaller than that is read round again from its start."""
        n = len(self.val_windows)
        out = []
        for j in range(num_batches):
            start = j * self.batch_size + self.offset
            idx = np.arange(start, start + self.local_batch_size) % n
            out.append(_to_tensor(self.val_windows[idx]))
        return out

    def datasets(self) -> list[dict[str, Any]]:
        """One entry per split read: the source's description, split, fingerprint, documents and tokens.
        For a stream the training entry reports what has been read so far."""
        rows = []
        for split, info in self._splits.items():
            row = {**self.source.describe(), "split": split, **info, "tokenizer": self.tokenizer.name,
                   "tokenizer_fingerprint": self.tokenizer.fingerprint}
            if split == "train" and isinstance(self.train, StreamTrainData):
                # what has been read so far, validation documents included
                row.update(fingerprint=self.source.fingerprint(), records_read=self.source.records_read,
                           num_documents=self.train.docs_read)
            rows.append(row)
        return rows


def build_data(data_cfg, train_cfg, tokenizer: Tokenizer, dp_rank: int, dp_size: int) -> DataModule:
    """Open `data.source`, hold out validation, pack, and return this rank's view."""
    source = open_source(data_cfg)
    seq_len, batch_size = train_cfg.seq_len, train_cfg.batch_size
    check_batch_memory(train_cfg, _rank_slice(batch_size, dp_rank, dp_size)[1])
    if source.finite:
        docs = read_documents(source, data_cfg.max_docs)
        train_idx, val_idx = split_documents(docs, data_cfg.val_fraction)
        train_docs = [docs[i] for i in train_idx]
        val_docs = [docs[i] for i in val_idx]
        train_tokens = tokenize_documents(tokenizer, train_docs)
        val_tokens = tokenize_documents(tokenizer, val_docs)
        train_fp = documents_fingerprint(train_docs)
        train = PackedTrainData(pack_windows(train_tokens, seq_len), batch_size, dp_rank, dp_size,
                                train_cfg.seed, data_cfg.shuffle, train_fp, len(train_tokens))
        val_windows = pack_windows(val_tokens, seq_len)
        hint = "raise data.val_fraction"
        splits = {
            "train": {"fingerprint": train_fp, "source_fingerprint": source.fingerprint(),
                      "num_documents": len(train_docs), "num_tokens": int(len(train_tokens)),
                      "num_sequences": len(train.windows)},
            "validation": {"fingerprint": documents_fingerprint(val_docs), "num_documents": len(val_docs),
                           "num_tokens": int(len(val_tokens)), "num_sequences": len(val_windows)},
        }
    else:
        val_docs = list(itertools.islice(source.documents(), data_cfg.val_docs))
        if not val_docs:
            raise DataError(f"data.source: {source.name!r} holds no documents")
        val_tokens = tokenize_documents(tokenizer, val_docs)
        val_windows = pack_windows(val_tokens, seq_len)
        train = StreamTrainData(source, tokenizer, seq_len, batch_size, dp_rank, dp_size, len(val_docs))
        hint = "raise data.val_docs"
        splits = {
            "validation": {"fingerprint": documents_fingerprint(val_docs), "num_documents": len(val_docs),
                           "num_tokens": int(len(val_tokens)), "num_sequences": len(val_windows)},
            "train": {"fingerprint": "", "num_documents": 0, "num_tokens": None},
        }
    if len(val_windows) < 1:
        raise DataError(
            f"data: the validation split has {len(val_tokens)} tokens, fewer than one sequence of "
            f"train.seq_len + 1 = {seq_len + 1}; lower train.seq_len or {hint}"
        )
    return DataModule(source, tokenizer, train, val_windows, batch_size, dp_rank, dp_size, splits)
