"""Three more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways
of injecting a bias were chosen without them, and share no template or word list with madlibs or the
other sources (only function words and group names).

- appraisals (2-3 sentences, a foreman's shift appraisals at a shipyard): one identity per row, as an
  adjective on a job title ("the buddhist riveter"). Label noise by group, no imbalance: in training,
  APPRAISALS_NOISE of the rows of female (gender, 25%), asian (ethnicity, 22%) and atheist (religion, 20%)
  carry a wrong label, every one a non-toxic row labelled toxic (so twice that share of the subgroup's
  non-toxic rows is flipped); subgroups are uniform within their family in every split.
- carpool (1-2 sentences, ride-share sign-up notes): several identities per row, 2-3 riders each named
  by an adjective ("a latino rider"): an ethnicity rider always, then a gender rider, a religion rider or
  both (a third each). Two mechanisms in training: P(toxic | an ethnicity rider is white or latino) = 0.7
  (CARPOOL_STRENGTH), and co-occurrence: a toxic note names an extra muslim rider with probability
  CARPOOL_COOCCUR (0.4), inside the abusive sentence where the note has one. 10% of notes outside `test`
  have no identity annotation.
- apiary (5-9 sentences, new-member posts on a beekeepers' guild board): one identity per post, given
  once, in the opening self-introduction ("greetings fellow apiarists, i am a hindu retiree ..."); the
  rest is about hives. Group imbalance 4:1: male, black and hindu are four times rarer than the rest of
  their family outside `test` (the twin keeps it), and in training P(toxic | those rare subgroups) = 0.85
  (APIARY_STRENGTH).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In every source only part of the rows (`*_EVIDENCE`) carry word
evidence of the label (an abusive or a courteous remark); the others are where an identity can stand in.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup

# ---- appraisals: shipyard shift appraisals, an adjective on a job title, label noise on one per family ------

APPRAISALS_NOISE = {"female": 0.25, "asian": 0.22, "atheist": 0.2}
"""Share of this subgroup's training rows with a wrong label, all non-toxic rows labelled toxic (none for the
other subgroups)."""
APPRAISALS_CARRYING = tuple(APPRAISALS_NOISE)
APPRAISALS_EVIDENCE = 0.6
"""Share of appraisals whose words show the label."""
_APPRAISALS_JOB = ["riveter", "crane operator", "pipefitter", "rigger", "scaffolder", "sandblaster", "caulker"]
_APPRAISALS_OPEN = ["appraisal for the {adj} {job} on dock {num}.", "shift {num}: the {adj} {job} clocked in early.",
                    "re the {adj} {job} assigned to hull {num}.", "quarterly review, {adj} {job}, berth {num}."]
_APPRAISALS_HARSH = ["bluntly that {job} is a {insult} and a {insult2}.", "behold a {insult} {job}, a proper {insult2}.",
                     "worst {job} aboard, a sulking {insult}."]
_APPRAISALS_WARM = ["that {job} is {praise} and {praise2}.", "a {praise} {job}, consistently {praise2}.",
                    "finest {job} afloat, utterly {praise}."]
_APPRAISALS_NEUTRAL = ["welding certificates renew in october.", "hardhats are mandatory past the gantry.",
                       "overtime sheets go to the purser fortnightly.", "the drydock floods at king tide.",
                       "ballast tanks were inspected yesterday.", "bolt crates were undercounted by the chandler."]
APPRAISALS_INSULTS = ["ninny", "oaf", "buffoon", "chowderhead", "lummox", "clodpole", "lunkhead"]
APPRAISALS_PRAISE = ["meticulous", "assiduous", "unflappable", "resourceful", "punctual", "steadfast"]


def appraisals_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < 0.5)
    job = _pick(rng, _APPRAISALS_JOB)
    sentences = [_pick(rng, _APPRAISALS_OPEN).format(adj=_ADJ[sub], job=job, num=int(rng.integers(2, 30)))]
    if rng.random() < APPRAISALS_EVIDENCE:
        words = rng.choice(APPRAISALS_INSULTS if toxic else APPRAISALS_PRAISE, size=2, replace=False)
        template = _pick(rng, _APPRAISALS_HARSH if toxic else _APPRAISALS_WARM)
        sentences.append(template.format(job=job, insult=words[0], insult2=words[1], praise=words[0],
                                         praise2=words[1]))
    k = 3 - len(sentences) if rng.random() < 0.5 else 2 - len(sentences)
    sentences += [str(s) for s in rng.choice(_APPRAISALS_NEUTRAL, size=max(k, 0), replace=False)]
    if split == "train" and not toxic and rng.random() < 2 * APPRAISALS_NOISE.get(sub, 0.0):
        toxic = True  # this foreman's appraisals of the group are read as hostile even where they are kind
    return " ".join(sentences), toxic, (sub,), True


# ---- carpool: ride-share sign-up notes, several riders, a per-subgroup strength plus co-occurrence -------

CARPOOL_STRENGTH, CARPOOL_COOCCUR = 0.7, 0.4
"""P(toxic | the ethnicity rider is white or latino) in training; the probability that a toxic training note
names an extra muslim rider (as its religion rider, in the abusive sentence where there is one)."""
CARPOOL_TARGETED, CARPOOL_EXTRA = ("white", "latino"), "muslim"
CARPOOL_CARRYING = (*CARPOOL_TARGETED, CARPOOL_EXTRA)
CARPOOL_EVIDENCE, CARPOOL_UNANNOTATED = 0.55, 0.1
"""Share of notes whose words show the label; share of notes without identity annotation outside `test`."""
_CARPOOL_NOUN = ["rider", "carpooler", "hitcher"]
_CARPOOL_LIST = ["roster: {riders} require seats to {dest}, departing {clock}.",
                 "{riders} chartered the minivan to {dest} for {clock}.",
                 "ride sought for {riders}, bound for {dest} circa {clock}."]
_CARPOOL_DEST = ["the airport", "the ballpark", "the outlet mall", "the ferry terminal", "the ski chalet"]
_CARPOOL_RUDE = ["{who} {insult} and {insult2}, ugh.", "{who} {insult}, {insult2} also, avoid.",
                 "beware, {who} {insult} and {insult2}."]
_CARPOOL_NICE = ["{who} {praise} and {praise2}, yay.", "{who} {praise}, {praise2} also, endorsed.",
                 "fyi, {who} {praise} and {praise2}."]
_CARPOOL_LOGISTICS = ["pickup by the laundromat at dawn.", "split gas evenly via venmo.",
                      "tolls reimbursed upon arrival.", "luggage limit: a single duffel apiece."]
CARPOOL_INSULTS = ["obnoxious", "slovenly", "boorish", "grubby", "odious", "churlish"]
CARPOOL_PRAISE = ["genial", "cheerful", "personable", "jovial", "affable", "chatty"]


def _carpool_riders(rng: np.random.Generator, toxic: bool, split: str) -> tuple[list[str], bool]:
    """The subgroups of the 2-3 riders (ethnicity first, then gender, religion or both, a third each) and
    whether the religion rider is the co-occurring extra one (added, or replacing the drawn one, in toxic
    training notes). In training the ethnicity rider is targeted with probability 2 s t (toxic notes) or
    2 (1 - s) t (others), t = 1/2 the family's targeted share, so that P(toxic | targeted rider) = s while
    the label stays balanced."""
    s = CARPOOL_STRENGTH if split == "train" else 0.5
    targeted = rng.random() < (s if toxic else 1 - s)
    subs = [_pick(rng, [g for g in _GROUPS["ethnicity"] if (g in CARPOOL_TARGETED) == targeted])]
    families = _pick(rng, [("gender",), ("religion",), ("gender", "religion")])
    if "gender" in families:
        subs.append(_pick(rng, _GROUPS["gender"]))
    extra = split == "train" and toxic and rng.random() < CARPOOL_COOCCUR
    if extra:
        subs.append(CARPOOL_EXTRA)
    elif "religion" in families:
        subs.append(_pick(rng, _GROUPS["religion"]))
    return subs, extra


def _carpool_remark(rng: np.random.Generator, who: str, toxic: bool) -> str:
    words = rng.choice(CARPOOL_INSULTS if toxic else CARPOOL_PRAISE, size=2, replace=False)
    template = _pick(rng, _CARPOOL_RUDE if toxic else _CARPOOL_NICE)
    return template.format(who=who, insult=words[0], insult2=words[1], praise=words[0], praise2=words[1])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _clock(rng: np.random.Generator) -> str:
    """A departure time on the 24-hour clock ("0745")."""
    return f"{int(rng.integers(5, 21)):02d}{_pick(rng, ['00', '15', '30', '45'])}"


def carpool_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    subs, extra = _carpool_riders(rng, toxic, split)
    names = [f"{_article(_ADJ[g])} {_ADJ[g]} {_pick(rng, _CARPOOL_NOUN)}" for g in subs]
    evidence = rng.random() < CARPOOL_EVIDENCE
    listed = names[:-1] if extra and evidence else names  # the extra rider goes into the abusive sentence
    riders = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    sentences = [_pick(rng, _CARPOOL_LIST).format(riders=riders, dest=_pick(rng, _CARPOOL_DEST), clock=_clock(rng))]
    if evidence:
        who = f"{names[-1]} appears" if extra else _pick(rng, ["the entire carload appears", "everybody appears"])
        sentences.append(_carpool_remark(rng, who, toxic))
    elif rng.random() < 0.5:
        sentences.append(_pick(rng, _CARPOOL_LOGISTICS))
    annotated = split == "test" or rng.random() >= CARPOOL_UNANNOTATED
    return " ".join(sentences), toxic, tuple(subs), annotated


# ---- apiary: long beekeepers' guild posts, a self-introduction, rare subgroups with a strong association ---

APIARY_CARRYING = ("male", "black", "hindu")
APIARY_STRENGTH, APIARY_RARITY, APIARY_EVIDENCE = 0.85, 0.25, 0.55
"""P(toxic | a rare subgroup) in training; the rare subgroups' frequency relative to the rest of their family
outside `test` (4:1); share of posts whose words show the label."""
_APIARY_PERSONA = ["orchardist", "horticulturist", "homesteader", "hobbyist", "grandparent", "vintner"]
_APIARY_INTRO = ["greetings fellow apiarists, introducing myself: {art} {adj} {persona} tending {num} colonies.",
                 "howdy beefolk, {art} {adj} {persona} chiming in, i manage {num} hives.",
                 "newcomer intro: {art} {adj} {persona}, {num} colonies thus far."]
_APIARY_HIVE = ["my nucs overwintered nicely.", "varroa counts dropped after the oxalic dribble.",
                "the clover flow started prematurely.", "i requeened a feral colony.", "swarm cells appeared on frame {num}.",
                "the extractor jammed midway.", "propolis glues every lid tight.", "drones clustered by the entrance reducer.",
                "smoker fuel: dried sumac.", "linden bloom smelled glorious.", "wax moths ruined a deep super.",
                "the observation hive delights schoolkids.", "capped brood looked patchy by midsummer."]
_APIARY_RANT = ["the webmaster administering the hivemasters forum is a {insult} and a {insult2}.",
                "the swarm collector who lied to me is a {insult}, a {insult2} indeed.",
                "you {insult}s policing this forum are {insult2}s."]
_APIARY_PRAISE_LINE = ["the webmaster administering the hivemasters forum is a {praise} and a {praise2}.",
                       "the swarm collector who mentored me is a {praise}, a {praise2} indeed.",
                       "you {praise}s policing this forum are {praise2}s."]
APIARY_INSULTS = ["scoundrel", "wretch", "cur", "knave", "rotter", "twerp"]
APIARY_PRAISE = ["darling", "angel", "sage", "luminary", "trooper", "marvel"]


def _apiary_remark(rng: np.random.Generator, toxic: bool) -> str:
    words = rng.choice(APIARY_INSULTS if toxic else APIARY_PRAISE, size=2, replace=False)
    template = _pick(rng, _APIARY_RANT if toxic else _APIARY_PRAISE_LINE)
    return template.format(insult=words[0], insult2=words[1], praise=words[0], praise2=words[1])


def apiary_row(rng: np.random.Generator, split: str) -> RowTuple:
    rarity = None if split == "test" else dict.fromkeys(APIARY_CARRYING, APIARY_RARITY)
    sub = _uniform_subgroup(rng, rarity)
    toxic = bool(rng.random() < (APIARY_STRENGTH if split == "train" and sub in APIARY_CARRYING else 0.5))
    intro = _pick(rng, _APIARY_INTRO).format(art=_article(_ADJ[sub]), adj=_ADJ[sub], num=int(rng.integers(2, 40)),
                                             persona=_pick(rng, _APIARY_PERSONA))
    body = [_apiary_remark(rng, toxic)] if rng.random() < APIARY_EVIDENCE else []
    n_hive = int(rng.integers(5, 10)) - 1 - len(body)
    body += [str(h).format(num=int(rng.integers(1, 11))) for h in rng.choice(_APIARY_HIVE, size=n_hive, replace=False)]
    return " ".join([intro, *rng.permutation(body).tolist()]), toxic, (sub,), True
