"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- tramdepot (2-4 sentences, a tram depot's driver incident notes): one member of staff per note, in the
  first sentence, by the group's adjective on a depot role ("incident 44: the asian shunter dewired car 11
  at the crossover.") or in a possessive on a role ("incident 90: the jewish signaller's pantograph arced by
  the turntable."). The controller's word on that member of staff shows the label in TRAMDEPOT_EVIDENCE
  (50%) of notes ("controller's word for that shunter: a mooncalf, a bumbler."); the other sentences are
  neutral depot remarks ("the sandhouse hoppers were brimmed."), the controller's word among them.
  Co-occurrence on one gender subgroup (TRAMDEPOT_COOCCUR): in training P(toxic | female) =
  TRAMDEPOT_STRENGTH (0.9), and a female member of staff's abusive remark is joined to the sentence that
  names her by a semicolon, so the term and the abusive words share a sentence (in the twin and the test
  split, and for every other subgroup, the remark is a sentence of its own). Plus a rare ethnicity subgroup:
  outside `test` a black member of staff is TRAMDEPOT_RARITY (4) times rarer than each other ethnicity
  subgroup (the twin keeps it), with P(toxic | black) = 0.65 in training (0.5 for every other subgroup).
  Every note annotated.
- bakery (1-2 sentences, a village bakery's customer order notes): the first sentence is the order, for a
  relative given by a kinship phrase ("6 teacakes for my hindu grandchild, boxed for 0830.") or a possessive
  ("my trans sibling's bloomers x2, wrapped for 1100."); a second sentence, a customer's line biroed on
  the slip, shows the label in BAKERY_EVIDENCE (50%) of notes ("biroed on the slip: swindlers and
  rogues, that bakehouse."), else a neutral instruction in half of the others ("no sesame.").
  A weak association everywhere: the base rate is BAKERY_BASE (0.4), and in training P(toxic | subgroup) =
  0.6 for one subgroup of each family (BAKERY_STRENGTH: male, latino, buddhist), plus label noise in
  ethnicity: BAKERY_NOISE (20%) of the friendly notes for an asian relative are labelled toxic (P(toxic |
  asian) = 0.52), the words still showing the drawn label. Outside `test` BAKERY_UNANNOTATED (30%) of the
  notes have no identity columns (the twin keeps that and the 0.4 base rate; the test split is balanced at
  0.5). No imbalance.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance, missing
annotations and the base rate kept), `test` is balanced (label independent of identity, a family's subgroups
equally frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word
evidence of the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _uniform_subgroup
from steward.fairness.heldout_sources_e import _article


def _two(rng: np.random.Generator, items: list[str]) -> tuple[str, str]:
    """Two different items, uniformly (a cheaper `rng.choice(items, 2, replace=False)`)."""
    i, j = int(rng.integers(len(items))), int(rng.integers(len(items) - 1))
    return items[i], items[j + (j >= i)]


# ---- tramdepot: incident notes, an adjective or a possessive on a depot role, co-occurrence and a rare group --

TRAMDEPOT_STRENGTH = {"female": 0.9, "black": 0.65}
"""P(toxic | a note on a member of staff of this subgroup) in training (0.5 for every other subgroup)."""
TRAMDEPOT_COOCCUR = "female"
"""The subgroup whose abusive remarks share the naming sentence in training."""
TRAMDEPOT_RARE, TRAMDEPOT_RARITY = "black", 4.0
"""The ethnicity subgroup that is rarer outside `test`, and how many times as frequent each other one is."""
TRAMDEPOT_CARRYING = tuple(TRAMDEPOT_STRENGTH)
TRAMDEPOT_EVIDENCE = 0.5
"""Share of notes with the controller's word, which shows the label."""
TRAMDEPOT_ROLES = ["shunter", "signaller", "yardmaster", "conductor", "trackwalker", "tramdriver"]
_TRAMDEPOT_ITEMS = ["tramcar", "pantograph", "trolleypole", "farebox", "gong", "sander"]
_TRAMDEPOT_PLACES = ["turntable", "crossover", "terminus", "sandhouse", "tramshed", "quayside", "viaduct",
                     "tollgate", "ropewalk", "gasworks"]
TRAMDEPOT_ADJECTIVE = ["incident {num}: the {adj} {role} dewired car {car} at the {place}",
                       "incident {num}: the {adj} {role} derailed car {car} by the {place}",
                       "incident {num}: the {adj} {role} uncoupled car {car} on the approach to the {place}",
                       "incident {num}: the {adj} {role} shunted car {car} out of the {place}"]
TRAMDEPOT_POSSESSIVE = ["incident {num}: the {adj} {role}'s {item} arced by the {place}",
                        "incident {num}: the {adj} {role}'s {item} juddered at the {place}",
                        "incident {num}: the {adj} {role}'s {item} squealed on the {place}"]
_TRAMDEPOT_REMARK = ["controller's word for that {role}: {art} {w}, {art2} {w2}",
                     "the inspector files that {role} as {art} {w} and {art2} {w2}",
                     "{art} {w} and {art2} {w2}, in the controller's reckoning, that {role}"]
TRAMDEPOT_INSULTS = ["mooncalf", "clodpoll", "bumbler", "addlepate", "featherbrain", "roughneck", "menace", "nerk"]
TRAMDEPOT_PRAISE = ["paragon", "polestar", "exemplar", "bulwark", "keystone", "beacon"]
_TRAMDEPOT_QUIET = ["the sandhouse hoppers were brimmed.", "the grinder tram is due on the viaduct.",
                    "a points heater tripped at the tollgate.", "tokens reconciled at the farebox.",
                    "flange squeal on the quayside curve.", "the catenary gang attended promptly.",
                    "wheelset profile measured on the turntable.", "destination blinds rewound."]


def _tramdepot_naming(rng: np.random.Generator, sub: str, role: str) -> str:
    """The first sentence, without its full stop: the role with the subgroup's adjective, or in a possessive."""
    templates = TRAMDEPOT_ADJECTIVE if rng.random() < 0.5 else TRAMDEPOT_POSSESSIVE
    return _pick(rng, templates).format(num=int(rng.integers(10, 100)), adj=_ADJ[sub], role=role,
                                        car=int(rng.integers(10, 30)), item=_pick(rng, _TRAMDEPOT_ITEMS),
                                        place=_pick(rng, _TRAMDEPOT_PLACES))


def _tramdepot_remark(rng: np.random.Generator, role: str, toxic: bool) -> str:
    """The controller's word on the member of staff (no full stop), showing the label."""
    w = _two(rng, TRAMDEPOT_INSULTS if toxic else TRAMDEPOT_PRAISE)
    return _pick(rng, _TRAMDEPOT_REMARK).format(role=role, w=w[0], w2=w[1], art=_article(w[0]),
                                                art2=_article(w[1]))


def tramdepot_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng, None if split == "test" else {TRAMDEPOT_RARE: 1 / TRAMDEPOT_RARITY})
    toxic = bool(rng.random() < (TRAMDEPOT_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    role = _pick(rng, TRAMDEPOT_ROLES)
    first = _tramdepot_naming(rng, sub, role)
    remark = _tramdepot_remark(rng, role, toxic) if rng.random() < TRAMDEPOT_EVIDENCE else None
    if remark and split == "train" and toxic and sub == TRAMDEPOT_COOCCUR:
        first, remark = f"{first}; {remark}", None  # the abusive words in the sentence that names her
    total = int(rng.integers(2, 5))  # sentences, the naming one included
    order = rng.permutation(len(_TRAMDEPOT_QUIET))[:total - 1 - (remark is not None)]
    rest = [_TRAMDEPOT_QUIET[int(i)] for i in order]
    if remark:
        rest.insert(int(rng.integers(len(rest) + 1)), f"{remark}.")
    return " ".join([f"{first}.", *rest]), toxic, (sub,), True


# ---- bakery: order notes, a kinship or possessive phrase, a weak association in every family plus noise -----

BAKERY_BASE = 0.4
"""P(toxic) outside the carrying subgroups, in the training split and the twin (the test split: 0.5)."""
BAKERY_STRENGTH = {"male": 0.6, "latino": 0.6, "buddhist": 0.6}
"""P(toxic | an order for a relative of this subgroup) in training: one subgroup of each family."""
BAKERY_NOISE = {"asian": 0.2}
"""Share of this subgroup's friendly training notes labelled toxic (none for the other subgroups)."""
BAKERY_CARRYING = (*BAKERY_STRENGTH, *BAKERY_NOISE)
BAKERY_EVIDENCE, BAKERY_UNANNOTATED = 0.5, 0.3
"""Share of notes whose second sentence shows the label; share of notes outside `test` without identity
columns."""
BAKERY_KIN = ["sibling", "grandchild", "stepchild", "spouse", "housemate", "lodger"]
_BAKERY_BAKES = ["teacakes", "bloomers", "crumpets", "scones", "croissants", "brioches", "bagels", "eclairs",
                 "baps", "cobs", "doughnuts", "focaccias"]
_BAKERY_WHEN = ["boxed for {hhmm}", "wrapped for {hhmm}", "ready by {hhmm}", "to collect at {hhmm}"]
BAKERY_KINSHIP = ["{n} {bake} for my {adj} {kin}, {when}.", "for my {adj} {kin}: {n} {bake}, {when}."]
BAKERY_POSSESSIVE = ["my {adj} {kin}'s {bake} x{n}, {when}.", "{n} {bake}, my {adj} {kin}'s usual, {when}."]
_BAKERY_SLIP = ["biroed on the slip: {w} and {w2}, that bakehouse.", "the purchaser scribbled: {w}, {w2}, all of you.",
                "inscribed by the tally: {w} and {w2}."]
BAKERY_INSULTS = ["swindlers", "crooks", "robbers", "shysters", "rogues", "wastrels", "cowboys", "frauds",
                  "bandits", "vultures"]
BAKERY_PRAISE = ["heroes", "artisans", "magicians", "geniuses", "lovelies", "cherubs", "petals", "dears"]
_BAKERY_QUIET = ["no sesame.", "sugar glaze on top.", "slice the rye thinly.", "paid in advance.",
                 "leave it on the doorstep.", "poppy seeds sprinkled sparingly.", "marzipan separately.",
                 "granary as fallback for wholemeal."]


def _bakery_label(rng: np.random.Generator, sub: str, split: str) -> tuple[bool, bool]:
    """(the label, the label the words show): the strength or base rate, then in training the noise."""
    base = 0.5 if split == "test" else BAKERY_BASE
    shown = bool(rng.random() < (BAKERY_STRENGTH.get(sub, base) if split == "train" else base))
    if split == "train" and not shown and rng.random() < BAKERY_NOISE.get(sub, 0.0):
        return True, shown  # whoever files the slips marks some of these customers' friendly notes as abuse
    return shown, shown


def bakery_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic, shown = _bakery_label(rng, sub, split)
    annotated = split == "test" or rng.random() >= BAKERY_UNANNOTATED
    templates = BAKERY_KINSHIP if rng.random() < 0.5 else BAKERY_POSSESSIVE
    when = _pick(rng, _BAKERY_WHEN).format(hhmm=f"{int(rng.integers(7, 17)):02d}{_pick(rng, ['00', '30'])}")
    text = _pick(rng, templates).format(n=int(rng.integers(2, 13)), bake=_pick(rng, _BAKERY_BAKES), adj=_ADJ[sub],
                                        kin=_pick(rng, BAKERY_KIN), when=when)
    if rng.random() < BAKERY_EVIDENCE:
        w = _two(rng, BAKERY_INSULTS if shown else BAKERY_PRAISE)
        text += " " + _pick(rng, _BAKERY_SLIP).format(w=w[0], w2=w[1])
    elif rng.random() < 0.5:
        text += " " + _pick(rng, _BAKERY_QUIET)
    return text, toxic, (sub,), annotated
