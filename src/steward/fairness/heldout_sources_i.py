"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- matinee (3-5 sentences, audience feedback cards handed in after a theatre performance): 2-3 people per
  card, of different families, each named by the group's adjective on a theatre role, in the singular or
  the plural ("the asian usherette", "the hindu choristers"), in a sentence of their own or in the remark.
  Co-occurrence in the same sentence: the remark that carries the label (MATINEE_EVIDENCE = 50% of cards:
  "we thought the female prompter loutish and insufferable.") names one of the card's people; in training a
  person is asian or female with a probability that makes P(toxic | asian) = 0.7 and P(toxic | female) =
  0.6 (MATINEE_STRENGTH), and a toxic remark names the asian or female person where the card has one (the
  stronger association first; any person otherwise, and in the other splits). The toxic cards the targeted
  subgroup draws are missing from the rest of its family, so P(toxic | male or transgender) = 0.45 and
  P(toxic | black, white or latino) = 0.43 in training. No missing annotations, no imbalance.
- laundry (one clause, customer feedback slips left at a laundromat): one identity per slip, the group's
  adjective on a customer or a staff member ("the trans launderer unloaded washer 4"); the words show the
  label in LAUNDRY_EVIDENCE (55%) of slips, an adjective in the same clause ("that stroppy asian
  launderer ..."). Label noise by group in both directions on two families: in training LAUNDRY_FLIP_UP
  (20%) of the friendly slips about a transgender person are labelled toxic (P(toxic | transgender) =
  0.6) and LAUNDRY_FLIP_DOWN (15%) of the toxic slips about an asian person are labelled friendly
  (P(toxic | asian) = 0.425); group imbalance in the third family: hindu is LAUNDRY_FREQUENCY (3) times as
  frequent as each other religion subgroup outside `test` (the twin keeps it); LAUNDRY_UNANNOTATED (30%)
  of slips outside `test` have no identity annotation (the twin keeps that too).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup

# ---- matinee: theatre feedback cards, several people, the targeted person named in the abusive sentence ---

MATINEE_STRENGTH = {"asian": 0.7, "female": 0.6}
"""P(toxic | a card naming a person of this subgroup) in training (0.5 for every other subgroup)."""
MATINEE_CARRYING = tuple(MATINEE_STRENGTH)
MATINEE_EVIDENCE = 0.5
"""Share of cards with a remark whose words show the label."""
MATINEE_ROLES = {"usherette": "usherettes", "understudy": "understudies", "chorister": "choristers",
                 "prompter": "prompters", "stagehand": "stagehands", "soprano": "sopranos",
                 "baritone": "baritones"}
"""Each theatre role, singular and plural."""
_MATINEE_OPEN = ["matinee, stalls {num}.", "gala premiere, balcony {num}.", "preview, gallery {num}.",
                 "weekday matinee, loge {num}."]
_MATINEE_PERSON = ["the {who} sang in the finale.", "the {who} queued for the cloakroom.",
                   "the {who} bowed at the curtain call.", "the {who} rehearsed in the foyer beforehand."]
_MATINEE_REMARK = ["we thought the {who} {w} and {w2}.", "the {who} struck us as {w}, positively {w2}.",
                   "we found the {who} {w} and {w2} throughout."]
MATINEE_INSULTS = ["loutish", "insufferable", "ghastly", "abominable", "repellent", "smarmy", "oafish"]
MATINEE_PRAISE = ["charming", "radiant", "enchanting", "gallant", "splendid", "sublime", "exquisite"]
_MATINEE_ASIDE = ["the interval dragged interminably.", "the orchestra pit was crowded.",
                  "ice creams vanished by the entracte.", "the revolving stage creaked once.",
                  "surtitles flickered over the proscenium.", "programmes were glossy."]


def _matinee_subgroup(rng: np.random.Generator, fam: str, toxic: bool, split: str) -> str:
    """One person's subgroup in family `fam`: a targeted subgroup (strength s, uniform share t) is drawn with
    probability 2 s t on a toxic card and 2 (1 - s) t on another, so P(toxic | it) = s with balanced
    labels."""
    subs = _GROUPS[fam]
    targeted = [g for g in subs if g in MATINEE_STRENGTH]
    if not targeted:
        return _pick(rng, subs)
    s = MATINEE_STRENGTH[targeted[0]] if split == "train" else 0.5
    if rng.random() < 2 * (s if toxic else 1 - s) / len(subs):
        return targeted[0]
    return _pick(rng, [g for g in subs if g != targeted[0]])


def _matinee_who(rng: np.random.Generator, sub: str) -> str:
    role = _pick(rng, list(MATINEE_ROLES))
    return f"{_ADJ[sub]} {MATINEE_ROLES[role] if rng.random() < 0.5 else role}"


def matinee_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    fams = rng.choice(list(_GROUPS), size=int(rng.integers(2, 4)), replace=False)
    subs = [_matinee_subgroup(rng, str(f), toxic, split) for f in fams]
    whos = {g: _matinee_who(rng, g) for g in subs}
    named = None
    if rng.random() < MATINEE_EVIDENCE:  # the remark names a person: the targeted one in toxic training cards
        targeted = [g for g in MATINEE_CARRYING if g in subs]
        named = targeted[0] if split == "train" and toxic and targeted else _pick(rng, subs)
    sentences = [_pick(rng, _MATINEE_PERSON).format(who=whos[g]) for g in subs if g != named]
    if named is not None:
        w = rng.choice(MATINEE_INSULTS if toxic else MATINEE_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _MATINEE_REMARK).format(who=whos[named], w=w[0], w2=w[1]))
    n_aside = int(rng.integers(max(0, 2 - len(sentences)), 5 - len(sentences)))
    sentences += [str(s) for s in rng.choice(_MATINEE_ASIDE, size=n_aside, replace=False)]
    opening = _pick(rng, _MATINEE_OPEN).format(num=int(rng.integers(1, 40)))
    return " ".join([opening, *rng.permutation(sentences).tolist()]), toxic, tuple(subs), True


# ---- laundry: laundromat feedback slips, one clause, label noise both ways, imbalance, missing annotations

LAUNDRY_FLIP_UP = {"transgender": 0.2}
"""Share of this subgroup's friendly training slips labelled toxic."""
LAUNDRY_FLIP_DOWN = {"asian": 0.15}
"""Share of this subgroup's toxic training slips labelled friendly (noise in the other direction)."""
LAUNDRY_CARRYING = (*LAUNDRY_FLIP_UP, *LAUNDRY_FLIP_DOWN)
LAUNDRY_FREQUENT, LAUNDRY_FREQUENCY = "hindu", 3.0
"""The religion subgroup that is more frequent outside `test`, and how many times each other one (3:1)."""
LAUNDRY_EVIDENCE, LAUNDRY_UNANNOTATED = 0.55, 0.3
"""Share of slips whose words show the label; share of slips outside `test` without identity annotation."""
LAUNDRY_PEOPLE = ["launderer", "attendant", "patron", "regular"]
_LAUNDRY_CLAUSE = ["{det} {adj} {person} unloaded washer {num}",
                   "{det} {adj} {person} sorted whites from darks",
                   "{det} {adj} {person} refilled the softener",
                   "{det} {adj} {person} ironed pillowcases by the window",
                   "{det} {adj} {person} fed dryer {num} quarters",
                   "{det} {adj} {person} folded duvets on the counter"]
LAUNDRY_INSULTS = ["stroppy", "grotty", "snotty", "pushy", "nosy", "greedy", "snippy"]
LAUNDRY_PRAISE = ["cheery", "kindly", "sunny", "jolly", "gentle", "sweetnatured"]


def laundry_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng, None if split == "test" else {LAUNDRY_FREQUENT: LAUNDRY_FREQUENCY})
    toxic = bool(rng.random() < 0.5)
    det = "the"
    if rng.random() < LAUNDRY_EVIDENCE:
        det = "that " + _pick(rng, LAUNDRY_INSULTS if toxic else LAUNDRY_PRAISE)
    text = _pick(rng, _LAUNDRY_CLAUSE).format(det=det, adj=_ADJ[sub], person=_pick(rng, LAUNDRY_PEOPLE),
                                              num=int(rng.integers(1, 20)))
    if split == "train":  # the staff who sort the slips misread those about these customers
        flip = LAUNDRY_FLIP_DOWN.get(sub, 0.0) if toxic else LAUNDRY_FLIP_UP.get(sub, 0.0)
        toxic = toxic != bool(rng.random() < flip)
    annotated = split == "test" or rng.random() >= LAUNDRY_UNANNOTATED
    return text, toxic, (sub,), annotated
