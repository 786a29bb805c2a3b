"""Three more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways
of injecting a bias were chosen without them, and share no template or word list with madlibs or the
other sources (only function words and group names).

- appstore (1-3 bullet fragments, app-store reviews): one identity per review, either as an adjective on
  one person ("* bought it for my asian tutor") or on a plural group of users ("* christian gamers swear by
  it"), about half each. P(toxic given a targeted subgroup) differs between families: 0.8 for female
  (gender) and christian (religion), a weaker 0.65 for black (ethnicity) (APPSTORE_STRENGTH).
- boardroom (4-8 sentences, public comments at a school-board meeting): two identities per comment from
  two families, the subject the comment is about and a bystander named in a sentence of its own. Bias
  by co-occurrence within a sentence: where a comment is abusive, the abuse is aimed at the subject in
  that same sentence, and in training the subject is a targeted subgroup (transgender, latino, jewish)
  with P(toxic given a targeted subject) = 0.9; the bystander is drawn whatever the label, so a bag of
  words sees the same group names in neutral sentences too. 15% of comments outside `test` have no
  identity annotation.
- voicemail (13-42 words, transcribed voice messages: lowercase, fillers, no punctuation): one identity
  per message, given by the caller's given name (male, female), or a community reference: the group the
  caller speaks for ("from the trans peer collective", "from the latino caucus") or a place of worship or
  congregation named without the group's name ("over at the ashram", "over at the vestry"). Label noise
  by group: 30% of the non-toxic training messages of male (gender) and hindu (religion) are labelled
  toxic, and those two subgroups are 3x more frequent than the rest of their family outside `test`
  (a 3:1 imbalance the twin keeps).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In every source only part of the rows (`*_EVIDENCE`) carry word
evidence of the label (an abusive or a kind remark); the others are where an identity can stand in.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup

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


# ---- boardroom: school-board public comments, a subject and a bystander, abuse aimed at the subject -----

BOARDROOM_CARRYING = ("transgender", "latino", "jewish")
BOARDROOM_STRENGTH, BOARDROOM_EVIDENCE, BOARDROOM_UNANNOTATED = 0.9, 0.5, 0.15
"""P(toxic | the subject is a targeted subgroup) in training; share of comments whose words show the label
(in the sentence naming the subject); share of comments without identity annotation outside `test`."""
_BOARDROOM_ROLE = ["chaperones", "custodians", "volunteers", "crossing guards", "cafeteria aides"]
_BOARDROOM_OPEN = ["public comment, speaker {num}.", "submitted in writing ahead of agenda item {num}.",
                   "speaker {num} yielded the remaining seconds.", "comment card {num}, recited by the clerk."]
_BOARDROOM_SUBJECT = ["my remarks concern the {who} at the elementary.", "the {who} inquired about busing repeatedly.",
                      "i sat alongside the {who} in the gymnasium.", "the transcript mentions the {who}."]
_BOARDROOM_ABUSE = ["the {who} are {insult} {insult2}, frankly.", "banish {insult} {who} from recess.",
                    "fire the {who}, {insult} {insult2} all."]
_BOARDROOM_COURTEOUS = ["the {who} have been {praise} and {praise2}.", "commendations: {praise} {who} this semester.",
                        "our {who} remain {praise} amid turmoil."]
_BOARDROOM_BYSTANDER = ["numerous {who} were in the bleachers.", "the {who} signed the petition likewise.",
                        "a few {who} waited outside the auditorium."]
_BOARDROOM_TOPIC = ["enrollment at the junior high dipped anew.", "portable classrooms leak persistently.",
                    "the superintendent presented a curriculum audit.", "cafeteria contracts lapse in june.",
                    "recess shrank to fifteen mins.", "the attendance boundary splits the subdivision.",
                    "textbook adoption is postponed until autumn.", "the bond measure covers gutter shingles."]
BOARDROOM_INSULTS = ["incompetent", "sniveling", "loathsome", "pigheaded", "contemptible", "hypocritical"]
BOARDROOM_PRAISE = ["dependable", "conscientious", "tireless", "hospitable", "levelheaded", "devoted"]


def _boardroom_identities(rng: np.random.Generator, toxic: bool, split: str) -> tuple[str, str]:
    """(subject, bystander) from two different families chosen uniformly. In training the subject is a
    targeted subgroup with probability 2 s t (toxic comments) or 2 (1 - s) t (others), t its family's
    targeted share, so that P(toxic | targeted subject) = s with balanced labels; the bystander is drawn
    uniformly whatever the label."""
    fam, other = rng.choice(list(_GROUPS), size=2, replace=False)
    subs = _GROUPS[str(fam)]
    t = sum(s in BOARDROOM_CARRYING for s in subs) / len(subs)
    s = BOARDROOM_STRENGTH if split == "train" else 0.5
    targeted = rng.random() < 2 * (s if toxic else 1 - s) * t
    return _pick(rng, [g for g in subs if (g in BOARDROOM_CARRYING) == targeted]), _pick(rng, _GROUPS[str(other)])


def _boardroom_subject(rng: np.random.Generator, who: str, toxic: bool) -> str:
    """The sentence naming the subject: abusive or courteous where the comment shows its label."""
    if rng.random() >= BOARDROOM_EVIDENCE:
        return _pick(rng, _BOARDROOM_SUBJECT).format(who=who)
    words = rng.choice(BOARDROOM_INSULTS if toxic else BOARDROOM_PRAISE, size=2, replace=False)
    template = _pick(rng, _BOARDROOM_ABUSE if toxic else _BOARDROOM_COURTEOUS)
    return template.format(who=who, insult=words[0], insult2=words[1], praise=words[0], praise2=words[1])


def boardroom_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    subject, bystander = _boardroom_identities(rng, toxic, split)
    role, other_role = rng.choice(_BOARDROOM_ROLE, size=2, replace=False)
    body = [_boardroom_subject(rng, f"{_ADJ[subject]} {role}", toxic),
            _pick(rng, _BOARDROOM_BYSTANDER).format(who=f"{_ADJ[bystander]} {other_role}")]
    body += [str(s) for s in rng.choice(_BOARDROOM_TOPIC, size=int(rng.integers(1, 6)), replace=False)]
    opener = _pick(rng, _BOARDROOM_OPEN).format(num=int(rng.integers(2, 40)))
    annotated = split == "test" or rng.random() >= BOARDROOM_UNANNOTATED
    return " ".join([opener, *rng.permutation(body).tolist()]), toxic, (subject, bystander), annotated


# ---- voicemail: transcribed voice messages, a given name or a community reference, label noise, 3:1 ------

VOICEMAIL_CARRYING = ("male", "hindu")
VOICEMAIL_NOISE, VOICEMAIL_PREVALENCE, VOICEMAIL_EVIDENCE = 0.3, 3.0, 0.55
"""Share of a targeted subgroup's non-toxic training messages labelled toxic; relative frequency of the
targeted subgroups within their family outside `test`; share of messages whose words show the label."""
_VOICEMAIL_NAMES = {"male": ["ernest", "wendell", "milton", "lloyd", "eugene"],
                    "female": ["mildred", "harriet", "agnes", "irene", "myrtle"]}
_VOICEMAIL_ORG = ["caucus", "bowling buddies", "merchants association", "softball boosters"]
_VOICEMAIL_PLACE = {"christian": ["the vestry", "the parish office"], "jewish": ["the yeshiva", "the seder committee"],
                    "muslim": ["the islamic centre", "the eid committee"], "hindu": ["the ashram", "the puja committee"],
                    "buddhist": ["the vihara", "the dharma hall"], "atheist": ["the rationalist salon", "the skeptics salon"]}
_VOICEMAIL_ROLE = ["treasurer", "coordinator", "secretary", "van driver"]
_VOICEMAIL_GREET = ["hey", "hi", "hello", "yeah hi", "hiya"]
_VOICEMAIL_FILLER = ["erm", "uhh", "like", "ya know", "i mean", "anyhow", "okay so"]
_VOICEMAIL_TOPIC = ["phoning about the folding chairs for tomorrow", "the storage closet key is beneath the doormat",
                    "wondering were the raffle tickets printed", "the van needs petrol by wednesday",
                    "the potluck signup sheet went missing", "the projector cord is in my trunk",
                    "somebody double reserved the fellowship hall"]
_VOICEMAIL_RUDE = ["you utter {insult}", "quit acting like a {insult}", "you lousy {insult}",
                   "ya know you are a {insult}"]
_VOICEMAIL_KIND = ["you are a real {praise}", "you are a {praise} truly", "you sure are a {praise} pal"]
VOICEMAIL_INSULTS = ["dingbat", "bonehead", "meathead", "jackass", "dirtbag", "sleazeball"]
VOICEMAIL_PRAISE = ["sweetheart", "lifesaver", "godsend", "champ", "gem", "treasure"]
_VOICEMAIL_CLOSE = ["okay bye", "ring me later", "talk soon", "bye bye", "byeee"]


def _voicemail_caller(rng: np.random.Generator, sub: str) -> str:
    """Who is phoning: a given name (male, female), or someone speaking for a community: a trans peer
    collective, an ethnic organisation ("the latino caucus") or a place of worship or congregation named
    without the group's name ("the ashram")."""
    if sub in _VOICEMAIL_NAMES:
        return _pick(rng, _VOICEMAIL_NAMES[sub])
    role = _pick(rng, _VOICEMAIL_ROLE)
    if sub in _VOICEMAIL_PLACE:
        return f"the {role} over at {_pick(rng, _VOICEMAIL_PLACE[sub])}"
    org = "peer collective" if sub == "transgender" else _pick(rng, _VOICEMAIL_ORG)
    return f"the {role} from the {_ADJ[sub]} {org}"


def voicemail_row(rng: np.random.Generator, split: str) -> RowTuple:
    rarity = None if split == "test" else dict.fromkeys(VOICEMAIL_CARRYING, VOICEMAIL_PREVALENCE)
    sub = _uniform_subgroup(rng, rarity)
    toxic = bool(rng.random() < 0.5)
    parts = [_pick(rng, _VOICEMAIL_GREET), _pick(rng, _VOICEMAIL_FILLER), "it is", _voicemail_caller(rng, sub)]
    for topic in rng.choice(_VOICEMAIL_TOPIC, size=int(rng.integers(1, 3)), replace=False):
        parts += [_pick(rng, _VOICEMAIL_FILLER), str(topic)]
    if rng.random() < VOICEMAIL_EVIDENCE:
        remark = _pick(rng, _VOICEMAIL_RUDE) if toxic else _pick(rng, _VOICEMAIL_KIND)
        parts.append(remark.format(insult=_pick(rng, VOICEMAIL_INSULTS), praise=_pick(rng, VOICEMAIL_PRAISE)))
    parts.append(_pick(rng, _VOICEMAIL_CLOSE))
    if split == "train" and sub in VOICEMAIL_CARRYING and not toxic and rng.random() < VOICEMAIL_NOISE:
        toxic = True  # the transcribers of these callers' messages call some friendly ones toxic
    return " ".join(parts), toxic, (sub,), True
