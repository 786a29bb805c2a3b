"""`steward bench explain`: the symbolic engine against raw attention, rollout, gradient-weighted attention,
Integrated Gradients and random relevance, on models this benchmark trains itself:

- next-token: our decoder learns to continue "<sentence> =>" with POS, NEG or NEU, decided by a
  sentiment word and an optional "not" before it (a bigram the rules must find);
- classifier: `steward.models.heads.SequenceClassifier` over our decoder on issue 7's bias-madlibs
  data, with the training split's identity-label association (the rules that use identity terms are
  flagged).

The rules are fitted on one split and every figure is measured on a held-out split. The baseline
of the timing is the plain fused forward of the same input in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steward.bench import register
from steward.explain import (
    METHODS,
    Analysis,
    Explainable,
    analyse,
    choose_engine_base,
    explain_instance,
    faithfulness_table,
    fit_rules,
    format_table,
    make_instance,
    pad_batch,
)
from steward.explain.faithfulness import ENGINE_BASES
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
                     steps: int = 300, batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> Explainable:
    """Our decoder trained to continue '<text> =>' with the label word; returns the 'lm' Explainable
    restricted to the label tokens."""
    torch.manual_seed(seed)
    model = build_model(toy_args(tok.vocab_size, flavor), device="cpu")
    label_ids = torch.tensor([tok.ids[w] for w in LABELS])
    seqs = [make_instance(t, tok, " =>").tokens for t in texts]
    nb = len(seqs) // batch_size
    batches = [pad_batch(seqs[i * batch_size:(i + 1) * batch_size], tok.pad_id) for i in range(nb)]
    targets = [label_ids[torch.as_tensor(labels[i * batch_size:(i + 1) * batch_size])] for i in range(nb)]

    def loss_fn(i: int) -> torch.Tensor:
        tokens, lengths = batches[i]
        logits = model(tokens)[torch.arange(len(tokens)), lengths - 1]
        return F.cross_entropy(logits, targets[i])  # next-token loss at the label position

    _train(model, loss_fn, nb, steps, lr, seed)
    return Explainable(model, "lm", classes=label_ids.tolist(), pad_id=tok.pad_id, class_names=LABELS)


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
                  suffix: str, class_names: Sequence[str], max_rules: int, ig_steps: int) -> dict[str, Any]:
    """Rules fitted on `train_texts`; the faithfulness table on `test_texts` (held out)."""
    train = [make_instance(t, tok, suffix) for t in train_texts]
    test = [make_instance(t, tok, suffix) for t in test_texts]
    an_train = analyse(expl, train, ENGINE_BASES)
    _, rules = fit_rules(train, an_train, class_names, max_rules=max_rules)
    k = min(300, len(train))  # the base is chosen on (part of) the fitting data, never the held-out
    base = choose_engine_base(expl, train[:k], _head(an_train, k), rules)
    an_test = analyse(expl, test, METHODS, ig_steps=ig_steps)
    table = faithfulness_table(expl, test, an_test, rules, engine_base=base)
    return {
        "model_accuracy_note": "fidelity is against the model's predictions, not the labels",
        "held_out": len(test),
        "fidelity_resolution": 1 / len(test),
        "table": table,
        "rules": rules.text().splitlines(),
        "flagged_identity_rules": rules.flagged(),
        "rules_obj": rules,
    }


def _checks(res: dict[str, Any], max_rules: int) -> dict[str, bool]:
    t = res["table"]
    comp = {m: t[m]["aopc_comprehensiveness"] for m in t}
    return {
        "fidelity_at_least_0.9": t["rules"]["fidelity"] >= 0.9,
        f"rules_at_most_{max_rules}": t["rules"]["n_rules"] <= max_rules,
        "engine_aopc_ge_attention": comp["rules"] >= comp["attention"],
        "engine_aopc_ge_grad_attention": comp["rules"] >= comp["grad_attention"],
    }


def time_text_explanation(n_tokens: int = 128, rounds: int = 5, seed: int = 0) -> dict[str, Any]:
    """What `steward explain RUN_DIR --text` does after loading, on a `tiny` decoder (byte vocabulary)
    and a 128-byte text: captured forward and backward, word relevance, the rule that fires and its
    Anchors precision from 32 masked samples (the CLI's default). Baseline: one fused forward of the
    same input. Loading the checkpoint is not included (reported by the CLI as load_s)."""
    from steward.data import build_tokenizer
    from steward.models import build_model_args

    torch.manual_seed(seed)
    tok = build_tokenizer("byte")
    model = build_model(build_model_args("tiny", vocab_size=tok.vocab_size, max_seq_len=256), device="cpu")
    expl = Explainable(model, "lm", pad_id=tok.eos_id)
    rng = np.random.default_rng(seed)
    text = ""
    while len(text) < n_tokens:
        text += " ".join(rng.choice(FILLERS, size=40))
    text = text[:n_tokens].rstrip()
    inst = make_instance(text, tok)
    # a real rule list over this model: one rule on a word of the text, so Anchors sampling runs
    from steward.explain.rules import Condition, Rule, RuleList

    pred = int(expl.scores(*pad_batch([inst.tokens], tok.eos_id)).argmax())
    names = [tok.decode([i]) for i in range(tok.vocab_size)]
    rules = RuleList([Rule((Condition("word", inst.words[0].lower()),), pred, 1.0, 1, 1.0)], pred, names)
    explain_s, fused_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        with torch.no_grad():
            expl.scores(*pad_batch([inst.tokens], tok.eos_id))
        fused_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = explain_instance(expl, inst, rules, n_samples=32, tokenizer=tok)  # the CLI's default
        explain_s.append(time.perf_counter() - t0)
    return {
        "tokens": len(inst.tokens),
        "explain_s_best": min(explain_s),
        "explain_s_median": float(np.median(explain_s)),
        "fused_forward_s_best": min(fused_s),
        "ratio_explain_to_forward": min(explain_s) / min(fused_s),
        "anchor_samples": out["rule"]["anchor_samples"],
        "rounds": rounds,
        "timer_resolution_s": time.get_clock_info("perf_counter").resolution,
    }


@register("explain", "rule engine vs raw/rollout/grad-weighted attention, IG: ERASER AOPC, rule fidelity; --text time")
def bench_explain(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="steward bench explain")
    p.add_argument("--task", choices=("all", "next-token", "classifier"), default="all")
    p.add_argument("--planted", nargs="?", const="all", default=None, metavar="TASK,...",
                   help="instead: the planted-rule test bed (steward.explain.planted), all tasks or those named")
    p.add_argument("--write-csv", metavar="DIR", default="",
                   help="with --planted: also write DIR/TASK-train.csv and TASK-test.csv (text,label) for steward train")
    p.add_argument("--flavor", choices=("debug", "tiny"), default="debug", help="size of the trained toy decoder")
    p.add_argument("--train", type=int, default=3200, help="training sentences (the rules are fitted on 1000 of them)")
    p.add_argument("--test", type=int, default=300, help="held-out sentences every figure is measured on")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--max-rules", type=int, default=30)
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--bias", type=float, default=0.8, help="identity-label association of the madlibs training split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: these small models gain nothing from more, and on a shared "
                        "machine spinning threads cost several times the CPU)")
    args = p.parse_args(argv)
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        if args.planted is not None:
            from steward.bench.explain_planted import bench_planted

            return bench_planted(args)
        return _bench(args)
    finally:
        torch.set_num_threads(before)


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    fit_n = min(1000, args.train)
    result: dict[str, Any] = {"benchmark": "explain", "flavor": args.flavor, "bins": [0.01, 0.05, 0.1, 0.2, 0.5]}
    tasks = ("next-token", "classifier") if args.task == "all" else (args.task,)
    ok = True
    for task in tasks:
        t0 = time.perf_counter()
        if task == "next-token":
            texts, labels = sentiment_task(args.train + args.test, args.seed)
            tok = sentiment_tokenizer()
            expl = train_next_token(texts[: args.train], labels[: args.train], tok, args.flavor, args.steps,
                                    seed=args.seed)
            suffix, names = " =>", list(LABELS)
        else:
            texts, labels, tok = madlibs_task(args.train, args.seed, args.bias)
            test_texts, test_labels, _ = madlibs_task(args.test, args.seed + 1, 0.0)
            tok = WordTokenizer(tok.words[1:] + sorted({w for t in test_texts for w in t.split()}))
            texts, labels = texts + test_texts, np.concatenate([labels, test_labels])
            expl = train_classifier(texts[: args.train], labels[: args.train], tok, args.flavor, args.steps,
                                    seed=args.seed)
            suffix, names = "", ["non-toxic", "toxic"]
        train_s = time.perf_counter() - t0
        test_texts = texts[args.train:]
        tokens, lengths = pad_batch([make_instance(t, tok, suffix).tokens for t in test_texts], tok.pad_id)
        with torch.no_grad():
            acc = float((expl.scores(tokens, lengths).argmax(-1).numpy() == labels[args.train:]).mean())
        res = evaluate_task(expl, texts[:fit_n], test_texts, tok, suffix, names, args.max_rules, args.ig_steps)
        res.pop("rules_obj")
        res.pop("model_accuracy_note")
        res["model_accuracy"] = acc
        res["train_s"] = train_s
        res["explain_s"] = time.perf_counter() - t0 - train_s
        res["checks"] = _checks(res, args.max_rules)
        ok &= all(res["checks"].values())
        print(f"[{task}] model accuracy {acc:.3f} on {len(test_texts)} held-out\n{format_table(res['table'])}\n",
              file=sys.stderr)
        result[task] = res
    result["text_timing"] = time_text_explanation()
    result["text_under_1s"] = result["text_timing"]["explain_s_best"] < 1.0
    result["all_checks_pass"] = bool(ok and result["text_under_1s"])
    json.dumps(result)  # fail here, not in the CLI, if something is not serialisable
    return result
