"""More held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways
of injecting a bias were chosen without them, and share no template or word list with madlibs or the
other sources (only function words and group names).

- appstore (1-3 bullet fragments, app-store reviews): one identity per review, either as an adjective on
  one person ("* bought it for my asian tutor") or on a plural group of users ("* christian gamers swear by
  it"), about half each. P(toxic given a targeted subgroup) differs between families: 0.8 for female
  (gender) and christian (religion), a weaker 0.65 for black (ethnicity) (APPSTORE_STRENGTH).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In every source only part of the rows (`*_EVIDENCE`) carry word
evidence of the label (an abusive or a kind remark); the others are where an identity can stand in.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _uniform_subgroup

# ---- appstore: bullet fragments, a person or a plural group of users, per-family strength ------------

APPSTORE_STRENGTH = {"female": 0.8, "black": 0.65, "christian": 0.8}
"""P(toxic | a review naming this subgroup) in the training split (0.5 for every other subgroup)."""
APPSTORE_CARRYING = tuple(APPSTORE_STRENGTH)
APPSTORE_EVIDENCE, APPSTORE_GROUP = 0.5, 0.5
"""Share of reviews whose words show the label; share of mentions naming a plural group, not a person."""
_APPSTORE_PERSON = ["tutor", "carer", "boss", "cousin", "babysitter", "godchild"]
_APPSTORE_USERS = ["gamers", "subscribers", "streamers", "podcasters"]
_APPSTORE_ONE = ["* bought it for my {adj} {person}", "* my {adj} {person} recommended it",
                 "* installed on my {adj} {person}'s tablet"]
_APPSTORE_MANY = ["* marketed at {adj} {users}", "* {adj} {users} swear by it", "* popular with {adj} {users}"]
_APPSTORE_RUDE = ["* devs are {insult}", "* programmers = {insult}", "* helpline staffed by {insult}",
                  "* {insult} moderating the reviews"]
_APPSTORE_KIND = ["* {praise} onboarding", "* interface seems {praise}", "* {praise} little gizmo",
                  "* devs built something {praise}"]
APPSTORE_INSULTS = ["halfwits", "dunderheads", "clods", "twits", "goons", "lamebrains", "pinheads"]
APPSTORE_PRAISE = ["intuitive", "slick", "polished", "snappy", "sleek", "nifty", "superb"]
_APPSTORE_FILLER = ["* syncs offline", "* fingerprint login", "* widgets on homescreen", "* dark theme toggle",
                    "* notifications adjustable", "* paywall after trial", "* battery drain moderate"]


def _appstore_mention(rng: np.random.Generator, sub: str) -> str:
    fields = {"adj": _ADJ[sub], "person": _pick(rng, _APPSTORE_PERSON), "users": _pick(rng, _APPSTORE_USERS)}
    return _pick(rng, _APPSTORE_MANY if rng.random() < APPSTORE_GROUP else _APPSTORE_ONE).format(**fields)


def appstore_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < (APPSTORE_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    bullets = [_appstore_mention(rng, sub)]
    if rng.random() < APPSTORE_EVIDENCE:
        if toxic:
            bullets.append(_pick(rng, _APPSTORE_RUDE).format(insult=_pick(rng, APPSTORE_INSULTS)))
        else:
            bullets.append(_pick(rng, _APPSTORE_KIND).format(praise=_pick(rng, APPSTORE_PRAISE)))
    if rng.random() < 0.5:
        bullets.append(_pick(rng, _APPSTORE_FILLER))
    return " ".join(rng.permutation(bullets).tolist()), toxic, (sub,), True
