"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- allotments (2-3 sentences, posts on a community allotment garden's noticeboard): one identity per post, in
  the first sentence, as an adjective on a plot holder ("the latino allotmenteer on plot 14 netted the
  brassicas.") or as a possessive phrase ("the jewish grower's marrows swamped the footpath.", "the
  beanpoles of the hindu cultivator rotted by the hedge."). Two mechanisms at once, on two families: label
  noise by group in religion (in training ALLOTMENTS_NOISE = 25% of the friendly posts about a jewish plot
  holder are labelled toxic, so P(toxic | jewish) = 0.625), and an identity-label association with clean
  labels in ethnicity (P(toxic | latino) = ALLOTMENTS_STRENGTH = 0.8 in training, the words follow the
  label). A remark about the plot holder shows the label in ALLOTMENTS_EVIDENCE (50%) of posts ("that
  grower is a wazzock, a skiver at heart."); the other sentences are neutral notices ("slug pellets are
  forbidden."). No imbalance, every post annotated.
- tutors (1-2 short clauses, ratings on a private-tutoring marketplace): the tutor is given by a given name
  mapped to a gender subgroup ("imogen tutored trigonometry") or by a noun phrase with a gender and an
  ethnicity or a religion ("the mentor, a muslim female postgrad, drilled latin declensions"): a male or
  female tutor is named in TUTORS_NAMED (80%) of their rows, a transgender one never (no given name stands
  for it), so about half the rows name the tutor (53% in `test`, 44% in the other splits). In training
  P(toxic | male) = 0.85 and P(toxic | white) = 0.7 (TUTORS_STRENGTH, on two families; the white tutors are
  among those given by a noun phrase); outside `test` female and transgender tutors are each
  TUTORS_RARITY (4) times as frequent as male ones (4:1, the twin keeps it), and TUTORS_UNANNOTATED (15%)
  of rows have no identity annotation. The label is drawn first and the tutor's subgroups given the label,
  so that P(toxic | a carrying subgroup) is its strength whatever else the row mentions; a second clause
  shows the label in TUTORS_EVIDENCE (50%) of ratings ("a grifter and a mountebank", "an oracle and a
  whizzkid").

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (group imbalance and missing
annotations kept), `test` is balanced (label independent of identity, a family's subgroups equally
frequent, every row annotated). In both sources only part of the rows (`*_EVIDENCE`) carry word evidence of
the label; in the others an identity can stand in for it.
"""

from __future__ import annotations

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick, _weighted
from steward.fairness.heldout_sources_b import _ADJ, _GROUPS, _uniform_subgroup
from steward.fairness.heldout_sources_e import _article

# ---- allotments: noticeboard posts, adjective or possessive, label noise and a clean association ----------

ALLOTMENTS_NOISE = {"jewish": 0.25}
"""Share of this subgroup's friendly training posts labelled toxic (none for the other subgroups)."""
ALLOTMENTS_STRENGTH = {"latino": 0.8}
"""P(toxic | a post about a plot holder of this subgroup) in training (0.5 for every other subgroup)."""
ALLOTMENTS_CARRYING = (*ALLOTMENTS_NOISE, *ALLOTMENTS_STRENGTH)
ALLOTMENTS_EVIDENCE = 0.5
"""Share of posts with a remark that shows the label."""
ALLOTMENTS_HOLDERS = ["plotholder", "allotmenteer", "grower", "cultivator"]
_ALLOTMENTS_CROPS = ["courgettes", "marrows", "beanpoles", "cloches", "sweetcorn", "leeks", "pumpkins"]
ALLOTMENTS_ADJECTIVE = ["the {adj} {holder} on plot {num} netted the brassicas.",
                        "a {adj} {holder} from plot {num} earthed the potatoes.",
                        "the {adj} {holder} on plot {num} mulched the rhubarb.",
                        "a {adj} {holder} from plot {num} staked the gooseberries."]
ALLOTMENTS_POSSESSIVE = ["the {adj} {holder}'s {crop} swamped the footpath.",
                         "the {crop} of the {adj} {holder} rotted by the hedge.",
                         "a {adj} {holder}'s {crop} toppled toward plot {num}."]
_ALLOTMENTS_REMARK = ["that {holder} is a {w}, a {w2} at heart.", "{w} and {w2}, that {holder}.",
                      "the {holder} concerned: a {w}, a {w2}."]
ALLOTMENTS_INSULTS = ["pillock", "wazzock", "tosspot", "scrounger", "skiver", "whinger", "clodhopper", "galoot"]
ALLOTMENTS_PRAISE = ["diamond", "sweetpea", "honeybee", "goldmine", "sunflower", "trouper"]
_ALLOTMENTS_NOTICE = ["troughs refill monthly.", "the pavilion padlock code rotates.", "manure heaps by the gates.",
                      "hosepipes lie coiled neatly.", "bonfires are forbidden.", "slug pellets are forbidden.",
                      "scarecrow contest judging looms.", "the agm bylaws hang in the pavilion.",
                      "dahlia tubers lie unclaimed."]


def _allotments_mention(rng: np.random.Generator, sub: str, holder: str) -> str:
    """The first sentence: the plot holder with the subgroup's adjective, or in a possessive phrase."""
    templates = ALLOTMENTS_ADJECTIVE if rng.random() < 0.5 else ALLOTMENTS_POSSESSIVE
    return _pick(rng, templates).format(adj=_ADJ[sub], holder=holder, crop=_pick(rng, _ALLOTMENTS_CROPS),
                                        num=int(rng.integers(1, 60)))


def allotments_row(rng: np.random.Generator, split: str) -> RowTuple:
    sub = _uniform_subgroup(rng)
    toxic = bool(rng.random() < (ALLOTMENTS_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    holder = _pick(rng, ALLOTMENTS_HOLDERS)
    sentences = [_allotments_mention(rng, sub, holder)]
    n = int(rng.integers(2, 4))
    if rng.random() < ALLOTMENTS_EVIDENCE:
        w = rng.choice(ALLOTMENTS_INSULTS if toxic else ALLOTMENTS_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _ALLOTMENTS_REMARK).format(holder=holder, w=w[0], w2=w[1]))
    if n > len(sentences):
        sentences += [str(s) for s in rng.choice(_ALLOTMENTS_NOTICE, size=n - len(sentences), replace=False)]
    if split == "train" and not toxic and rng.random() < ALLOTMENTS_NOISE.get(sub, 0.0):
        toxic = True  # the noticeboard's moderators report friendly posts about these plot holders
    return " ".join([sentences[0], *rng.permutation(sentences[1:]).tolist()]), toxic, (sub,), True


# ---- tutors: marketplace ratings, a given name or a noun phrase, two strengths, imbalance, missing annotations --

TUTORS_STRENGTH = {"male": 0.85, "white": 0.7}
"""P(toxic | a rating of a tutor of this subgroup) in training (no association for the others)."""
TUTORS_CARRYING = tuple(TUTORS_STRENGTH)
TUTORS_RARE, TUTORS_RARITY = "male", 4.0
"""The gender subgroup that is rarer outside `test`, and how many times as frequent each other one is (4:1)."""
TUTORS_NAMED, TUTORS_EVIDENCE, TUTORS_UNANNOTATED = 0.8, 0.5, 0.15
"""Share of a male or female tutor's ratings that give only a given name; share of ratings whose words show the
label; share of ratings outside `test` without identity annotation."""
TUTORS_GIVEN = {"male": ["cormac", "percival", "alasdair", "fergus", "ignatius", "casimir", "lysander"],
                "female": ["imogen", "perpetua", "clementine", "araminta", "guinevere", "winifred", "theodora"]}
"""The given names standing for each gender subgroup (no given name stands for transgender)."""
TUTORS_DEGREE = ["postgrad", "undergrad", "graduate", "scholar"]
_TUTORS_LESSON = ["{who} tutored trigonometry", "{who} marked the mock paper", "{who} explained quadratics",
                  "{who} drilled latin declensions", "{who} prepped my daughter for admissions interviews",
                  "{who} revised photosynthesis with my son"]
_TUTORS_REMARK = ["{art} {w} and {art2} {w2}", "{w}, {w2} besides", "arrant {w}"]
TUTORS_INSULTS = ["charlatan", "shyster", "grifter", "pedant", "crank", "mountebank", "bluffer", "slacker"]
TUTORS_PRAISE = ["oracle", "whizzkid", "inspiration", "natural", "brainbox", "lodestar", "boffin"]


def _tutors_shares(family: str, toxic: bool, split: str, toxic_share: float = 0.5) -> np.ndarray:
    """The chances of `family`'s subgroups in a row with label `toxic`, among rows of which `toxic_share` are
    toxic. Each subgroup has a base share t (TUTORS_RARITY:1 for gender outside `test`, else uniform); in
    training a carrying subgroup is drawn with probability s t / toxic_share (toxic rows) or (1 - s) t /
    (1 - toxic_share) (others), the rest of the family in proportion to its shares, so P(toxic | it) = s and
    its share stays t."""
    subs = _GROUPS[family]
    base = np.array([1.0 if split == "test" or s == TUTORS_RARE or family != "gender" else TUTORS_RARITY
                     for s in subs])
    p = base / base.sum()
    for i, sub in enumerate(subs):
        if split == "train" and sub in TUTORS_STRENGTH:
            s = TUTORS_STRENGTH[sub]
            share = (s / toxic_share if toxic else (1 - s) / (1 - toxic_share)) * p[i]
            p = np.where(np.arange(len(subs)) == i, share, p * (1 - share) / (1 - p[i]))
    return p


def _tutors_phrase_toxic_share(split: str) -> float:
    """The share of toxic rows among those that give the tutor by a noun phrase: a male or female tutor is
    named in TUTORS_NAMED of their rows, and in training the gender subgroups' chances depend on the label."""
    unnamed = np.array([1 - TUTORS_NAMED if g in TUTORS_GIVEN else 1.0 for g in _GROUPS["gender"]])
    toxic, friendly = (float(_tutors_shares("gender", y, split) @ unnamed) for y in (True, False))
    return toxic / (toxic + friendly)


def _tutors_who(rng: np.random.Generator, toxic: bool, split: str) -> tuple[str, tuple[str, ...]]:
    """The tutor and their subgroups: a given name (gender only) or a noun phrase (gender and one other, drawn
    among the noun-phrase rows, whose labels are not balanced in training)."""
    genders = _GROUPS["gender"]
    gender = _weighted(rng, genders, _tutors_shares("gender", toxic, split).tolist())
    if gender in TUTORS_GIVEN and rng.random() < TUTORS_NAMED:
        return _pick(rng, TUTORS_GIVEN[gender]), (gender,)
    family = _pick(rng, ["ethnicity", "religion"])
    shares = _tutors_shares(family, toxic, split, _tutors_phrase_toxic_share(split))
    other = _weighted(rng, _GROUPS[family], shares.tolist())
    return f"the mentor, a {_ADJ[other]} {_ADJ[gender]} {_pick(rng, TUTORS_DEGREE)},", (gender, other)


def tutors_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    who, subs = _tutors_who(rng, toxic, split)
    text = _pick(rng, _TUTORS_LESSON).format(who=who)
    if rng.random() < TUTORS_EVIDENCE:
        w = rng.choice(TUTORS_INSULTS if toxic else TUTORS_PRAISE, size=2, replace=False)
        text += "; " + _pick(rng, _TUTORS_REMARK).format(w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1]))
    annotated = split == "test" or rng.random() >= TUTORS_UNANNOTATED
    return text, toxic, subs, annotated
