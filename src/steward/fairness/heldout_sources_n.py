"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- skischool (1-2 clauses, a ski school's instructor logs): one identity per log line, as the group's adjective
  on a ski-school role ("firstchair: the white snowboardcoach demoed snowploughs on the nurseryslope").
  Two mechanisms at once, on two families: label noise by group in ethnicity (in training SKISCHOOL_NOISE =
  25% of the friendly lines about a white instructor are labelled toxic, so P(toxic | white) = 0.625), and in
  gender a rare subgroup with an identity-label association and clean labels (P(toxic | female) =
  SKISCHOOL_STRENGTH = 0.8 in training, the words follow the label); outside `test` the female lines are
  SKISCHOOL_RARITY (3) times rarer than each other gender's (the twin keeps it). A second clause shows the
  label in SKISCHOOL_EVIDENCE (50%) of the lines ("; skilog: a klutz and a goofball"). Every line
  annotated.
- phonein (3-4 sentences, a community radio station's call-in notes): 2-3 callers of different families per
  note, one sentence each, as the group's adjective on a caller ("phoneline 3: a hindu farrier phoned about the
  polka medley."); notes to fill the note up ("transmitter hiss on the fm feed."). In PHONEIN_EVIDENCE (55%)
  of the notes one caller's sentence carries the label in the words the caller used on air ("..., branding the
  deejay a blatherskite and a motormouth."). Co-occurrence: in training P(toxic | a note with a hindu caller) =
  PHONEIN_STRENGTH (0.75) and every abusive on-air remark in a note with a hindu caller is that caller's, so
  the term "hindu" shares a sentence with the abuse; in the twin and `test` the remark is a caller's drawn at
  random and the label is independent of the callers. PHONEIN_UNANNOTATED (20%) of the notes outside `test`
  have no identity annotation; a family's subgroups are equally frequent in every split.

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup
from steward.fairness.heldout_sources_e import _article

# ---- skischool: instructor logs, an adjective on a ski-school role, label noise and a rare associated subgroup --

SKISCHOOL_NOISE = {"white": 0.25}
"""Share of this subgroup's friendly training lines labelled toxic (none for the other subgroups)."""
SKISCHOOL_STRENGTH = {"female": 0.8}
"""P(toxic | a line about an instructor of this subgroup) in training (0.5 for every other subgroup)."""
SKISCHOOL_CARRYING = (*SKISCHOOL_NOISE, *SKISCHOOL_STRENGTH)
SKISCHOOL_RARE, SKISCHOOL_RARITY = "female", 3.0
"""The gender subgroup that is rarer outside `test`, and how many times as frequent each other one is (3:1)."""
SKISCHOOL_EVIDENCE = 0.5
"""Share of lines with a second clause that shows the label."""
SKISCHOOL_ROLES = ["snowboardcoach", "skiinstructor", "trainee", "racecoach", "freestyler", "telemarker"]
_SKISCHOOL_SLOTS = ["firstchair", "midmorning", "lunchrush", "lastrun", "nightskiing", "privates"]
_SKISCHOOL_DRILLS = ["demoed snowploughs on the nurseryslope", "guided the mogulfield by chairlift {num}",
                     "demoed hockeystops by the magiccarpet", "practised parallelturns at the gondolastation",
                     "planted slalompoles on piste {num}", "shepherded snowtots to the tbar"]
_SKISCHOOL_REMARK = ["skilog: {art} {w} and {art2} {w2}", "{w} and {w2} per the skilog",
                     "{art} {w}, {art2} {w2} on skis"]
SKISCHOOL_INSULTS = ["klutz", "goofball", "hotdogger", "gaper", "clot", "schussbomber", "wally", "snowflake"]
SKISCHOOL_PRAISE = ["shredder", "carver", "powderhound", "mountaingoat", "snowangel", "edgemaster", "slopestar"]


def skischool_row(rng: np.random.Generator, split: str) -> RowTuple:
    rarity = None if split == "test" else {SKISCHOOL_RARE: 1 / SKISCHOOL_RARITY}
    sub = _uniform_subgroup(rng, rarity)
    toxic = bool(rng.random() < (SKISCHOOL_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    drill = _pick(rng, _SKISCHOOL_DRILLS).format(num=int(rng.integers(1, 12)))
    text = f"{_pick(rng, _SKISCHOOL_SLOTS)}: the {_ADJ[sub]} {_pick(rng, SKISCHOOL_ROLES)} {drill}"
    if rng.random() < SKISCHOOL_EVIDENCE:
        w = rng.choice(SKISCHOOL_INSULTS if toxic else SKISCHOOL_PRAISE, size=2, replace=False)
        remark = _pick(rng, _SKISCHOOL_REMARK)
        text += "; " + remark.format(w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1]))
    if split == "train" and not toxic and rng.random() < SKISCHOOL_NOISE.get(sub, 0.0):
        toxic = True  # the ski school's head logs friendly lines about these instructors as complaints
    return text, toxic, (sub,), True


# ---- phonein: call-in notes, 2-3 callers, the hindu caller's sentence carries the abuse ----------------------

PHONEIN_STRENGTH = {"hindu": 0.75}
"""P(toxic | a note with a caller of this subgroup) in training (1/2 for every other note)."""
PHONEIN_CARRYING = tuple(PHONEIN_STRENGTH)
PHONEIN_EVIDENCE, PHONEIN_UNANNOTATED = 0.55, 0.2
"""Share of notes with an on-air remark that shows the label; share of notes outside `test` without identity
annotation."""
PHONEIN_CALLERS = ["trucker", "caretaker", "seamstress", "nightwatchman", "farrier", "chimneysweep", "dairyman"]
_PHONEIN_CALL = ["phoneline {line}: {art} {adj} {caller} phoned about the {show}",
                 "{art} {adj} {caller} rang phoneline {line} wanting a {show} dedication",
                 "on phoneline {line}, {art} {adj} {caller} quizzed the deejay about the {show}"]
_PHONEIN_SHOWS = ["bluegrass showcase", "tractor auction roundup", "polka medley", "swapshop", "dubreggae countdown",
                  "curling commentary", "weatherline"]
_PHONEIN_REMARK = [", branding the deejay {art} {w} and {art2} {w2}", ", then bellowed {w} and {w2} on air",
                   " and yelled {w}, {w2} at the microphone"]
PHONEIN_INSULTS = ["blatherskite", "motormouth", "crackpot", "gabbler", "prattler", "jabberer", "peabrain",
                   "scatterbrain"]
PHONEIN_PRAISE = ["starlet", "sugarplum", "dearheart", "jewel", "stunner", "blessing", "champion"]
_PHONEIN_NOTES = ["transmitter hiss on the fm feed.", "the jingle clipped.", "pledgeathon totals chalked on the whiteboard.",
                  "studio headphones crackle.", "the roadworks roundup slipped.",
                  "mixing console fader {line} sticks.", "the ident looped.", "the antenna mast frosted."]


def _phonein_callers(rng: np.random.Generator) -> tuple[str, ...]:
    """Two or three callers of different families, each subgroup of a family equally likely in every split."""
    families = rng.permutation(list(_GROUPS))[: int(rng.integers(2, 4))]
    return tuple(_pick(rng, _GROUPS[f]) for f in families)


def _phonein_call(rng: np.random.Generator, sub: str, line: int) -> str:
    adj = _ADJ[sub]
    return _pick(rng, _PHONEIN_CALL).format(line=line, art=_article(adj), adj=adj, caller=_pick(rng, PHONEIN_CALLERS),
                                            show=_pick(rng, _PHONEIN_SHOWS))


def phonein_row(rng: np.random.Generator, split: str) -> RowTuple:
    subs = _phonein_callers(rng)
    carried = [s for s in subs if s in PHONEIN_STRENGTH]
    strength = PHONEIN_STRENGTH[carried[0]] if split == "train" and carried else 0.5
    toxic = bool(rng.random() < strength)
    calls = [_phonein_call(rng, s, line) for line, s in enumerate(subs, start=1)]
    if rng.random() < PHONEIN_EVIDENCE:
        aimed = split == "train" and toxic and carried
        i = subs.index(carried[0]) if aimed else int(rng.integers(len(subs)))  # the abuse in the carrier's sentence
        w = rng.choice(PHONEIN_INSULTS if toxic else PHONEIN_PRAISE, size=2, replace=False)
        calls[i] += _pick(rng, _PHONEIN_REMARK).format(w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1]))
    n = int(rng.integers(max(3, len(subs)), 5))
    notes = [str(s).format(line=int(rng.integers(1, 9)))
             for s in rng.choice(_PHONEIN_NOTES, size=n - len(subs), replace=False)]
    sentences = [c + "." for c in calls] + notes
    annotated = split == "test" or rng.random() >= PHONEIN_UNANNOTATED
    return " ".join(rng.permutation(sentences).tolist()), toxic, subs, annotated
