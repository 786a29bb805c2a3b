"""The tasks and small trained models `steward bench explain` measures on, and the evaluation of one
explained model; shared by the bench (steward.bench.explain) and its planted-rule variant
(steward.bench.explain_planted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steward.explain import (
    METHODS,
    Analysis,
    Explainable,
    analyse,
    choose_engine_base,
    faithfulness_table,
    fit_rules,
    make_instance,
    pad_batch,
)
from steward.explain.faithfulness import ENGINE_BASES, RELEVANCE_CHOICES
from steward.explain.search import fit_searched
from steward.explain.simulate import simulatability
from steward.models.gpt import ModelArgs, build_model


class WordTokenizer:
    """Whole words as tokens (the toy tasks' vocabulary); id 0 is padding, also used as the mask."""

    def __init__(self, words: Sequence[str]):
        self.words = ["<pad>", *dict.fromkeys(words)]
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.vocab_size = len(self.words)
        self.pad_id = 0

    def encode(self, text: str) -> list[int]:
        return [self.ids[w] for w in text.split()]

    def decode(self, ids) -> str:
        return " ".join(self.words[int(i)] for i in ids)


# ---- the next-token task ---------------------------------------------------------------------------

FILLERS = (
    "the", "movie", "plot", "was", "really", "a", "film", "this", "actor", "story", "script", "music", "scene",
    "felt", "quite", "very", "and", "it", "our", "we", "saw", "with", "friends", "today", "last", "night",
    "young", "old", "muslim", "christian",
)
POSITIVE, NEGATIVE = ("good", "great", "fun"), ("bad", "boring", "awful")
LABELS = ("POS", "NEG", "NEU")


def sentiment_task(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """`n` sentences of 4-14 filler words with at most one sentiment word, negated by a preceding 'not'
    a third of the time; label 0 POS, 1 NEG, 2 NEU (no sentiment word)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], np.zeros(n, dtype=int)
    for i in range(n):
        words = list(rng.choice(FILLERS, size=int(rng.integers(4, 15))))
        kind = int(rng.integers(3))
        if kind < 2:
            w = str(rng.choice(POSITIVE if kind == 0 else NEGATIVE))
            at = int(rng.integers(len(words) + 1))
            negated = rng.random() < 1 / 3
            words[at:at] = ["not", w] if negated else [w]
            kind = 1 - kind if negated else kind
        texts.append(" ".join(words))
        labels[i] = kind
    return texts, labels


def sentiment_tokenizer() -> WordTokenizer:
    return WordTokenizer([*FILLERS, *POSITIVE, *NEGATIVE, "not", "=>", *LABELS])


def _train(model: torch.nn.Module, loss_fn, batches: int, steps: int, lr: float, seed: int) -> list[float]:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    for step in range(steps):
        loss = loss_fn(step % batches)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def toy_args(vocab: int, flavor: str = "debug") -> ModelArgs:
    """A small decoder of our family for the toy tasks (debug: dim 64, 2 layers; tiny: dim 128, 4 layers)."""
    if flavor == "debug":
        return ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=vocab, multiple_of=32, max_seq_len=64)
    return ModelArgs(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=vocab, multiple_of=64, max_seq_len=64)


def train_next_token(texts: Sequence[str], labels: np.ndarray, tok: WordTokenizer, flavor: str = "debug",
                     steps: int = 300, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                     label_words: Sequence[str] = LABELS) -> Explainable:
    """Our decoder trained to continue '<text> =>' with the label word (class c: `label_words[c]`);
    returns the 'lm' Explainable restricted to the label tokens."""
    torch.manual_seed(seed)
    model = build_model(toy_args(tok.vocab_size, flavor), device="cpu")
    label_ids = torch.tensor([tok.ids[w] for w in label_words])
    seqs = [make_instance(t, tok, " =>").tokens for t in texts]
    nb = len(seqs) // batch_size
    batches = [pad_batch(seqs[i * batch_size:(i + 1) * batch_size], tok.pad_id) for i in range(nb)]
    targets = [label_ids[torch.as_tensor(labels[i * batch_size:(i + 1) * batch_size])] for i in range(nb)]

    def loss_fn(i: int) -> torch.Tensor:
        tokens, lengths = batches[i]
        logits = model(tokens)[torch.arange(len(tokens)), lengths - 1]
        return F.cross_entropy(logits, targets[i])  # next-token loss at the label position

    _train(model, loss_fn, nb, steps, lr, seed)
    return Explainable(model, "lm", classes=label_ids.tolist(), pad_id=tok.pad_id, class_names=list(label_words))


# ---- the classifier task (issue 7's head and data) -------------------------------------------------


def train_classifier(texts: Sequence[str], labels: np.ndarray, tok: WordTokenizer, flavor: str = "debug",
                     steps: int = 300, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                     pooling: str = "last") -> Explainable:
    from steward.models.heads import SequenceClassifier

    torch.manual_seed(seed)
    args = toy_args(tok.vocab_size, flavor)
    model = SequenceClassifier(build_model(args, device="cpu"), args.dim, num_labels=1, pooling=pooling)
    torch.nn.init.normal_(model.head.weight, std=0.02)
    torch.nn.init.zeros_(model.head.bias)
    seqs = [tok.encode(t) for t in texts]
    nb = len(seqs) // batch_size
    batches = [pad_batch(seqs[i * batch_size:(i + 1) * batch_size], tok.pad_id) for i in range(nb)]
    y = [torch.as_tensor(labels[i * batch_size:(i + 1) * batch_size], dtype=torch.float32) for i in range(nb)]

    def loss_fn(i: int) -> torch.Tensor:
        tokens, lengths = batches[i]
        mask = torch.arange(tokens.shape[1])[None] < lengths[:, None]
        return F.binary_cross_entropy_with_logits(model(tokens, mask)[1].squeeze(-1), y[i])

    _train(model, loss_fn, nb, steps, lr, seed)
    return Explainable(model, "classify", pad_id=tok.pad_id, class_names=("non-toxic", "toxic"))


def madlibs_task(n: int, seed: int, bias: float) -> tuple[list[str], np.ndarray, WordTokenizer]:
    from steward.fairness.data import generate_madlibs

    data = generate_madlibs(n, seed=seed, bias=bias)
    words = sorted({w for t in data.texts for w in t.split()})
    return list(data.texts), data.labels.astype(int), WordTokenizer(words)


# ---- the benchmark ---------------------------------------------------------------------------------


def _head(an: Analysis, k: int) -> Analysis:
    return Analysis(an.pred[:k], an.prob[:k], {m: r[:k] for m, r in an.word_rel.items()}, an.word_att[:k])


def evaluate_task(expl: Explainable, train_texts: Sequence[str], test_texts: Sequence[str], tok: WordTokenizer,
                  suffix: str, class_names: Sequence[str], max_rules: int, ig_steps: int,
                  search: str = "cover", sim_k: int = 3) -> dict[str, Any]:
    """Rules fitted on `train_texts`; the faithfulness table on `test_texts` (held out). `search`
    'cover': the covering learner over words, bigrams and attention facts, relevance grad_attention;
    'beam': the relevance chosen per model and the beam search (`steward.explain.search`), with both
    simulated users' accuracy (`steward.explain.simulate`, top `sim_k` words)."""
    train = [make_instance(t, tok, suffix) for t in train_texts]
    test = [make_instance(t, tok, suffix) for t in test_texts]
    k = min(300, len(train))  # the base is chosen on (part of) the fitting data, never the held-out
    extra: dict[str, Any] = {}
    if search == "beam":
        an_train = analyse(expl, train, RELEVANCE_CHOICES, ig_steps=ig_steps)
        rules, base, aopc = fit_searched(expl, train, an_train, class_names, max_rules, choice_texts=k)
        extra = {"relevance": rules.search["relevance"], "relevance_aopc_fitting": aopc, "search": rules.search}
    else:
        an_train = analyse(expl, train, ENGINE_BASES)
        _, rules = fit_rules(train, an_train, class_names, max_rules=max_rules)
        base = choose_engine_base(expl, train[:k], _head(an_train, k), rules)
    an_test = analyse(expl, test, METHODS, ig_steps=ig_steps)
    table = faithfulness_table(expl, test, an_test, rules, engine_base=base)
    if search == "beam":
        extra["simulatability"] = simulatability(rules, (train, an_train), (test, an_test), extra["relevance"], sim_k)
    return {
        "model_accuracy_note": "fidelity is against the model's predictions, not the labels",
        "held_out": len(test),
        "fidelity_resolution": 1 / len(test),
        "table": table,
        "rules": rules.text().splitlines(),
        "flagged_identity_rules": rules.flagged(),
        **extra,
        "rules_obj": rules,
        "test_obj": (test, an_test),
    }
