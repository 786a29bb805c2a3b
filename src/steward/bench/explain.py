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
from typing import Any

import numpy as np
import torch

from steward.bench import register
from steward.bench.explain_tasks import (
    FILLERS,
    LABELS,
    WordTokenizer,
    evaluate_task,
    madlibs_task,
    sentiment_task,
    sentiment_tokenizer,
    train_classifier,
    train_next_token,
)
from steward.explain import (
    Explainable,
    explain_instance,
    format_table,
    make_instance,
    pad_batch,
)
from steward.models.gpt import build_model


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
                   help="instead: the planted-rule test bed (steward.explain.planted): all (the first tasks), "
                        "fresh (the later held-out ones, steward.explain.planted_fresh) or tasks named")
    p.add_argument("--form", choices=("classifier", "lm", "both"), default="classifier",
                   help="with --planted: each task as a classifier, as a language model ('<text> =>' then ' yes' "
                        "or ' no'), or both")
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
        res.pop("test_obj")
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
