"""Boolean formulas over the words of a text, to state a planted rule and to read a rule list as one.

A formula is a small nested-tuple structure:

- `"w"`: the text contains the word w (lower case); `True` / `False`: constants;
- `("not", f)`, `("and", f, g, ...)`, `("or", f, g, ...)`;
- `("before", "a", "b")`: some a occurs before some b (anywhere later in the text);
- `("seq", "a", "b", ...)`: the words occur next to each other in this order (a rule's n-gram);
- `("atleast", k, f, g, ...)`: at least k of the sub-formulas hold.

Two formulas are compared by their truth tables over texts built from their words (`equivalent`): every
subset of the words, and where order matters (`before`, `seq`) every order of the present words, next to
each other or apart. A rule list (`steward.explain.rules.RuleList`, binary) reads as the formula "the
list predicts class 1" (`rules_formula`) when all its conditions are about words; attention facts have
no reading over words.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

Formula = bool | str | tuple

GAP = "\x00gap"
"""A word no formula names: it separates words that must not be adjacent in the texts `equivalent` builds."""

_ORDERED = ("before", "seq")


def holds(f: Formula, words: Sequence[str]) -> bool:
    """Whether `f` is true of the text whose (lower-case) words are `words`."""
    if isinstance(f, bool):
        return f
    if isinstance(f, str):
        return f in words
    op, *args = f
    if op == "not":
        return not holds(args[0], words)
    if op == "and":
        return all(holds(a, words) for a in args)
    if op == "or":
        return any(holds(a, words) for a in args)
    if op == "atleast":
        return sum(holds(a, words) for a in args[1:]) >= args[0]
    if op == "before":
        a, b = args
        first_a = next((i for i, w in enumerate(words) if w == a), None)
        return first_a is not None and any(w == b for w in words[first_a + 1:])
    if op == "seq":
        n = len(args)
        return any(list(words[i: i + n]) == list(args) for i in range(len(words) - n + 1))
    raise ValueError(f"unknown formula operator {op!r}")


def formula_words(f: Formula) -> tuple[set[str], set[str]]:
    """(every word `f` names, the words whose order matters in it)."""
    if isinstance(f, bool):
        return set(), set()
    if isinstance(f, str):
        return {f}, set()
    op, *args = f
    if op in _ORDERED:
        return set(args), set(args)
    words: set[str] = set()
    ordered: set[str] = set()
    for a in args[1:] if op == "atleast" else args:
        w, o = formula_words(a)
        words |= w
        ordered |= o
    return words, ordered


def _texts(present: Sequence[str], ordered: set[str]) -> list[list[str]]:
    """Texts containing exactly the words `present`: the unordered ones apart at the end; the ordered
    ones in every order, each neighbouring pair adjacent or apart."""
    free = [w for p in present if p not in ordered for w in (GAP, p)]
    moving = [p for p in present if p in ordered]
    out = []
    for perm in itertools.permutations(moving):
        for gaps in itertools.product((False, True), repeat=max(len(perm) - 1, 0)):
            text = list(perm[:1])
            for w, gap in zip(perm[1:], gaps):
                text += [GAP, w] if gap else [w]
            out.append(text + free)
    return out


def equivalent(f: Formula, g: Formula, max_words: int = 14, max_ordered: int = 5, samples: int = 4096,
               seed: int = 0) -> dict[str, Any]:
    """Compare the truth tables of `f` and `g` over texts built from their words (see the module
    docstring). Every subset of the words when there are at most `max_words` of them, else every
    subset of `f`'s words with `samples` random choices of the others (seeded). Returns {"equal",
    "worlds" (texts checked), "exhaustive", "counterexample" (a text on which they differ, or None)}."""
    fw, fo = formula_words(f)
    gw, go = formula_words(g)
    words, ordered = sorted(fw | gw), (fo | go)
    if len(ordered) > max_ordered:
        ordered = set(sorted(ordered)[:max_ordered])  # the rest read as presence only: a sample, not a proof
    if len(words) <= max_words:
        subsets: Any = itertools.chain.from_iterable(itertools.combinations(words, r) for r in range(len(words) + 1))
        exhaustive = len(ordered) == len(fo | go)
    else:
        own, rest = sorted(fw), sorted(gw - fw)
        rng = np.random.default_rng(seed)
        draws = rng.random((samples, len(rest))) < 0.5
        subsets = ((*o, *(w for w, d in zip(rest, draw) if d))
                   for draw in draws for r in range(len(own) + 1) for o in itertools.combinations(own, r))
        exhaustive = False
    worlds = 0
    for present in subsets:
        for text in _texts(present, ordered):
            worlds += 1
            if holds(f, text) != holds(g, text):
                return {"equal": False, "worlds": worlds, "exhaustive": exhaustive,
                        "counterexample": " ".join(w for w in text if w != GAP)}
    return {"equal": True, "worlds": worlds, "exhaustive": exhaustive, "counterexample": None}


def _term(t: str) -> Formula:
    return ("seq", *t.split()) if " " in t else t


def condition_formula(cond: Any) -> Formula | None:
    """A rule condition (`steward.explain.rules.Condition`) over words as a formula (None for an
    attention fact)."""
    kind, text = cond.kind, cond.text
    if kind in ("word", "ngram"):
        return _term(text)
    if kind == "any":
        return ("or", *(_term(t) for t in text.split(" | ")))
    if kind == "absent":
        return ("not", text)
    if kind == "before":
        return ("before", *text.split())
    if kind == "atleast":
        return ("atleast", cond.count, *(_term(t) for t in text.split(" | ")))
    return None


def rules_formula(rules: Any, positive: int = 1, first: int | None = None) -> Formula | None:
    """The rule list (its first `first` rules and its default line) read as "predicts class `positive`":
    if c1 then l1 elif c2 then l2 ... else default. None when a rule uses an attention fact."""
    out: Formula = rules.default == positive
    for r in reversed(rules.rules[:first]):
        conds = [condition_formula(c) for c in r.conditions]
        if any(c is None for c in conds):
            return None
        cond = conds[0] if len(conds) == 1 else ("and", *conds)
        out = ("or", cond, out) if r.label == positive else ("and", ("not", cond), out)
    return out


def show(f: Formula | None) -> str:
    """A formula as readable text."""
    if f is None:
        return "(no reading over words)"
    if isinstance(f, bool):
        return str(f).lower()
    if isinstance(f, str):
        return f
    op, *args = f
    if op == "not":
        return f"not {show(args[0])}"
    if op in ("and", "or"):
        return "(" + f" {op} ".join(show(a) for a in args) + ")"
    if op == "atleast":
        return f"at least {args[0]} of (" + ", ".join(show(a) for a in args[1:]) + ")"
    if op == "before":
        return f"({args[0]} before {args[1]})"
    return "'" + " ".join(args) + "'"
