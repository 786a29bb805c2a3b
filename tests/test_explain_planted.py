"""The planted-rule test bed: generators, formulas, the rule list read as a formula, the bench's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from steward.bench.explain_planted import binomial_tail, control_verdict, match_planted, summarise
from steward.explain import ExplainError
from steward.explain.formula import equivalent, holds, rules_formula, show
from steward.explain.planted import TASKS, TUNING_TASKS, task_names, write_csv
from steward.explain.rules import Condition, Rule, RuleList


@pytest.mark.parametrize("name", list(TASKS))
def test_generator_is_deterministic_and_seeded(name):
    task = TASKS[name]
    a, b = task.splits(200, 50, seed=3), task.splits(200, 50, seed=3)
    assert a[0].texts == b[0].texts and a[1].texts == b[1].texts
    assert np.array_equal(a[0].labels, b[0].labels) and np.array_equal(a[1].labels, b[1].labels)
    assert task.splits(200, 50, seed=4)[0].texts != a[0].texts
    assert a[0].texts != a[1].texts  # train and test come from separate streams


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if t.rule is not None])
def test_planted_rule_gives_the_labels(name):
    task = TASKS[name]
    train, test = task.splits(400, 100, seed=0)
    for split in (train, test):
        assert [task.label(t) for t in split.texts] == split.labels.tolist()
    rate = train.labels.mean()
    if task.balanced:
        assert rate == 0.5
    else:  # the rare trigger: about 3% of texts
        assert 0.005 < rate < 0.08
    for w in task.rule_words:  # each rule word appears in both classes' texts or decides them
        assert any(w in t.split() for t in train.texts)


def test_control_has_random_labels_and_no_rule():
    task = TASKS["control"]
    train, _ = task.splits(1000, 10, seed=0)
    assert 0.4 < train.labels.mean() < 0.6
    with pytest.raises(ValueError, match="no rule"):
        task.label(train.texts[0])


def test_tasks_have_their_own_vocabulary_and_the_tuning_set_is_declared():
    # issue 18's three tuning tasks, and `rare`, tuned on after its held-out run showed the engine's miss
    assert TUNING_TASKS == ("trigger", "disjunction", "conjunction", "rare")
    assert len(TASKS) >= 8 and set(TUNING_TASKS) <= set(TASKS) and len(set(TASKS) - set(TUNING_TASKS)) >= 4
    for task in TASKS.values():
        filler = {w for words in task.slots.values() for w in words} | {w for t in task.templates for w in t.split()}
        assert not filler & set(task.rule_words), task.name  # rule words come only from insertion


def test_csv_is_plain_text_classification(tmp_path):
    from steward.fairness.data import load_fairness_data

    train, _ = TASKS["negation"].splits(40, 4, seed=0)
    path = write_csv(tmp_path / "neg.csv", *train)
    assert path.read_text().splitlines()[0] == "text,label"
    data = load_fairness_data(str(path), split="train", n=0, seed=0, bias=0.0, require_identities=False)
    assert data.texts == train.texts and data.labels.astype(int).tolist() == train.labels.tolist()


def test_holds():
    words = ["x", "a", "y", "b"]
    assert holds(("before", "a", "b"), words) and not holds(("before", "b", "a"), words)
    assert holds(("seq", "y", "b"), words) and not holds(("seq", "a", "b"), words)
    assert holds(("atleast", 2, "a", "b", "c"), words) and not holds(("atleast", 3, "a", "b", "c"), words)
    assert holds(("and", "a", ("not", "c")), words) and not holds(("or", "c", False), words)


def test_equivalent_equal_formulas():
    assert equivalent(("or", "a", "b"), ("or", "b", "a"))["equal"]
    de_morgan = equivalent(("not", ("and", "a", "b")), ("or", ("not", "a"), ("not", "b")))
    assert de_morgan["equal"] and de_morgan["exhaustive"] and de_morgan["worlds"] == 4
    count = ("or", ("and", "a", "b"), ("and", "a", "c"), ("and", "b", "c"))
    assert equivalent(("atleast", 2, "a", "b", "c"), count)["equal"]
    assert equivalent(("or", "a", ("and", "a", "z")), "a")["equal"]  # a word that changes nothing


def test_equivalent_different_formulas_give_a_counterexample():
    r = equivalent(("and", "a", "b"), ("or", "a", "b"))
    assert not r["equal"] and r["counterexample"] in ("a", "b")
    assert not equivalent(("and", "a", ("not", "b")), "a")["equal"]  # the negation matters
    assert not equivalent(("and", "a", ("not", "b")), ("and", "b", ("not", "a")))["equal"]
    order = equivalent(("before", "a", "b"), ("seq", "a", "b"))  # adjacent is stricter than before
    assert not order["equal"] and order["counterexample"] == "a b"
    assert equivalent(("before", "a", "b"), ("or", ("seq", "a", "b"), ("before", "a", "b")))["equal"]


def _rules(spec, default):
    rules = [Rule(tuple(Condition(k, t) for k, t in conds), label, 1.0, 1, 0.5) for conds, label in spec]
    return RuleList(rules, default, ["0", "1"], identity=set())


def test_rule_list_reads_as_a_formula():
    negation = _rules([([("word", "visa")], 0), ([("word", "passport")], 1)], default=0)
    assert equivalent(rules_formula(negation), ("and", "passport", ("not", "visa")))["equal"]
    m = match_planted(negation, ("and", "passport", ("not", "visa")))
    assert m["equal"] and m["top_rules"] == 2 and m["whole_list_equal"]
    # the rule without its exception: not the planted negation
    assert not match_planted(_rules([([("word", "passport")], 1)], 0), ("and", "passport", ("not", "visa")))["equal"]
    # a prefix suffices, later rules change the whole list
    extra = _rules([([("any", "hail | sleet")], 1), ([("word", "fog")], 1)], default=0)
    m = match_planted(extra, ("or", "hail", "sleet"))
    assert m["top_rules"] == 1 and not m["whole_list_equal"] and m["counterexample"] == "fog"
    both = _rules([([("word", "referee"), ("word", "whistle")], 1)], default=0)
    assert match_planted(both, ("and", "referee", "whistle"))["top_rules"] == 1
    bigram = _rules([([("ngram", "violin drum")], 1)], default=0)
    assert not match_planted(bigram, ("before", "violin", "drum"))["equal"]
    attends = RuleList([Rule((Condition("attends", "a", 0, 1, 0.1),), 1, 1.0, 1, 0.5)], 0, ["0", "1"])
    assert rules_formula(attends) is None and show(None) == "(no reading over words)"
    assert show(("atleast", 2, "a", "b", "c")) == "at least 2 of (a, b, c)"


def test_binomial_and_control_verdict():
    assert binomial_tail(1, 2, 0.5) == pytest.approx(0.75)
    assert binomial_tail(0, 5, 0.3) == pytest.approx(1.0)
    assert binomial_tail(3, 3, 0.5) == pytest.approx(0.125)
    labels = np.array([0, 1] * 50)
    chance = control_verdict(labels.copy(), labels, n_rules=3)  # rules that match every label
    assert chance["claims_rule"] and chance["above_chance"] and chance["label_accuracy"] == 1.0
    none = control_verdict(np.zeros(100, dtype=int), labels, n_rules=1)
    assert not none["claims_rule"] and not none["above_chance"] and none["chance"] == 0.5
    # rules that follow a model which learned something from the noise: above chance for the model only
    model = np.array([0, 0, 1, 1] * 25)
    follows = control_verdict(model.copy(), labels, n_rules=2, model_pred=model)
    assert follows["model_fidelity"] == 1.0 and follows["model_majority"] == 0.5 and follows["model_above_chance"]
    assert follows["label_accuracy"] == 0.5 and not follows["above_chance"]
    assert not control_verdict(np.zeros(100, dtype=int), labels, 1, model_pred=model)["model_above_chance"]
    # the same rules when the engine says they describe the model only (label check): no claim
    said = control_verdict(model.copy(), labels, n_rules=2, model_pred=model, says_no_rule=True)
    assert not said["claims_rule"] and said["engine_says_no_rule"] and said["model_above_chance"]


def _result(tuning, acc, equal, fid, n_rules, best, rule="a"):
    r = {"tuning": tuning, "rule": rule, "model_accuracy": acc, "fidelity": fid, "n_rules": n_rules,
         "engine_aopc_best": best}
    if rule is None:
        r["control"] = {"claims_rule": n_rules > 1, "above_chance": False}
    else:
        r["formula"] = {"equal": equal}
    return r


def test_summarise_counts_held_out_learned_tasks():
    results = {
        "t": _result(True, 1.0, False, 0.5, 30, False),       # tuning: never counts for the target
        "h1": _result(False, 0.99, True, 0.97, 3, True),
        "h2": _result(False, 0.96, False, 0.96, 10, True),   # learned, not equal: the one allowed
        "h3": _result(False, 0.80, False, 0.60, 30, True),   # not learned: left out
        "c": _result(False, 0.5, False, 0.7, 1, True, rule=None),
    }
    s = summarise(results)
    assert s["held_out"] == ["h1", "h2", "h3"] and s["learned"] == ["h1", "h2"]
    assert s["equal"] == ["h1"] and s["faithful"] == ["h1", "h2"]
    assert s["engine_aopc_best_needed"] == 3 and s["engine_aopc_best"] == ["h1", "h2", "h3", "c"]
    assert s["met"] == {"rules_equal_planted": True, "fidelity_and_size": True, "engine_aopc_best": True,
                        "control_no_rule": True} and s["target_met"]
    results["h2"]["n_rules"] = 11
    results["c"]["control"]["claims_rule"] = True  # rules listed on random labels: a claim, chance or not
    s = summarise(results)
    assert not s["met"]["fidelity_and_size"] and not s["met"]["control_no_rule"] and not s["target_met"]


def test_task_names():
    assert task_names("all") == list(TASKS) and task_names("order, rare") == ["order", "rare"]
    with pytest.raises(ExplainError, match="--planted: unknown task 'nope'"):
        task_names("trigger,nope")


@pytest.mark.slow
def test_language_model_form_recovers_the_trigger():
    """The LM form end to end at a small size: our decoder continues 'TEXT =>' with ' yes' / ' no', and the
    searched rules over its next token read as the planted trigger, with both simulated users reported."""
    import argparse

    import torch

    from steward.bench.explain_planted import run_task

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = argparse.Namespace(train=320, test=40, seed=0, write_csv="", flavor="debug", steps=60, max_rules=30,
                                  ig_steps=4)
        r = run_task(TASKS["trigger"], args, "lm")
    finally:
        torch.set_num_threads(before)
    assert r["form"] == "lm" and r["model_accuracy"] >= 0.95
    assert r["formula"]["equal"] and r["rules"][0].endswith("THEN predict 'yes'")
    assert r["n_rules"] <= 10 and 0 <= r["simulatability"]["top_words"] <= 1
    assert r["simulatability"]["rules"] == r["fidelity"]
