"""`steward bench explain --planted [TASK,...]`: the rule engine on the planted-rule test bed
(`steward.explain.planted`), where the truth is known.

Per task: the classifier (our decoder under `SequenceClassifier`, mean pooling as `train.task =
classify` builds it, word tokens) is trained on the task's training texts; the rule list is fitted as
`steward explain --global` fits it (the beam search of `steward.explain.search`: relevance chosen per
model by comprehensiveness on the fitting texts, at most 10 rules with the default line, each tested
against chance; the engine's base chosen on the fitting data) and measured on the held-out test texts.
Reported: test accuracy against the planted labels; whether the rule list, read as a boolean formula
over words, equals the planted rule (the smallest number of leading rules that does, with the default
line; truth tables compared by `steward.explain.formula.equivalent`); fidelity and number of rules;
forward simulatability (`steward.explain.simulate`: the rule user's and the top-3-word user's accuracy
at predicting the model on the test texts); comprehensiveness AOPC per relevance method. On the
random-label control: whether the engine says it found no rule above chance (none passed the search's
test, or the listed rules do not predict the test labels: `steward.explain.search.label_check`, run on
every task as `--global` runs it on labelled data; otherwise it lists rules: a claim), and whether any
listed rules predict the labels above chance (one-sided binomial at 0.05). The
tasks in `TUNING_TASKS` may be tuned on; the others are held out, and only they count for issue 18's
target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steward.explain import make_instance, pad_batch
from steward.explain.formula import equivalent, rules_formula, show
from steward.explain.planted import TUNING_TASKS, PlantedTask, write_csv
from steward.explain.planted_fresh import PLANTED, planted_names
from steward.explain.search import binomial_tail, label_check

LEARNED = 0.95
"""Test accuracy from which a task counts as learned (issue 18's 'where the model learned the rule')."""
TARGET_FIDELITY, TARGET_RULES = 0.95, 10
SIM_K = 3
FORMS = ("classifier", "lm")
LM_SUFFIX, LM_LABELS = " =>", ("no", "yes")
"""The language-model form: '<text> =>' continued with ' no' (class 0) or ' yes' (class 1)."""
"""Top relevance words the simulated word user sees per text."""


def match_planted(rules: Any, planted: Any) -> dict[str, Any]:
    """Whether the rule list reads as the planted formula: `top_rules` is the smallest k such that the
    first k rules with the default line equal it (None: no prefix does), `whole_list` the full list."""
    top = None
    for k in range(len(rules.rules) + 1):
        f = rules_formula(rules, first=k)
        if f is not None and equivalent(f, planted)["equal"]:
            top = k
            break
    whole = rules_formula(rules)
    cmp = equivalent(whole, planted) if whole is not None else None
    return {"top_rules": top, "equal": top is not None, "whole_list_equal": bool(cmp and cmp["equal"]),
            "counterexample": cmp["counterexample"] if cmp else None, "planted": show(planted),
            "read_as": show(whole) if whole is not None and len(show(whole)) <= 400 else
            (show(whole)[:400] + " ..." if whole is not None else show(None))}


def control_verdict(rule_pred: np.ndarray, labels: np.ndarray, n_rules: int, alpha: float = 0.05,
                    model_pred: np.ndarray | None = None, says_no_rule: bool = False) -> dict[str, Any]:
    """On random labels: does the engine claim a rule (lists a rule besides the default line without
    saying that no rule is above chance: `says_no_rule`, either because none passed the search's test
    or because the listed rules do not predict the labels, `steward.explain.search.label_check`), and
    do its rules predict the labels above chance (the majority rate), one-sided binomial at `alpha`?
    With the model's predictions: do the rules predict the model above chance (its majority rate), the
    same test: a model that learned something from noise can follow a rule that the labels do not."""
    n, hits = len(labels), int((rule_pred == labels).sum())
    chance = float(max(labels.mean(), 1 - labels.mean()))
    p = binomial_tail(hits, n, chance)
    out = {"claims_rule": n_rules > 1 and not says_no_rule, "engine_says_no_rule": says_no_rule,
           "label_accuracy": hits / n, "chance": chance, "p_value": p, "above_chance": p < alpha}
    if model_pred is not None:
        agree = int((rule_pred == model_pred).sum())
        majority = float(np.bincount(model_pred, minlength=2).max() / n)
        p_model = binomial_tail(agree, n, majority)
        out.update(model_fidelity=agree / n, model_majority=majority, model_p_value=p_model,
                   model_above_chance=p_model < alpha)
    return out


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 18's target over the held-out tasks: where test accuracy >= LEARNED, the rules equal the
    planted rule on all but at most one; fidelity >= 0.95 with <= 10 rules on each; the engine's
    comprehensiveness AOPC >= every other method's on at least 6 of 8 tasks (all tasks run count here,
    scaled: all but two when fewer ran); on the control the engine says it found no rule above chance
    (none passed the search's test, or the rules it lists do not predict the labels on the test texts;
    rules listed without either statement are a claim), with whether those rules predict the random
    labels above chance reported beside it."""
    held = [n for n, r in results.items() if not r["tuning"] and r["rule"] is not None]
    learned = [n for n in held if results[n]["model_accuracy"] >= LEARNED]
    equal = [n for n in learned if results[n]["formula"]["equal"]]
    faithful = [n for n in learned if results[n]["fidelity"] >= TARGET_FIDELITY and results[n]["n_rules"] <= TARGET_RULES]
    best = [n for n, r in results.items() if r["engine_aopc_best"]]
    control = [results[n]["control"] for n in results if results[n]["rule"] is None]
    need_best = max(len(results) - 2, 0)
    met = {
        "rules_equal_planted": bool(learned) and len(equal) >= len(learned) - 1,
        "fidelity_and_size": bool(learned) and len(faithful) == len(learned),
        "engine_aopc_best": len(best) >= need_best,
        "control_no_rule": all(not c["claims_rule"] for c in control),
    }
    return {"held_out": held, "learned": learned, "equal": equal, "faithful": faithful, "engine_aopc_best": best,
            "engine_aopc_best_needed": need_best, "met": met, "target_met": all(met.values())}


def _accuracy(expl, tok, texts: list[str], labels: np.ndarray, suffix: str = "") -> float:
    tokens, lengths = pad_batch([make_instance(t, tok, suffix).tokens for t in texts], tok.pad_id)
    with torch.no_grad():
        return float((expl.scores(tokens, lengths).argmax(-1).numpy() == labels).mean())


def run_task(task: PlantedTask, args: argparse.Namespace, form: str = "classifier") -> dict[str, Any]:
    """One task in one form: 'classifier' (the mean-pooled SequenceClassifier) or 'lm' (our decoder
    trained to continue '<text> =>' with ' yes' or ' no', explained at that next token)."""
    from steward.bench.explain_tasks import WordTokenizer, evaluate_task, train_classifier, train_next_token

    t0 = time.perf_counter()
    train, test = task.splits(args.train, args.test, args.seed)
    if args.write_csv and form == "classifier":
        write_csv(Path(args.write_csv) / f"{task.name}-train.csv", *train)
        write_csv(Path(args.write_csv) / f"{task.name}-test.csv", *test)
    words = sorted({w for t in train.texts + test.texts for w in t.split()})
    if form == "lm":
        tok = WordTokenizer([*words, LM_SUFFIX.strip(), *LM_LABELS])
        expl = train_next_token(train.texts, train.labels, tok, args.flavor, args.steps, seed=args.seed,
                                label_words=LM_LABELS)
        suffix, names = LM_SUFFIX, list(LM_LABELS)
    else:
        tok = WordTokenizer(words)
        expl = train_classifier(train.texts, train.labels, tok, args.flavor, args.steps, seed=args.seed, pooling="mean")
        suffix, names = "", ["0", "1"]
    train_s = time.perf_counter() - t0
    fit_n = min(1000, args.train)
    res = evaluate_task(expl, train.texts[:fit_n], test.texts, tok, suffix, names, min(args.max_rules, TARGET_RULES),
                        args.ig_steps, search="beam", sim_k=SIM_K)
    rules, (instances, an_test), table = res.pop("rules_obj"), res.pop("test_obj"), res["table"]
    comp = {m: row["aopc_comprehensiveness"] for m, row in table.items()}
    out: dict[str, Any] = {
        "description": task.description, "tuning": task.name in TUNING_TASKS,
        "rule": None if task.rule is None else show(task.rule),
        "form": form, "model_accuracy": _accuracy(expl, tok, test.texts, test.labels, suffix), "positives_test": float(test.labels.mean()),
        "fidelity": table["rules"]["fidelity"], "n_rules": table["rules"]["n_rules"],
        "comprehensiveness_aopc": comp,
        "engine_aopc_best": all(comp["rules"] >= v for m, v in comp.items() if m != "rules"),
        "rules": res["rules"], "held_out": res["held_out"], "train_s": train_s,
        "relevance": res["relevance"], "relevance_aopc_fitting": res["relevance_aopc_fitting"],
        "engine_base": table["rules"]["engine_base"], "simulatability": res["simulatability"],
        "search": res["search"],
    }
    rule_pred, fired = rules.predict(instances, an_test)
    if rules.rules:  # the engine's own check against labels, as `--global` does with a labelled --data
        check = label_check(rules, fired, test.labels)
        out["label_check"] = {"p_value": check["p_value"], "above_chance": check["above_chance"]}
    out["describes_model_only"] = rules.describes_model_only
    if task.rule is not None:
        out["formula"] = match_planted(rules, task.rule)
    else:
        says_no = rules.no_rule_above_chance or rules.describes_model_only
        out["control"] = control_verdict(rule_pred, test.labels, out["n_rules"], model_pred=an_test.pred,
                                         says_no_rule=says_no)
    out["explain_s"] = time.perf_counter() - t0 - train_s
    return out


def format_planted(results: dict[str, dict[str, Any]]) -> str:
    methods = list(next(iter(results.values()))["comprehensiveness_aopc"])
    head = (f"{'task':<12}{'set':<8}{'acc':>6}{'=rule':>8}{'fid':>7}{'rules':>6}{'sim-r':>7}{'sim-w':>7}  " +
            "".join(f"{m[:10]:>11}" for m in methods) + "  relevance")
    lines = [head]
    for name, r in results.items():
        eq = ("k=" + str(r["formula"]["top_rules"]) if r["formula"]["equal"] else "no") if "formula" in r else \
            ("claim" if r["control"]["claims_rule"] else "no rule")
        eq += "*" if r["describes_model_only"] else ""  # the listed rules do not predict the labels
        sim = r["simulatability"]
        lines.append(f"{name:<12}{'tuning' if r['tuning'] else 'held':<8}{r['model_accuracy']:>6.3f}{eq:>8}"
                     f"{r['fidelity']:>7.3f}{r['n_rules']:>6d}{sim['rules']:>7.3f}{sim['top_words']:>7.3f}  " +
                     "".join(f"{r['comprehensiveness_aopc'][m]:>11.3f}" for m in methods) + f"  {r['relevance']}")
    return "\n".join(lines)


def bench_planted(args: argparse.Namespace) -> dict[str, Any]:
    """The test bed in the forms asked (`args.form`: classifier, lm or both); each form is summarised
    against issue 18's target on its own."""
    out: dict[str, Any] = {"benchmark": "explain", "tuning_tasks": list(TUNING_TASKS), "flavor": args.flavor,
                           "train": args.train, "test": args.test, "steps": args.steps, "seed": args.seed,
                           "fidelity_resolution": 1 / args.test}
    for form in FORMS if args.form == "both" else (args.form,):
        results: dict[str, dict[str, Any]] = {}
        for name in planted_names(args.planted):
            r = results[name] = run_task(PLANTED[name], args, form)
            print(f"[planted {form} {name}] {r['description']}: accuracy {r['model_accuracy']:.3f}, "
                  f"{r['train_s']:.0f} s training, {r['explain_s']:.0f} s explaining", file=sys.stderr)
        summary = summarise(results)
        print(f"{form}:\n{format_planted(results)}", file=sys.stderr)
        print(f"issue 18's target ({form}) {'met' if summary['target_met'] else 'not met'}: {summary['met']}",
              file=sys.stderr)
        key = "" if form == "classifier" else "_lm"
        out[f"planted{key}"], out[f"summary{key}"] = results, summary
    return out
