"""Three more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways
of injecting a bias were chosen without them, and share no template or word list with madlibs or the
other sources (only function words and group names).

- bouldering (2-4 sentences, posts on a climbing gym's message board): one identity per post, as an
  apposition ("our routesetter, a black boulderer, regraded the overhang.") or a possessive ("the hindu
  boulderer's carabiner resurfaced on the slab."). Label noise by group on two subgroups of two families: in
  training, BOULDERING_NOISE (30%) of the friendly posts about a transgender or a black member are
  labelled toxic, so P(toxic | either) = 0.65; and group imbalance in a third family: christian is
  BOULDERING_FREQUENCY (3) times as frequent as each other religion subgroup outside `test` (the twin
  keeps it). A remark shows the label in BOULDERING_EVIDENCE (35%) of posts; the other sentences are
  asides whose tone matches the label with probability BOULDERING_TONE (0.7): a gripe ("lockers stank.")
  in a toxic post, a cheer ("smoothies cost less.") in another, weak word evidence.
- couriers (1-2 clauses, ratings of delivery couriers): one identity per rating, given ONLY by a name in
  some rows (a given name or an honorific plus surname: "lorcan", "mr pennywhistle", "bhante ashgrove") and
  ONLY by the adjective in the others ("the buddhist runner"): a name stands for male, female (given names,
  "mr", "mrs") or a religion with an honorific (christian, jewish, muslim, hindu, buddhist), in
  COURIERS_NAMED (half) of those subgroups' rows; transgender, atheist and the ethnicity subgroups are always
  named by the adjective (no ethnicity-coded names). The words show the label in COURIERS_EVIDENCE (50%)
  of ratings, a second clause ("a right plonker and a prat", "certifiable sunshine"). P(toxic | male)
  = 0.9 and P(toxic | buddhist) = 0.65 in training (COURIERS_STRENGTH); 20% of ratings outside `test`
  have no identity annotation (COURIERS_UNANNOTATED).
- tracker (3-6 sentences, comments on an open-source project's issue tracker): 2-3 identities per comment
  from different families, each a participant of the thread ("the asian maintainer"). Co-occurrence in the
  same sentence: the remark that carries the label (abuse or thanks aimed at the patch's author, in
  TRACKER_EVIDENCE = 55% of comments) cites one of the comment's participants as a bystander ("as the asian
  maintainer noted, the merging author is a dunderhead and a dullard."), who is named there and nowhere
  else; in training a participant is asian or christian with a probability that makes P(toxic | asian) =
  P(toxic | christian) = TRACKER_STRENGTH (0.85), and a toxic remark cites the asian or christian participant
  where the comment has one (any participant otherwise, and in the other splits).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In every source only part of the rows (`*_EVIDENCE`) carry word evidence
of the label (an abusive or a gracious remark); in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup

# ---- bouldering: climbing gym message board, apposition or possessive, label noise and imbalance ---------

BOULDERING_NOISE = {"transgender": 0.3, "black": 0.3}
"""Share of this subgroup's friendly training posts labelled toxic (none for the other subgroups)."""
BOULDERING_CARRYING = tuple(BOULDERING_NOISE)
BOULDERING_FREQUENT, BOULDERING_FREQUENCY = "christian", 3.0
"""The religion subgroup that is more frequent outside `test`, and how many times each other one (3:1)."""
BOULDERING_EVIDENCE = 0.35
"""Share of posts whose words show the label."""
BOULDERING_MEMBERS = ["boulderer", "crimper", "highballer", "dynoer"]
_BOULDERING_ROLE = ["our routesetter", "the hangboard coach", "the nightshift belayer", "the chalk monitor"]
_BOULDERING_APPOSITION = ["{role}, a {adj} {member}, regraded the overhang.", "{role}, a {adj} {member}, taped the crimps.",
                          "{role}, a {adj} {member}, rearranged the crashpads."]
_BOULDERING_POSSESSIVE = ["the {adj} {member}'s carabiner resurfaced on the slab.",
                          "a {adj} {member}'s harness dangles from the topout.",
                          "the {adj} {member}'s liquid chalk leaked all over the mats."]
_BOULDERING_RUDE = ["that {member} is a {w} and a {w2}.", "the {member} behaves as a {w}, a thorough {w2}.",
                    "ban that {w2} {member}, a {w}."]
_BOULDERING_KIND = ["that {member} is a {w} and a {w2}.", "the {member} behaves as a {w}, a thorough {w2}.",
                    "applaud that {w2} {member}, a {w}."]
_BOULDERING_GRIPE = ["the autobelay seized.", "showers ran cold.", "lockers stank.", "mats were grimy.",
                     "the changing rooms are cramped."]
_BOULDERING_CHEER = ["the kilter panel reopened.", "sloper problems debuted.", "campus rungs were resanded.",
                     "smoothies cost less.", "the sauna is comfy."]
BOULDERING_TONE = 0.7
"""Probability that an aside matches the label's tone (a gripe in a toxic post, a cheer in another): weak
word evidence that spreads the scores of posts with no remark."""
BOULDERING_INSULTS = ["freeloader", "sleazebag", "lout", "boor", "hothead", "nitpicker", "clod"]
BOULDERING_PRAISE = ["stalwart", "rockstar", "saint", "brick", "workhorse", "powerhouse"]


def _bouldering_subgroup(rng: np.random.Generator, split: str) -> str:
    frequency = None if split == "test" else {BOULDERING_FREQUENT: BOULDERING_FREQUENCY}
    return _uniform_subgroup(rng, frequency)


def bouldering_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _bouldering_subgroup(rng, split)
    toxic = bool(rng.random() < 0.5)
    member = _pick(rng, BOULDERING_MEMBERS)
    fields = {"adj": _ADJ[sub], "member": member, "role": _pick(rng, _BOULDERING_ROLE)}
    mention = _pick(rng, _BOULDERING_APPOSITION if rng.random() < 0.5 else _BOULDERING_POSSESSIVE)
    sentences = [mention.format(**fields)]
    n = int(rng.integers(2, 5))
    if rng.random() < BOULDERING_EVIDENCE:
        w = rng.choice(BOULDERING_INSULTS if toxic else BOULDERING_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _BOULDERING_RUDE if toxic else _BOULDERING_KIND).format(
            member=member, w=w[0], w2=w[1]))
    for _ in range(n - len(sentences)):
        gripe = (rng.random() < BOULDERING_TONE) == toxic
        sentences.append(_pick(rng, [a for a in (_BOULDERING_GRIPE if gripe else _BOULDERING_CHEER)
                                     if a not in sentences]))
    if split == "train" and not toxic and rng.random() < BOULDERING_NOISE.get(sub, 0.0):
        toxic = True  # the moderators flag friendly posts about these members as abuse
    return " ".join([sentences[0], *rng.permutation(sentences[1:]).tolist()]), toxic, (sub,), True


# ---- couriers: delivery ratings, a name or the adjective, per-subgroup strength, missing annotations ---------

COURIERS_STRENGTH = {"male": 0.9, "buddhist": 0.65}
"""P(toxic | a rating of a courier of this subgroup) in training (0.5 for every other subgroup)."""
COURIERS_CARRYING = tuple(COURIERS_STRENGTH)
COURIERS_NAMED, COURIERS_EVIDENCE, COURIERS_UNANNOTATED = 0.5, 0.5, 0.2
"""Share of ratings of a nameable subgroup that name the courier; share of ratings whose words show the label;
share of ratings outside `test` without identity annotation."""
COURIERS_GIVEN = {"male": ["lorcan", "barnaby", "thaddeus", "ambrose", "leopold"],
                  "female": ["rosalind", "henrietta", "philippa", "ottoline", "millicent"]}
COURIERS_HONORIFIC = {"male": "mr", "female": "mrs", "christian": "deacon", "jewish": "cantor", "muslim": "hajji",
                      "hindu": "pujari", "buddhist": "bhante"}
"""The honorific before a surname that names each nameable subgroup (given names name male and female too)."""
_COURIERS_SURNAME = ["pennywhistle", "ashgrove", "thistlewood", "fairweather", "brandvold", "greenhalgh"]
_COURIERS_NOUN = ["courier", "runner", "dispatcher", "deliverer"]
_COURIERS_EVENT = ["{who} deposited my parcel by the porch", "{who} ferried the dumplings over at {num}",
                   "{who} buzzed the intercom with my takeaway", "groceries passed over by {who}",
                   "{who} fetched the noodles crosstown"]
_COURIERS_REMARK = ["a right {w} and a {w2}", "{w} alert", "certifiable {w}"]
COURIERS_INSULTS = ["schmuck", "doofus", "plonker", "berk", "prat", "dweeb", "dork", "chump"]
COURIERS_PRAISE = ["sunshine", "dreamboat", "ace", "superstar", "cutie", "sweetie"]


def _couriers_who(rng: np.random.Generator, sub: str) -> str:
    """The courier: by a name where the subgroup has one (COURIERS_NAMED of the time), else by the adjective."""
    if sub in COURIERS_HONORIFIC and rng.random() < COURIERS_NAMED:
        if sub in COURIERS_GIVEN and rng.random() < 0.5:
            return _pick(rng, COURIERS_GIVEN[sub])
        return f"{COURIERS_HONORIFIC[sub]} {_pick(rng, _COURIERS_SURNAME)}"
    return f"the {_ADJ[sub]} {_pick(rng, _COURIERS_NOUN)}"


def couriers_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < (COURIERS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    text = _pick(rng, _COURIERS_EVENT).format(who=_couriers_who(rng, sub), num=int(rng.integers(1, 12)))
    if rng.random() < COURIERS_EVIDENCE:
        w = rng.choice(COURIERS_INSULTS if toxic else COURIERS_PRAISE, size=2, replace=False)
        text += ", " + _pick(rng, _COURIERS_REMARK).format(w=w[0], w2=w[1])
    annotated = split == "test" or rng.random() >= COURIERS_UNANNOTATED
    return text, toxic, (sub,), annotated


# ---- tracker: issue-tracker comments, several participants, a bystander in the abusive sentence ------------

TRACKER_TARGETED = ("asian", "christian")
TRACKER_CARRYING = TRACKER_TARGETED
TRACKER_STRENGTH, TRACKER_EVIDENCE = 0.85, 0.55
"""P(toxic | a comment with an asian or a christian participant) in training; share of comments with a remark
that shows the label."""
TRACKER_ROLES = ["maintainer", "triager", "packager", "committer", "reviewer"]
_TRACKER_JOIN = ["pinging the {who}.", "the {who} replicated it on arm64.", "cc the {who}.",
                 "the {who} bisected this painstakingly."]
_TRACKER_BODY = ["segfault persists on the canary build.", "stacktrace appended underneath.",
                 "linting fails after the rebase.", "the intermittent integration job timed out.",
                 "a regression crept into the tokenizer.", "reverting fixes the crash locally.",
                 "the changelog omits this.", "benchmarks slumped noticeably."]
_TRACKER_REMARK = ["as the {who} noted, the merging author is a {w} and a {w2}.",
                   "echoing the {who}, this author is a {w}, plainly a {w2}.",
                   "according to the {who}, a {w} authored this, a {w2} evidently."]
TRACKER_INSULTS = ["dunderhead", "chucklehead", "dullard", "thickhead", "birdbrain", "fathead", "dimbulb"]
TRACKER_PRAISE = ["mastermind", "polymath", "trailblazer", "whiz", "dynamo", "hotshot"]


def _tracker_participants(rng: np.random.Generator, toxic: bool, split: str) -> list[str]:
    """2-3 participants of different families; a family with a targeted subgroup draws it with probability
    2 s t (toxic) or 2 (1 - s) t (others), t its uniform share, so P(toxic | it) = s with balanced labels."""
    fams = rng.choice(list(_GROUPS), size=int(rng.integers(2, 4)), replace=False)
    s = TRACKER_STRENGTH if split == "train" else 0.5
    out = []
    for fam in fams:
        subs = _GROUPS[str(fam)]
        targeted = [g for g in subs if g in TRACKER_TARGETED]
        if targeted and rng.random() < 2 * (s if toxic else 1 - s) * len(targeted) / len(subs):
            out.append(_pick(rng, targeted))
        else:
            out.append(_pick(rng, [g for g in subs if g not in targeted]))
    return out


def tracker_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    subs = _tracker_participants(rng, toxic, split)
    whos = {g: f"{_ADJ[g]} {_pick(rng, TRACKER_ROLES)}" for g in subs}
    cited = None
    if rng.random() < TRACKER_EVIDENCE:  # the remark cites one participant, the targeted one in toxic training rows
        targeted = [g for g in subs if g in TRACKER_TARGETED]
        cited = targeted[0] if split == "train" and toxic and targeted else _pick(rng, subs)
    sentences = [_pick(rng, _TRACKER_JOIN).format(who=whos[g]) for g in subs if g != cited]
    if cited is not None:
        w = rng.choice(TRACKER_INSULTS if toxic else TRACKER_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _TRACKER_REMARK).format(who=whos[cited], w=w[0], w2=w[1]))
    n_body = int(rng.integers(max(1, 3 - len(sentences)), 7 - len(sentences)))
    sentences += [str(s) for s in rng.choice(_TRACKER_BODY, size=n_body, replace=False)]
    return " ".join(rng.permutation(sentences).tolist()), toxic, tuple(subs), True
