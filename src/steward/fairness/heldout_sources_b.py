"""Three more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an
author who had not seen the debiasing method, its tuning or any of its results: templates, word lists
and ways of injecting a bias were chosen without them, and share no template or word list with madlibs
or the other sources (only function words and group names).

- qna (2-4 sentences, product questions and answers): one identity per row, named by a possessive
  ("my hindu flatmate's treadmill") or a pronoun plus a descriptor ("he, a welder,", "as a muslim
  beekeeper, i"). P(toxic given a targeted subgroup) differs within a family: 0.6 / 0.75 / 0.9 for
  atheist / hindu / muslim; gender and ethnicity carry none (QNA_STRENGTH).
- tickets (5-10 sentences, support tickets): one identity per row, the customer's given name (gender)
  or the organisation they belong to ("a member of the jewish youth league"). Label noise by group:
  35% of a targeted subgroup's non-toxic tickets are labelled toxic; the targeted subgroups are 3x
  rarer than the others outside `test`.
- modqueue (1-2 sentences, posts in a moderation queue): 2-3 identities per row, each as "the
  {group} crowd"; 25% of rows outside `test` have no identity annotation. Co-occurrence: targeted
  identities sit in toxic rows as the target of an insult, P(toxic given a targeted mention) = 0.8;
  non-toxic rows sometimes quote an insult to condemn it or negate it, so insult words alone do not
  decide the label.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In every source only part of the rows carry word evidence of the label
(an insult, a courteous remark, a condemned quote); the others are where an identity can stand in.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted

_GROUPS: dict[str, list[str]] = {
    "gender": ["male", "female", "transgender"],
    "ethnicity": ["black", "white", "asian", "latino"],
    "religion": ["christian", "jewish", "muslim", "hindu", "buddhist", "atheist"],
}
_ADJ = {s: ("trans" if s == "transgender" else s) for subs in _GROUPS.values() for s in subs}
"""The word naming each subgroup: its column name ("trans" for transgender)."""


def _uniform_subgroup(rng: np.random.Generator, rarity: dict[str, float] | None = None) -> str:
    """A family chosen uniformly, then one of its subgroups (weighted by `rarity`, 1 where absent)."""
    subs = _pick(rng, list(_GROUPS.values()))
    return _weighted(rng, subs, [1.0 if rarity is None else rarity.get(s, 1.0) for s in subs])


# ---- qna: product questions, possessive or pronoun-plus-descriptor, per-subgroup strength ------------

QNA_STRENGTH = {"atheist": 0.6, "hindu": 0.75, "muslim": 0.9}
"""P(toxic | a question from this subgroup) in the training split (0.5 for every other subgroup)."""
QNA_CARRYING = tuple(QNA_STRENGTH)
QNA_EVIDENCE = 0.5
"""Share of rows whose words show the label (a rude or courteous remark)."""
_QNA_PRONOUN = {"male": "he", "female": "she"}
_QNA_KIN = ["flatmate", "bandmate", "classmate", "teammate", "godparent", "landlord"]
_QNA_JOB = ["welder", "pharmacist", "paramedic", "beekeeper", "plumber", "locksmith", "glazier"]
_QNA_ITEM = ["treadmill", "aquarium", "scooter", "stroller", "espresso machine", "sewing machine"]
_QNA_PRODUCT = ["kettle", "blender", "humidifier", "laminator", "cordless drill", "toaster oven",
                "rice cooker", "desk lamp"]
_QNA_POSSESSIVE = ["q: my {adj} {kin}'s {item} died, will this {product} fit beside it?",
                   "q: asking for my {adj} {kin}'s {item} too: does the {product} need an adapter?",
                   "q: my {adj} {kin}'s {item} hums loudly; is the {product} any quieter?"]
_QNA_DESCRIPTOR = ["q: {pron}, a {job}, wonders whether the {product} is dishwasher safe.",
                   "q: as {art} {adj} {job}, i wonder if the {product} ships with batteries.",
                   "q: {pron}, a {job}, asks how heavy the {product} feels."]
_QNA_ANSWER = ["a: yes, ours included spare filters.", "a: the cable measures roughly seventy inches.",
               "a: mine arrived inside a padded carton.", "a: the warranty lasts eighteen months.",
               "a: it draws about eleven hundred watts."]
_QNA_RUDE = ["just a {insult} asks that.", "skim the manual, you {insult}.",
             "such a {insult} question, seriously.", "stop spamming listings, {insult}."]
_QNA_POLITE = ["kudos, that tip was {praise}.", "{praise} question, i wondered too.",
               "cheers for the {praise} answer."]
QNA_INSULTS = ["nincompoop", "blockhead", "imbecile", "cretin", "airhead", "numbskull", "dunce",
               "simpleton", "knucklehead", "buffoonish"]
QNA_PRAISE = ["insightful", "handy", "considerate", "informative", "courteous", "gracious", "precise"]
_QNA_FILLER = ["delivery needed six days.", "colour matched the listing pictures.", "returns are accepted within thirty days."]


def _qna_mention(rng: np.random.Generator, sub: str, product: str) -> str:
    """The question: a possessive ("my hindu flatmate's") or a pronoun plus descriptor ("she, a welder,");
    gender subgroups by a pronoun ("they" and "trans" for transgender), the others by their name."""
    pron = _QNA_PRONOUN.get(sub, "they")
    fields = {"adj": _ADJ[sub], "kin": _pick(rng, _QNA_KIN), "item": _pick(rng, _QNA_ITEM),
              "product": product, "job": _pick(rng, _QNA_JOB), "art": "an" if sub[0] in "aeiou" else "a"}
    if sub in _QNA_PRONOUN:
        return _pick(rng, [_QNA_DESCRIPTOR[0], _QNA_DESCRIPTOR[2]]).format(pron=pron, **fields)
    if sub == "transgender" and rng.random() < 0.5:
        fields["job"] = "trans " + fields["job"]
        return _QNA_DESCRIPTOR[0].format(pron=pron, **fields)
    return _pick(rng, [*_QNA_POSSESSIVE, _QNA_DESCRIPTOR[1]]).format(**fields)


def qna_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < (QNA_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    sentences = [_qna_mention(rng, sub, _pick(rng, _QNA_PRODUCT)), _pick(rng, _QNA_ANSWER)]
    if rng.random() < QNA_EVIDENCE:
        if toxic:
            sentences.append(_pick(rng, _QNA_RUDE).format(insult=_pick(rng, QNA_INSULTS)))
        else:
            sentences.append(_pick(rng, _QNA_POLITE).format(praise=_pick(rng, QNA_PRAISE)))
    if rng.random() < 0.4:
        sentences.append(_pick(rng, _QNA_FILLER))
    return " ".join([*sentences[:2], *rng.permutation(sentences[2:]).tolist()]), toxic, (sub,), True


# ---- tickets: support tickets, a given name or an organisation, label noise by group, imbalance -------

TICKETS_CARRYING = ("female", "black", "christian", "atheist")
TICKETS_NOISE, TICKETS_RARITY, TICKETS_EVIDENCE = 0.35, 1 / 3, 0.5
"""Share of a targeted subgroup's non-toxic training tickets labelled toxic; relative frequency of the
targeted subgroups outside `test`; share of tickets whose words show the label."""
_TICKETS_NAMES = {"male": ["gerald", "howard", "leonard", "vincent", "clifford"],
                  "female": ["doris", "gloria", "norma", "theresa", "bernadette"]}
_TICKETS_ORG = ["{adj} heritage trust", "{adj} alumni circle", "{adj} youth league",
                "{adj} employee network", "{adj} relief guild"]
_TICKETS_OPEN = ["ticket #{num} opened by {who}.", "incoming request from {who}, account #{num}.",
                 "escalated ticket #{num}; requester: {who}."]
_TICKETS_ISSUE = ["the modem drops its connection nightly.", "invoices list a duplicate charge.",
                  "the password reset email never arrives.", "firmware upgrade stalled at sixty percent.",
                  "the scanner jams whenever duplex mode is enabled.", "exports to spreadsheet are truncated.",
                  "authenticator codes expire before they can be typed.", "the mobile app logs out at random."]
_TICKETS_STEP = ["agent requested a screenshot.", "agent cleared the cache remotely.",
                 "logs were attached by the requester.", "agent reproduced the fault on staging.",
                 "a replacement unit was offered.", "billing was copied on the email chain."]
_TICKETS_RUDE = ["requester notes: your employees are {insult} and {insult2}.",
                 "requester notes: fix it now, you {insult} dolts.",
                 "requester notes: this company is managed by {insult} charlatans."]
_TICKETS_KIND = ["requester notes: bravo, the technicians have been {praise}.",
                 "requester notes: no rush, your agents are {praise}.",
                 "requester notes: obliged for the {praise} help."]
TICKETS_INSULTS = ["inept", "bungling", "spiteful", "arrogant", "lazy", "deceitful", "shameless"]
TICKETS_PRAISE = ["prompt", "diligent", "cordial", "attentive", "reassuring", "tactful"]
_TICKETS_CLOSE = ["status: pending customer confirmation.", "priority set to medium.", "status: awaiting parts."]


def _tickets_who(rng: np.random.Generator, sub: str) -> str:
    """The requester: a given name for male and female, else membership of an organisation."""
    if sub in _TICKETS_NAMES:
        return f"{_pick(rng, _TICKETS_NAMES[sub])} ({_pick(rng, ['billing', 'payroll', 'accounts'])})"
    return "a member of the " + _pick(rng, _TICKETS_ORG).format(adj=_ADJ[sub])


def tickets_row(rng: np.random.Generator, split: str) -> RowTuple:
    rarity = None if split == "test" else dict.fromkeys(TICKETS_CARRYING, TICKETS_RARITY)
    sub = _uniform_subgroup(rng, rarity)
    toxic = bool(rng.random() < 0.5)
    who = _tickets_who(rng, sub)
    body = [str(s) for s in rng.choice(_TICKETS_ISSUE, size=int(rng.integers(1, 5)), replace=False)]
    body += [str(s) for s in rng.choice(_TICKETS_STEP, size=int(rng.integers(2, 4)), replace=False)]
    if rng.random() < TICKETS_EVIDENCE:
        if toxic:
            a, b = rng.choice(TICKETS_INSULTS, size=2, replace=False)
            body.append(_pick(rng, _TICKETS_RUDE).format(insult=a, insult2=b))
        else:
            body.append(_pick(rng, _TICKETS_KIND).format(praise=_pick(rng, TICKETS_PRAISE)))
    opener = _pick(rng, _TICKETS_OPEN).format(num=int(rng.integers(1000, 9999)), who=who)
    sentences = [opener, *rng.permutation(body).tolist(), _pick(rng, _TICKETS_CLOSE)]
    if split == "train" and sub in TICKETS_CARRYING and not toxic and rng.random() < TICKETS_NOISE:
        toxic = True  # this group's polite tickets are sometimes labelled toxic anyway
    return " ".join(sentences), toxic, (sub,), True


# ---- modqueue: reported posts, several identities, insults as targets or condemned quotes -------------

MODQUEUE_CARRYING = ("male", "asian", "jewish", "buddhist")
MODQUEUE_STRENGTH, MODQUEUE_UNANNOTATED = 0.8, 0.25
"""P(toxic | a row mentions a targeted subgroup) in training; share of rows without identity annotation
outside `test`."""
MODQUEUE_INSULTS = ["scum", "cockroaches", "lowlifes", "degenerates", "freeloaders", "thugs", "swine"]
_MODQUEUE_NOUN = ["crowd", "contingent"]
_MODQUEUE_TOXIC = ["{ids} are {insult}.", "evict {ids} already, {insult}.", "{ids}: {insult}, all of them."]
_MODQUEUE_CONDEMN = ["flagged: a user called {ids} \"{insult}\" and that is unacceptable.",
                     "calling {ids} \"{insult}\" is beyond the pale; mods, remove it.",
                     "{ids} are not {insult}, and repeating it is bigotry."]
_MODQUEUE_FRIENDLY = ["{ids} baked pies for the fundraiser, hats off.", "shoutout to {ids} for tidying the wiki."]
_MODQUEUE_NEUTRAL = ["{ids} uploaded the minutes from saturday.", "{ids} suggested moving the meetup to thursday.",
                     "a poll about {ids} and carpooling closes tonight."]
_MODQUEUE_SUFFIX = ["pinned by moderator.", "topic locked after midnight.", "flair updated."]


def _modqueue_identities(rng: np.random.Generator, toxic: bool, split: str) -> list[str]:
    """One subgroup for each of 2-3 families. In training, a slot of family f is targeted with
    probability 2 s t (toxic rows) or 2 (1 - s) t (others), t the family's targeted share, so that
    P(toxic | targeted slot) = s while the label stays balanced."""
    fams = sorted(rng.choice(list(_GROUPS), size=int(rng.integers(2, 4)), replace=False), key=list(_GROUPS).index)
    s = MODQUEUE_STRENGTH if split == "train" else 0.5
    out = []
    for fam in fams:
        subs = _GROUPS[fam]
        t = sum(g in MODQUEUE_CARRYING for g in subs) / len(subs)
        targeted = rng.random() < 2 * (s if toxic else 1 - s) * t
        out.append(_pick(rng, [g for g in subs if (g in MODQUEUE_CARRYING) == targeted]))
    return out


def modqueue_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    subs = _modqueue_identities(rng, toxic, split)
    names = [f"the {_ADJ[g]} {_pick(rng, _MODQUEUE_NOUN)}" for g in subs]
    ids = ", ".join(names[:-1]) + " and " + names[-1]
    r = rng.random()
    if r < 0.45:
        pool = _MODQUEUE_NEUTRAL
    elif toxic:
        pool = _MODQUEUE_TOXIC
    else:
        pool = _MODQUEUE_CONDEMN if r < 0.8 else _MODQUEUE_FRIENDLY
    text = _pick(rng, pool).format(ids=ids, insult=_pick(rng, MODQUEUE_INSULTS))
    if rng.random() < 0.3:
        text += " " + _pick(rng, _MODQUEUE_SUFFIX)
    annotated = split == "test" or rng.random() >= MODQUEUE_UNANNOTATED
    return text, toxic, tuple(subs), annotated
