"""Rule search over words (issue 18, item 5): a beam over conjunctions of word conditions, scored by
fidelity to the model's predictions, where a rule is listed only when it beats chance.

Candidate words are the ones that carry the most relevance over the fitting texts (the relevance
method chosen per model, `steward.explain.faithfulness.choose_relevance`). Literals over them: the text
contains w; it does not contain w; a before b (anywhere later); at least 2 of three words. A rule is a
conjunction of up to `max_conditions` literals and concludes the class most of the texts it covers get
from the model. The list is built by sequential covering: each round a beam search (width
`beam_width`) over conjunctions finds the rule that most raises the fidelity of the two-line list
"rule, then the majority of the rest" on the texts no earlier rule covers.

Beating chance: the fitting texts are split in two (every third text is a check text). A rule found on
the search part must (a) have a precision on the texts it covers there whose one-sided binomial tail
against its class's rate among the texts it reaches (the ones no earlier rule covers) is below
`alpha` / (the number of conjunctions the beam scored for it): Bonferroni over the search; and (b)
replicate on the check part, which the search never saw: the same test there below `alpha` /
(`max_rules` - 1). The list stops at the first best rule that fails: no candidate adds significant
fidelity. A list with no rule says so (`RuleList.no_rule_above_chance`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.explain.rules import Analysis, Condition, Instance, Rule, RuleList


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact for any n)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq, lgn = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    terms = [lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq for i in range(k, n + 1)]
    top = max(terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms)))


def _word_texts(instances: Sequence[Instance]) -> dict[str, list[int]]:
    """Each (lower-case) word's texts, by index."""
    texts: dict[str, list[int]] = {}
    for i, inst in enumerate(instances):
        for w in {w.lower() for w in inst.words}:
            texts.setdefault(w, []).append(i)
    return texts


def relevance_ranking(instances: Sequence[Instance], word_rel: Sequence[np.ndarray], usable: set[str]) -> list[str]:
    """The `usable` words by their summed share of their texts' positive relevance, largest first."""
    mass: dict[str, float] = {}
    for inst, rel in zip(instances, word_rel):
        pos = np.clip(rel, 0, None)
        share = pos / pos.sum() if pos.sum() > 0 else np.zeros_like(pos)
        seen: dict[str, float] = {}
        for w, s in zip(inst.words, share):
            seen[w.lower()] = max(seen.get(w.lower(), 0.0), float(s))
        for w, s in seen.items():
            mass[w] = mass.get(w, 0.0) + s
    return sorted((w for w in mass if w in usable), key=lambda w: (-mass[w], w))


def effect_ranking(word_texts: dict[str, list[int]], pred: np.ndarray, usable: set[str]) -> list[str]:
    """The `usable` words by how far the model's predictions on the texts that contain them depart from
    its predictions overall: the smallest one-sided binomial tail of the texts' most frequent predicted
    class against that class's rate over all texts (the search's own test, on one literal). A word the
    model follows ranks high however rarely it occurs, where its summed relevance stays small."""
    rate = np.bincount(pred).astype(float) / len(pred)
    p: dict[str, float] = {}
    for w in usable:
        hits = np.bincount(pred[word_texts[w]], minlength=len(rate))
        c = int(hits.argmax())
        p[w] = binomial_tail(int(hits[c]), int(hits.sum()), float(rate[c]))
    return sorted(usable, key=lambda w: (p[w], w))


def candidate_words(instances: Sequence[Instance], word_rel: Sequence[np.ndarray], n_words: int,
                    min_support: int, pred: np.ndarray | None = None, n_effect: int = 0) -> list[str]:
    """Among the words (lower case) that occur in at least `min_support` texts and are absent from as
    many: the `n_words` with the largest summed relevance share (`relevance_ranking`) and, with the
    model's predictions `pred`, the `n_effect` whose presence most changes them (`effect_ranking`); the
    union, ordered by the better of a word's two ranks (ties: the relevance rank first)."""
    word_texts = _word_texts(instances)
    n = len(instances)
    usable = {w for w, t in word_texts.items() if min_support <= len(t) <= n - min_support}
    by_rel = relevance_ranking(instances, word_rel, usable)[:n_words]
    by_effect = effect_ranking(word_texts, np.asarray(pred), usable)[:n_effect] if pred is not None and n_effect else []
    rank = {w: (i, 0) for i, w in enumerate(by_rel)}
    for i, w in enumerate(by_effect):
        rank[w] = min(rank.get(w, (i, 1)), (i, 1))
    return sorted(rank, key=lambda w: rank[w])


def literal_space(instances: Sequence[Instance], words: Sequence[str], n_ordered: int = 6,
                  n_counted: int = 6) -> tuple[list[Condition], np.ndarray]:
    """The literals over `words` (in their order): contains w and does not contain w for each; a before b
    for each ordered pair of the first `n_ordered`; at least 2 of each triple of the first `n_counted`.
    Returns them and the boolean matrix [texts, literals] of where each holds."""
    conds: list[Condition] = []
    for w in words:
        conds += [Condition("word", w), Condition("absent", w)]
    conds += [Condition("before", f"{a} {b}") for a, b in itertools.permutations(words[:n_ordered], 2)]
    conds += [Condition("atleast", " | ".join(t), count=2) for t in itertools.combinations(words[:n_counted], 3)]
    X = np.array([[c.holds(inst, None) for c in conds] for inst in instances], dtype=bool).reshape(len(instances), -1)
    return conds, X


@dataclass
class Candidate:
    literals: tuple[int, ...]
    cover: np.ndarray
    """Boolean over all texts: where the conjunction holds."""
    label: int
    gain: int
    counts: np.ndarray


def _extend(X: np.ndarray, Y: np.ndarray, reach: np.ndarray, parent: Candidate | None,
            min_support: int) -> list[Candidate]:
    """Every conjunction of `parent` and one more literal, scored on the texts in `reach`: gain = the
    fidelity (hits) of "this rule, then the majority of the rest" minus that of the majority alone."""
    base = reach if parent is None else reach & parent.cover
    counts = X[base].T.astype(np.int64) @ Y[base]  # [F, C]
    total = Y[reach].sum(0)
    n = counts.sum(1)
    label = counts.argmax(1)
    hits = counts.max(1) + (total[None, :] - counts).max(1)
    gain = hits - total.max()
    used = () if parent is None else parent.literals
    ok = (n >= min_support) & (n < base.sum()) & (gain > 0)
    ok[list(used)] = False
    return [Candidate(tuple(sorted((*used, j))), X[:, j] if parent is None else parent.cover & X[:, j],
                      int(label[j]), int(gain[j]), counts[j]) for j in np.flatnonzero(ok)]


COST = {"word": 1, "absent": 1, "before": 2, "atleast": 3}
"""How complex a literal reads (a word counted once per mention): ties in gain go to the simpler rule."""


def beam_search(X: np.ndarray, Y: np.ndarray, reach: np.ndarray, max_conditions: int, beam_width: int,
                min_support: int, cost: Sequence[int] | None = None) -> tuple[list[Candidate], int]:
    """All distinct conjunctions the beam scored on `reach`, best gain first (ties: the smaller summed
    `cost` of their literals, then the earlier found), and how many it scored (the Bonferroni count)."""
    costs = np.ones(X.shape[1], dtype=int) if cost is None else np.asarray(cost)

    def order(c: Candidate) -> tuple[int, int]:
        return -c.gain, int(costs[list(c.literals)].sum())

    beam: list[Candidate | None] = [None]
    seen: dict[tuple[int, ...], Candidate] = {}
    for _ in range(max_conditions):
        level: list[Candidate] = []
        for parent in beam:
            for c in _extend(X, Y, reach, parent, min_support):
                if c.literals not in seen:
                    seen[c.literals] = c
                    level.append(c)
        if not level:
            break
        beam = sorted(level, key=order)[:beam_width]
    found = sorted(seen.values(), key=order)
    return found, len(seen)


def _p_value(Y: np.ndarray, reach: np.ndarray, cover: np.ndarray, label: int) -> float:
    """One-sided binomial: the rule's hits on the texts of `reach` it covers, against its class's rate
    among all texts of `reach`."""
    covered = reach & cover
    n = int(covered.sum())
    if n == 0:
        return 1.0
    return binomial_tail(int(Y[covered, label].sum()), n, float(Y[reach, label].mean()))


def search_rules(X: np.ndarray, y: np.ndarray, conditions: Sequence[Condition], class_names: Sequence[str],
                 max_rules: int = 10, max_conditions: int = 3, beam_width: int = 5, min_support: int = 5,
                 alpha: float = 0.05, tries: int = 20) -> RuleList:
    """The rule list over the literal matrix `X` [texts, literals] that mimics the model's predictions
    `y` (see the module docstring); `max_rules` counts the default line. Each round the beam's best
    `tries` conjunctions are tested in order and the first that passes both tests is listed."""
    N = len(y)
    present, yc = np.unique(y, return_inverse=True)  # only the classes the model predicts here
    Y = np.eye(len(present), dtype=np.int64)[yc]
    check = np.arange(N) % 3 == 2
    remaining = np.ones(N, dtype=bool)
    rules: list[Rule] = []
    scored, tested = 0, 0
    while len(rules) < max_rules - 1 and remaining.any():
        found, m = beam_search(X, Y, remaining & ~check, max_conditions, beam_width, min_support,
                               [COST.get(c.kind, 1) for c in conditions])
        scored += m
        chosen = None
        for c in found[:tries]:
            tested += 1
            if (_p_value(Y, remaining & ~check, c.cover, c.label) * m < alpha and
                    _p_value(Y, remaining & check, c.cover, c.label) * (max_rules - 1) < alpha):
                chosen = c
                break
        if chosen is None:
            break
        covered = remaining & chosen.cover
        rules.append(Rule(tuple(conditions[j] for j in chosen.literals), int(present[chosen.label]),
                          float(Y[covered, chosen.label].mean()), int(covered.sum()), float(chosen.cover.mean())))
        remaining &= ~chosen.cover
    rest = y[remaining] if remaining.any() else y
    default = int(np.bincount(rest, minlength=len(class_names)).argmax())
    search = {"kind": "beam", "alpha": alpha, "scored": scored, "tested": tested, "beam_width": beam_width,
              "max_conditions": max_conditions, "min_support": min_support, "fitted_on": N,
              "check_texts": int(check.sum())}
    return RuleList(rules, default, list(class_names), search=search)


def label_check(rules: RuleList, fired: np.ndarray, labels: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """Whether the listed rules predict the data's labels, not only the model, on held-back texts whose
    labels are known: `fired` is the firing rule per text (-1: the default line), `labels` the class
    per text. Per rule: its label hits among the texts on which it fires, one-sided binomial against
    its class's label rate among the texts it reaches (no earlier rule fires); Bonferroni over the
    rules. `above_chance`: some rule passes at `alpha`. A model that learned word rules from noise
    follows rules that the labels do not (the planted control); the list then describes the model only
    (`RuleList.describes_model_only`). Recorded in `rules.search["label_check"]` and returned."""
    fired, labels = np.asarray(fired), np.asarray(labels)
    per = []
    for i, r in enumerate(rules.rules):
        reach = (fired == -1) | (fired >= i)
        covered = fired == i
        n, hits = int(covered.sum()), int((labels[covered] == r.label).sum())
        rate = float((labels[reach] == r.label).mean()) if reach.any() else 0.0
        per.append({"rule": i + 1, "texts": n, "label_hits": hits, "label_rate": rate,
                    "p_value": binomial_tail(hits, n, rate) if n else 1.0})
    p = min([min(1.0, q["p_value"] * len(per)) for q in per], default=1.0)
    check = {"texts": len(labels), "alpha": alpha, "rules": per, "p_value": p, "above_chance": p < alpha}
    if rules.search is not None:
        rules.search["label_check"] = check
    return check


@dataclass(frozen=True)
class SearchSettings:
    """The beam search's settings (tuned on the planted test bed's tuning tasks only)."""

    n_words: int = 12
    n_effect: int = 4
    n_ordered: int = 6
    n_counted: int = 6
    max_conditions: int = 3
    beam_width: int = 5
    min_support: int = 5
    alpha: float = 0.05


def fit_beam_rules(instances: Sequence[Instance], analysis: Analysis, class_names: Sequence[str], method: str,
                   max_rules: int = 10, settings: SearchSettings = SearchSettings()) -> RuleList:
    """Candidate words from `method`'s relevance over `instances`, then the searched rule list that
    mimics the model's predictions on them (`analysis.pred`)."""
    s = settings
    words = candidate_words(instances, analysis.word_rel[method], s.n_words, s.min_support, analysis.pred, s.n_effect)
    conds, X = literal_space(instances, words, s.n_ordered, s.n_counted)
    rules = search_rules(X, analysis.pred, conds, class_names, max_rules, s.max_conditions, s.beam_width,
                         s.min_support, s.alpha)
    assert rules.search is not None
    rules.search.update(relevance=method, candidate_words=words)
    return rules



def fit_searched(expl: Any, instances: Sequence[Instance], analysis: Analysis, class_names: Sequence[str],
                 max_rules: int = 10, settings: SearchSettings = SearchSettings(),
                 choice_texts: int = 300) -> tuple[RuleList, str, dict[str, float]]:
    """What `steward explain --global` does with the beam: the relevance method chosen for this model by
    comprehensiveness AOPC on (the first `choice_texts` of) the fitting texts among the methods in
    `analysis` that are `RELEVANCE_CHOICES`, the searched rule list over its candidate words, and the
    engine's base ranking chosen the same way. `analysis` is over `instances`, the fitting texts (never
    held-out ones). Returns (rules, the engine's base, each candidate's AOPC); rules.search records the
    relevance chosen."""
    from steward.explain.faithfulness import RELEVANCE_CHOICES, choose_engine_base, choose_relevance

    k = min(choice_texts, len(instances))
    head = Analysis(analysis.pred[:k], analysis.prob[:k], {m: r[:k] for m, r in analysis.word_rel.items()},
                    analysis.word_att[:k])
    methods = [m for m in RELEVANCE_CHOICES if m in analysis.word_rel]
    method, aopc = choose_relevance(expl, instances[:k], head, methods)
    rules = fit_beam_rules(instances, analysis, class_names, method, max_rules, settings)
    base = choose_engine_base(expl, instances[:k], head, rules, methods)
    assert rules.search is not None
    rules.search.update(relevance_aopc=aopc, engine_base=base)
    return rules, base, aopc
