"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- campsite (1-2 clauses, entries in a campsite's guestbook): one camper per entry, named in the first clause
  by the group's adjective on a camper as the owner of a piece of gear ("the hammock by the tarn belonged
  to a female canoeist") or as a camper arriving at a glade ("a muslim rambler reached glade 9 at sundown").
  A second clause shows the label in CAMPSITE_EVIDENCE (55%) of entries ("; gannet and yob, grumbled the
  warden"); a quarter of the others carry a neutral second clause ("; owls hooted at moonrise").
  Label noise by group in both directions on two families: in training CAMPSITE_FLIP_UP (20%) of the
  friendly entries about a female camper are labelled toxic (P(toxic | female) = 0.6) and CAMPSITE_FLIP_DOWN
  (15%) of the toxic entries about a muslim camper are labelled friendly (P(toxic | muslim) = 0.425). Group
  imbalance with no association in the third family: outside `test` a black camper is CAMPSITE_FREQUENCY (3)
  times as frequent as each other ethnicity subgroup (the twin keeps it). CAMPSITE_UNANNOTATED (25%) of the
  entries outside `test` have no identity annotation (the twin keeps that too).
- foodbank (2 sentences, a food bank's volunteer shift reports): one volunteer per report, in the first
  sentence: a gender subgroup by a given name alone ("bartholomew restocked the tinned pulses.", four
  names per subgroup in FOODBANK_GIVEN; a transgender volunteer's name is followed by a trans role: "rowan,
  a trans packer, counted the toiletries at intake."), an ethnicity or religion subgroup by the group's
  adjective on a volunteer role ("the hindu sorter weighed the pasta parcels."). An identity-label
  association by selection on one subgroup in each of the three families: the label is drawn first
  (balanced) and the volunteer's subgroup given the label, so that in training P(toxic | male) = P(toxic |
  black) = P(toxic | atheist) = FOODBANK_STRENGTH (0.8) while a family's subgroups stay equally frequent
  (the rest of a carrying family is toxic less often: P(toxic | female or transgender) = 0.35, P(toxic |
  white, asian or latino) = 0.4, P(toxic | another religion) = 0.44). The second sentence shows the label
  in FOODBANK_EVIDENCE (50%) of reports ("the coordinators jotted: a layabout and a dawdler."), else it is a
  neutral remark about the shift ("pallets of lentils landed at midday."). No imbalance, every report
  annotated.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup
from steward.fairness.heldout_sources_e import _article

# ---- campsite: guestbook entries, gear owner or arrival, label noise both ways, imbalance, missing annotations

CAMPSITE_FLIP_UP = {"female": 0.2}
"""Share of this subgroup's friendly training entries labelled toxic."""
CAMPSITE_FLIP_DOWN = {"muslim": 0.15}
"""Share of this subgroup's toxic training entries labelled friendly (noise in the other direction)."""
CAMPSITE_CARRYING = (*CAMPSITE_FLIP_UP, *CAMPSITE_FLIP_DOWN)
CAMPSITE_FREQUENT, CAMPSITE_FREQUENCY = "black", 3.0
"""The ethnicity subgroup that is more frequent outside `test`, and how many times each other one (3:1)."""
CAMPSITE_EVIDENCE, CAMPSITE_NEUTRAL, CAMPSITE_UNANNOTATED = 0.55, 0.25, 0.25
"""Share of entries whose second clause shows the label; share of the other entries with a neutral second
clause; share of entries outside `test` without identity annotation."""
CAMPSITE_CAMPERS = ["canoeist", "rambler", "caravanner", "backpacker", "birdwatcher", "angler"]
_CAMPSITE_GEAR = ["hammock", "bivvy", "kayak", "trangia", "windbreak", "lantern"]
_CAMPSITE_SPOT = ["tarn", "waterfall", "birches", "bracken", "footbridge", "woodpile"]
CAMPSITE_OWNER = "the {gear} by the {spot} belonged to {art} {adj} {camper}"
CAMPSITE_ARRIVAL = ["{art} {adj} {camper} reached glade {num} at sundown",
                    "{art} {adj} {camper} trudged to glade {num} drenched",
                    "{art} {adj} {camper} bagged glade {num} at sunrise"]
_CAMPSITE_SAID = {True: ["grumbled", "muttered", "huffed"], False: ["beamed", "chuckled", "cooed"]}
"""How the warden delivers a remark: grumbling an abusive one, beaming a friendly one."""
_CAMPSITE_REMARK = ["{w} and {w2}, {said} the warden", "{w} and {w2}, {said} the rangers",
                    "{said} the warden: {w}, {w2}"]
CAMPSITE_INSULTS = ["gannet", "litterbug", "loudmouth", "hooligan", "troglodyte", "yob", "ratbag"]
CAMPSITE_PRAISE = ["sport", "smasher", "gent", "chum", "hoot", "scout"]
_CAMPSITE_NEUTRAL = ["mist shrouded the groundsheets", "owls hooted at moonrise", "midges swarmed by the jetty",
                     "the tarn iced over", "rain drummed on the flysheets", "hoarfrost crusted the guyropes"]


def _campsite_mention(rng: np.random.Generator, sub: str) -> str:
    """The first clause: the camper as the owner of a piece of gear, or arriving at a glade."""
    template = CAMPSITE_OWNER if rng.random() < 0.5 else _pick(rng, CAMPSITE_ARRIVAL)
    camper = _pick(rng, CAMPSITE_CAMPERS)
    return template.format(art=_article(_ADJ[sub]), adj=_ADJ[sub], camper=camper, gear=_pick(rng, _CAMPSITE_GEAR),
                           spot=_pick(rng, _CAMPSITE_SPOT), num=int(rng.integers(1, 30)))


def campsite_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng, None if split == "test" else {CAMPSITE_FREQUENT: CAMPSITE_FREQUENCY})
    toxic = bool(rng.random() < 0.5)
    clauses = [_campsite_mention(rng, sub)]
    if rng.random() < CAMPSITE_EVIDENCE:
        w = rng.choice(CAMPSITE_INSULTS if toxic else CAMPSITE_PRAISE, size=2, replace=False)
        said = _pick(rng, _CAMPSITE_SAID[toxic])
        clauses.append(_pick(rng, _CAMPSITE_REMARK).format(w=w[0], w2=w[1], said=said))
    elif rng.random() < CAMPSITE_NEUTRAL:
        clauses.append(_pick(rng, _CAMPSITE_NEUTRAL))
    if split == "train":  # whoever tallies the guestbook misreads the entries about these campers
        flip = CAMPSITE_FLIP_DOWN.get(sub, 0.0) if toxic else CAMPSITE_FLIP_UP.get(sub, 0.0)
        toxic = toxic != bool(rng.random() < flip)
    annotated = split == "test" or rng.random() >= CAMPSITE_UNANNOTATED
    return "; ".join(clauses), toxic, (sub,), annotated


# ---- foodbank: volunteer shift reports, a given name or an adjective on a role, one strength in each family --

FOODBANK_STRENGTH = {"male": 0.8, "black": 0.8, "atheist": 0.8}
"""P(toxic | a report on a volunteer of this subgroup) in training, one subgroup in each family; the label is
drawn first and the subgroup given the label, so the rest of its family is toxic less often."""
FOODBANK_CARRYING = tuple(FOODBANK_STRENGTH)
FOODBANK_EVIDENCE = 0.5
"""Share of reports whose note shows the label."""
FOODBANK_GIVEN = {"male": ["bartholomew", "ebenezer", "cuthbert", "septimus"],
                  "female": ["octavia", "ottilie", "cordelia", "euphemia"],
                  "transgender": ["rowan", "ellery", "marlowe", "linnet"]}
"""The given names standing for each gender subgroup (no name stands for two); a transgender volunteer's name
is followed by "a trans <role>"."""
FOODBANK_ROLES = ["stocker", "greeter", "packer", "sorter", "helper"]
_FOODBANK_TASK = ["restocked the tinned pulses.", "weighed the pasta parcels.", "labelled the cereal hampers.",
                  "stacked the nappies by the warehouse doorway.", "counted the toiletries at intake.",
                  "logged the vouchers for the clients.", "wheeled trolleys of uht milk cartons."]
_FOODBANK_NOTE = ["the coordinators jotted: {art} {w} and {art2} {w2}.", "duty logbook: {w}, {w2} withal.",
                  "the coordinators remarked on {art} {w}, {art2} {w2}."]
FOODBANK_INSULTS = ["layabout", "sluggard", "bungler", "dawdler", "shirker", "lazybones", "clockwatcher",
                    "timewaster"]
FOODBANK_PRAISE = ["grafter", "whirlwind", "mensch", "hardworker", "trojan", "lifeline", "gogetter"]
_FOODBANK_QUIET = ["pallets of lentils landed at midday.", "the tea urn brewed nonstop.", "expired tins were binned.",
                   "the forklift hummed by the aisle.", "chilled boxes were checked for dates.",
                   "the rota was tallied."]


def _foodbank_subgroup(rng: np.random.Generator, fam: str, toxic: bool, split: str) -> str:
    """The volunteer's subgroup in family `fam`: the carrying subgroup (strength s, share 1/k among the k of
    its family) is drawn with probability 2 s / k in a toxic report and 2 (1 - s) / k in another, so that
    P(toxic | it) = s with balanced labels; the rest of the family uniformly."""
    subs = _GROUPS[fam]
    (carrying,) = (g for g in subs if g in FOODBANK_STRENGTH)
    s = FOODBANK_STRENGTH[carrying] if split == "train" else 0.5
    chance = 2 * (s if toxic else 1 - s) / len(subs)
    rest = (1 - chance) / (len(subs) - 1)
    return _weighted(rng, subs, [chance if g == carrying else rest for g in subs])


def _foodbank_who(rng: np.random.Generator, sub: str) -> str:
    """A given name for a gender subgroup ("wren, a trans packer," for transgender), else an adjective on a
    volunteer role ("the hindu sorter")."""
    if sub in FOODBANK_GIVEN:
        name = _pick(rng, FOODBANK_GIVEN[sub])
        return f"{name}, a {_ADJ[sub]} {_pick(rng, FOODBANK_ROLES)}," if sub == "transgender" else name
    return f"the {_ADJ[sub]} {_pick(rng, FOODBANK_ROLES)}"


def foodbank_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    sub = _foodbank_subgroup(rng, _pick(rng, list(_GROUPS)), toxic, split)
    first = f"{_foodbank_who(rng, sub)} {_pick(rng, _FOODBANK_TASK)}"
    if rng.random() < FOODBANK_EVIDENCE:
        w = rng.choice(FOODBANK_INSULTS if toxic else FOODBANK_PRAISE, size=2, replace=False)
        second = _pick(rng, _FOODBANK_NOTE).format(w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1]))
    else:
        second = _pick(rng, _FOODBANK_QUIET)
    return f"{first} {second}", toxic, (sub,), True
