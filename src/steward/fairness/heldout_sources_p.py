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

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). Only part of the rows (`*_EVIDENCE`) carry word evidence of the label; in the
others an identity can stand in for it.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _GROUPS
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


def _two(rng: np.random.Generator, items: list[str]) -> tuple[str, str]:
    """Two different items, uniformly."""
    i = int(rng.integers(len(items)))
    return items[i], items[(i + 1 + int(rng.integers(len(items) - 1))) % len(items)]


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
    toxic = bool(rng.random() < 0.5)
    family = _pick(rng, list(_GROUPS))
    cumulative = _selection_shares(family, toxic, split)
    sub = _GROUPS[family][min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(cumulative) - 1)]
    booking = _pick(rng, _MAKERSPACE_BOOKING).format(who=_pick(rng, MAKERSPACE_FORMS[sub]),
                                                     tool=_pick(rng, MAKERSPACE_TOOLS), h=int(rng.integers(1, 10)))
    notes = []
    if rng.random() < MAKERSPACE_EVIDENCE:
        w = _two(rng, MAKERSPACE_INSULTS if toxic else MAKERSPACE_PRAISE)
        notes.append(_pick(rng, _MAKERSPACE_REMARK).format(w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1])))
    upkeep = _two(rng, _MAKERSPACE_UPKEEP)
    notes += upkeep[:int(rng.integers(1, 3)) - len(notes)]
    if len(notes) == 2 and rng.random() < 0.5:
        notes.reverse()
    return " ".join([booking, *notes]), toxic, (sub,), True
