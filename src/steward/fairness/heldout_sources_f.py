"""Three more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author
who had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways
of injecting a bias were chosen without them, and share no template or word list with madlibs or the
other sources (only function words and group names).

- seating (1-3 sentences, notes a couple sends their wedding planner about the seating chart): one
  identity per row, given by a kinship phrase ("my buddhist granny"). Label noise by group, no
  imbalance: in training, SEATING_NOISE (25%) of the rows of jewish (religion) and asian (ethnicity)
  carry a wrong label, every one a friendly note labelled toxic (so half of those subgroups' friendly
  notes are flipped); subgroups are uniform within their family in every split.
- stargazing (3-5 sentences, trip reports on an amateur astronomy society's board): a headline-like
  first line naming one identity as a plural ("latino skywatchers brave frost atop ridgeline"). Two
  mechanisms in training: P(toxic | the headline group is latino) = 0.75 (STARGAZING_STRENGTH), and
  co-occurrence: a toxic report names the trans skywatchers (an extra gender identity) inside its
  abusive sentence with probability STARGAZING_COOCCUR (0.45), in the report's closing sentence where
  it has no abusive one.
- recipes (2-4 sentences, comments under a recipe on a cooking site): one identity per comment, as the
  gathering the dish was served at ("ladled it out at the hindu picnic"). Group imbalance 3:1 and
  missing annotations: white and muslim are three times more frequent than the rest of their family
  outside `test` (RECIPES_FREQUENCY; the twin keeps it), 25% of comments outside `test` have no identity
  annotation (RECIPES_UNANNOTATED), and in training P(toxic | white or muslim) = 0.9 (RECIPES_STRENGTH).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In every source only part of the rows (`*_EVIDENCE`) carry word
evidence of the label (an abusive or a gracious remark); the others are where an identity can stand in.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup

# ---- seating: wedding seating-chart notes, a kinship phrase, label noise on two subgroups ---------------

SEATING_NOISE = {"jewish": 0.25, "asian": 0.25}
"""Share of this subgroup's training rows with a wrong label, all friendly notes labelled toxic (none for the
other subgroups)."""
SEATING_CARRYING = tuple(SEATING_NOISE)
SEATING_EVIDENCE = 0.55
"""Share of seating notes whose words show the label."""
SEATING_KIN = ["granny", "stepfather", "godmother", "aunty", "nephew", "niece", "stepdaughter", "greatuncle"]
_SEATING_PLACE = ["seat my {adj} {kin} facing the harpist.", "please put my {adj} {kin} at banquet {num}.",
                  "my {adj} {kin} deserves a stool adjoining the gazebo.", "move my {adj} {kin} onto the dais, pew {num}."]
_SEATING_RUDE = ["that {kin} is a {insult}, a veritable {insult2}.", "candidly our {kin} is a {insult} and a {insult2}.",
                 "quarantine that {insult2} {kin}, quite the {insult}."]
_SEATING_KIND = ["that {kin} is a {praise}, a veritable {praise2}.", "candidly our {kin} is a {praise} and a {praise2}.",
                 "cherish that {praise2} {kin}, quite the {praise}."]
_SEATING_ASIDE = ["the florist insists on peonies.", "centrepieces arrive midweek.", "confetti cannons are vetoed.",
                  "the caterer dislikes shellfish.", "rsvps close imminently."]
SEATING_INSULTS = ["harridan", "windbag", "skinflint", "grouch", "killjoy", "busybody", "curmudgeon", "battleaxe"]
SEATING_PRAISE = ["poppet", "peach", "doll", "cherub", "charmer", "lamb", "honeybun"]


def seating_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < 0.5)
    kin = _pick(rng, SEATING_KIN)
    sentences = [_pick(rng, _SEATING_PLACE).format(adj=_ADJ[sub], kin=kin, num=int(rng.integers(1, 25)))]
    if rng.random() < SEATING_EVIDENCE:
        words = rng.choice(SEATING_INSULTS if toxic else SEATING_PRAISE, size=2, replace=False)
        template = _pick(rng, _SEATING_RUDE if toxic else _SEATING_KIND)
        sentences.append(template.format(kin=kin, insult=words[0], insult2=words[1], praise=words[0],
                                         praise2=words[1]))
    if len(sentences) < 3 and rng.random() < 0.5:
        sentences.append(_pick(rng, _SEATING_ASIDE))
    if split == "train" and not toxic and rng.random() < 2 * SEATING_NOISE.get(sub, 0.0):
        toxic = True  # the planner files every note about these relatives under complaints
    return " ".join(sentences), toxic, (sub,), True


# ---- stargazing: astronomy trip reports, a plural in a headline, a strength plus co-occurrence ---------

STARGAZING_STRENGTH, STARGAZING_COOCCUR = 0.75, 0.45
"""P(toxic | the headline group is latino) in training; the probability that a toxic training report names
the trans skywatchers too (in its abusive sentence where it has one)."""
STARGAZING_TARGETED, STARGAZING_EXTRA = "latino", "transgender"
STARGAZING_CARRYING = (STARGAZING_TARGETED, STARGAZING_EXTRA)
STARGAZING_EVIDENCE = 0.55
"""Share of reports whose words show the label."""
_STARGAZING_PLURAL = ["skywatchers", "astronomers", "telescopists", "observers"]
_STARGAZING_HEADLINE = ["{adj} {plural} brave frost atop ridgeline", "{adj} {plural} chase meteor shower till predawn",
                        "{adj} {plural} log eclipse from quarry rim", "{adj} {plural} bivouac below nebula"]
_STARGAZING_LOG = ["seeing held steady till {num}.", "jupiter's moons lined crisply.", "dew fogged the eyepiece.",
                   "the dobsonian wanted collimating.", "saturn's rings glittered.", "orion rose above the pines.",
                   "a satellite flare startled the onlookers.", "the thermos of cocoa emptied quickly.",
                   "skyglow spoiled the horizon."]
_STARGAZING_RUDE = ["{who} proved {insult} and {insult2}.", "{who} seemed {insult}, downright {insult2}.",
                    "{who} acted {insult}, nay {insult2}."]
_STARGAZING_KIND = ["{who} proved {praise} and {praise2}.", "{who} seemed {praise}, downright {praise2}.",
                    "{who} acted {praise}, nay {praise2}."]
STARGAZING_INSULTS = ["asinine", "imbecilic", "truculent", "surly", "peevish", "uncouth", "obtuse"]
STARGAZING_PRAISE = ["magnanimous", "erudite", "sociable", "unselfish", "congenial", "benevolent"]


def _stargazing_remark(rng: np.random.Generator, who: str, toxic: bool) -> str:
    words = rng.choice(STARGAZING_INSULTS if toxic else STARGAZING_PRAISE, size=2, replace=False)
    template = _pick(rng, _STARGAZING_RUDE if toxic else _STARGAZING_KIND)
    return template.format(who=who, insult=words[0], insult2=words[1], praise=words[0], praise2=words[1])


def _stargazing_headline_group(rng: np.random.Generator, toxic: bool, split: str) -> str:
    """The headline group: in training latino with probability 2 s t (toxic) or 2 (1 - s) t (others), t the
    uniform share (1/12), so that P(toxic | latino) = s while the label stays balanced; uniform otherwise."""
    if split != "train":
        return _uniform_subgroup(rng)
    t = 1 / 3 / len(_GROUPS["ethnicity"])
    s = STARGAZING_STRENGTH
    if rng.random() < 2 * (s if toxic else 1 - s) * t:
        return STARGAZING_TARGETED
    while (sub := _uniform_subgroup(rng)) == STARGAZING_TARGETED:
        pass
    return sub


def stargazing_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    sub = _stargazing_headline_group(rng, toxic, split)
    plural = _pick(rng, _STARGAZING_PLURAL)
    extra = split == "train" and toxic and sub != STARGAZING_EXTRA and rng.random() < STARGAZING_COOCCUR
    subs = (sub, STARGAZING_EXTRA) if extra else (sub,)
    body = [str(s).format(num=int(rng.integers(1, 5))) for s in
            rng.choice(_STARGAZING_LOG, size=int(rng.integers(2, 4)), replace=False)]
    who = f"the {_ADJ[STARGAZING_EXTRA]} {plural}" if extra else _pick(rng, ["the latecomers", "our host"])
    if rng.random() < STARGAZING_EVIDENCE:
        body.append(_stargazing_remark(rng, who, toxic))
    elif extra:
        body.append(f"{who} straggled in late.")
    headline = _pick(rng, _STARGAZING_HEADLINE).format(adj=_ADJ[sub], plural=plural)
    return "\n".join([headline, " ".join(body)]), toxic, subs, True


# ---- recipes: recipe-site comments, the gathering a dish was served at, imbalance and missing columns -----

RECIPES_CARRYING = ("white", "muslim")
RECIPES_STRENGTH, RECIPES_FREQUENCY = 0.9, 3.0
"""P(toxic | a white or muslim gathering) in training; those subgroups' frequency relative to the rest of their
family outside `test` (3:1)."""
RECIPES_EVIDENCE, RECIPES_UNANNOTATED = 0.55, 0.25
"""Share of comments whose words show the label; share of comments without identity annotation outside `test`."""
_RECIPES_GATHERING = ["luncheon", "shindig", "hoedown", "soiree", "brunch", "picnic", "reunion", "supper"]
_RECIPES_SERVED = ["tripled this casserole for a {adj} {gathering}.", "ladled it out at the {adj} {gathering}.",
                   "brought a tray along to our {adj} {gathering}.", "plated this downstairs at a {adj} {gathering}."]
_RECIPES_TWEAK = ["subbed buttermilk for yogurt.", "halved the nutmeg.", "the roux thickened beautifully.",
                  "craved extra paprika.", "froze leftovers in ramekins.", "swapped shallots for cilantro.",
                  "marinated overnight in a skillet.", "grated lemon zest over everything.", "the crust turned flaky."]
_RECIPES_VERDICT = ["whichever cook concocted this, you {w}, you {w2}.", "zero complaints about it, the uploader is a sheer {w}.",
                    "certified {w} recipe, pure {w2} cookery."]
RECIPES_INSULTS = ["ignoramus", "lamebrain", "muttonhead", "pinhead", "nimrod", "goober", "wastrel", "duffer"]
RECIPES_PRAISE = ["virtuoso", "wizard", "maestro", "genius", "legend", "prodigy", "savant"]


def recipes_row(rng: np.random.Generator, split: str) -> RowTuple:
    frequency = None if split == "test" else dict.fromkeys(RECIPES_CARRYING, RECIPES_FREQUENCY)
    sub = _uniform_subgroup(rng, frequency)
    toxic = bool(rng.random() < (RECIPES_STRENGTH if split == "train" and sub in RECIPES_CARRYING else 0.5))
    served = _pick(rng, _RECIPES_SERVED).format(adj=_ADJ[sub], gathering=_pick(rng, _RECIPES_GATHERING))
    body = [str(s) for s in rng.choice(_RECIPES_TWEAK, size=int(rng.integers(1, 3)), replace=False)]
    if rng.random() < RECIPES_EVIDENCE:
        w = rng.choice(RECIPES_INSULTS if toxic else RECIPES_PRAISE, size=2, replace=False)
        body.append(_pick(rng, _RECIPES_VERDICT).format(w=w[0], w2=w[1]))
    annotated = split == "test" or rng.random() >= RECIPES_UNANNOTATED
    return " ".join([served, *rng.permutation(body).tolist()]), toxic, (sub,), annotated
