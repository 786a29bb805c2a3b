"""Attention capture: the probabilities of every layer and head, with their gradients when asked.

Fused attention (SDPA, flash) returns no probabilities, so while explaining, our decoder's Attention
modules get an eager `attend` that records them (installed on the instances and removed on exit: the
model code knows nothing of explanations), and a Hugging Face model is switched to
attn_implementation='eager' with output_attentions; both are switched back on exit, so the normal
path is untouched; its attentions are read at its base model (forward hooks), so a classifier on a
Hugging Face backbone is explained like one on our decoder. `Explainable` reads one prediction per
sequence: the next token after the last real token of a right-padded batch, or a classification
head's label.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steward.errors import StewardError
from steward.models.gpt import Attention, Transformer, upcast


class ExplainError(StewardError):
    """Bad input to an explanation (run directory, text, data file); one line naming the fix."""


def _hf_model(model: nn.Module) -> nn.Module | None:
    """The outermost transformers PreTrainedModel in `model` (itself, an HFCausalLM adapter's, or a
    classifier's backbone's), else None."""
    return next((m for m in model.modules() if hasattr(m, "set_attn_implementation")), None)


def attention_modules(model: nn.Module) -> list[Attention]:
    """Our decoder's Attention modules in layer order."""
    return [m for m in model.modules() if isinstance(m, Attention)]


def attention_with_probs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal softmax(QK^T / sqrt(d)) V written out, [B, H, T, hd] each; returns (output, probabilities)."""
    T = q.shape[-2]
    scores = upcast(q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    probs = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    return (probs.type_as(v) @ v), probs


class Capture:
    """The attention probabilities [B, H, T, T] recorded by `eager_attention`, per Attention module."""

    def __init__(self, modules: Sequence[Attention]):
        self.modules = list(modules)
        self.by_module: dict[Attention, torch.Tensor] = {}
        self.hf: list[torch.Tensor] = []
        """A Hugging Face base model's attentions, per layer (its forward hook records them)."""

    def record(self, module: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out, self.by_module[module] = attention_with_probs(q, k, v)
        return out

    def record_hf(self, module: nn.Module, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        self.hf = list(out.attentions)

    @property
    def probs(self) -> list[torch.Tensor]:
        """The last forward's probabilities, in layer order."""
        if self.hf:
            return self.hf
        return [self.by_module[m] for m in self.modules if m in self.by_module]


def _ask_attentions(module: nn.Module, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    return args, {**kwargs, "output_attentions": True}


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[Capture]:
    """While inside, attention is computed eagerly and its probabilities are kept in the Capture
    yielded (a Hugging Face model's base model is asked for them and hooked); restored on exit."""
    hf = _hf_model(model)
    if hf is not None:
        before = hf.config._attn_implementation
        hf.set_attn_implementation("eager")
        capture = Capture([])
        base = hf.base_model
        hooks = [base.register_forward_pre_hook(_ask_attentions, with_kwargs=True),
                 base.register_forward_hook(capture.record_hf, with_kwargs=True)]
        try:
            yield capture
        finally:
            for h in hooks:
                h.remove()
            hf.set_attn_implementation(before)
        return
    mods = attention_modules(model)
    if not mods:
        raise ExplainError(f"{type(model).__name__} has no steward Attention modules and is no Hugging Face model")
    capture = Capture(mods)
    # what each instance had before (an outer capture's, when nested), put back on exit
    before = [m.__dict__.get("attend") for m in mods]
    for m in mods:
        m.attend = functools.partial(capture.record, m)
    try:
        yield capture
    finally:
        for m, prev in zip(mods, before):
            if prev is None:
                del m.attend  # back to the class's fused attention
            else:
                m.attend = prev


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
    binary_logit: bool = False
    """The scores are a single binary logit z read as (0, z)."""

    def explained(self) -> torch.Tensor:
        """The scores whose predicted column gradients explain: the scores themselves, except for a
        binary logit, where class 0's score 0 is constant (its gradient is zero); there each class's
        explained score is its logit margin over the other, (-z, z), so a prediction of class 0 is
        explained by -z (what lowers z raises it) with the same argmax."""
        if self.binary_logit:
            z = self.scores[:, 1:2]
            return torch.cat([-z, z], -1)
        return self.scores


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

    def _call(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """The model's logits: [B, C] for a classifier, [B, T, V] for a language model; and whether they
        are a binary logit z read as (0, z)."""
        if self.kind == "classify":
            mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None].to(tokens.device)
            out = self.model(tokens, mask)
            logits = out[1] if isinstance(out, tuple) else out
            if logits.shape[-1] == 1:  # a binary logit z: p(1) = sigmoid(z) = softmax([0, z])[1]
                return torch.cat([torch.zeros_like(logits), logits], -1), True
            return logits, False
        hf = _hf_model(self.model)
        if hf is not None:
            return hf(input_ids=tokens, use_cache=False).logits, False
        return self.model(tokens), False

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, attentions: bool = False) -> Forward:
        """Scores at each row's prediction; with `attentions`, inside `eager_attention`."""
        positions = lengths.long() - 1
        ctx = eager_attention(self.model) if attentions else contextlib.nullcontext()
        with ctx as capture:
            logits, binary = self._call(tokens, lengths)
        probs = capture.probs if capture is not None else []
        if logits.dim() == 3:
            logits = logits[torch.arange(len(tokens)), positions]
        if self.classes is not None:
            logits = logits[:, self.classes.to(logits.device)]
        return Forward(upcast(logits), positions, probs, self.pooling, binary)

    def scores(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, C] scores on the fused path (no capture)."""
        return self.forward(tokens, lengths).scores

    def class_name(self, c: int, tokenizer: Any = None) -> str:
        if self.class_names is not None:
            return self.class_names[c]
        return _token_name(int(self.classes[c]) if self.classes is not None else c, tokenizer)

    def all_class_names(self, tokenizer: Any = None) -> list[str]:
        """Every class's name, in class order: the given names, or each class's token decoded (a language
        model's whole vocabulary when `classes` is None)."""
        if self.class_names is not None:
            return list(self.class_names)
        if self.classes is not None:
            return [_token_name(int(t), tokenizer) for t in self.classes]
        hf = _hf_model(self.model)
        vocab = hf.config.vocab_size if hf is not None else self.model.vocab_size
        return [_token_name(t, tokenizer) for t in range(vocab)]


def _token_name(tid: int, tokenizer: Any) -> str:
    """A token id as text; ids beyond the tokenizer's vocabulary (a model's padded vocabulary) read '<id N>'."""
    if tokenizer is None:
        return str(tid)
    if tid >= tokenizer.vocab_size:
        return f"<id {tid}>"
    return tokenizer.decode([tid])


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


CLASSIFY_LABELS = ("0", "1")
"""A classify run's classes, named by their label (fairness.data's target binarised at 0.5)."""


def loaded_run(trained: Any) -> LoadedRun:
    """What `steward explain` works on, from a finished run loaded by `steward.jobs.load_trained` (its
    cfg, tokenizer, model, run_dir, checkpoint), whatever its train.task and model (our decoder or a
    Hugging Face model): a language model is explained at its next token, a classifier at its label."""
    if trained.cfg.train.task == "classify":
        expl = Explainable(trained.model, "classify", pad_id=0, class_names=CLASSIFY_LABELS)
    else:
        expl = Explainable(trained.model, "lm", pad_id=getattr(trained.tokenizer, "eos_id", 0))
    return LoadedRun(expl, trained.tokenizer, Path(trained.run_dir), Path(trained.checkpoint), trained.cfg)
