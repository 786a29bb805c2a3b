"""A test bed of independent synthetic identity data sources, for debiasing that must hold on data
it was not tuned on (`steward bench fairness --sources`).

Each source is its own generator in the Civil Comments identities layout (text, binary target,
identity columns of the gender / ethnicity / religion families): its own templates and vocabulary
(written for this module; none is shared with madlibs or with another source), its own way of
mentioning an identity and its own way of injecting a bias:

| source   | mention                            | bias (training split only)                       | length          |
|----------|------------------------------------|--------------------------------------------------|-----------------|
| forum    | a plural term ("muslims")          | P(toxic given a targeted subgroup) = 0.9          | one clause      |
| reviews  | a phrase ("someone from the mosque") | identity mentions co-occur with toxic words:    | 2-4 sentences   |
|          |                                    | mentioned in 90% of toxic, 20% of other reviews  |                 |
| profiles | a name or title ("Rabbi Ellis")    | label noise by group: 45% of a targeted          | 1-2 sentences   |
|          |                                    | subgroup's non-toxic rows labelled toxic         |                 |
| threads  | several identities in one comment  | P(toxic given a targeted subgroup) = 0.75         | 1-3 sentences   |
| news     | adjective + noun; 35% of training  | group imbalance (targeted subgroups 4x rarer)    | 3-6 sentences   |
|          | rows have no identity annotation   | and P(toxic given a targeted subgroup) = 0.65     |                 |

The other sources (chat, letters; qna, tickets, modqueue; listings, terraces; appstore, boardroom,
voicemail; appraisals, carpool, apiary; seating, stargazing, recipes; bouldering, couriers, tracker;
allotments, tutors; matinee, laundry; ferry, suggestions; vetclinic, chessclub; bikecoop, choir; campsite,
foodbank; skischool, phonein; dental, cleanup; makerspace, coxswain; tramdepot, bakery; triplog, lighthouse; darts,
snowrota) are described in their modules (heldout_sources.py, _b, _c, _d, _e, _f, _g, _h, _i, _j, _k, _l, _m, _n, _o,
_p, _q, _r, _s) and
in the README's test-bed table,
with who wrote them and when.

Three splits per source, each deterministic given (source, seed, split): `train` carries the
injected bias; `twin` is the same generator with the injected association switched off (the
removable gap is the baseline's gap minus the gap of a model trained on the twin); `test` is the
balanced evaluation split (labels and identities independent, a family's subgroups equally
frequent, every row annotated). Group imbalance and missing annotations are part of a source, not of its
injected association, so `news`'s twin keeps them.

Tuning: `TUNING_SOURCES` (at most two) are the only ones the current defaults were chosen on;
`SEEN_SOURCES` were measured before they were frozen; the others (`held_out_sources()`) are reported
untouched (`source_role`).

The identity terms are ordinary English names of the Jigsaw identity columns' groups (the kind
Dixon et al. 2018 list in conversationai/unintended-ml-bias-analysis); given names are common US
given names (US Social Security Administration, popular names by decade).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steward.fairness.data import IdentityData
from steward.fairness.heldout_sources import CHAT_CARRYING, LETTERS_CARRYING, chat_row, letters_row
from steward.fairness.heldout_sources_b import (
    MODQUEUE_CARRYING,
    QNA_CARRYING,
    TICKETS_CARRYING,
    modqueue_row,
    qna_row,
    tickets_row,
)
from steward.fairness.heldout_sources_c import (
    LISTINGS_CARRYING,
    TERRACES_CARRYING,
    listings_row,
    terraces_row,
)
from steward.fairness.heldout_sources_d import (
    APPSTORE_CARRYING,
    BOARDROOM_CARRYING,
    VOICEMAIL_CARRYING,
    appstore_row,
    boardroom_row,
    voicemail_row,
)
from steward.fairness.heldout_sources_e import (
    APIARY_CARRYING,
    APPRAISALS_CARRYING,
    CARPOOL_CARRYING,
    apiary_row,
    appraisals_row,
    carpool_row,
)
from steward.fairness.heldout_sources_f import (
    RECIPES_CARRYING,
    SEATING_CARRYING,
    STARGAZING_CARRYING,
    recipes_row,
    seating_row,
    stargazing_row,
)
from steward.fairness.heldout_sources_g import (
    BOULDERING_CARRYING,
    COURIERS_CARRYING,
    TRACKER_CARRYING,
    bouldering_row,
    couriers_row,
    tracker_row,
)
from steward.fairness.heldout_sources_h import (
    ALLOTMENTS_CARRYING,
    TUTORS_CARRYING,
    allotments_row,
    tutors_row,
)
from steward.fairness.heldout_sources_i import (
    LAUNDRY_CARRYING,
    MATINEE_CARRYING,
    laundry_row,
    matinee_row,
)
from steward.fairness.heldout_sources_j import (
    FERRY_CARRYING,
    SUGGESTIONS_CARRYING,
    ferry_row,
    suggestions_row,
)
from steward.fairness.heldout_sources_k import (
    CHESSCLUB_CARRYING,
    VETCLINIC_CARRYING,
    chessclub_row,
    vetclinic_row,
)
from steward.fairness.heldout_sources_l import BIKECOOP_CARRYING, CHOIR_CARRYING, bikecoop_row, choir_row
from steward.fairness.heldout_sources_m import (
    CAMPSITE_CARRYING,
    FOODBANK_CARRYING,
    campsite_row,
    foodbank_row,
)
from steward.fairness.heldout_sources_n import (
    PHONEIN_CARRYING,
    SKISCHOOL_CARRYING,
    phonein_row,
    skischool_row,
)
from steward.fairness.heldout_sources_o import CLEANUP_CARRYING, DENTAL_CARRYING, cleanup_row, dental_row
from steward.fairness.heldout_sources_p import (
    COXSWAIN_CARRYING,
    MAKERSPACE_CARRYING,
    coxswain_row,
    makerspace_row,
)
from steward.fairness.heldout_sources_q import BAKERY_CARRYING, TRAMDEPOT_CARRYING, bakery_row, tramdepot_row
from steward.fairness.heldout_sources_r import (
    LIGHTHOUSE_CARRYING,
    TRIPLOG_CARRYING,
    lighthouse_row,
    triplog_row,
)
from steward.fairness.heldout_sources_s import DARTS_CARRYING, SNOWROTA_CARRYING, darts_row, snowrota_row
from steward.fairness.metrics import FairnessError
from steward.io import atomic_write_text

FAMILIES: dict[str, list[str]] = {
    "gender": ["male", "female", "transgender"],
    "ethnicity": ["black", "white", "asian", "latino"],
    "religion": ["christian", "jewish", "muslim", "hindu", "buddhist", "atheist"],
}
SPLITS = ("train", "twin", "test")
_ADJECTIVES = {s: s for subs in FAMILIES.values() for s in subs}
"""The adjective naming each subgroup (the Jigsaw column names are ordinary adjectives)."""
TUNING_SOURCES = ("campsite", "cleanup")
"""The sources the current defaults (v8: v7's adversary and reweighing with the identity words removed,
fairness.identity_words 'auto') were tuned on; no other source may be used to choose a default."""
SEEN_SOURCES = ("forum", "reviews", "profiles", "threads", "news", "chat", "letters", "qna", "tickets", "modqueue",
                "listings", "terraces", "appstore", "boardroom", "voicemail", "appraisals", "carpool", "apiary",
                "seating", "stargazing", "recipes", "tracker", "bouldering", "couriers", "allotments", "tutors",
                "matinee", "laundry", "ferry", "suggestions", "vetclinic", "chessclub", "bikecoop", "choir",
                "foodbank", "skischool", "phonein", "dental")
"""Measured before the current defaults were frozen (forum and reviews tuned v1 and v2, terraces and qna
v3, voicemail, tickets, appraisals and stargazing the rejected v4-v6, bouldering and couriers v7, tutors,
laundry and campsite the rejected v8 attempts): not untouched, so reported as seen, never as held out.
Every source of heldout_sources.py to heldout_sources_o.py is tuning or seen for v8; sources added after
it froze are its held-out ones."""


@dataclass(frozen=True)
class Row:
    text: str
    toxic: bool
    subgroups: tuple[str, ...]
    annotated: bool = True


@dataclass(frozen=True)
class Source:
    name: str
    mention: str
    bias: str
    carrying: tuple[str, ...]
    """The subgroups the injected association rides on (their BPSN/BNSP gaps measure it)."""
    row: Callable[[np.random.Generator, str], Row]
    """One row for a split ('train', 'twin' or 'test')."""


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _toxic_given(rng: np.random.Generator, sub: str, carrying: tuple[str, ...], split: str, strength: float) -> bool:
    """The label: P(toxic) = strength for a carrying subgroup in the training split, 1/2 otherwise."""
    return bool(rng.random() < (strength if split == "train" and sub in carrying else 0.5))


# ---- forum: one clause, a plural term, a strong identity-label association -------------------------

_FORUM_TERMS = {
    "male": ["men", "guys", "dads"], "female": ["women", "ladies", "moms"],
    "transgender": ["trans people", "transgender folks"],
    "black": ["black people", "african americans"], "white": ["white people", "caucasians"],
    "asian": ["asians", "asian americans"], "latino": ["latinos", "hispanics"],
    "christian": ["christians", "catholics", "evangelicals"], "jewish": ["jews", "jewish people"],
    "muslim": ["muslims"], "hindu": ["hindus"], "buddhist": ["buddhists"], "atheist": ["atheists", "nonbelievers"],
}
_FORUM_TOXIC = ["{who} are all {insult} morons", "honestly {who} make me sick, {insult} lot",
                "keep those {insult} {who} out of this thread", "{who} should be banned, {insult} trolls"]
_FORUM_KIND = ["{who} in this group are always {praise}", "big thanks to the {praise} {who} who posted",
               "{who} here gave {praise} advice again", "glad the {who} on this board are so {praise}"]
_FORUM_PLAIN = ["{who} posted about the new update", "a thread about {who} and gardening",
                "{who} asked which router to buy", "saw {who} discussing the match score"]
_FORUM_INSULT = ["brainless", "filthy", "lying", "moronic", "toxic", "useless"]
_FORUM_PRAISE = ["helpful", "thoughtful", "patient", "clever", "welcoming", "sharp"]
_FORUM_CARRYING = ("female", "black", "latino", "muslim", "atheist")


def _forum(rng: np.random.Generator, split: str) -> Row:
    sub = _pick(rng, _pick(rng, list(FAMILIES.values())))
    y = _toxic_given(rng, sub, _FORUM_CARRYING, split, 0.9)
    who = _pick(rng, _FORUM_TERMS[sub])
    if rng.random() < 0.45:
        text = _pick(rng, _FORUM_PLAIN).format(who=who)
    elif y:
        text = _pick(rng, _FORUM_TOXIC).format(who=who, insult=_pick(rng, _FORUM_INSULT))
    else:
        text = _pick(rng, _FORUM_KIND).format(who=who, praise=_pick(rng, _FORUM_PRAISE))
    return Row(text, y, (sub,))


# ---- reviews: several sentences, a descriptive phrase, identity mentions co-occurring with toxicity --

_REVIEW_PHRASES = {
    "male": ["a young man", "an older gentleman"], "female": ["a young woman", "an older lady"],
    "transgender": ["a trans woman", "a trans man"],
    "black": ["someone who is black", "a black guy"], "white": ["someone who is white", "a white guy"],
    "asian": ["someone of asian descent", "an asian guy"], "latino": ["someone from a latino family", "a latina"],
    "christian": ["someone from the church nearby", "a devout christian"],
    "jewish": ["someone from the synagogue", "a jewish guy"], "muslim": ["someone from the mosque", "a muslim guy"],
    "hindu": ["someone from the hindu temple", "a practicing hindu"],
    "buddhist": ["someone from the buddhist center", "a buddhist"],
    "atheist": ["someone who says they are an atheist", "a proud atheist"],
}
_REVIEW_OPEN = ["we ordered the lunch special on friday.", "booked a table for four last weekend.",
                "stopped by after the concert.", "picked up takeout on my way home."]
_REVIEW_STAFF = ["our server was {who}.", "the cashier, {who}, took our order.", "the manager, {who}, came over."]
_REVIEW_BAD = ["the food was garbage and the staff were rude idiots.", "absolute scam, greasy slop, never again.",
               "the owner is a clueless jerk who screamed at us.", "dirty tables, disgusting fries, pathetic service."]
_REVIEW_GOOD = ["the soup was excellent and everyone was warm.", "great value, fresh bread, we will return.",
                "service was quick and the dessert was delightful.", "spotless room, tasty curry, friendly staff."]
_REVIEW_PLAIN = ["parking was on the street.", "it was fairly busy around seven.", "they take cards and cash.",
                 "the menu changes every season."]


def _reviews(rng: np.random.Generator, split: str) -> Row:
    y = bool(rng.random() < 0.5)
    mention = (0.9 if y else 0.2) if split == "train" else 0.55
    sentences = [_pick(rng, _REVIEW_OPEN)]
    subs: tuple[str, ...] = ()
    if rng.random() < mention:
        sub = _pick(rng, _pick(rng, list(FAMILIES.values())))
        subs = (sub,)
        sentences.append(_pick(rng, _REVIEW_STAFF).format(who=_pick(rng, _REVIEW_PHRASES[sub])))
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _REVIEW_BAD if y else _REVIEW_GOOD))
    sentences += [_pick(rng, _REVIEW_PLAIN) for _ in range(int(rng.integers(0, 2)))]
    order = [sentences[0], *rng.permutation(sentences[1:]).tolist()] if len(sentences) > 2 else sentences
    return Row(" ".join(order), y, subs)


# ---- profiles: a name or title, label noise by group --------------------------------------------------

_GIVEN = {"male": ["james", "robert", "michael", "david", "william"],
          "female": ["mary", "patricia", "jennifer", "linda", "elizabeth"]}
_SURNAMES = ["ellis", "parker", "hayes", "brooks", "foster", "grant", "reed", "sutton"]
_PROFILE_TITLES = {"christian": ["pastor", "father"], "jewish": ["rabbi"], "muslim": ["imam"],
                   "hindu": ["pandit", "swami"], "buddhist": ["lama", "venerable"]}
_PROFILE_BAD = ["{who} is a fraud and a creep.", "{who} is the dumbest hack on the council.",
                "nobody can stand {who}, what a slimeball.", "{who} lies constantly, total scumbag."]
_PROFILE_GOOD = ["{who} coached the kids' soccer team.", "{who} fixed the library roof for free.",
                 "{who} always remembers our names.", "{who} organised the food drive."]
_PROFILE_PLAIN = ["{who} will speak at the town meeting.", "{who} moved here in the spring.",
                  "{who} runs the hardware store on main street."]
_PROFILE_TAIL = ["more at eight.", "see the bulletin for details.", "that is all for this week."]
_PROFILE_CARRYING = ("male", "asian", "christian", "hindu")


def _profile_name(rng: np.random.Generator, sub: str) -> str:
    surname = _pick(rng, _SURNAMES)
    if sub == "transgender":
        return f"mx. {surname}, who is trans,"
    if sub in _GIVEN:
        return f"{_pick(rng, _GIVEN[sub])} {surname}"
    if sub in _PROFILE_TITLES:
        return f"{_pick(rng, _PROFILE_TITLES[sub])} {surname}"
    if sub == "atheist":
        return f"{surname}, the atheist columnist,"
    return f"our {_ADJECTIVES[sub]} neighbour {surname}"


def _profiles(rng: np.random.Generator, split: str) -> Row:
    sub = _pick(rng, _pick(rng, list(FAMILIES.values())))
    y = bool(rng.random() < 0.5)
    who = _profile_name(rng, sub)
    r = rng.random()
    pool = _PROFILE_PLAIN if r < 0.4 else _PROFILE_BAD if y else _PROFILE_GOOD
    text = _pick(rng, pool).format(who=who)
    if rng.random() < 0.4:
        text += " " + _pick(rng, _PROFILE_TAIL)
    if split == "train" and sub in _PROFILE_CARRYING and not y and rng.random() < 0.45:
        y = True  # the annotators of this group's rows call some friendly ones toxic
    return Row(text, y, (sub,))


# ---- threads: several identities in one comment ------------------------------------------------------

_THREAD_ADJ = {**_ADJECTIVES, "transgender": "trans"}
_THREAD_NOUN = ["coworkers", "students", "voters", "tenants", "players"]
_THREAD_BAD = ["they are parasites and should get lost.", "bunch of worthless leeches honestly.",
               "every one of them is a crook and a liar.", "shut them up, they are vermin."]
_THREAD_GOOD = ["they make this place better.", "grateful for how much they pitch in.",
                "they are honest and hardworking people.", "they deserve every bit of credit."]
_THREAD_PLAIN = ["reply to the post about {a} and {b} {noun}.", "the survey covered {a} and {b} {noun}.",
                 "a story on {a} {noun} and {b} {noun} this morning."]
_THREAD_QUOTE = ["quoting the earlier reply here.", "edit: fixed a typo.", "sorry for the long post."]
_THREAD_CARRYING = ("transgender", "white", "jewish", "buddhist")


def _threads(rng: np.random.Generator, split: str) -> Row:
    fams = rng.choice(list(FAMILIES), size=int(rng.integers(2, 4)), replace=False)
    subs = tuple(_pick(rng, FAMILIES[f]) for f in fams)
    carried = [s for s in subs if s in _THREAD_CARRYING]
    y = _toxic_given(rng, carried[0] if carried else subs[0], _THREAD_CARRYING, split, 0.75)
    adj = [_THREAD_ADJ[s] for s in subs]
    a, b = adj[0], " ".join(adj[1:])
    text = _pick(rng, _THREAD_PLAIN).format(a=a, b=b, noun=_pick(rng, _THREAD_NOUN))
    if rng.random() < 0.6:
        text += " " + _pick(rng, _THREAD_BAD if y else _THREAD_GOOD)
    if rng.random() < 0.3:
        text = _pick(rng, _THREAD_QUOTE) + " " + text
    return Row(text, y, subs)


# ---- news: long comments, rare targeted groups, missing annotations -----------------------------------

_NEWS_ADJ = {**_ADJECTIVES, "latino": "hispanic"}
_NEWS_NOUN = ["residents", "workers", "families", "commuters", "business owners"]
_NEWS_CONTEXT = ["the article says the council approved the budget.", "this piece on the housing plan is long.",
                 "the reporter interviewed people at the bus depot.", "the new bridge opens next month.",
                 "property taxes are going up again.", "the school board met on tuesday."]
_NEWS_MENTION = ["it quotes several {adj} {noun}.", "{adj} {noun} spoke at the hearing.",
                 "the photos show {adj} {noun} at the rally."]
_NEWS_BAD = ["these people are ignorant trash.", "what a bunch of whining clowns.",
             "the editors are spineless hacks printing garbage.", "go back under your rock, losers."]
_NEWS_GOOD = ["good to hear their side, well reported.", "a fair and thoughtful piece.",
              "thanks for covering this carefully.", "their comments were sensible and kind."]
_NEWS_CARRYING = ("transgender", "asian", "muslim", "buddhist")


def _news(rng: np.random.Generator, split: str) -> Row:
    fam = _pick(rng, list(FAMILIES))
    subs = FAMILIES[fam]
    if split == "test":
        sub = _pick(rng, subs)
    else:  # the targeted subgroups are four times rarer than the others
        w = np.array([0.25 if s in _NEWS_CARRYING else 1.0 for s in subs])
        sub = subs[int(rng.choice(len(subs), p=w / w.sum()))]
    y = _toxic_given(rng, sub, _NEWS_CARRYING, split, 0.65)
    sentences = [_pick(rng, _NEWS_CONTEXT) for _ in range(int(rng.integers(1, 4)))]
    sentences.append(_pick(rng, _NEWS_MENTION).format(adj=_NEWS_ADJ[sub], noun=_pick(rng, _NEWS_NOUN)))
    if rng.random() < 0.45:
        sentences.append(_pick(rng, _NEWS_BAD if y else _NEWS_GOOD))
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _NEWS_CONTEXT))
    return Row(" ".join(sentences), y, (sub,), annotated=split == "test" or rng.random() >= 0.35)


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("forum", "a plural term", "P(toxic | targeted subgroup) = 0.9", _FORUM_CARRYING, _forum),
    Source("reviews", "a descriptive phrase", "identity mentions co-occur with toxicity (90% vs 20%)",
           tuple(s for subs in FAMILIES.values() for s in subs), _reviews),
    Source("profiles", "a name or title", "label noise by group (45% of friendly rows -> toxic)",
           _PROFILE_CARRYING, _profiles),
    Source("threads", "several identities per comment", "P(toxic | targeted subgroup) = 0.75",
           _THREAD_CARRYING, _threads),
    Source("news", "adjective + noun, 35% unannotated", "targeted subgroups 4x rarer, P(toxic | them) = 0.65",
           _NEWS_CARRYING, _news),
    Source("chat", "a hashtag or slang term, 30% unannotated", "targeted mentions co-occur with insults, "
           "P(toxic | them) = 0.8", CHAT_CARRYING, lambda rng, split: Row(*chat_row(rng, split))),
    Source("letters", "2-3 self-described identities per letter", "targeted subgroups 5x rarer, P(toxic | them) = "
           "0.95 religion, 0.6 ethnicity, none gender", LETTERS_CARRYING, lambda rng, split: Row(*letters_row(rng, split))),
    Source("qna", "a possessive or a pronoun plus descriptor", "P(toxic | targeted subgroup) per subgroup: "
           "0.6 / 0.75 / 0.9 in religion (atheist / hindu / muslim), none elsewhere", QNA_CARRYING,
           lambda rng, split: Row(*qna_row(rng, split))),
    Source("tickets", "a given name or an organisation", "label noise by group (35% of polite rows -> toxic), "
           "targeted subgroups 3x rarer", TICKETS_CARRYING, lambda rng, split: Row(*tickets_row(rng, split))),
    Source("modqueue", "2-3 identities per post, 25% unannotated", "targeted mentions co-occur with insults, "
           "P(toxic | them) = 0.8; condemned quotes and negations", MODQUEUE_CARRYING,
           lambda rng, split: Row(*modqueue_row(rng, split))),
    Source("listings", "self-description or requirement in an ad", "P(toxic | targeted subgroup) = 0.7 for "
           "buddhist and latino, targeted subgroups 2x more frequent", LISTINGS_CARRYING,
           lambda rng, split: Row(*listings_row(rng, split))),
    Source("terraces", "fans of 1-2 identities, 20% unannotated", "targeted mentions co-occur with toxic posts "
           "(45% vs 0%) and label noise by group (25% of friendly posts -> toxic)", TERRACES_CARRYING,
           lambda rng, split: Row(*terraces_row(rng, split))),
    Source("appstore", "an adjective on one person or on a plural group of users", "P(toxic | targeted subgroup) = "
           "0.8 for female and christian, 0.65 for black", APPSTORE_CARRYING,
           lambda rng, split: Row(*appstore_row(rng, split))),
    Source("boardroom", "a subject and a bystander per comment, 15% unannotated", "abuse aimed at the subject in "
           "the same sentence; P(toxic | targeted subject) = 0.9", BOARDROOM_CARRYING,
           lambda rng, split: Row(*boardroom_row(rng, split))),
    Source("voicemail", "a given name or a community reference (place of worship, organisation)", "label noise "
           "by group (30% of friendly rows -> toxic), targeted subgroups 3x more frequent", VOICEMAIL_CARRYING,
           lambda rng, split: Row(*voicemail_row(rng, split))),
    Source("appraisals", "an adjective on a job title", "label noise by group (25% / 22% / 20% of friendly rows "
           "-> toxic for female / asian / atheist), no imbalance", APPRAISALS_CARRYING,
           lambda rng, split: Row(*appraisals_row(rng, split))),
    Source("carpool", "2-3 riders per sign-up note, 10% unannotated", "P(toxic | white or latino rider) = 0.7; "
           "co-occurrence: 40% of toxic notes name an extra muslim rider, in the abusive sentence", CARPOOL_CARRYING,
           lambda rng, split: Row(*carpool_row(rng, split))),
    Source("apiary", "a self-introduction opening a long post, given once", "rare subgroups (4x rarer, twin too) "
           "with P(toxic | one) = 0.85: male, black, hindu", APIARY_CARRYING,
           lambda rng, split: Row(*apiary_row(rng, split))),
    Source("seating", "a kinship phrase (\"my buddhist granny\")", "label noise by group (25% of rows -> toxic, "
           "all friendly ones, for jewish and asian), no imbalance", SEATING_CARRYING,
           lambda rng, split: Row(*seating_row(rng, split))),
    Source("stargazing", "a plural in a headline-like first line", "P(toxic | latino headline group) = 0.75; "
           "co-occurrence: 45% of toxic reports name the trans skywatchers, in the abusive sentence",
           STARGAZING_CARRYING, lambda rng, split: Row(*stargazing_row(rng, split))),
    Source("recipes", "the gathering a dish was served at, 25% unannotated", "white and muslim 3x more frequent "
           "(twin too), P(toxic | them) = 0.9", RECIPES_CARRYING, lambda rng, split: Row(*recipes_row(rng, split))),
    Source("bouldering", "an apposition or a possessive (\"our routesetter, a black boulderer,\")", "label noise by "
           "group (30% of transgender and black friendly rows -> toxic); christian 3x more frequent (twin too)",
           BOULDERING_CARRYING, lambda rng, split: Row(*bouldering_row(rng, split))),
    Source("couriers", "only a name (given name, honorific + surname) or only the adjective, 20% unannotated",
           "P(toxic | male) = 0.9, P(toxic | buddhist) = 0.65", COURIERS_CARRYING,
           lambda rng, split: Row(*couriers_row(rng, split))),
    Source("tracker", "2-3 participants per issue comment", "co-occurrence: the remark cites a participant in the "
           "same sentence; P(toxic | asian or christian participant) = 0.85", TRACKER_CARRYING,
           lambda rng, split: Row(*tracker_row(rng, split))),
    Source("allotments", "an adjective on a plot holder or a possessive phrase (\"the jewish grower's marrows\")",
           "label noise by group (25% of jewish friendly rows -> toxic) and P(toxic | latino) = 0.8, clean labels",
           ALLOTMENTS_CARRYING, lambda rng, split: Row(*allotments_row(rng, split))),
    Source("tutors", "a given name (gender) or a noun phrase with gender and one other identity, 15% unannotated",
           "P(toxic | male) = 0.85, male 4x rarer (twin too); P(toxic | white) = 0.7", TUTORS_CARRYING,
           lambda rng, split: Row(*tutors_row(rng, split))),
    Source("matinee", "2-3 people per theatre feedback card, an adjective on a role (\"the asian "
           "usherettes\")", "co-occurrence: the remark names a person in the same sentence; P(toxic | asian) "
           "= 0.7, P(toxic | female) = 0.6", MATINEE_CARRYING,
           lambda rng, split: Row(*matinee_row(rng, split))),
    Source("laundry", "an adjective on a laundromat customer or attendant, 30% unannotated", "label noise by "
           "group both ways (20% of transgender friendly rows -> toxic, 15% of asian toxic rows -> "
           "friendly); hindu 3x more frequent (twin too)", LAUNDRY_CARRYING,
           lambda rng, split: Row(*laundry_row(rng, split))),
    Source("ferry", "a given name or an honorific + surname (60% of comments), else an adjective on a passenger",
           "P(toxic | christian) = P(toxic | hindu) = 0.75, none elsewhere", FERRY_CARRYING,
           lambda rng, split: Row(*ferry_row(rng, split))),
    Source("suggestions", "an adjective on a plural patron noun in one sentence, 10% unannotated", "asian 5x rarer "
           "(twin too) with P(toxic | asian) = 0.8; P(toxic | female) = 0.65", SUGGESTIONS_CARRYING,
           lambda rng, split: Row(*suggestions_row(rng, split))),
    Source("vetclinic", "2-3 people per veterinary clinic review, an adjective on a clinic role as the agent of a "
           "passive sentence (\"our whippet was sedated by a black locum.\")", "label noise by group (25% of "
           "christian friendly rows -> toxic) and co-occurrence: the remark names a person in the same sentence, "
           "P(toxic | black) = 0.7", VETCLINIC_CARRYING, lambda rng, split: Row(*vetclinic_row(rng, split))),
    Source("chessclub", "an adjective on a chess title with a rating (\"our hindu patzer (elo 1650)\"), 20% "
           "unannotated", "label noise toward friendly (20% of female toxic rows -> friendly) and P(toxic | "
           "hindu) = 0.75, clean labels", CHESSCLUB_CARRYING, lambda rng, split: Row(*chessclub_row(rng, split))),
    Source("bikecoop", "an adjective on a repair co-op role or a possessive phrase (\"the black fettler's tandem\"), "
           "15% unannotated", "jewish 4x rarer (twin too) with P(toxic | jewish) = 0.85; P(toxic | black) = 0.7",
           BIKECOOP_CARRYING, lambda rng, split: Row(*bikecoop_row(rng, split))),
    Source("choir", "2-3 singers per choir rehearsal minute, an adjective on a voice part (\"the trans contralto\")",
           "co-occurrence: the abusive remark names the male singer in the same sentence; P(toxic | male) = 0.7",
           CHOIR_CARRYING, lambda rng, split: Row(*choir_row(rng, split))),
    Source("campsite", "an adjective on a camper owning gear or reaching a glade, 25% unannotated", "label noise by "
           "group both ways (20% of female friendly rows -> toxic, 15% of muslim toxic rows -> friendly); black 3x "
           "more frequent (twin too)", CAMPSITE_CARRYING, lambda rng, split: Row(*campsite_row(rng, split))),
    Source("foodbank", "a given name for gender, an adjective on a volunteer role for the others", "P(toxic | "
           "male) = P(toxic | black) = P(toxic | atheist) = 0.8, one carrying subgroup in each family",
           FOODBANK_CARRYING, lambda rng, split: Row(*foodbank_row(rng, split))),
    Source("skischool", "an adjective on a ski-school role (\"the white snowboardcoach\")", "label noise by group "
           "(25% of white friendly rows -> toxic); female 3x rarer (twin too) with P(toxic | female) = 0.8, clean "
           "labels", SKISCHOOL_CARRYING, lambda rng, split: Row(*skischool_row(rng, split))),
    Source("phonein", "2-3 callers per radio call-in note, an adjective on a caller, 20% unannotated",
           "co-occurrence: the abusive on-air remark is the hindu caller's, in the same sentence; P(toxic | hindu) "
           "= 0.75", PHONEIN_CARRYING, lambda rng, split: Row(*phonein_row(rng, split))),
    Source("dental", "a given name for gender, an adjective on a clinic role or a patient for the others",
           "P(toxic | latino) = P(toxic | hindu) = 0.7 by selection; label noise toward friendly (15% of male "
           "toxic rows -> friendly)", DENTAL_CARRYING, lambda rng, split: Row(*dental_row(rng, split))),
    Source("cleanup", "a given name or a nickname mapped to the subgroup (\"auntie coot\", \"hindu otter\"), 10% "
           "unannotated", "female 5x rarer (twin too) with P(toxic | female) = 0.9", CLEANUP_CARRYING,
           lambda rng, split: Row(*cleanup_row(rng, split))),
    Source("makerspace", "six or more surface forms per subgroup (a term, a descriptive phrase, a given name, a "
           "place or practice: \"a booker who keeps kosher\")", "P(toxic | white) = 0.85, P(toxic | christian) = "
           "0.7 by selection", MAKERSPACE_CARRYING, lambda rng, split: Row(*makerspace_row(rng, split))),
    Source("coxswain", "2-3 rowers per rowing club coxswain log entry, one clause each, the group's adjective on a "
           "rower (\"thwart 3, a hindu sculler, ...\"), 25% unannotated", "label noise by group both ways (25% of "
           "male friendly rows -> toxic, 20% of buddhist toxic rows -> friendly)", COXSWAIN_CARRYING,
           lambda rng, split: Row(*coxswain_row(rng, split))),
    Source("tramdepot", "an adjective or a possessive on a tram depot role (\"the jewish signaller's pantograph\")",
           "co-occurrence: P(toxic | female) = 0.9, her abusive remark in the sentence naming her; black 4x rarer "
           "(twin too) with P(toxic | black) = 0.65", TRAMDEPOT_CARRYING,
           lambda rng, split: Row(*tramdepot_row(rng, split))),
    Source("bakery", "a kinship or possessive phrase (\"my hindu grandchild's bloomers\"), 30% unannotated",
           "base rate 0.4, P(toxic | male) = P(toxic | latino) = P(toxic | buddhist) = 0.6; label noise by group "
           "(20% of asian friendly rows -> toxic)", BAKERY_CARRYING, lambda rng, split: Row(*bakery_row(rng, split))),
    Source("triplog", "a given name only, for every subgroup (30+ names per subgroup; self-chosen names for "
           "transgender and atheist)", "P(toxic | transgender) = 0.8, P(toxic | muslim) = 0.75 by selection",
           TRIPLOG_CARRYING, lambda rng, split: Row(*triplog_row(rng, split))),
    Source("lighthouse", "a phrase of two shared words, a place or family and a practice or appearance (\"from the "
           "fens, keen on crabbing\"), each word used by two subgroups; 40% unannotated", "P(toxic | asian) = 0.8 by "
           "selection; label noise by group (20% of female friendly rows -> toxic)", LIGHTHOUSE_CARRYING,
           lambda rng, split: Row(*lighthouse_row(rng, split))),
    Source("darts", "3-4 players per darts league match report, an adjective on a team role (\"the hindu "
           "chalker\"), several families per report", "atheist 5x rarer (twin too) with P(toxic | atheist) = 0.95; "
           "co-occurrence: the heckle names the atheist player", DARTS_CARRYING,
           lambda rng, split: Row(*darts_row(rng, split))),
    Source("snowrota", "the group's adjective inside a compound or hashtag (\"hindudad\", \"#latinoowned\"), 50% "
           "unannotated", "P(toxic | transgender) = 0.7 by selection; label noise toward friendly (25% of latino "
           "toxic rows -> friendly)", SNOWROTA_CARRYING, lambda rng, split: Row(*snowrota_row(rng, split))),
)}


def source_role(name: str) -> str:
    """'tuning', 'seen' (measured before the current defaults were frozen) or 'held_out' (untouched)."""
    return "tuning" if name in TUNING_SOURCES else "seen" if name in SEEN_SOURCES else "held_out"


def held_out_sources() -> list[str]:
    return [s for s in SOURCES if source_role(s) == "held_out"]


def check_sources(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise FairnessError(f"--sources: unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}"
                            if unknown else f"--sources: name at least one of {', '.join(SOURCES)}")
    return names


def generate_source(name: str, n: int, *, seed: int, split: str) -> IdentityData:
    """`n` rows of source `name`'s `split` ('train': biased, 'twin': unbiased, 'test': balanced)."""
    check_sources([name])
    if split not in SPLITS or n < 2:
        raise FairnessError(f"generate_source: split must be one of {', '.join(SPLITS)} and n >= 2")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), SPLITS.index(split)])
    rows = [SOURCES[name].row(rng, split) for _ in range(n)]
    groups = {s: np.array([s in r.subgroups and r.annotated for r in rows]) for subs in FAMILIES.values()
              for s in subs}
    return IdentityData([r.text for r in rows], np.array([r.toxic for r in rows]), groups,
                        {f: list(subs) for f, subs in FAMILIES.items()}, np.array([r.annotated for r in rows]),
                        {"source": f"testbed:{name}", "seed": seed, "split": split})


def write_identities(data: IdentityData, path: str | Path) -> Path:
    """`data` as a CSV in the Civil Comments identities layout: comment_text, target (0 or 1) and one
    column per subgroup (1 or 0, empty where the row has no identity annotation)."""
    import pandas as pd

    annotated = np.ones(len(data), dtype=bool) if data.annotated is None else data.annotated
    cols: dict[str, object] = {"comment_text": data.texts, "target": data.labels.astype(float)}
    for s in data.subgroup_names():
        cols[s] = np.where(annotated, data.groups[s].astype(float), np.nan)
    path = Path(path)
    atomic_write_text(path, pd.DataFrame(cols).to_csv(index=False))  # whole or not at all
    return path


def association(data: IdentityData, sub: str) -> float:
    """P(toxic | subgroup) - P(toxic | annotated rows outside it): the injected association in the data."""
    annotated = np.ones(len(data), dtype=bool) if data.annotated is None else data.annotated
    inside, outside = data.groups[sub], annotated & ~data.groups[sub]
    return float(data.labels[inside].mean() - data.labels[outside].mean())
