"""Forward simulatability (Hase and Bansal 2020, "Evaluating Explainable AI: Which Algorithmic
Explanations Help Users Predict Model Behavior?"), with simulated users instead of people (issue 18,
item 7, a measurable stand-in for a user study): a user sees explanations of the model on the fitting
texts and then predicts the model's output on new texts. Two users:

- the rule user sees only the rule list and applies it to each new text (its accuracy is the list's
  fidelity on those texts);
- the word user sees only each fitting text's top-k relevance words with the model's prediction,
  learns from them how often each word comes with each class (add-one smoothed), and predicts a new
  text from its own top-k words: the class with the largest prior log-probability plus the sum of its
  words' log-probabilities (naive Bayes over the shown words; a word never shown counts nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from steward.explain.rules import Analysis, Instance, RuleList


def top_k_words(inst: Instance, rel: np.ndarray, k: int) -> list[str]:
    """The (lower-case) words of the k highest relevance scores (ties: the earlier word)."""
    order = np.argsort(-np.asarray(rel), kind="stable")[:k]
    return [inst.words[i].lower() for i in order]


class WordUser:
    """The simulated user who learns word -> model output from the fitting texts' top-k words."""

    def __init__(self, n_classes: int, k: int):
        self.k, self.C = k, n_classes
        self.counts: dict[str, np.ndarray] = {}
        self.prior = np.ones(n_classes)

    def learn(self, instances: Sequence[Instance], rels: Sequence[np.ndarray], preds: np.ndarray) -> WordUser:
        for inst, rel, p in zip(instances, rels, preds):
            self.prior[int(p)] += 1
            for w in set(top_k_words(inst, rel, self.k)):
                self.counts.setdefault(w, np.zeros(self.C))[int(p)] += 1
        return self

    def predict(self, instances: Sequence[Instance], rels: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros(len(instances), dtype=int)
        log_prior = np.log(self.prior / self.prior.sum())
        for n, (inst, rel) in enumerate(zip(instances, rels)):
            score = log_prior.copy()
            for w in set(top_k_words(inst, rel, self.k)):
                if w in self.counts:
                    c = self.counts[w] + 1
                    score += np.log(c / c.sum())
            out[n] = int(score.argmax())
        return out


def simulatability(rules: RuleList, fit: tuple[Sequence[Instance], Analysis], new: tuple[Sequence[Instance], Analysis],
                   method: str, k: int = 3) -> dict[str, Any]:
    """Both users' accuracy at predicting the model's output on the `new` texts; the word user learns
    from the `fit` texts' top-k words by `method`'s relevance (and sees the new texts' own top-k)."""
    (fit_inst, fit_an), (new_inst, new_an) = fit, new
    rule_pred, _ = rules.predict(new_inst, new_an)
    C = max(len(rules.class_names), int(fit_an.pred.max()) + 1)
    user = WordUser(C, k).learn(fit_inst, fit_an.word_rel[method], fit_an.pred)
    word_pred = user.predict(new_inst, new_an.word_rel[method])
    return {"rules": float((rule_pred == new_an.pred).mean()), "top_words": float((word_pred == new_an.pred).mean()),
            "k": k, "relevance": method, "texts": len(new_inst)}
