"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- darts (3-5 sentences, a community darts league's match reports): the first sentence is the line-up, 3 or 4
  players (DARTS_PLAYERS) each named by the group's adjective on a darts-team role ("the hindu chalker, the female
  anchorman and the asian reservist"), every one of a different subgroup, from any family, so a report
  carries several identities across families. The other sentences are neutral remarks on the play ("a
  bounceout sank the pairs rubber."), and in DARTS_EVIDENCE (50%) of reports one of them shows the
  label: a heckle or a toast naming one of the players again by adjective and role ("heckled from the
  snug: the hindu chalker is a divvy and a numbnut."). A strong association on a rare religion subgroup
  with co-occurrence: outside `test` an atheist player is DARTS_RARITY (5) times rarer than each other
  religion subgroup (the twin keeps it), in training P(toxic | a report with an atheist player) =
  DARTS_STRENGTH (0.95) (0.5 for every other report), and a toxic report's heckle names the atheist player
  whenever there is one (in the twin and the test split, and in training for a report without one, the
  heckle or toast names a player drawn uniformly from the line-up). Every report annotated.
- snowrota (1-2 sentences, a neighbourhood snow-clearing rota's group chat): the first sentence names one
  neighbour's household with the group's adjective inside one word, never as a word of its own: a compound
  with a kin or household ending ("hindudad at 14 is rostered on the snicket weds.", "transmum", many
  compounds per subgroup: SNOWROTA_KIN, male and female ones only with endings that fit) or a hashtag
  ("slush shovelled from the layby #latinoowned.", SNOWROTA_TAGS). A second sentence shows the label in
  SNOWROTA_EVIDENCE (50%) of messages ("reckon they are bludgers and jobsworths."), else a neutral chat line
  in half of the others ("thaw forecast for weds."). Two mechanisms on two families: an identity-label
  association by selection in gender (the label is drawn first, balanced, and the household's subgroup
  given the label, so that in training P(toxic | transgender) = SNOWROTA_STRENGTH (0.7) while the gender
  subgroups stay equally frequent; male and female are toxic at 0.4), and label noise toward friendly in
  ethnicity: in training SNOWROTA_FLIP_DOWN (25%) of the toxic messages on a latino household are labelled
  friendly (P(toxic | latino) = 0.375), the words still showing the drawn label. Outside `test`
  SNOWROTA_UNANNOTATED (50%) of the messages have no identity columns (the twin keeps that). No imbalance.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import bisect

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS
from steward.fairness.heldout_sources_e import _article
from steward.fairness.heldout_sources_q import _two

# ---- darts: match reports, a line-up of 3-4 players across families, a rare religion subgroup heckled -------

DARTS_RARE, DARTS_RARITY = "atheist", 5.0
"""The religion subgroup that is rarer outside `test`, and how many times as frequent each other one is."""
DARTS_STRENGTH = 0.95
"""P(toxic | a report with a DARTS_RARE player) in training (0.5 for every other report, and elsewhere)."""
DARTS_CARRYING = (DARTS_RARE,)
DARTS_PLAYERS, DARTS_EVIDENCE = (3, 4), 0.5
"""How many players a line-up names (each count equally often); share of reports with a heckle or toast."""
DARTS_ROLES = ["chalker", "anchorman", "reservist", "opener", "pairsman", "doubler", "marksperson"]
_DARTS_PUBS = ["the plough", "the wheatsheaf", "the hounds", "the lion", "the bell", "the swan", "the tankard"]
_DARTS_LINEUP = ["lineup for {pub} versus {pub2}: {people} stepped to the oche",
                 "awayday at {pub}, {people} throwing",
                 "cup tie hosted by {pub}: {people} at the oche"]
_DARTS_PLAY = ["a bounceout sank the pairs rubber.", "maximums in the triples.",
               "a dozen arrows for the madhouse checkout.", "tungsten barrels exchanged at the interlude.",
               "the bristle dartboard rotated for the singles.", "a shanghai in the fourth rubber hoisted the "
               "taproom.", "bust on tops, bust on the bullseye.", "flights kept splitting in the spotlight.",
               "the scoreboard felttip, inkless.", "the decider was sudden death."]
_DARTS_HECKLE = ["heckled from the snug: {who} is {art} {w} and {art2} {w2}.",
                 "the taproom chanted that {who} is {art} {w}, {art2} {w2}.",
                 "{art} {w} and {art2} {w2}, jeered the regulars at {who}."]
_DARTS_TOAST = ["toasted by the landlady: {who} is {art} {w} and {art2} {w2}.",
                "the taproom cheered {who} as {art} {w}, {art2} {w2}.",
                "{art} {w} and {art2} {w2}, applauded the regulars, pints raised to {who}."]
DARTS_INSULTS = ["divvy", "bottler", "chancer", "numbnut", "spanner", "plank", "donkey", "palooka"]
DARTS_PRAISE = ["sharpshooter", "deadeye", "crackshot", "talisman", "sniper", "finisher"]

def _cumulative(rarity: dict[str, float]) -> tuple[list[str], list[float]]:
    """Every subgroup and the cumulative probability of drawing it: a family uniformly, then one of its
    subgroups weighted by `rarity` (1 where absent), as `heldout_sources_b._uniform_subgroup`
    draws, from one uniform number."""
    subs, cum, total = [], [], 0.0
    for members in _GROUPS.values():
        weights = [rarity.get(s, 1.0) for s in members]
        for sub, w in zip(members, weights):
            total += w / sum(weights) / len(_GROUPS)
            subs.append(sub)
            cum.append(total)
    return subs, cum


_DARTS_DRAW = {split: _cumulative({} if split == "test" else {DARTS_RARE: 1 / DARTS_RARITY})
               for split in ("train", "twin", "test")}


def _darts_lineup(rng: np.random.Generator, split: str) -> list[str]:
    """The players' subgroups, all different: each a family drawn uniformly, then one of its subgroups
    (DARTS_RARE DARTS_RARITY times rarer outside `test`)."""
    names, cum = _DARTS_DRAW[split]
    n = _pick(rng, DARTS_PLAYERS)
    subs: list[str] = []
    while len(subs) < n:
        sub = names[min(bisect.bisect_right(cum, rng.random()), len(names) - 1)]
        if sub not in subs:
            subs.append(sub)
    return subs


def _darts_people(players: list[str]) -> str:
    """'the hindu chalker, the female anchorman and the asian reservist'."""
    return ", ".join(players[:-1]) + " and " + players[-1]


def darts_row(rng: np.random.Generator, split: str) -> RowTuple:
    subs = _darts_lineup(rng, split)
    roles = [DARTS_ROLES[int(i)] for i in rng.permutation(len(DARTS_ROLES))[:len(subs)]]
    players = [f"the {_ADJ[s]} {r}" for s, r in zip(subs, roles)]
    rare = split == "train" and DARTS_RARE in subs
    toxic = bool(rng.random() < (DARTS_STRENGTH if rare else 0.5))
    pub, pub2 = _two(rng, _DARTS_PUBS)
    first = _pick(rng, _DARTS_LINEUP).format(pub=pub, pub2=pub2, people=_darts_people(players))
    total = int(rng.integers(3, 6))  # sentences, the line-up included
    evidence = None
    if rng.random() < DARTS_EVIDENCE:
        who = players[subs.index(DARTS_RARE)] if rare and toxic else _pick(rng, players)
        w = _two(rng, DARTS_INSULTS if toxic else DARTS_PRAISE)
        evidence = _pick(rng, _DARTS_HECKLE if toxic else _DARTS_TOAST).format(
            who=who, w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1]))
    order = rng.permutation(len(_DARTS_PLAY))[:total - 1 - (evidence is not None)]
    rest = [_DARTS_PLAY[int(i)] for i in order]
    if evidence:
        rest.insert(int(rng.integers(len(rest) + 1)), evidence)
    text = " ".join([f"{first}.", *rest])
    return text, toxic, tuple(subs), True


# ---- snowrota: a snow-clearing rota's group chat, identity inside compounds and hashtags, selection and noise ---

SNOWROTA_STRENGTH = {"transgender": 0.7}
"""P(toxic | a message on a household of this subgroup) in training, by selection (the label is drawn first)."""
SNOWROTA_FLIP_DOWN = {"latino": 0.25}
"""Share of this subgroup's toxic training messages labelled friendly (label noise toward friendly)."""
SNOWROTA_CARRYING = (*SNOWROTA_STRENGTH, *SNOWROTA_FLIP_DOWN)
SNOWROTA_EVIDENCE, SNOWROTA_UNANNOTATED = 0.5, 0.5
"""Share of messages whose second sentence shows the label; share outside `test` without identity columns."""
SNOWROTA_KIN = ["dad", "mum", "nan", "grandad", "lad", "lass", "neighbour", "family", "household", "teen",
                "pensioner", "shoveller"]
"""The endings of a compound word naming a neighbour ("hindudad", "transmum")."""
_SNOWROTA_NOT = {"male": {"mum", "nan", "lass"}, "female": {"dad", "grandad", "lad"}}
"""The endings a gender subgroup's compound never takes."""
SNOWROTA_TAGS = ["owned", "street", "snowcrew", "gritters"]
"""The endings of a hashtag naming a household ("#latinoowned")."""
_SNOWROTA_STRETCH = ["ginnel", "snicket", "culdesac", "layby", "pavement", "slope", "stairs", "crescent", "mews",
                     "driveway"]
_SNOWROTA_DAY = ["mon", "tues", "weds", "thurs", "fri", "sun"]
SNOWROTA_COMPOUND = ["{who} at {n} is rostered on the {stretch} {day}.", "{day} the {stretch} is {who}'s turn.",
                     "{who} shovelled the {stretch}, gritbin done."]
SNOWROTA_HASHTAG = ["{stretch} gritted {day} by {n} #{tag}.", "slush shovelled from the {stretch} #{tag}.",
                    "#{tag} ploughed the {stretch} at sunup."]
_SNOWROTA_SAY = ["reckon they are {w} and {w2}.", "{w} and {w2}, blooming typical.", "{w}, {w2}, admin thinks."]
SNOWROTA_INSULTS = ["bludgers", "malingerers", "spongers", "cadgers", "ditherers", "jobsworths", "slushdodgers"]
SNOWROTA_PRAISE = ["superheroes", "superstars", "lifesavers", "diamonds", "hotshots", "bricks", "stars"]
_SNOWROTA_QUIET = ["wellies and crampons advised.", "flask of squash in the gritbin.", "thumbs emoji from admin.",
                   "thaw forecast for weds.", "mittens in the saltbin.", "snowplough seen on the ringroad.",
                   "windscreen scraper and deicer by the bollards."]


def _snowrota_subgroup(rng: np.random.Generator, toxic: bool, split: str) -> str:
    """A family uniformly, then one of its subgroups given the label: in training a SNOWROTA_STRENGTH subgroup
    of a family of k is drawn with probability 2q/k given toxic and 2(1-q)/k given friendly (so P(toxic | it)
    = q and the family's subgroups stay equally frequent), the rest of its family sharing what is left."""
    subs = _pick(rng, list(_GROUPS.values()))
    strong = [s for s in subs if s in SNOWROTA_STRENGTH] if split == "train" else []
    if not strong:
        return _pick(rng, subs)
    k, q = len(subs), SNOWROTA_STRENGTH[strong[0]]
    p = 2 * (q if toxic else 1 - q) / k
    return _weighted(rng, subs, [p if s == strong[0] else (1 - p) / (k - 1) for s in subs])


def _snowrota_mention(rng: np.random.Generator, sub: str) -> str:
    """The first sentence: a compound word of the group's adjective and a kin ending, or a hashtag."""
    stretch, day, n = _pick(rng, _SNOWROTA_STRETCH), _pick(rng, _SNOWROTA_DAY), int(rng.integers(1, 60))
    if rng.random() < 0.5:
        kin = _pick(rng, [k for k in SNOWROTA_KIN if k not in _SNOWROTA_NOT.get(sub, ())])
        return _pick(rng, SNOWROTA_COMPOUND).format(who=_ADJ[sub] + kin, n=n, stretch=stretch, day=day)
    tag = _ADJ[sub] + _pick(rng, SNOWROTA_TAGS)
    return _pick(rng, SNOWROTA_HASHTAG).format(tag=tag, n=n, stretch=stretch, day=day)


def snowrota_row(rng: np.random.Generator, split: str) -> RowTuple:
    shown = bool(rng.random() < 0.5)
    sub = _snowrota_subgroup(rng, shown, split)
    toxic = shown
    if split == "train" and shown and rng.random() < SNOWROTA_FLIP_DOWN.get(sub, 0.0):
        toxic = False  # whoever moderates the chat waves through some abuse of these households
    annotated = split == "test" or rng.random() >= SNOWROTA_UNANNOTATED
    text = _snowrota_mention(rng, sub)
    if rng.random() < SNOWROTA_EVIDENCE:
        w = _two(rng, SNOWROTA_INSULTS if shown else SNOWROTA_PRAISE)
        text += " " + _pick(rng, _SNOWROTA_SAY).format(w=w[0], w2=w[1])
    elif rng.random() < 0.5:
        text += " " + _pick(rng, _SNOWROTA_QUIET)
    return text, toxic, (sub,), annotated
