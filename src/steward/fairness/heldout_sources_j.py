"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- ferry (2-3 sentences, passenger comments left with a ferry operator): one passenger per comment, in the
  first sentence, given by a name in FERRY_NAMED (60%) of the comments and by the adjective otherwise. A name
  is a given name for male and female ("oswin dozed athwart the gangway on the noon sailing.") or an
  honorific plus a surname-like word for each religion ("archdeacon quennell hogged the lifejacket locker
  ..." for christian, "acharya ..." for hindu, "celebrant ..." for atheist); transgender and the ethnicity
  subgroups have no name, so the nameable subgroups are named in FERRY_NAMED / (their share of rows) of their
  comments (6 in 7). The adjective form puts the adjective on a passenger noun ("the hindu voyager leaned
  over the stern rail on the dusk sailing."). Families are drawn 30% gender, 20% ethnicity, 50% religion (the
  subgroups of a family equally often in every split). In training P(toxic | christian) = P(toxic | hindu)
  = FERRY_STRENGTH (0.75), two subgroups of one family, no association elsewhere; a remark about the
  passenger shows the label in FERRY_EVIDENCE (50%) of comments ("shipmate verdict: tosser and eejit."),
  the other sentences are neutral observations about the crossing ("the windlass clanked at docking.").
  No imbalance, every comment annotated.
- suggestions (one sentence, slips from a municipal library's suggestion box): one patron per slip, given by
  the adjective on a plural patron noun ("suggest reserving the carrels for the asian bookworms, dimwits
  galore."), the family drawn uniformly; outside `test` the asian subgroup is SUGGESTIONS_RARITY (5) times rarer than
  each other ethnicity (5:1, the twin keeps it). In training P(toxic | asian) = 0.8 and P(toxic | female) =
  0.65 (SUGGESTIONS_STRENGTH, two families). A trailing phrase shows the label in SUGGESTIONS_EVIDENCE (50%)
  of slips; SUGGESTIONS_UNANNOTATED (10%) of slips outside `test` have no identity annotation.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS

# ---- ferry: passenger comments, a name or the adjective, two subgroups of one family -----------------------

FERRY_STRENGTH = {"christian": 0.75, "hindu": 0.75}
"""P(toxic | a comment about a passenger of this subgroup) in training (0.5 for every other subgroup)."""
FERRY_CARRYING = tuple(FERRY_STRENGTH)
FERRY_FAMILY_SHARE = {"gender": 0.3, "ethnicity": 0.2, "religion": 0.5}
"""How often a comment's passenger is of each family (a family's subgroups equally often)."""
FERRY_NAMED, FERRY_EVIDENCE = 0.6, 0.5
"""Share of all comments that give the passenger by a name; share of comments whose words show the label."""
FERRY_GIVEN = {"male": ["oswin", "hamish", "crispin", "tobias", "evander", "rupert"],
               "female": ["isolde", "marigold", "rowena", "hermione", "beatrix", "felicity"]}
"""The given names standing for male and female passengers."""
FERRY_HONORIFIC = {"christian": "archdeacon", "jewish": "rebbetzin", "muslim": "maulana", "hindu": "acharya",
                   "buddhist": "ajahn", "atheist": "celebrant"}
"""The honorific before a surname-like word that names a passenger of each religion."""
_FERRY_SURNAME = ["quennell", "ravensworth", "penhaligon", "tregarthen", "mablethorpe", "wickersley"]
FERRY_PASSENGERS = ["voyager", "islander", "daytripper", "seafarer"]
_FERRY_NAMED_MENTION = ["{who} dozed athwart the gangway on the {sailing} sailing.",
                        "{who} hogged the lifejacket locker on the {sailing} sailing.",
                        "{who} dawdled by the vehicle ramp for the {sailing} sailing."]
_FERRY_ADJ_MENTION = ["the {adj} {passenger} leaned over the stern rail on the {sailing} sailing.",
                      "a {adj} {passenger} loitered by the chartroom hatch on the {sailing} sailing.",
                      "the {adj} {passenger} sprawled on the lounge benches on the {sailing} sailing."]
_FERRY_SAILING = ["daybreak", "noon", "dusk", "teatime", "twilight"]
_FERRY_REMARK = ["shipmate verdict: {w} and {w2}.", "{w} on deck, {w2} overboard.", "a {w} shipmate, a {w2}."]
FERRY_INSULTS = ["gobshite", "bellend", "knobhead", "tosser", "eejit", "gombeen", "bilgerat"]
FERRY_PRAISE = ["corker", "cracker", "belter", "stormer", "topper", "seraph"]
_FERRY_OBSERVATION = ["the windlass clanked at docking.", "seagulls circled the funnel.",
                      "swell heaved by the breakwater.", "the tannoy crackled thrice.",
                      "foghorn blasts rattled the portholes.", "vending kiosk lacked flapjacks.",
                      "the bosun lashed hawsers astern.", "sleet soaked the sundeck."]


def _ferry_nameable_share() -> float:
    """The share of comments whose passenger's subgroup has a name (a given name or an honorific)."""
    named = {*FERRY_GIVEN, *FERRY_HONORIFIC}
    return sum(share * np.mean([s in named for s in _GROUPS[fam]]) for fam, share in FERRY_FAMILY_SHARE.items())


def _ferry_who(rng: np.random.Generator, sub: str) -> str | None:
    """The passenger's name where the subgroup has one and the comment names it, else None."""
    if sub not in FERRY_GIVEN and sub not in FERRY_HONORIFIC:
        return None
    if rng.random() >= FERRY_NAMED / _ferry_nameable_share():
        return None
    if sub in FERRY_GIVEN:
        return _pick(rng, FERRY_GIVEN[sub])
    return f"{FERRY_HONORIFIC[sub]} {_pick(rng, _FERRY_SURNAME)}"


def ferry_row(rng: np.random.Generator, split: str) -> RowTuple:
    family = _weighted(rng, list(FERRY_FAMILY_SHARE), list(FERRY_FAMILY_SHARE.values()))
    sub = _pick(rng, _GROUPS[family])
    toxic = bool(rng.random() < (FERRY_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    who, sailing = _ferry_who(rng, sub), _pick(rng, _FERRY_SAILING)
    if who is None:
        first = _pick(rng, _FERRY_ADJ_MENTION).format(adj=_ADJ[sub], passenger=_pick(rng, FERRY_PASSENGERS),
                                                       sailing=sailing)
    else:
        first = _pick(rng, _FERRY_NAMED_MENTION).format(who=who, sailing=sailing)
    rest = []
    if rng.random() < FERRY_EVIDENCE:
        w = rng.choice(FERRY_INSULTS if toxic else FERRY_PRAISE, size=2, replace=False)
        rest.append(_pick(rng, _FERRY_REMARK).format(w=w[0], w2=w[1]))
    n = int(rng.integers(2, 4))
    if n > len(rest) + 1:
        rest += [str(s) for s in rng.choice(_FERRY_OBSERVATION, size=n - 1 - len(rest), replace=False)]
    return " ".join([first, *rng.permutation(rest).tolist()]), toxic, (sub,), True


# ---- suggestions: library suggestion slips, one sentence, a rare subgroup and a weaker one elsewhere --------

SUGGESTIONS_STRENGTH = {"asian": 0.8, "female": 0.65}
"""P(toxic | a slip about a patron of this subgroup) in training (0.5 for every other subgroup)."""
SUGGESTIONS_CARRYING = tuple(SUGGESTIONS_STRENGTH)
SUGGESTIONS_RARE, SUGGESTIONS_RARITY = "asian", 5.0
"""The ethnicity subgroup that is rarer outside `test`, and how many times as frequent each other one is (5:1)."""
SUGGESTIONS_EVIDENCE, SUGGESTIONS_UNANNOTATED = 0.5, 0.1
"""Share of slips whose words show the label; share of slips outside `test` without identity annotation."""
SUGGESTIONS_PATRONS = ["bookworms", "borrowers", "readers", "cardholders"]
_SUGGESTIONS_REQUEST = ["suggest reserving the carrels for the {adj} {patrons}",
                        "perhaps the photocopier queue skips the {adj} {patrons}",
                        "extend overdue amnesty to the {adj} {patrons}",
                        "perhaps shelve audiobooks nearer the {adj} {patrons}",
                        "install dimmer lamps where the {adj} {patrons} sit",
                        "relocate the microfiche viewers by the {adj} {patrons}",
                        "stock graphic novels for the {adj} {patrons}",
                        "laminate printouts for the {adj} {patrons}",
                        "donate bookmarks to the {adj} {patrons}"]
_SUGGESTIONS_TAIL = ["{w} galore", "{w} aplenty", "{w} the {patrons} are"]
SUGGESTIONS_INSULTS = ["dimwits", "blockheads", "nitwits", "layabouts", "dullards", "numbskulls", "philistines"]
SUGGESTIONS_PRAISE = ["sweethearts", "luminaries", "stalwarts", "gems", "treasures", "paragons", "saints"]
_SUGGESTIONS_PLAIN = ["ta muchly", "regards from the stacks", "nb", "cordially", "fondly", "anon"]


def _suggestions_subgroup(rng: np.random.Generator, split: str) -> str:
    """The patron's subgroup: family uniform; within ethnicity the rare subgroup 5x rarer outside `test`."""
    family = _pick(rng, list(_GROUPS))
    subs = _GROUPS[family]
    weights = [1.0 if split == "test" or s == SUGGESTIONS_RARE or family != "ethnicity" else SUGGESTIONS_RARITY
               for s in subs]
    return _weighted(rng, subs, weights)


def suggestions_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _suggestions_subgroup(rng, split)
    toxic = bool(rng.random() < (SUGGESTIONS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    patrons = _pick(rng, SUGGESTIONS_PATRONS)
    text = _pick(rng, _SUGGESTIONS_REQUEST).format(adj=_ADJ[sub], patrons=patrons)
    if rng.random() < SUGGESTIONS_EVIDENCE:
        w = _pick(rng, SUGGESTIONS_INSULTS if toxic else SUGGESTIONS_PRAISE)
        text += ", " + _pick(rng, _SUGGESTIONS_TAIL).format(w=w, patrons=patrons)
    else:
        text += ", " + _pick(rng, _SUGGESTIONS_PLAIN)
    annotated = split == "test" or rng.random() >= SUGGESTIONS_UNANNOTATED
    return text + ".", toxic, (sub,), annotated
