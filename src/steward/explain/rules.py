"""The symbolic engine: relevance over a dataset becomes a global, ordered rule list that mimics the
model, and per instance the rule that fires, the words that carry relevance, and an Anchors-style
precision and coverage (Ribeiro, Singh and Guestrin 2018) estimated by masking words.

Units are words (whitespace-separated spans of the input, each a run of tokens): token relevance is
summed into its word, so byte-level and subword tokenizers read the same. Features are the words and
word bigrams that carry relevance over the training set, and attention facts ("the prediction position
attends to w above theta in layers l..m", head mean, summed over w's tokens). The learner is a
sequential-covering decision list (CN2 style: Clark and Niblett 1989, Laplace-corrected precision),
our own: a few vectorised count matrices, no extra dependency, and it predicts many classes (next
tokens) where wittgenstein's RIPPER is binary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from steward.explain.capture import Explainable, ExplainError, pad_batch
from steward.explain.relevance import prediction_rows, relevance

# Identity terms of the bias-madlibs template set (Dixon et al. 2018, "Measuring and Mitigating
# Unintended Bias in Text Classification", conversationai/unintended-ml-bias-analysis, adjectives.txt).
IDENTITY_TERMS = (
    "lesbian", "gay", "bisexual", "transgender", "trans", "queer", "lgbt", "lgbtq", "homosexual",
    "straight", "heterosexual", "male", "female", "nonbinary", "african", "black", "white", "european",
    "hispanic", "latino", "latina", "latinx", "mexican", "canadian", "american", "asian", "indian",
    "chinese", "japanese", "christian", "muslim", "jewish", "buddhist", "catholic", "protestant", "sikh",
    "taoist", "old", "older", "young", "younger", "teenage", "millenial", "elderly", "blind", "deaf",
    "paralyzed",
)


def identity_terms() -> set[str]:
    """Words that name identity groups: the list above, plus issue 7's madlibs terms when steward.fairness
    is present (a multi-word term such as 'black person' contributes its first word, 'black': the
    generic head nouns 'person', 'neighbour' name no group)."""
    terms = set(IDENTITY_TERMS)
    try:
        from steward.fairness.data import MADLIBS_TERMS
    except ImportError:
        return terms
    for family in MADLIBS_TERMS.values():
        for names in family.values():
            terms.update(t.split()[0].lower() for t in names)
    return terms


# ---- instances: words over tokens ----------------------------------------------------------------


@dataclass
class Instance:
    words: list[str]
    tokens: list[int]
    word_index: list[int]
    """Per token: the index of its word; -1 for tokens of no word (a fixed prompt suffix)."""


def make_instance(text: str, tokenizer: Any, suffix: str = "") -> Instance:
    """Split `text` on whitespace; each word is encoded with its leading space (how it reads in running
    text); `suffix` (e.g. a prompt's ' =>') is appended as tokens of no word."""
    words = text.split()
    if not words:
        raise ExplainError("--text: the text is empty; give at least one word")
    tokens: list[int] = []
    index: list[int] = []
    for i, w in enumerate(words):
        ids = tokenizer.encode(w if i == 0 else " " + w)
        tokens += ids
        index += [i] * len(ids)
    if suffix:
        ids = tokenizer.encode(suffix)
        tokens += ids
        index += [-1] * len(ids)
    return Instance(words, tokens, index)


def keep_words(inst: Instance, keep: set[int]) -> Instance:
    """The instance with only the words in `keep` (and the no-word tokens): ERASER's removal."""
    words, tokens, index, new = [], [], [], {}
    for t, w in zip(inst.tokens, inst.word_index):
        if w >= 0 and w not in keep:
            continue
        if w >= 0 and w not in new:
            new[w] = len(words)
            words.append(inst.words[w])
        tokens.append(t)
        index.append(new[w] if w >= 0 else -1)
    return Instance(words, tokens, index)


def mask_words(inst: Instance, masked: set[int], mask_id: int) -> Instance:
    """The instance with the tokens of the `masked` words replaced by `mask_id` (Anchors' perturbation)."""
    tokens = [mask_id if w in masked else t for t, w in zip(inst.tokens, inst.word_index)]
    return Instance(list(inst.words), tokens, list(inst.word_index))


def to_words(inst: Instance, token_values: np.ndarray) -> np.ndarray:
    """Sum per-token values [..., T] into per-word values [..., n_words]."""
    idx = np.asarray(inst.word_index)
    out = np.zeros(token_values.shape[:-1] + (len(inst.words),), dtype=np.float64)
    for w in range(len(inst.words)):
        out[..., w] = token_values[..., : len(idx)][..., idx == w].sum(-1)
    return out


@dataclass
class Analysis:
    """Model outputs over instances: predicted class, class probabilities, word relevance per method,
    and attention at the prediction row per layer (head mean) summed into words [L, n_words]."""

    pred: np.ndarray
    prob: np.ndarray
    word_rel: dict[str, list[np.ndarray]]
    word_att: list[np.ndarray]


def analyse(expl: Explainable, instances: Sequence[Instance], methods: Sequence[str] = ("grad_attention",),
            batch_size: int = 64, ig_steps: int = 16) -> Analysis:
    preds, probs, atts = [], [], []
    rels: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for s in range(0, len(instances), batch_size):
        chunk = instances[s: s + batch_size]
        tokens, lengths = pad_batch([i.tokens for i in chunk], expl.pad_id)
        rel, fwd, pred = relevance(expl, tokens, lengths, tuple(methods), ig_steps=ig_steps, seed=s)
        preds.append(pred.cpu().numpy())
        probs.append(fwd.scores.detach().softmax(-1).cpu().numpy())
        rows = torch.stack([prediction_rows(p.mean(1), fwd.positions, fwd.pooling) for p in fwd.probs], 1)
        rows = rows.cpu().numpy()  # [B, L, T]
        for b, inst in enumerate(chunk):
            atts.append(to_words(inst, rows[b]))
            for m in methods:
                rels[m].append(to_words(inst, rel[m][b].numpy()))
    return Analysis(np.concatenate(preds), np.concatenate(probs), rels, atts)


# ---- conditions and features ---------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    kind: str
    """'word': the text contains the word; 'ngram': it contains the word sequence; 'any': it contains
    one of the terms of `text` (separated by ' | ', a lexicon the learner groups); 'absent': it does not
    contain the word; 'before': it contains the first word of `text` and, somewhere after it, the second;
    'atleast': it contains at least `count` of the terms of `text` (' | '); 'attends': the prediction
    position attends to the word above theta in every layer of first..last."""
    text: str
    first: int = -1
    last: int = -1
    theta: float = 0.0
    count: int = 0

    @property
    def key(self) -> str:
        if self.kind == "attends":
            return f"attends:{self.text}@{self.first}-{self.last}>{self.theta:g}"
        if self.kind == "atleast":
            return f"atleast{self.count}:{self.text}"
        return f"{self.kind}:{self.text}"

    @property
    def words(self) -> list[str]:
        return [w for t in self.terms for w in t.split()]

    @property
    def terms(self) -> list[str]:
        if self.kind in ("any", "atleast"):
            return self.text.split(" | ")
        return self.text.split() if self.kind == "before" else [self.text]

    def sentence(self) -> str:
        quoted = ", ".join(f"'{t}'" for t in self.terms)
        if self.kind == "any":
            return "the text contains any of " + quoted
        if self.kind == "atleast":
            return f"the text contains at least {self.count} of " + quoted
        if self.kind == "absent":
            return f"the text does not contain '{self.text}'"
        if self.kind == "before":
            return f"the text contains '{self.terms[0]}' and later '{self.terms[1]}'"
        if self.kind == "attends":
            layers = f"layer {self.first + 1}" if self.first == self.last else f"layers {self.first + 1}-{self.last + 1}"
            return f"the prediction attends to '{self.text}' above {self.theta:g} in {layers}"
        return f"the text contains '{self.text}'"

    def holds(self, inst: Instance, att: np.ndarray | None) -> bool:
        lower = [w.lower() for w in inst.words]
        if self.kind == "absent":
            return self.text not in lower
        if self.kind == "atleast":
            return sum(t in lower for t in self.terms) >= self.count
        return bool(self.where(inst, att))

    def where(self, inst: Instance, att: np.ndarray | None) -> list[int]:
        """Indices of the words that make this condition true (empty: none does; an 'absent' condition
        is made true by no word)."""
        lower = [w.lower() for w in inst.words]
        if self.kind == "absent":
            return []
        if self.kind == "before":
            a, b = self.terms
            first = next((i for i, w in enumerate(lower) if w == a), None)
            later = [] if first is None else [i for i in range(first + 1, len(lower)) if lower[i] == b]
            return [first, *later] if later else []
        if self.kind == "atleast" and not self.holds(inst, att):
            return []
        found: list[int] = []
        for term in self.terms:
            words = term.split()
            n = len(words)
            starts = [i for i in range(len(lower) - n + 1) if lower[i: i + n] == words]
            if self.kind == "attends" and att is not None:
                starts = [i for i in starts if np.all(att[self.first: self.last + 1, i] >= self.theta)]
            found += [i + j for i in starts for j in range(n)]
        return sorted(set(found))


def _ngrams(inst: Instance, n: int) -> set[str]:
    lower = [w.lower() for w in inst.words]
    return {" ".join(lower[i: i + n]) for i in range(len(lower) - n + 1)}


@dataclass
class FeatureSpace:
    conditions: list[Condition]

    @classmethod
    def build(cls, instances: Sequence[Instance], analysis: Analysis, method: str = "grad_attention",
              max_terms: int = 60, theta: float = 0.1, min_count: int = 3) -> FeatureSpace:
        """Words and bigrams ranked by the relevance share they carry over the data (a term's words'
        share of the instance's positive relevance, summed over instances); the top `max_terms` become
        'contains' features, and attention facts over every layer range for the top words."""
        mass: dict[str, float] = {}
        count: dict[str, int] = {}
        for inst, rel in zip(instances, analysis.word_rel[method]):
            pos = np.clip(rel, 0, None)
            share = pos / pos.sum() if pos.sum() > 0 else np.zeros_like(pos)
            lower = [w.lower() for w in inst.words]
            seen: dict[str, float] = {}
            for i, w in enumerate(lower):
                seen[w] = max(seen.get(w, 0.0), share[i])
                if i + 1 < len(lower):
                    g = f"{w} {lower[i + 1]}"
                    seen[g] = max(seen.get(g, 0.0), share[i] + share[i + 1])
            for term, s in seen.items():
                mass[term] = mass.get(term, 0.0) + s
                count[term] = count.get(term, 0) + 1
        terms = sorted((t for t in mass if count[t] >= min_count), key=lambda t: -mass[t])[:max_terms]
        conds = [Condition("ngram" if " " in t else "word", t) for t in terms]
        L = analysis.word_att[0].shape[0] if analysis.word_att else 0
        for t in [t for t in terms if " " not in t][: max_terms // 3]:
            conds += [Condition("attends", t, a, b, theta) for a in range(L) for b in range(a, L)]
        return cls(conds)

    def matrix(self, instances: Sequence[Instance], analysis: Analysis) -> np.ndarray:
        """Boolean [N, F]: which conditions hold on which instance."""
        X = np.zeros((len(instances), len(self.conditions)), dtype=bool)
        for n, (inst, att) in enumerate(zip(instances, analysis.word_att)):
            grams = {1: _ngrams(inst, 1), 2: _ngrams(inst, 2)}
            for j, c in enumerate(self.conditions):
                present = any(t in grams.get(len(t.split()), ()) for t in c.terms)
                X[n, j] = present and (c.kind != "attends" or c.holds(inst, att))
        return X


# ---- the rule list -------------------------------------------------------------------------------


@dataclass
class Rule:
    conditions: tuple[Condition, ...]
    label: int
    precision: float
    """Share of the training instances it covered (in list order) on which the model predicts `label`."""
    support: int
    coverage: float
    """Share of all training instances on which its conditions hold (wherever it sits in the list)."""


@dataclass
class RuleList:
    rules: list[Rule]
    default: int
    class_names: list[str]
    identity: set[str] = field(default_factory=identity_terms)
    fidelity: float | None = None
    """Share of held-out texts on which the list predicts what the model does (set by `--global`)."""
    fidelity_texts: int = 0
    """How many held-out texts `fidelity` was measured on."""
    search: dict[str, Any] | None = None
    """How a searched list was found (`steward.explain.search`): its test and counts; None for the
    covering learner's lists."""

    @property
    def no_rule_above_chance(self) -> bool:
        """A searched list in which no rule passed the significance test."""
        return self.search is not None and not self.rules

    def no_rule_line(self) -> str:
        """What the engine says when no rule beats chance."""
        s = self.search or {}
        words = len(s.get("candidate_words", []))
        return (f"no rule above chance: none of the {s.get('scored', 0)} conjunctions"
                f"{f' over {words} candidate words' if words else ''} passed the one-sided binomial test at "
                f"alpha {s.get('alpha', 0.05):g} (Bonferroni) and its replication on held-back fitting texts; "
                "word rules do not explain the model's predictions here")

    @property
    def describes_model_only(self) -> bool:
        """Listed rules that the data's labels, checked on held-back texts, do not follow above chance
        (`steward.explain.search.label_check`): true of the model, not of the task."""
        check = (self.search or {}).get("label_check")
        return bool(self.rules and check and not check["above_chance"])

    def labels_line(self) -> str:
        """What the engine says first when the model's rules do not predict the labels."""
        c = (self.search or {})["label_check"]
        return ("no rule above chance on the labels: the model's rules (below) describe the model only; they "
                f"predict the labels no better than chance (p = {c['p_value']:.2g}, the best of {len(c['rules'])} "
                f"rule(s), one-sided binomial with Bonferroni, on {c['texts']} held-out labelled texts)")

    def _holds(self, rule: Rule, inst: Instance, att: np.ndarray) -> bool:
        return all(c.holds(inst, att) for c in rule.conditions)

    def fire(self, inst: Instance, att: np.ndarray) -> int:
        """Index of the first rule whose conditions hold (-1: the default)."""
        for i, r in enumerate(self.rules):
            if self._holds(r, inst, att):
                return i
        return -1

    def predict(self, instances: Sequence[Instance], analysis: Analysis) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, index of the firing rule or -1) per instance."""
        fired = np.array([self.fire(i, a) for i, a in zip(instances, analysis.word_att)], dtype=int)
        labels = np.array([self.rules[f].label if f >= 0 else self.default for f in fired], dtype=int)
        return labels, fired

    def holding(self, inst: Instance, att: np.ndarray) -> list[int]:
        return [i for i, r in enumerate(self.rules) if self._holds(r, inst, att)]

    def identity_words(self, rule: Rule) -> list[str]:
        return sorted({w for c in rule.conditions for w in c.words if w in self.identity})

    def sentence(self, i: int) -> str:
        if i < 0:
            return f"OTHERWISE predict '{self.class_names[self.default]}'"
        r = self.rules[i]
        return "IF " + " AND ".join(c.sentence() for c in r.conditions) + f" THEN predict '{self.class_names[r.label]}'"

    def text(self) -> str:
        if self.no_rule_above_chance:
            return f"{self.no_rule_line()}\n    {self.sentence(-1)}"
        return (f"{self.labels_line()}\n" if self.describes_model_only else "") + "\n".join(f"{i + 1:>2}. {self.sentence(i)}" for i in range(len(self.rules))) + \
            f"\n    {self.sentence(-1)}"

    def flagged(self) -> list[dict[str, Any]]:
        """Rules whose conditions use identity terms: possible spurious correlations."""
        return [{"rule": i + 1, "sentence": self.sentence(i), "identity_terms": self.identity_words(r)}
                for i, r in enumerate(self.rules) if self.identity_words(r)]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "steward-rules/1",
            "class_names": self.class_names,
            "default": self.default,
            "rules": [{"if": [asdict(c) for c in r.conditions], "then": r.label,
                       "then_name": self.class_names[r.label], "sentence": self.sentence(i),
                       "precision": r.precision, "support": r.support, "coverage": r.coverage,
                       "identity_terms": self.identity_words(r)} for i, r in enumerate(self.rules)],
            "otherwise": self.sentence(-1),
            "fidelity": self.fidelity,
            "fidelity_texts": self.fidelity_texts,
            "search": self.search,
            "no_rule_above_chance": self.no_rule_above_chance,
            "rules_describe_model_only": self.describes_model_only,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RuleList:
        if obj.get("format") != "steward-rules/1":
            raise ExplainError(f"rules file: format {obj.get('format')!r} is not steward-rules/1; rerun --global")
        rules = [Rule(tuple(Condition(**c) for c in r["if"]), r["then"], r["precision"], r["support"],
                      r["coverage"]) for r in obj["rules"]]
        return cls(rules, obj["default"], obj["class_names"], fidelity=obj.get("fidelity"),
                   fidelity_texts=int(obj.get("fidelity_texts", 0)), search=obj.get("search"))


def learn_rules(X: np.ndarray, y: np.ndarray, conditions: Sequence[Condition], class_names: Sequence[str],
                max_rules: int = 30, max_conditions: int = 2, min_support: int = 3,
                lexicon_precision: float = 0.9) -> RuleList:
    """Sequential covering: repeatedly take the rule (a conjunction of up to `max_conditions`, grown
    greedily) with the best Laplace precision (n_k + 1) / (n + C) on the instances no earlier rule
    covers, while it beats predicting the majority class there; the last line is that majority class.
    Besides the given conditions, each round offers per class a lexicon condition: 'contains any of'
    the words and n-grams that predict that class with precision >= `lexicon_precision` (and support
    >= `min_support`) on the instances still uncovered, so that one readable rule can stand for a word
    class (e.g. all insults) instead of one rule per word. `max_rules` counts the default line."""
    N, _ = X.shape
    C = len(class_names)
    Y = np.eye(C, dtype=np.int64)[y]
    lexical = np.array([c.kind in ("word", "ngram") for c in conditions], dtype=bool)
    remaining = np.ones(N, dtype=bool)
    rules: list[Rule] = []
    while len(rules) < max_rules - 1 and remaining.any():
        counts = X[remaining].T.astype(np.int64) @ Y[remaining]
        n = counts.sum(1)
        conds, cols = list(conditions), [X]
        for k in range(C):
            prec = np.where(n > 0, counts[:, k] / np.maximum(n, 1), 0)
            members = np.flatnonzero(lexical & (counts[:, k] >= min_support) & (prec >= lexicon_precision))
            # an n-gram that contains a member word adds nothing to 'any of'
            words = {conditions[j].text for j in members if conditions[j].kind == "word"}
            members = [j for j in members if conditions[j].kind == "word" or not words & set(conditions[j].words)]
            if len(members) >= 2:
                members = np.array(members)[np.argsort(-prec[members], kind="stable")]
                conds.append(Condition("any", " | ".join(conditions[j].text for j in members)))
                cols.append(X[:, members].any(1, keepdims=True))
        Xe = np.concatenate(cols, 1)
        base = np.bincount(y[remaining], minlength=C)
        best = ((base.max() + 1) / (remaining.sum() + C), -1)
        cover = remaining.copy()
        chosen: list[int] = []
        for _ in range(max_conditions):
            cnt = Xe[cover].T.astype(np.int64) @ Y[cover]  # [F, C]
            m = cnt.sum(1)
            lap = (cnt.max(1) + 1) / (m + C)
            lap[(cnt.max(1) < min_support) | (m == cover.sum())] = -1  # too rare, or adds nothing
            lap[chosen] = -1
            j = int(lap.argmax())
            if lap[j] <= best[0] + 1e-9:
                break
            chosen.append(j)
            cover &= Xe[:, j]
            best = (lap[j], int(cnt[j].argmax()))
        if not chosen:
            break
        label = best[1]
        hit = int((y[cover] == label).sum())
        rules.append(Rule(tuple(conds[j] for j in chosen), label, hit / int(cover.sum()), int(cover.sum()),
                          float(Xe[:, chosen].all(1).mean())))
        remaining &= ~cover
    default = int(np.bincount(y[remaining] if remaining.any() else y, minlength=C).argmax())
    return RuleList(rules, default, list(class_names))


# ---- per-instance explanation --------------------------------------------------------------------


def rule_relevance(rules: RuleList, inst: Instance, att: np.ndarray, base: np.ndarray,
                   pred: int | None = None) -> np.ndarray:
    """The engine's word relevance: the words that make the firing rule's conditions true come first
    (above every other word), the rest keep the base method's order. A rule that concludes another class
    than the model's prediction `pred` does not explain it, and promotes nothing."""
    i = rules.fire(inst, att)
    out = base.astype(np.float64).copy()
    if i >= 0 and (pred is None or rules.rules[i].label == pred):
        top = float(np.abs(base).max()) + 1.0 if len(base) else 1.0
        for c in rules.rules[i].conditions:
            for w in c.where(inst, att):
                out[w] = base[w] + top
    return out


def anchor_precision(expl: Explainable, inst: Instance, rules: RuleList, rule: int, mask_id: int,
                     n_samples: int = 64, seed: int = 0) -> tuple[float, int]:
    """Anchors' precision of a rule on one instance: mask each word outside the rule's conditions with
    probability 1/2, keep the samples where the conditions still hold, and count how often the model
    still predicts the rule's label. Returns (precision, samples used)."""
    if rule < 0:
        return float("nan"), 0
    rng = np.random.default_rng(seed)
    r = rules.rules[rule]
    keep = {w for c in r.conditions for w in c.where(inst, att=None)}  # att None: the words, not the attention
    free = [w for w in range(len(inst.words)) if w not in keep]
    samples = [mask_words(inst, {w for w in free if rng.random() < 0.5}, mask_id) for _ in range(n_samples)]
    if any(c.kind == "attends" for c in r.conditions):
        an = analyse(expl, samples, methods=(), batch_size=n_samples)
        pred, ok = an.pred, [rules._holds(r, s, a) for s, a in zip(samples, an.word_att)]
    else:  # word conditions need no attention: the fused path is enough
        with torch.no_grad():
            pred = expl.scores(*pad_batch([s.tokens for s in samples], expl.pad_id)).argmax(-1).numpy()
        ok = [all(c.holds(s, None) for c in r.conditions) for s in samples]
    used = int(sum(ok))
    if not used:
        return float("nan"), 0
    return float((pred[np.array(ok)] == r.label).mean()), used


def agreeing_rules(rules: RuleList, inst: Instance, att: np.ndarray, pred: int) -> tuple[list[int], list[int]]:
    """The rules that explain the model's prediction `pred` on `inst`: those that hold and conclude `pred`,
    in list order (the default line, -1, when no rule holds and it concludes `pred`); and the rules that
    hold but conclude another class (they contradict the model here, so they explain nothing)."""
    holding = rules.holding(inst, att)
    agree = [i for i in holding if rules.rules[i].label == pred]
    if not holding and rules.default == pred and not rules.no_rule_above_chance:
        agree = [-1]
    return agree, [i for i in holding if rules.rules[i].label != pred]


def _rule_facts(expl: Explainable, inst: Instance, rules: RuleList, i: int, mask_id: int,
                n_samples: int) -> dict[str, Any]:
    """One rule as `explain_instance` shows it: its sentence, Anchors precision and coverage."""
    prec, used = anchor_precision(expl, inst, rules, i, mask_id, n_samples)
    return {
        "index": i + 1 if i >= 0 else None,
        "sentence": rules.sentence(i),
        "agrees_with_model": True,
        "anchor_precision": None if math.isnan(prec) else prec,
        "anchor_samples": used,
        "coverage": rules.rules[i].coverage if i >= 0 else None,
        "identity_terms": rules.identity_words(rules.rules[i]) if i >= 0 else [],
    }


def unexplained(rules: RuleList, pred: int, contradicting: int) -> str:
    """Why no rule is shown for the prediction `pred`, with the rule list's measured fidelity."""
    if rules.no_rule_above_chance:
        return f"no rule explains this prediction ({rules.no_rule_line()})"
    name = rules.class_names[pred]
    why = (f"{contradicting} rule(s) hold here, none predicts {name!r}" if contradicting else
           f"no rule holds here and the default line predicts {rules.class_names[rules.default]!r}")
    fid = ("its fidelity is unknown: refit with --global" if rules.fidelity is None else
           f"the rule list reproduces the model on {rules.fidelity:.3f} of {rules.fidelity_texts} held-out texts")
    return f"no rule explains this prediction ({why}; {fid})"


def explain_instance(expl: Explainable, inst: Instance, rules: RuleList | None, method: str = "grad_attention",
                     mask_id: int | None = None, n_samples: int = 64, tokenizer: Any = None) -> dict[str, Any]:
    """Prediction, each word's relevance (share of the positive relevance) and, with `rules`, the first
    rule that holds and agrees with the model's prediction (sentence, Anchors precision, coverage), the
    other agreeing rules that hold (with theirs) and how many holding rules contradict the model: a rule
    that concludes another class than the model's is never shown. When no rule agrees, "rule" is None
    and "no_rule" says why."""
    an = analyse(expl, [inst], methods=(method,), batch_size=1)
    pred, att, rel = int(an.pred[0]), an.word_att[0], an.word_rel[method][0]
    out: dict[str, Any] = {
        "prediction": rules.class_names[pred] if rules is not None else expl.class_name(pred, tokenizer),
        "class": pred,
        "probability": float(an.prob[0, pred]),
        "method": method,
    }
    pos = np.clip(rel, 0, None)
    share = pos / pos.sum() if pos.sum() > 0 else pos
    out["words"] = [{"word": w, "relevance": float(r), "share": float(s)}
                    for w, r, s in zip(inst.words, rel, share)]
    if rules is not None:
        agree, contra = agreeing_rules(rules, inst, att, pred)
        mask = expl.pad_id if mask_id is None else mask_id
        shown = [_rule_facts(expl, inst, rules, i, mask, n_samples) for i in agree]
        out["rule"] = shown[0] if shown else None
        out["also_hold"] = shown[1:]
        out["contradicting"] = len(contra)
        out["rules_fidelity"] = rules.fidelity
        if rules.describes_model_only:
            out["labels_note"] = rules.labels_line()
        if not shown:
            out["no_rule"] = unexplained(rules, pred, len(contra))
    return out


def fit_rules(instances: Sequence[Instance], analysis: Analysis, class_names: Sequence[str],
              method: str = "grad_attention", max_rules: int = 30, max_conditions: int = 2,
              theta: float = 0.1, max_terms: int = 200) -> tuple[FeatureSpace, RuleList]:
    """Features from `method`'s relevance over `instances`, then the rule list that mimics the model's
    predictions on them (`analysis.pred`)."""
    space = FeatureSpace.build(instances, analysis, method, max_terms=max_terms, theta=theta)
    X = space.matrix(instances, analysis)
    return space, learn_rules(X, analysis.pred, space.conditions, class_names, max_rules, max_conditions)
