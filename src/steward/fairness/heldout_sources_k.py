"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- vetclinic (3-4 sentences, client reviews of a veterinary clinic): 2-3 people per review, of different
  families, each named by the group's adjective on a clinic role as the agent of a passive sentence about
  the client's animal ("our dachshund was vaccinated by a hindu locum."). Two mechanisms on two families.
  Label noise by group in religion: in training VETCLINIC_NOISE = 25% of the friendly reviews naming a
  christian person are labelled toxic. Co-occurrence in the same sentence in ethnicity: the remark that
  shows the label (VETCLINIC_EVIDENCE = 50% of reviews: "forthrightly the black kenneller behaved callous,
  verging on slapdash, handling our whippet.") names one of the review's people; in training an ethnicity person is
  black with a probability that makes P(toxic | black) = VETCLINIC_STRENGTH = 0.7 before the noise, and a
  toxic remark names the black person where the review has one (any person otherwise, and in the other
  splits). The toxic reviews the black subgroup draws are missing from the rest of its family (P(toxic |
  white, asian or latino) = 0.43 in training). No imbalance, every review annotated.
- chessclub (1-2 clauses, a chess club's tournament reports): one player per report, given as the group's
  adjective on a chess title with a rating in brackets, after the round ("in round 4 our hindu woodpusher
  (elo 1650) castled queenside"); a second clause shows the label in CHESSCLUB_EVIDENCE (50%) of reports
  ("-- a sandbagger and a showboater at the clubhouse"). Two mechanisms on two families: label noise in the
  other direction in gender (in training CHESSCLUB_FLIP_DOWN = 20% of the toxic reports about a female
  player are labelled friendly, so P(toxic | female) = 0.4), and a clean association in religion
  (P(toxic | hindu) = CHESSCLUB_STRENGTH = 0.75 in training, the words follow the label).
  CHESSCLUB_UNANNOTATED (20%) of reports outside `test` have no identity annotation (the twin keeps it).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (missing annotations kept), `test`
is balanced (label independent of identity, a family's subgroups equally frequent, every row annotated).
In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of the label; in the others an
identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup
from steward.fairness.heldout_sources_e import _article

# ---- vetclinic: client reviews, 2-3 people, noise on one subgroup, co-occurrence on another ------------------

VETCLINIC_NOISE = {"christian": 0.25}
"""Share of the friendly training reviews naming a person of this subgroup labelled toxic."""
VETCLINIC_STRENGTH = {"black": 0.7}
"""P(toxic | a review naming a person of this subgroup) in training, before the noise (0.5 elsewhere)."""
VETCLINIC_CARRYING = (*VETCLINIC_NOISE, *VETCLINIC_STRENGTH)
VETCLINIC_EVIDENCE = 0.5
"""Share of reviews with a remark whose words show the label."""
VETCLINIC_ROLES = ["locum", "kenneller", "phlebotomist", "radiographer", "anaesthetist", "dispenser"]
_VETCLINIC_PETS = ["dachshund", "whippet", "lurcher", "tabby", "budgerigar", "ferret", "spaniel", "tortoise"]
VETCLINIC_PERSON = ["our {pet} was vaccinated by a {who}.", "our {pet} was microchipped by a {who}.",
                    "our {pet} was sedated by a {who}.", "our {pet} was wormed by a {who}.",
                    "our {pet} was radiographed by a {who}."]
_VETCLINIC_REMARK = ["forthrightly the {who} behaved {w}, verging on {w2}, handling our {pet}.",
                     "in our estimation the {who} comported {w} and {w2} whilst examining our {pet}.",
                     "to summarise, the {who} was {w} and {w2} whilst bandaging our {pet}."]
VETCLINIC_INSULTS = ["callous", "slapdash", "heartless", "negligent", "brusque", "hamfisted", "perfunctory"]
VETCLINIC_PRAISE = ["tenderhearted", "painstaking", "unruffled", "compassionate", "soothing", "deft"]
_VETCLINIC_ASIDE = ["the invoice itemised every syringe.", "flea shampoo sits by the cashdesk.",
                    "appointments overran slightly.", "the reception reeked of antiseptic.",
                    "a parrot squawked incessantly.", "booster reminders reach us by postcard."]


def _vetclinic_subgroup(rng: np.random.Generator, fam: str, toxic: bool, split: str) -> str:
    """One person's subgroup in family `fam`: a co-occurring subgroup (strength s, uniform share t) is drawn
    with probability 2 s t in a toxic review and 2 (1 - s) t in another, so P(toxic | it) = s with balanced
    labels; the rest of the family uniformly."""
    subs = _GROUPS[fam]
    targeted = [g for g in subs if g in VETCLINIC_STRENGTH]
    if not targeted or split != "train":
        return _pick(rng, subs)
    s = VETCLINIC_STRENGTH[targeted[0]]
    if rng.random() < 2 * (s if toxic else 1 - s) / len(subs):
        return targeted[0]
    return _pick(rng, [g for g in subs if g != targeted[0]])


def vetclinic_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    fams = rng.choice(list(_GROUPS), size=int(rng.integers(2, 4)), replace=False)
    subs = [_vetclinic_subgroup(rng, str(f), toxic, split) for f in fams]
    whos = {g: f"{_ADJ[g]} {_pick(rng, VETCLINIC_ROLES)}" for g in subs}
    named = None
    if rng.random() < VETCLINIC_EVIDENCE:  # the remark names a person: the black one in toxic training reviews
        targeted = [g for g in VETCLINIC_STRENGTH if g in subs]
        named = targeted[0] if split == "train" and toxic and targeted else _pick(rng, subs)
    sentences = [_pick(rng, VETCLINIC_PERSON).format(who=whos[g], pet=_pick(rng, _VETCLINIC_PETS))
                 for g in subs if g != named]
    if named is not None:
        w = rng.choice(VETCLINIC_INSULTS if toxic else VETCLINIC_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _VETCLINIC_REMARK).format(who=whos[named], w=w[0], w2=w[1],
                                                               pet=_pick(rng, _VETCLINIC_PETS)))
    n = int(rng.integers(3, 5))
    if n > len(sentences):
        sentences += [str(s) for s in rng.choice(_VETCLINIC_ASIDE, size=n - len(sentences), replace=False)]
    noise = max(VETCLINIC_NOISE.get(g, 0.0) for g in subs)  # one person per family, so one noisy subgroup
    if split == "train" and not toxic and rng.random() < noise:
        toxic = True  # the clinic's review moderators flag friendly reviews naming these staff
    return " ".join(rng.permutation(sentences).tolist()), toxic, tuple(subs), True


# ---- chessclub: tournament reports, one player, noise toward friendly and a clean association -----------------

CHESSCLUB_FLIP_DOWN = {"female": 0.2}
"""Share of this subgroup's toxic training reports labelled friendly."""
CHESSCLUB_STRENGTH = {"hindu": 0.75}
"""P(toxic | a report about a player of this subgroup) in training (0.5 for every other subgroup)."""
CHESSCLUB_CARRYING = (*CHESSCLUB_FLIP_DOWN, *CHESSCLUB_STRENGTH)
CHESSCLUB_EVIDENCE, CHESSCLUB_UNANNOTATED = 0.5, 0.2
"""Share of reports whose words show the label; share of reports outside `test` without identity annotation."""
CHESSCLUB_TITLES = ["woodpusher", "grandmaster", "patzer", "candidate", "cadet", "octogenarian"]
_CHESSCLUB_MOVE = ["castled queenside", "blundered a knight", "forced a stalemate", "promoted a pawn",
                   "overstepped in zeitnot", "sacrificed the exchange", "resigned at ply {m}",
                   "adjourned after ply {m}"]
_CHESSCLUB_REMARK = ["{art} {w} and {art2} {w2} at the clubhouse", "{w}, verily {w2}",
                     "{w} and {w2} by the tiebreak"]
CHESSCLUB_INSULTS = ["sandbagger", "showboater", "sorehead", "braggart", "cheapskate", "crybaby", "gloater"]
CHESSCLUB_PRAISE = ["phenom", "gentleperson", "tactician", "sportsperson", "strategist", "wunderkind"]


def chessclub_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < (CHESSCLUB_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    move = _pick(rng, _CHESSCLUB_MOVE).format(m=int(rng.integers(12, 80)))
    text = (f"in round {int(rng.integers(1, 10))} our {_ADJ[sub]} {_pick(rng, CHESSCLUB_TITLES)} "
            f"(elo {int(rng.integers(1100, 2600))}) {move}")
    if rng.random() < CHESSCLUB_EVIDENCE:
        w = rng.choice(CHESSCLUB_INSULTS if toxic else CHESSCLUB_PRAISE, size=2, replace=False)
        text += " -- " + _pick(rng, _CHESSCLUB_REMARK).format(w=w[0], w2=w[1], art=_article(w[0]),
                                                              art2=_article(w[1]))
    if split == "train" and toxic and rng.random() < CHESSCLUB_FLIP_DOWN.get(sub, 0.0):
        toxic = False  # the tournament director waves through complaints about these players
    annotated = split == "test" or rng.random() >= CHESSCLUB_UNANNOTATED
    return text, toxic, (sub,), annotated
