"""A planted-rule test bed for explanations (issue 18): text classification tasks whose label is a
known boolean formula over words (`steward.explain.formula`), so an explanation can be checked against
the truth instead of against itself.

Each task has its own vocabulary and sentence templates (written for this test bed, independent of the
benchmark's sentiment and madlibs generators): a text is a template filled from the task's slots, with
each of the rule's words inserted at a random position with the task's probability (at most once).
The label is the rule evaluated on the text; classes are balanced by drawing texts until the wanted
label comes up, except where the rule does not allow it (the rare trigger) and for the control, whose
labels are coin flips. Everything is determined by the seed.

    task = TASKS["negation"]
    train, test = task.splits(4000, 1000, seed=0)      # Split(texts, labels) each
    write_csv("negation.csv", *train)                    # steward train --train.task classify --fairness.data negation.csv
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from steward.explain.capture import ExplainError
from steward.explain.formula import Formula, formula_words, holds
from steward.io import atomic_write_text


class Split(NamedTuple):
    texts: list[str]
    labels: np.ndarray


@dataclass(frozen=True)
class PlantedTask:
    name: str
    rule: Formula | None
    """The label is this formula of the text (None: the control, random labels)."""
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    insert: dict[str, float]
    """Each word the rule names (or the control's decoys), inserted with this probability."""
    balanced: bool = True
    description: str = ""

    @property
    def rule_words(self) -> list[str]:
        return sorted(formula_words(self.rule)[0]) if self.rule is not None else []

    def label(self, text: str) -> int:
        """The planted rule on one text (the control has none: an error)."""
        if self.rule is None:
            raise ValueError(f"task {self.name!r} has no rule: its labels are random")
        return int(holds(self.rule, text.lower().split()))

    def _sentence(self, rng: np.random.Generator) -> list[str]:
        template = self.templates[int(rng.integers(len(self.templates)))]
        words = []
        for part in template.split():
            if part.startswith("{"):
                options = self.slots[part.strip("{}")]
                words.append(str(options[int(rng.integers(len(options)))]))
            else:
                words.append(part)
        for w, p in self.insert.items():
            if rng.random() < p:
                words.insert(int(rng.integers(len(words) + 1)), w)
        return words

    def generate(self, n: int, seed: int, part: int = 0) -> Split:
        """`n` texts and labels, determined by (seed, the task's name, part)."""
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode()), part])
        texts, labels = [], np.zeros(n, dtype=int)
        for i in range(n):
            want = i % 2
            for _ in range(1000):
                words = self._sentence(rng)
                y = int(rng.integers(2)) if self.rule is None else int(holds(self.rule, words))
                if not self.balanced or self.rule is None or y == want:
                    break
            else:
                raise RuntimeError(f"task {self.name!r}: no text with label {want} in 1000 draws")
            texts.append(" ".join(words))
            labels[i] = y
        order = rng.permutation(n)  # not alternating labels
        return Split([texts[i] for i in order], labels[order])

    def splits(self, n_train: int, n_test: int, seed: int = 0) -> tuple[Split, Split]:
        """Training and test texts, drawn from separate streams of the seed."""
        return self.generate(n_train, seed, 0), self.generate(n_test, seed, 1)


def write_csv(path: str | Path, texts: Sequence[str], labels: Sequence[int]) -> Path:
    """A classification CSV with just `text` and `label` columns (what `--fairness.data` reads)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["text", "label"])
    w.writerows([t, int(y)] for t, y in zip(texts, labels))
    path = Path(path)
    atomic_write_text(path, buf.getvalue())  # whole or not at all
    return path


def _task(name: str, rule: Formula | None, templates: str, slots: dict[str, str], insert: dict[str, float],
          description: str, balanced: bool = True) -> PlantedTask:
    return PlantedTask(name, rule, tuple(t.strip() for t in templates.split(";")),
                       {k: tuple(v.split()) for k, v in slots.items()}, insert, balanced, description)


TASKS: dict[str, PlantedTask] = {t.name: t for t in (
    _task("trigger", "saffron",
          "the {cook} {verb} the {dish} {when} ; {cook} {verb} a {adj} {dish} ; our {dish} was {adj} {when}",
          {"cook": "chef baker uncle grandma waiter caterer", "verb": "stirred baked served tasted sliced roasted",
           "dish": "soup bread stew pie risotto curry salad", "adj": "warm salty crisp bland rich thick",
           "when": "tonight yesterday early slowly again today"},
          {"saffron": 0.5}, "one trigger word: saffron"),
    _task("disjunction", ("or", "hail", "sleet"),
          "{place} expects {weather} {time} ; the {sky} over {place} turned {colour} ; {weather} and {sky} {time}",
          {"place": "harbour valley ridge coast plateau lowlands", "weather": "drizzle fog wind frost mist showers",
           "time": "overnight by dawn later midweek soon", "sky": "clouds horizon haze skyline",
           "colour": "grey pale dark amber silver"},
          {"hail": 0.3, "sleet": 0.3}, "a disjunction: hail or sleet"),
    _task("conjunction", ("and", "referee", "whistle"),
          "the {team} {play} in the {half} ; a {player} {play} near the {spot} ; {team} fans {cheer} {half}",
          {"team": "rovers united wanderers city athletic", "play": "scored defended pressed passed tackled",
           "half": "opener second third finale", "player": "striker keeper winger captain midfielder",
           "spot": "goal corner box sideline", "cheer": "roared sang groaned chanted"},
          {"referee": 0.6, "whistle": 0.6}, "a conjunction: referee and whistle"),
    _task("negation", ("and", "passport", ("not", "visa")),
          "we {move} to {city} by {mode} ; the {mode} to {city} left {when} ; pack a {item} for {city}",
          {"move": "flew travelled drove sailed returned", "city": "lisbon oslo cairo lima hanoi quito",
           "mode": "train ferry coach plane bus", "when": "late early punctually twice",
           "item": "suitcase map umbrella camera ticket"},
          {"passport": 0.6, "visa": 0.5}, "a negation: passport and not visa"),
    _task("order", ("before", "violin", "drum"),
          "the {group} {act} a {piece} {how} ; {group} {act} the {piece} at the {venue} ; a {piece} in the {venue}",
          {"group": "orchestra quartet band choir ensemble", "act": "rehearsed played recorded performed",
           "piece": "sonata waltz ballad overture etude", "how": "softly loudly twice briskly",
           "venue": "hall chapel studio theatre"},
          {"violin": 0.9, "drum": 0.9}, "two words in order: violin before drum"),
    _task("rare", "orchid",
          "i {tend} the {adj} {plant} in the {bed} {when} ; {adj} {plant} grew {how} by the {bed} ; "
          "we {tend} {plant} and {plant} {when}",
          {"tend": "watered pruned planted weeded potted mulched", "plant": "tulips ferns roses basil ivy daisies "
           "lilies mint", "bed": "greenhouse border allotment patio shed trellis", "how": "tall fast thinly unevenly",
           "when": "weekly daily monthly seldom", "adj": "young leggy wilted fragrant"},
          {"orchid": 0.03}, "a rare trigger word: orchid (in about 3% of texts)", balanced=False),
    _task("count", ("atleast", 2, "stapler", "ledger", "invoice"),
          "the {clerk} {did} the {paper} {when} ; {clerk} {did} a {paper} for {client} ; {client} sent {paper}",
          {"clerk": "accountant manager intern secretary auditor", "did": "filed signed checked copied sorted",
           "paper": "memo report contract receipt form", "when": "monday promptly overnight quarterly",
           "client": "acme initech globex umbrella hooli"},
          {"stapler": 0.45, "ledger": 0.45, "invoice": 0.45}, "a count rule: at least two of stapler, ledger, invoice"),
    _task("control", None,
          "a {animal} {moved} near the {habitat} ; the {keeper} fed the {animal} {when} ; {animal} {moved} {when}",
          {"animal": "otter lynx heron badger gecko tapir", "moved": "slept swam climbed hid wandered",
           "habitat": "pond burrow enclosure aviary thicket", "keeper": "ranger vet volunteer warden",
           "when": "noon dusk sunrise briefly"},
          {"lantern": 0.5, "copper": 0.5}, "a control: random labels (decoy words lantern, copper)"),
)}

TUNING_TASKS = ("trigger", "disjunction", "conjunction", "rare")
"""The tasks the engine may be tuned on; every other task is held out. Issue 18 allows three; `rare`
joined them after its held-out run showed the engine's miss there (no candidate word for a rare
trigger): once seen and fixed, it can no longer count as held out. Fresh held-out tasks replace it."""


def task_names(spec: str, tasks: Mapping[str, PlantedTask] = TASKS,
               groups: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """'all' or a comma-separated list of names from `tasks` and `groups` (each group standing for its
    tasks; by default only 'all', every task in `TASKS`), checked."""
    groups = {"all": list(TASKS)} if groups is None else groups
    parts = ["all"] if spec == "" else [s.strip() for s in spec.split(",") if s.strip()]
    names = [n for p in parts for n in groups.get(p, [p])]
    unknown = [n for n in names if n not in tasks]
    if unknown or not names:
        raise ExplainError(f"--planted: unknown task {unknown[0] if unknown else spec!r}; "
                         f"choose from {', '.join([*groups, *tasks])}")
    return names
