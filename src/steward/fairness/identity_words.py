"""Identity-word removal (fairness.identity_words remove): the words that name an identity, learned from the
training split's own identity columns, are taken out of every text before it is tokenized.

Why. Whatever way a training set's bias entered (selection, a group's labels flipped, identity terms next
to abusive words, a rare group), the classifier's shortcut runs through the words that tell it which
group a row is about. The model cannot learn or apply a shortcut on words it never sees, so removing them
takes the shortcut away at its root; the adversary then only has to deal with what other words still
carry. The cost is whatever real evidence of toxicity those words held, which on a set whose label does
not depend on the identity is none.

Which words. A word (a run of letters or digits, lower-cased) is an identity word when, among the rows
that carry identity annotations, it names one subgroup almost always *in each label class separately*:
for some subgroup s, P(s | word, label = 0) >= precision and P(s | word, label = 1) >= precision, with at
least min_count annotated rows containing the word in each class. The per-class condition keeps out the
words that go with a group only through the label (abusive words that co-occur with one group's mentions
appear in few non-toxic rows, and there they do not name the group), and min_count keeps out words too
rare to tell. Identity terms, the names and pronouns a source uses for a group, and words only ever used
about one group all pass. What it cannot see: an identity named by a phrase whose words each also occur
about other groups, or by words rarer than min_count per class.

The list is learned once per run from its training split (never from evaluation data), recorded in the
checkpoint and in summary.json, and applied by wrapping the tokenizer (`IdentityWordFilter`), so every
path that scores text with the run's tokenizer (training, evaluation, `steward fairness eval`, the
per-domain report) sees the same words removed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from steward.fairness.data import IdentityData

WORD = re.compile(r"[^\W_]+")
"""A word: a maximal run of letters or digits (apostrophes, hyphens and underscores split words)."""


def words_of(text: str) -> set[str]:
    """The distinct lower-cased words of a text."""
    return {w.lower() for w in WORD.findall(text)}


def learn_identity_words(data: IdentityData, *, min_count: int, precision: float) -> list[str]:
    """The identity words of a training split (see the module docstring), sorted. Rows without identity
    annotations (data.annotated False) are not counted; a split without subgroups has none."""
    names = data.subgroup_names()
    if not names:
        return []
    annotated = np.ones(len(data), bool) if data.annotated is None else np.asarray(data.annotated, bool)
    member = data.identity_matrix() > 0.5
    rows = Counter()  # (word, label) -> annotated rows containing the word
    named = Counter()  # (word, label, subgroup index) -> of those, rows naming the subgroup
    for i in np.flatnonzero(annotated):
        y = int(data.labels[i])
        subs = np.flatnonzero(member[i])
        for w in words_of(data.texts[i]):
            rows[w, y] += 1
            for s in subs:
                named[w, y, int(s)] += 1
    out = []
    for w in {w for w, _ in rows}:
        n0, n1 = rows[w, 0], rows[w, 1]
        if min(n0, n1) < min_count:
            continue
        if any(named[w, 0, s] >= precision * n0 and named[w, 1, s] >= precision * n1 for s in range(len(names))):
            out.append(w)
    return sorted(out)


STATE = "identity_words"
"""The checkpoint's rank state of the words a run removes: {"words", "min_count", "precision"}."""


def saved_words(state: Any) -> list[str]:
    """The words of a checkpoint's STATE; ValueError (one line) when it is not what a trainer saves (a
    list of non-empty strings, with the min_count and precision they were learned with)."""
    words = state.get("words") if isinstance(state, dict) else None
    if (not isinstance(words, list) or not all(isinstance(w, str) and w for w in words)
            or not {"min_count", "precision"} <= state.keys()):
        raise ValueError("its identity words are not a list of words with their min_count and precision "
                         "(not saved by a trainer)")
    return words


class IdentityWordFilter:
    """A tokenizer that removes the identity words before encoding: every word of a text (WORD) whose
    lower case is on the list, the same words `words_of` gives the rule, with the runs of white space
    then closed up to single spaces; a text that began with white space keeps one leading space, so a
    word encoded on its own after its space (`steward explain`) reads as in running text. Everything
    else is the wrapped tokenizer's (vocabulary, decoding, fingerprint)."""

    def __init__(self, tokenizer: Any, words: list[str]):
        self.inner, self.words = tokenizer, list(words)
        self._set = frozenset(self.words)

    def _word(self, m: re.Match) -> str:
        return " " if m.group().lower() in self._set else m.group()

    def clean(self, text: str) -> str:
        """The text without the identity words (unchanged when the list is empty)."""
        if not self._set:
            return text
        out = " ".join(WORD.sub(self._word, text).split())
        return " " + out if out and text[:1].isspace() else out

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(self.clean(text))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.inner.encode_batch([self.clean(t) for t in texts])

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
