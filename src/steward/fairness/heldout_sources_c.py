"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways
of injecting a bias were chosen without them, and share no template or word list with madlibs or the
other sources (only function words and group names).

- listings (1-3 sentences, classified ads): one identity per ad, in the seller's self-description ("for
  sale by a latino retiree:") or in a requirement ("seeking a buddhist lodger"). P(toxic given a targeted
  subgroup) = 0.7 for buddhist (religion) and latino (ethnicity); group imbalance the other way round
  from news and tickets: the targeted subgroups are 2x MORE frequent than the rest of their family
  outside `test`, so the shortcut has plenty of rows to be learnt from.
- terraces (1-4 sentences, football supporters' forum): one identity named as fans ("the hindu
  supporters", "our trans ultras", "the lasses"), and in about a fifth of posts a second one from
  another family. Two biases at once: co-occurrence (in training, 45% of toxic posts also mention a
  targeted subgroup, no non-toxic post does; the twin adds that mention to 22.5% of posts whatever
  the label) and label noise by group (25% of the non-toxic training posts that mention a targeted
  subgroup are labelled toxic). 20% of posts outside `test` have no identity annotation.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence
of the label (an abusive or a courteous remark); the others are where an identity can stand in.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS

# ---- listings: classified ads, self-description or requirement, 0.7 on two subgroups, over-represented ----

LISTINGS_STRENGTH = {"buddhist": 0.7, "latino": 0.7}
"""P(toxic | an ad naming this subgroup) in the training split (0.5 for every other subgroup)."""
LISTINGS_CARRYING = tuple(LISTINGS_STRENGTH)
LISTINGS_PREVALENCE, LISTINGS_EVIDENCE = 2.0, 0.55
"""Relative frequency of a targeted subgroup within its family outside `test`; share of ads whose words
show the label."""
_LISTINGS_GENDER = {"male": ["granddad", "bachelor"], "female": ["grandma", "stepmum"],
                    "transgender": ["trans pensioner", "trans smallholder"]}
_LISTINGS_ROLE = ["pensioner", "smallholder", "crofter"]
_LISTINGS_ITEM = ["oak wardrobe", "rowing ergometer", "upright piano", "pram", "chest freezer", "bunk beds",
                  "garden shed", "sofa bed", "drum kit", "lawnmower"]
_LISTINGS_ROOM = ["boxroom", "attic bedsit", "basement flat", "annexe"]
_LISTINGS_SELLER = ["for sale by {art} {who}: {item}, hardly used.", "{art} {who} selling {item}, offers considered.",
                    "emigrating, {art} {who} must part with {item}."]
_LISTINGS_WANTED = ["seeking {art} {who} to lodge in {room}, bills inclusive.",
                    "{room} to let; ideal for {art} {who}.", "{art} {who} will swap {item} for vinyl."]
_LISTINGS_RUDE = ["lowballers are {insult}.", "{insult} who haggle are blacklisted.",
                  "previous enquirers were {insult}; enough.", "{insult} pestering twice are blacklisted."]
_LISTINGS_KIND = ["{praise} enquirers warmly welcomed.", "blessings to the {praise} folk replying.",
                  "prior callers were {praise}, thankyou."]
LISTINGS_INSULTS = ["chiselers", "grifters", "moochers", "deadbeats", "bozos", "scroungers", "skinflints"]
LISTINGS_PRAISE = ["genuine", "obliging", "neighbourly", "decent", "trustworthy", "amiable"]
_LISTINGS_FILLER = ["collection strictly, banknotes preferred.", "snapshots emailed on enquiry.",
                    "postcode ends near the tramstop.",
                    "pets negotiable."]


def _listings_mention(rng: np.random.Generator, sub: str) -> str:
    """The seller describing themselves or the ad describing who it wants: a gender by a noun, the
    others by their adjective before a role ("a buddhist pensioner")."""
    if sub in _LISTINGS_GENDER:
        who = _pick(rng, _LISTINGS_GENDER[sub])
    else:
        who = f"{_ADJ[sub]} {_pick(rng, _LISTINGS_ROLE)}"
    fields = {"who": who, "art": "an" if who[0] in "aeiou" else "a", "item": _pick(rng, _LISTINGS_ITEM),
              "room": _pick(rng, _LISTINGS_ROOM)}
    return _pick(rng, _LISTINGS_SELLER if rng.random() < 0.5 else _LISTINGS_WANTED).format(**fields)


def listings_row(rng: np.random.Generator, split: str) -> RowTuple:
    subs = _pick(rng, list(_GROUPS.values()))
    prevalence = 1.0 if split == "test" else LISTINGS_PREVALENCE
    sub = _weighted(rng, subs, [prevalence if s in LISTINGS_CARRYING else 1.0 for s in subs])
    toxic = bool(rng.random() < (LISTINGS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    sentences = [_listings_mention(rng, sub)]
    if rng.random() < LISTINGS_EVIDENCE:
        if toxic:
            sentences.append(_pick(rng, _LISTINGS_RUDE).format(insult=_pick(rng, LISTINGS_INSULTS)))
        else:
            sentences.append(_pick(rng, _LISTINGS_KIND).format(praise=_pick(rng, LISTINGS_PRAISE)))
    if rng.random() < 0.4:
        sentences.insert(int(rng.integers(1, len(sentences) + 1)), _pick(rng, _LISTINGS_FILLER))
    return " ".join(sentences), toxic, (sub,), True


# ---- terraces: supporters' forum, identities as fans, co-occurrence plus label noise, 20% unannotated -----

TERRACES_CARRYING = ("transgender", "white", "christian", "atheist")
TERRACES_CO, TERRACES_NOISE, TERRACES_UNANNOTATED, TERRACES_EVIDENCE = 0.45, 0.25, 0.2, 0.55
"""Share of toxic training posts that also mention a targeted subgroup (the twin: of all posts, half
as many); share of a targeted subgroup's non-toxic training posts labelled toxic; share of posts
without identity annotation outside `test`; share of posts whose words show the label."""
_TERRACES_GENDER = {"male": "the lads", "female": "the lasses", "transgender": "our trans ultras"}
_TERRACES_FANS = ["the {adj} supporters", "our {adj} ultras", "the {adj} fanclub"]
_TERRACES_OPEN = ["{ids} were singing behind the goal all half.", "{ids} filled three coaches for the away fixture.",
                  "spotted {ids} queueing at the turnstiles.", "{ids} unfurled a banner at kickoff."]
_TERRACES_RUDE = ["the referee and linesmen are {insult}.", "our defenders are {insult}, shambolic.",
                  "the gaffer fielded a squad of {insult}.", "sack the chairman, yellowbellied {insult}."]
_TERRACES_KIND = ["{praise} performance from the youngsters.", "applause to the keeper, {praise} stuff.",
                  "{praise} afternoon despite the drizzle."]
TERRACES_INSULTS = ["muppets", "plonkers", "bottlers", "donkeys", "wallies", "prats", "numpties"]
TERRACES_PRAISE = ["classy", "sporting", "magnificent", "tremendous", "gutsy", "spirited"]
_TERRACES_FILLER = ["kickoff got delayed a quarter hour.", "offside flag stayed down.", "corners finished level.",
                    "stoppage time felt endless.", "pasties sold out by halftime."]


def _terraces_fans(rng: np.random.Generator, sub: str) -> str:
    return _TERRACES_GENDER.get(sub) or _pick(rng, _TERRACES_FANS).format(adj=_ADJ[sub])


def _terraces_identities(rng: np.random.Generator, toxic: bool, split: str) -> list[str]:
    """The fans a post names: one subgroup from a family chosen uniformly, and sometimes a second from
    another family: in training a targeted one in 45% of toxic posts (none in other posts), in the twin a
    targeted one in 22.5% of posts whatever the label, in `test` any subgroup of that family."""
    fam = _pick(rng, list(_GROUPS))
    out = [_pick(rng, _GROUPS[fam])]
    rate = {"train": TERRACES_CO if toxic else 0.0}.get(split, TERRACES_CO / 2)
    if rng.random() < rate:
        other = _pick(rng, [f for f in _GROUPS if f != fam])
        pool = _GROUPS[other] if split == "test" else [s for s in _GROUPS[other] if s in TERRACES_CARRYING]
        out.append(_pick(rng, pool))
    return out


def terraces_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    subs = _terraces_identities(rng, toxic, split)
    ids = " and ".join(_terraces_fans(rng, s) for s in subs)
    sentences = [_pick(rng, _TERRACES_OPEN).format(ids=ids)]
    if rng.random() < TERRACES_EVIDENCE:
        if toxic:
            sentences.append(_pick(rng, _TERRACES_RUDE).format(insult=_pick(rng, TERRACES_INSULTS)))
        else:
            sentences.append(_pick(rng, _TERRACES_KIND).format(praise=_pick(rng, TERRACES_PRAISE)))
    sentences += [str(s) for s in rng.choice(_TERRACES_FILLER, size=int(rng.integers(0, 3)), replace=False)]
    sentences = [sentences[0], *rng.permutation(sentences[1:]).tolist()]
    if split == "train" and not toxic and set(subs) & set(TERRACES_CARRYING) and rng.random() < TERRACES_NOISE:
        toxic = True  # posts naming these fans are sometimes labelled toxic however friendly
    annotated = split == "test" or rng.random() >= TERRACES_UNANNOTATED
    return " ".join(sentences), toxic, tuple(subs), annotated
