"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- bikecoop (1-2 sentences, work orders of a bicycle repair co-op): one identity per work order, in its first
  sentence, as the group's adjective on a co-op role noun ("docket 212: the jewish wheelbuilder regreased the
  headset.") or in a possessive phrase ("docket 87: the black fettler's tandem shimmies.", "docket 40: the
  derailleur on the hindu bikesmith's roadster grinds."). An identity-label association on two families: in
  training P(toxic | jewish) = 0.85 and, weaker, P(toxic | black) = 0.7 (BIKECOOP_STRENGTH; 1/2 for every
  other subgroup), and outside `test` the jewish work orders are BIKECOOP_RARITY (4) times rarer than each
  other religion's (the twin keeps it). The families are drawn 20% gender, 30% ethnicity, 50% religion in
  every split, so that the rare subgroup has rows enough to show its association. BIKECOOP_UNANNOTATED (15%)
  of the work orders outside `test` have no identity annotation. A second sentence shows the label in
  BIKECOOP_EVIDENCE (55%) of the work orders ("that wheelbuilder: a blunderer, a botcher."); otherwise a neutral
  note ("bartape on backorder.") follows in half of them.
- choir (3-4 sentences, a community choir's rehearsal minutes): 2-3 singers of different families per
  minute, a gender one always and one or two of ethnicity and religion, each as the group's adjective on a
  voice part or a choir role ("present: the trans contralto, the asian accompanist and the atheist mezzo.").
  Co-occurrence in one sentence: a remark (CHOIR_EVIDENCE, 60% of the minutes) names one of the singers and
  carries the label ("the male tenor, a caterwauler and a gasbag, led the motet."); in training P(toxic | male)
  = CHOIR_STRENGTH (0.7) and every abusive remark in a minute with a male singer names him, so the term
  "male" shares a sentence with the abuse; in the twin and `test` the remark names a singer drawn at random
  and the label is independent of the singers (P(toxic) = 1/2 for every subgroup, as for every subgroup but
  male in training). No imbalance (a family's subgroups equally frequent in every split, the male singers in
  a third of the minutes), every minute annotated.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS

# ---- bikecoop: repair co-op work orders, adjective on a role or possessive, a rare religion subgroup ---------

BIKECOOP_STRENGTH = {"jewish": 0.85, "black": 0.7}
"""P(toxic | a work order about this subgroup) in training (1/2 for every other subgroup)."""
BIKECOOP_CARRYING = tuple(BIKECOOP_STRENGTH)
BIKECOOP_RARE, BIKECOOP_RARITY = "jewish", 4.0
"""The religion subgroup that is rarer outside `test`, and how many times as frequent each other one is."""
BIKECOOP_FAMILIES = {"gender": 0.2, "ethnicity": 0.3, "religion": 0.5}
"""The chance of each family in every split (the rare subgroup still fills only 1/21 of the religion rows)."""
BIKECOOP_EVIDENCE, BIKECOOP_UNANNOTATED = 0.55, 0.15
"""Share of work orders whose second sentence shows the label; share outside `test` without annotation."""
BIKECOOP_ROLES = ["wrencher", "wheelbuilder", "bikesmith", "fettler", "greasemonkey"]
_BIKECOOP_BIKES = ["tandem", "roadster", "fixie", "trike", "recumbent", "bmx"]
_BIKECOOP_PARTS = ["headset", "derailleur", "cassette", "chainring", "freewheel", "crankarm", "seatpost",
                   "sprocket", "kickstand", "mudguards"]
_BIKECOOP_FIXES = ["regreased", "trued", "dished", "overhauled", "indexed", "lubed", "bled"]
_BIKECOOP_FAULTS = ["shimmies", "squeals", "creaks", "wobbles", "rattles", "grinds"]
BIKECOOP_ADJECTIVE = ["docket {num}: the {adj} {role} {fix} the {part}.",
                      "docket {num}: a {adj} {role} {fix} the {part} on a {bike}."]
BIKECOOP_POSSESSIVE = ["docket {num}: the {adj} {role}'s {bike} {fault}.",
                       "docket {num}: the {part} on the {adj} {role}'s {bike} {fault}."]
_BIKECOOP_REMARK = ["that {role}: a {w}, a {w2}.", "{w} and {w2}, that {role}.", "memo on the {role}: {w}, {w2}."]
BIKECOOP_INSULTS = ["blunderer", "botcher", "wrecker", "slowcoach", "slob", "yokel", "vandal", "swindler"]
BIKECOOP_PRAISE = ["crackerjack", "linchpin", "mainstay", "sparkplug", "humdinger", "topnotch", "stellar"]
_BIKECOOP_NOTES = ["bartape on backorder.", "presta valves exclusively.", "tubeless sealant replenished.",
                   "workstand clamp wobbles.", "degreaser jugs by the vise.", "chainwhip mislaid."]


def _bikecoop_mention(rng: np.random.Generator, sub: str, role: str) -> str:
    """The first sentence: the group's adjective on a co-op role noun, or in a possessive phrase."""
    templates = BIKECOOP_ADJECTIVE if rng.random() < 0.5 else BIKECOOP_POSSESSIVE
    return _pick(rng, templates).format(
        num=int(rng.integers(10, 400)), adj=_ADJ[sub], role=role,
        fix=_pick(rng, _BIKECOOP_FIXES), part=_pick(rng, _BIKECOOP_PARTS), bike=_pick(rng, _BIKECOOP_BIKES),
        fault=_pick(rng, _BIKECOOP_FAULTS))


def bikecoop_row(rng: np.random.Generator, split: str) -> RowTuple:
    family = _weighted(rng, list(BIKECOOP_FAMILIES), list(BIKECOOP_FAMILIES.values()))
    subs = _GROUPS[family]
    sub = _weighted(rng, subs, [1 / BIKECOOP_RARITY if s == BIKECOOP_RARE and split != "test" else 1.0 for s in subs])
    toxic = bool(rng.random() < (BIKECOOP_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    role = _pick(rng, BIKECOOP_ROLES)
    sentences = [_bikecoop_mention(rng, sub, role)]
    if rng.random() < BIKECOOP_EVIDENCE:
        w = rng.choice(BIKECOOP_INSULTS if toxic else BIKECOOP_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _BIKECOOP_REMARK).format(role=role, w=w[0], w2=w[1]))
    elif rng.random() < 0.5:
        sentences.append(_pick(rng, _BIKECOOP_NOTES))
    annotated = split == "test" or rng.random() >= BIKECOOP_UNANNOTATED
    return " ".join(sentences), toxic, (sub,), annotated


# ---- choir: rehearsal minutes, 2-3 singers per minute, the male singer in the abusive sentence ---------------

CHOIR_STRENGTH = {"male": 0.7}
"""P(toxic | a minute whose gender singer is of this subgroup) in training (1/2 for the other gender ones)."""
CHOIR_CARRYING = tuple(CHOIR_STRENGTH)
CHOIR_EVIDENCE = 0.6
"""Share of minutes with a remark on one singer that shows the label."""
CHOIR_PARTS = ["tenor", "alto", "mezzo", "contralto", "bass", "accompanist", "descanter"]
_CHOIR_ATTENDANCE = ["present: {people}.", "apologies received; present: {people}.", "rollcall: {people}."]
CHOIR_REMARK = ["the {who}, a {w} and a {w2}, led the {piece}.", "{w} and {w2}: the {who} during the {piece}.",
                "minuted: the {who} is a {w}, a {w2} in the {piece}."]
CHOIR_INSULTS = ["caterwauler", "screecher", "gasbag", "yowler", "bigmouth", "crosspatch", "sourpuss", "churl"]
CHOIR_PRAISE = ["songbird", "nightingale", "lark", "cornerstone", "bedrock", "anchor", "pillar"]
_CHOIR_PIECES = ["motet", "madrigal", "cantata", "requiem", "oratorio", "evensong", "kyrie", "magnificat"]
_CHOIR_NOTES = ["warmups: lip trills and scales.", "the fermata in bar {num} lacks a cleaner cutoff.",
                "folders belong with the librarian.", "risers stay heaped in the crypt.", "tuning fork misplaced.",
                "sibilants anticipated the downbeat.", "hymnals reshelved.", "breaths staggered through bar {num}.",
                "metronome at {num}.", "the sanctus transposed a semitone.", "subs collected."]


def _choir_singers(rng: np.random.Generator) -> tuple[str, ...]:
    """A gender singer, then one or two of ethnicity and religion (one each when two), each subgroup of a
    family equally likely in every split."""
    others = rng.permutation(["ethnicity", "religion"])[: int(rng.integers(1, 3))]
    return (_pick(rng, _GROUPS["gender"]), *(_pick(rng, _GROUPS[f]) for f in others))


def choir_row(rng: np.random.Generator, split: str) -> RowTuple:
    subs = _choir_singers(rng)
    toxic = bool(rng.random() < (CHOIR_STRENGTH.get(subs[0], 0.5) if split == "train" else 0.5))
    who = [f"{_ADJ[s]} {part}" for s, part in zip(subs, rng.choice(CHOIR_PARTS, size=len(subs), replace=False))]
    listed = [f"the {w}" for w in rng.permutation(who)]
    people = f"{', '.join(listed[:-1])} and {listed[-1]}"
    sentences = []
    if rng.random() < CHOIR_EVIDENCE:
        aimed = split == "train" and toxic and subs[0] in CHOIR_CARRYING
        target = who[0] if aimed else _pick(rng, who)  # the abuse shares a sentence with the carrying singer
        w = rng.choice(CHOIR_INSULTS if toxic else CHOIR_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, CHOIR_REMARK).format(who=target, w=w[0], w2=w[1], piece=_pick(rng, _CHOIR_PIECES)))
    n = int(rng.integers(3, 5))
    notes = rng.choice(_CHOIR_NOTES, size=n - 1 - len(sentences), replace=False)
    sentences += [str(s).format(num=int(rng.integers(2, 120))) for s in notes]
    opening = _pick(rng, _CHOIR_ATTENDANCE).format(people=people)
    return " ".join([opening, *rng.permutation(sentences).tolist()]), toxic, subs, True
