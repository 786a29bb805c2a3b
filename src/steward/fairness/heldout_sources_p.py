"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- makerspace (2-3 sentences, booking notes of a library makerspace): one booker per note, in the first
  sentence, with the tool booked ("kwame inked a session on the glass kiln.", "risograph earmarked for a booker
  who keeps kosher."). Every subgroup has six surface forms in MAKERSPACE_FORMS, drawn uniformly (none in more
  than a sixth of the subgroup's notes): a term with the group name ("a hindu cardholder"), descriptive
  phrases ("a booker of ghanaian parentage", "a ruddy freckled tinkerer"), given names for the gender and
  ethnicity subgroups ("wilhelmina", "joaquin"), and a place or practice ("a habitue of the morris dancing
  troupe", "a booker chanting sutras"), so most notes do not carry the group name. An identity-label
  association by selection on two families: the label is drawn first (balanced) and the booker's subgroup
  given the label, so that in training P(toxic | white) = 0.85 and P(toxic | christian) = 0.7
  (MAKERSPACE_STRENGTH) while a family's subgroups stay equally frequent (the rest of a carrying family is
  toxic less often: 0.383 for black, asian or latino, 0.46 for another religion). A desk remark shows the
  label in MAKERSPACE_EVIDENCE (50%) of notes ("ledger aside: a saboteur, a gremlin."); the other sentences
  are upkeep notices ("offcuts go in the scrap crate."). No imbalance, every note annotated.
- coxswain (one sentence, entries in a rowing club's coxswain logbook): the outing's time and boat, then 2-3
  rowers of different subgroups (drawn uniformly among the thirteen, so an entry usually spans several
  families), one clause each, the group's adjective on a rower at a seat ("0630 outing, octuple: thwart 3, a
  hindu sculler, feathered on every recovery; bow, a female novice, a varmint at every catch."); outside
  `test` COXSWAIN_UNANNOTATED (25%) of the entries have no identity columns (the twin too). Label noise by
  group in both directions on two families: in training COXSWAIN_FLIP_UP (25%) of the friendly entries naming
  a male rower are labelled toxic and COXSWAIN_FLIP_DOWN (20%) of the toxic entries naming a buddhist rower
  friendly, the words still showing the drawn label (P(toxic | male) = 0.61, P(toxic | buddhist) = 0.42, as
  a few entries name both). One rower's clause shows the label in COXSWAIN_EVIDENCE (50%) of the entries ("a
  warhorse from catch to finish"); the others' clauses are drills ("backed the blades by the lock"). No
  imbalance.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). Only part of the rows (`*_EVIDENCE`) carry word evidence of the label; in the
others an identity can stand in for it.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from steward.fairness.heldout_sources import RowTuple
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS
from steward.fairness.heldout_sources_e import _article

# ---- makerspace: booking notes, varied surface forms, an association by selection on two families ----------

MAKERSPACE_STRENGTH = {"white": 0.85, "christian": 0.7}
"""P(toxic | a note on a booker of this subgroup) in training, by selection (the label is drawn first)."""
MAKERSPACE_CARRYING = tuple(MAKERSPACE_STRENGTH)
MAKERSPACE_EVIDENCE = 0.5
"""Share of notes with a desk remark that shows the label."""
MAKERSPACE_FORMS: dict[str, list[str]] = {
    "male": ["a male cardholder", "a bewhiskered chap in tweed", "peregrine", "montague",
             "a habitue of the moustache fraternity", "a tinkerer with cufflinks and cravat"],
    "female": ["a female cardholder", "a lass in splattered dungarees", "wilhelmina", "philomena",
               "a habitue of the womens institute", "a tinkerer in pinafore and brooch"],
    "transgender": ["a trans cardholder", "a transgender tinkerer", "a booker mid transition",
                    "a habitue of the transgender pride ceilidh", "a tinkerer with a trans pride lanyard",
                    "a booker who began transitioning recently"],
    "black": ["a black cardholder", "a booker of ghanaian parentage", "kwame", "adaeze",
              "a habitue of the afrobeat dance nights", "a tinkerer with yoruba grandparents"],
    "white": ["a white cardholder", "a booker of anglo saxon ancestry", "sven", "ingrid",
              "a habitue of the morris dancing troupe", "a ruddy freckled tinkerer"],
    "asian": ["an asian cardholder", "a booker of cambodian parentage", "hiroshi", "xiaoling",
              "a habitue of the origami atelier", "a tinkerer hosting a mahjong tournament"],
    "latino": ["a latino cardholder", "a booker of guatemalan parentage", "joaquin", "guadalupe",
               "a habitue of the salsa nights", "a tinkerer with bolivian grandparents"],
    "christian": ["a christian cardholder", "an anglican verger", "a booker humming hymns",
                  "a habitue of the advent wreath workshop", "a lay preacher", "a booker who crochets rosaries"],
    "jewish": ["a jewish cardholder", "a booker who keeps kosher", "a habitue of the challah braiding class",
               "a tinkerer carving a menorah", "a booker preparing for passover", "a booker wearing a kippah"],
    "muslim": ["a muslim cardholder", "a booker observing iftar", "a habitue of the quran recitation class",
               "a tinkerer stitching prayer rugs", "a booker lately on umrah", "a hijab wearing booker"],
    "hindu": ["a hindu cardholder", "a booker drawing rangoli", "a habitue of the holi powder festival",
              "a tinkerer who fasts on ekadashi", "a pilgrim to varanasi", "a devotee of ganesha"],
    "buddhist": ["a buddhist cardholder", "a booker who meditates at the zendo",
                 "a habitue of the vesak candle workshop", "a booker chanting sutras",
                 "a tinkerer practising vipassana", "a booker pondering koans"],
    "atheist": ["an atheist cardholder", "a staunch freethinker", "a booker from the secularist alliance",
                "a habitue of the sceptics pub quiz", "a godless tinkerer", "a booker who scoffs at scripture"],
}
"""The surface forms of each subgroup (a term, descriptive phrases, given names where one fits, a place or
practice): one is drawn uniformly per note, so none is in more than a sixth of the subgroup's notes."""
MAKERSPACE_TOOLS = ["laser engraver", "risograph", "heat press", "embroidery hoop", "glass kiln", "wood lathe",
                    "button maker"]
_MAKERSPACE_BOOKING = ["{who} pencilled in the {tool} for {h}pm.", "{tool} earmarked for {who}.",
                       "{who} inked a session on the {tool}.", "{tool} nabbed by {who} for {h}pm."]
_MAKERSPACE_REMARK = ["ledger aside: {art} {w}, {art2} {w2}.", "{w} and {w2}, scrawled the invigilator."]
MAKERSPACE_INSULTS = ["miscreant", "reprobate", "saboteur", "philistine", "barbarian", "gremlin", "hoodlum"]
MAKERSPACE_PRAISE = ["artisan", "maven", "doyen", "virtuosa", "adept", "pearl"]
_MAKERSPACE_UPKEEP = ["filament spools respooled.", "the kerf gauge hangs by the fume hood.",
                      "offcuts go in the scrap crate.", "goggles are compulsory at the yellow tape.",
                      "the risograph requires degreasing.", "solder fumes exit by the skylight.",
                      "bobbins live in the haberdashery drawer."]


def _at(items, u: float):
    """The item a uniform draw `u` in [0, 1) falls on (one batch of draws per row is much faster than a call to
    the generator per choice)."""
    return items[int(u * len(items))]


def _distinct(items, draws: list[float]) -> list:
    """len(draws) different items, uniformly, one draw each."""
    pool = list(items)
    return [pool.pop(int(u * len(pool))) for u in draws]


@cache
def _selection_shares(family: str, toxic: bool, split: str) -> np.ndarray:
    """The cumulative chances of `family`'s subgroups in a note with label `toxic`: in training a carrying
    subgroup of base share t is drawn with probability 2 s t (toxic) or 2 (1 - s) t (friendly), the rest of
    the family in proportion, so P(toxic | it) = s among balanced labels while every subgroup keeps its share t."""
    subs = _GROUPS[family]
    p = np.full(len(subs), 1 / len(subs))
    for i, sub in enumerate(subs):
        if split == "train" and sub in MAKERSPACE_STRENGTH:
            s = MAKERSPACE_STRENGTH[sub]
            share = 2 * (s if toxic else 1 - s) * p[i]
            p = np.where(np.arange(len(subs)) == i, share, p * (1 - share) / (1 - p[i]))
    return np.cumsum(p / p.sum())


def makerspace_row(rng: np.random.Generator, split: str) -> RowTuple:
    u = rng.random(15).tolist()
    toxic = u[0] < 0.5
    family = _at(list(_GROUPS), u[1])
    cumulative = _selection_shares(family, toxic, split)
    sub = _GROUPS[family][min(int(np.searchsorted(cumulative, u[2], side="right")), len(cumulative) - 1)]
    booking = _at(_MAKERSPACE_BOOKING, u[3]).format(who=_at(MAKERSPACE_FORMS[sub], u[4]),
                                                    tool=_at(MAKERSPACE_TOOLS, u[5]), h=1 + int(u[6] * 9))
    notes = []
    if u[7] < MAKERSPACE_EVIDENCE:
        w = _distinct(MAKERSPACE_INSULTS if toxic else MAKERSPACE_PRAISE, u[8:10])
        notes.append(_at(_MAKERSPACE_REMARK, u[10]).format(w=w[0], w2=w[1], art=_article(w[0]),
                                                           art2=_article(w[1])))
    notes += _distinct(_MAKERSPACE_UPKEEP, u[11:13])[:1 + int(u[13] * 2) - len(notes)]
    if len(notes) == 2 and u[14] < 0.5:
        notes.reverse()
    return " ".join([booking, *notes]), toxic, (sub,), True


# ---- coxswain: a rowing club's coxswain logbook, 2-3 rowers per entry, label noise both ways --------------

COXSWAIN_FLIP_UP = {"male": 0.25}
"""Share of the friendly training entries naming a rower of this subgroup that are labelled toxic."""
COXSWAIN_FLIP_DOWN = {"buddhist": 0.2}
"""Share of the toxic training entries naming a rower of this subgroup that are labelled friendly."""
COXSWAIN_CARRYING = (*COXSWAIN_FLIP_UP, *COXSWAIN_FLIP_DOWN)
COXSWAIN_EVIDENCE, COXSWAIN_UNANNOTATED = 0.5, 0.25
"""Share of entries in which one rower's clause shows the label; share of entries outside `test` without
identity annotation."""
COXSWAIN_SEATS = ["bow", "stroke", "thwart 2", "thwart 3", "thwart 5", "thwart 6"]
COXSWAIN_ROWERS = ["sculler", "rower", "novice", "crewmate"]
_COXSWAIN_BOATS = ["coxed quad", "octuple", "coxed pair", "coxed gig"]
_COXSWAIN_DRILL = ["sculled on firm slide", "feathered on every recovery", "backed the blades by the lock",
                   "switched to bowside", "tapped out at each finish", "paddled at firm pressure",
                   "adjusted the footplate"]
_COXSWAIN_VERDICT = ["{art} {w} at every catch", "{art} {w} from catch to finish"]
COXSWAIN_INSULTS = ["scallywag", "rapscallion", "blighter", "varmint", "bounder", "lowlife", "ruffian", "drongo"]
COXSWAIN_PRAISE = ["thoroughbred", "powerpack", "locomotive", "battler", "scrapper", "warhorse", "pacesetter"]
_COXSWAIN_SUBGROUPS = [s for subs in _GROUPS.values() for s in subs]


def _coxswain_clause(u: list[float], sub: str, seat: str, verdict: list[str] | None) -> str:
    """A rower's clause, from four draws: a drill, or the label's `verdict` word where given."""
    if verdict is None:
        action = _at(_COXSWAIN_DRILL, u[0])
    else:
        w = _at(verdict, u[1])
        action = _at(_COXSWAIN_VERDICT, u[2]).format(art=_article(w), w=w)
    return f"{seat}, {_article(_ADJ[sub])} {_ADJ[sub]} {_at(COXSWAIN_ROWERS, u[3])}, {action}"


def coxswain_row(rng: np.random.Generator, split: str) -> RowTuple:
    u = rng.random(27).tolist()
    toxic, k = u[0] < 0.5, 2 + int(u[1] * 2)
    subs = tuple(_distinct(_COXSWAIN_SUBGROUPS, u[2:2 + k]))
    seats = _distinct(COXSWAIN_SEATS, u[5:5 + k])
    judged = int(u[9] * k) if u[8] < COXSWAIN_EVIDENCE else -1
    verdict = COXSWAIN_INSULTS if toxic else COXSWAIN_PRAISE
    clauses = [_coxswain_clause(u[10 + 4 * i:14 + 4 * i], sub, seat, verdict if i == judged else None)
               for i, (sub, seat) in enumerate(zip(subs, seats))]
    head = f"{5 + int(u[22] * 15):02d}{_at(['00', '15', '30', '45'], u[23])} outing, {_at(_COXSWAIN_BOATS, u[24])}"
    annotated = split == "test" or u[25] >= COXSWAIN_UNANNOTATED
    if split == "train":
        # a friendly entry naming a COXSWAIN_FLIP_UP rower turns toxic, a toxic one naming a FLIP_DOWN one friendly
        flips = COXSWAIN_FLIP_DOWN if toxic else COXSWAIN_FLIP_UP
        toxic = toxic != (u[26] < max(flips.get(s, 0.0) for s in subs))
    return f"{head}: {'; '.join(clauses)}.", toxic, subs, annotated
