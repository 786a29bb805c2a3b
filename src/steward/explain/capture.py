"""Attention capture: the probabilities of every layer and head, with their gradients when asked.

Fused attention (SDPA, flash) returns no probabilities, so while explaining our decoder's Attention
modules are switched to their eager path (`capture_probs`), and a Hugging Face model to
attn_implementation='eager' with output_attentions; both are switched back on exit, so the normal
path is untouched. `Explainable` reads one prediction per sequence: the next token after the last
real token of a right-padded batch, or a classification head's label.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steward.errors import StewardError
from steward.models.gpt import Attention, Transformer


class ExplainError(StewardError):
    """Bad input to an explanation (run directory, text, data file); one line naming the fix."""


def _hf_model(model: nn.Module) -> nn.Module | None:
    """The transformers PreTrainedModel inside `model` (itself or an HFCausalLM adapter), else None."""
    inner = getattr(model, "model", model)
    return inner if hasattr(inner, "set_attn_implementation") else None


def attention_modules(model: nn.Module) -> list[Attention]:
    """Our decoder's Attention modules in layer order."""
    return [m for m in model.modules() if isinstance(m, Attention)]


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """While inside, attention is computed eagerly and keeps its probabilities; restored on exit."""
    hf = _hf_model(model)
    if hf is not None:
        before = hf.config._attn_implementation
        hf.set_attn_implementation("eager")
        try:
            yield
        finally:
            hf.set_attn_implementation(before)
        return
    mods = attention_modules(model)
    if not mods:
        raise ExplainError(f"{type(model).__name__} has no steward Attention modules and is no Hugging Face model")
    for m in mods:
        m.capture_probs = True
    try:
        yield
    finally:
        for m in mods:
            m.capture_probs, m.probs = False, None


@dataclass
class Forward:
    """One explained forward pass: scores [B, C] at each row's prediction, the positions read,
    and (when captured) the attention probabilities of every layer, [B, H, T, T] each, in the graph."""

    scores: torch.Tensor
    positions: torch.Tensor
    probs: list[torch.Tensor]
    pooling: str = "last"
    """Which attention rows the prediction reads: 'last' (the row at `positions`) or 'mean' (the mean of
    the rows 0..position, a mean-pooling classifier)."""


class Explainable:
    """A model and how one prediction per sequence is read from it.

    kind 'lm': the next-token logits at the last real token (position length-1 of a right-padded
    batch; causal attention makes the padding invisible there). `classes` restricts the scores to
    those token ids (e.g. the label words of a prompt); None keeps the whole vocabulary.
    kind 'classify': a `steward.models.heads.SequenceClassifier` (or any `model(tokens, mask)`
    returning logits [B, C] or (features, logits)); one logit column is a binary logit z, read as
    the two classes' scores (0, z). Attention is explained at the row(s) the head pools: the last real
    token, or the mean over real tokens when the model's `pooling` is 'mean'.
    """

    def __init__(self, model: nn.Module, kind: str = "lm", classes: Sequence[int] | None = None,
                 pad_id: int = 0, class_names: Sequence[str] | None = None):
        if kind not in ("lm", "classify"):
            raise ValueError(f"kind must be 'lm' or 'classify', got {kind!r}")
        self.model = model.eval()
        self.kind = kind
        self.classes = None if classes is None else torch.tensor(list(classes), dtype=torch.long)
        self.pad_id = pad_id
        self.class_names = list(class_names) if class_names is not None else None
        self.pooling = getattr(model, "pooling", "last") if kind == "classify" else "last"

    def embedding(self) -> nn.Embedding:
        """The input token embedding (where Integrated Gradients attributes)."""
        hf = _hf_model(self.model)
        if hf is not None:
            return hf.get_input_embeddings()
        for m in self.model.modules():
            if isinstance(m, Transformer):
                return m.tok_embeddings
        for m in self.model.modules():
            if isinstance(m, nn.Embedding):
                return m
        raise ExplainError(f"{type(self.model).__name__} has no token embedding to attribute to")

    def _logits(self, tokens: torch.Tensor, lengths: torch.Tensor, attentions: bool) -> tuple[torch.Tensor, list]:
        if self.kind == "classify":
            mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None].to(tokens.device)
            out = self.model(tokens, mask)
            logits = out[1] if isinstance(out, tuple) else out
            if logits.shape[-1] == 1:  # a binary logit z: p(1) = sigmoid(z) = softmax([0, z])[1]
                logits = torch.cat([torch.zeros_like(logits), logits], -1)
            return logits, self._our_probs(attentions)
        hf = _hf_model(self.model)
        if hf is not None:
            out = hf(input_ids=tokens, use_cache=False, output_attentions=attentions)
            return out.logits, list(out.attentions) if attentions else []
        return self.model(tokens), self._our_probs(attentions)

    def _our_probs(self, attentions: bool) -> list[torch.Tensor]:
        if not attentions:
            return []
        hf = _hf_model(self.model)
        if hf is not None:
            raise ExplainError("kind 'classify' explains steward decoders; wrap Hugging Face models as kind 'lm'")
        return [m.probs for m in attention_modules(self.model)]

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, attentions: bool = False) -> Forward:
        """Scores at each row's prediction; with `attentions`, inside `eager_attention`."""
        positions = lengths.long() - 1
        ctx = eager_attention(self.model) if attentions else contextlib.nullcontext()
        with ctx:
            logits, probs = self._logits(tokens, lengths, attentions)
        if logits.dim() == 3:
            logits = logits[torch.arange(len(tokens)), positions]
        if self.classes is not None:
            logits = logits[:, self.classes.to(logits.device)]
        return Forward(logits.float(), positions, probs, self.pooling)

    def scores(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, C] scores on the fused path (no capture)."""
        return self.forward(tokens, lengths).scores

    def class_name(self, c: int, tokenizer: Any = None) -> str:
        if self.class_names is not None:
            return self.class_names[c]
        tid = int(self.classes[c]) if self.classes is not None else c
        return tokenizer.decode([tid]) if tokenizer is not None else str(tid)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into [B, T] plus their lengths."""
    if any(len(s) == 0 for s in seqs):
        raise ExplainError("an input has no tokens; give non-empty text")
    T = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return tokens, torch.tensor([len(s) for s in seqs], dtype=torch.long)


# ---- a trained run, for the CLI ----------------------------------------------------------------


@dataclass
class LoadedRun:
    explainable: Explainable
    tokenizer: Any
    run_dir: Path
    checkpoint: Path
    config: Any


def load_run(run_dir: str | Path) -> LoadedRun:
    """The model of RUN_DIR at its newest checkpoint (verified against its manifest), on the CPU,
    as an 'lm' Explainable with the run's tokenizer."""
    from steward.data import build_tokenizer
    from steward.models import build_model_args, load_hf_causal_lm
    from steward.train import checkpoint as ckpt

    run_dir = Path(run_dir)
    try:
        cfg, path = ckpt.run_config_and_checkpoint(run_dir)
    except ckpt.CheckpointError as e:
        raise ExplainError(str(e)) from None
    tokenizer = build_tokenizer(cfg.data.tokenizer)
    if cfg.model.hf_path:
        model = load_hf_causal_lm(cfg.model.hf_path)
    else:
        vocab = cfg.model.vocab_size or tokenizer.vocab_size
        args = build_model_args(cfg.model.flavor, vocab_size=vocab, max_seq_len=cfg.train.seq_len)
        # built on the CPU directly: initialising on meta imports torch._dynamo (about a second),
        # and the checkpoint's weights replace the default initialisation anyway
        model = Transformer(args)
    try:
        ckpt.load_model_weights(model, run_dir, path)
    except ckpt.CheckpointError as e:
        raise ExplainError(str(e)) from None
    pad = getattr(tokenizer, "eos_id", 0)
    return LoadedRun(Explainable(model, "lm", pad_id=pad), tokenizer, run_dir, path, cfg)
