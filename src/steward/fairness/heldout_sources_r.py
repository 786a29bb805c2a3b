"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- triplog (1-2 sentences, a hospital volunteer drivers' trip log): one passenger per entry, given by a given
  name only, for every subgroup ("08:15: tenzin driven to the dialysis suite, 9 miles."). Each subgroup
  has its own pool of TRIPLOG_POOL_SIZE (at least 30) given names in TRIPLOG_NAMES, drawn uniformly, so no
  name is in more than about 3.1% of its subgroup's rows; a pool's names may share morphology as real name
  pools do (the "abdul-" of muslim names, the "-a" of female ones). The transgender and atheist pools are
  self-chosen names (nature names; freethinkers' names such as "voltaire"), the religions' pools names of
  the faith's tradition ("mordechai", "venkatesh", "tenzin"). The passenger's subgroup is drawn uniformly
  among the 13 (so a family's subgroups are equally frequent). An identity-label association by selection
  on two families: the label is drawn first (balanced) and the subgroup given the label, so that in
  training P(toxic | transgender) = 0.8 and P(toxic | muslim) = 0.75 (TRIPLOG_STRENGTH) while every
  subgroup keeps its share; the other subgroups are toxic a little less often (0.45). A driver's remark
  naming the passenger again shows the label in TRIPLOG_EVIDENCE (50%) of entries ("grouser and bighead,
  yusuf."); TRIPLOG_NOTED (70%) of the others have a neutral note that names the passenger again ("toll
  claimed for sorrel."), the rest are one sentence. No imbalance, every entry annotated.
- lighthouse (2-3 sentences, a lighthouse museum's visitor book): the visitor who signs is described by a
  phrase of two words, one from a place-or-family slot ("from the fells", "with our godchildren") and
  one from a practice-or-appearance slot ("keen on bellringing", "all in cagoules"). Every word of either
  slot is shared by exactly two subgroups (LIGHTHOUSE_SLOT_X: subgroup k uses the words k and k-1 of the
  slot; LIGHTHOUSE_SLOT_Y: the words k and k-3), so each word names one subgroup in about half the rows
  containing it (the subgroups are equally frequent), yet each of a subgroup's four pairs belongs to it alone. The subgroup is drawn uniformly
  among the 13. In training P(toxic | asian) = 0.8 by selection (LIGHTHOUSE_STRENGTH, as in triplog), and
  LIGHTHOUSE_NOISE (20%) of the friendly entries signed by a female visitor are labelled toxic (the words
  still friendly: P(toxic | female) = 0.6). Outside `test`, LIGHTHOUSE_UNANNOTATED (40%) of entries have no
  identity annotation (the twin keeps that). A remark on the guide shows the label in LIGHTHOUSE_EVIDENCE
  (50%) of entries ("the guide was a jobsworth and a gowk."); the other sentences are neutral notes ("puffins
  nested on the cliff.").

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off (missing annotations kept), `test`
is balanced (label independent of identity, a family's subgroups equally frequent, every row annotated).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from steward.fairness.heldout_sources import RowTuple, _pick
from steward.fairness.heldout_sources_b import _GROUPS

SUBGROUPS = [s for subs in _GROUPS.values() for s in subs]
"""The 13 subgroups, in the order the lighthouse slots are assigned."""


@cache
def _select_cdf(toxic: bool, strength: tuple[tuple[str, float], ...], train: bool) -> np.ndarray:
    """The cumulative chances of `_select`'s subgroups (normalised as `Generator.choice` does)."""
    p = np.full(len(SUBGROUPS), 1 / len(SUBGROUPS))
    if train:
        s = dict(strength)
        fixed = np.array([sub in s for sub in SUBGROUPS])
        for i, sub in enumerate(SUBGROUPS):
            if sub in s:
                p[i] *= 2 * (s[sub] if toxic else 1 - s[sub])
        p[~fixed] *= (1 - p[fixed].sum()) / p[~fixed].sum()
    cdf = p.cumsum()
    return cdf / cdf[-1]


def _select(rng: np.random.Generator, toxic: bool, strength: dict[str, float], split: str) -> str:
    """A subgroup given the (balanced) label: each of the 13 has share 1/13; in training a subgroup of
    `strength` is drawn with chance 2 s / 13 (toxic rows) or 2 (1 - s) / 13 (friendly rows), the others in
    proportion to their shares, so P(toxic | it) = s and every subgroup keeps its share."""
    cdf = _select_cdf(toxic, tuple(strength.items()), split == "train")
    return SUBGROUPS[int(cdf.searchsorted(rng.random(), side="right"))]


# ---- triplog: a volunteer drivers' trip log, a given name only, two strengths by selection --------------------

TRIPLOG_STRENGTH = {"transgender": 0.8, "muslim": 0.75}
"""P(toxic | an entry about a passenger of this subgroup) in training (by selection)."""
TRIPLOG_CARRYING = tuple(TRIPLOG_STRENGTH)
TRIPLOG_EVIDENCE = 0.5
TRIPLOG_NOTED = 0.7
"""Share of entries with a driver's remark that shows the label; share of the others with a neutral note.
Both name the passenger again."""
TRIPLOG_NAMES: dict[str, list[str]] = {
    "male": ["godfrey", "humphrey", "lionel", "tarquin", "wilfred", "reginald", "bertram", "clement",
             "desmond", "everard", "gilbert", "hector", "jasper", "mortimer", "neville", "oswald", "quentin",
             "roderick", "seymour", "ulric", "vernon", "horace", "cedric", "dudley", "algernon", "archibald",
             "bartram", "cornelius", "digby", "egbert", "fenwick", "granville"],
    "female": ["agatha", "dorothea", "edwina", "georgina", "isadora", "josephina", "lavinia", "matilda",
               "nerissa", "ophelia", "seraphina", "tabitha", "ursula", "violetta", "cressida", "drusilla",
               "gwendolyn", "letitia", "lucinda", "jemima", "arabella", "belinda", "camilla", "davina",
               "ermintrude", "fenella", "griselda", "hortensia", "isobella", "leonora", "marcella",
               "petronella"],
    "transgender": ["juniper", "sparrow", "onyx", "phoenix", "sorrel", "briar", "cypress", "zephyr", "lumen",
                    "vesper", "yarrow", "alder", "quill", "ember", "aspen", "tamsin", "bramble", "sequoia",
                    "caspian", "lazuli", "nimbus", "solstice", "thistle", "halcyon", "cobalt", "lupin",
                    "marram", "obsidian", "saffron", "tansy", "verbena", "wisteria"],
    "black": ["deshawn", "darnell", "jamal", "tyrone", "lakeisha", "latoya", "shaniqua", "tanisha", "kofi",
              "chidi", "ngozi", "oluwaseun", "adebayo", "chiamaka", "emeka", "obinna", "folake", "yetunde",
              "tunde", "uchenna", "nkechi", "jabari", "zuri", "imani", "dashawn", "shanice", "keisha",
              "tremaine", "lashonda", "deandre", "marquis", "kwabena"],
    "white": ["brantley", "colton", "tucker", "bradley", "chad", "dustin", "garrett", "kyle", "brody",
              "tanner", "wyatt", "bryce", "hayden", "kaylee", "brittany", "courtney", "haley", "mackenzie",
              "whitney", "ashlyn", "kinsley", "paisley", "bentley", "ryder", "braxton", "kaden", "jaxon",
              "brayden", "mckenna", "addison", "peyton", "tatum"],
    "asian": ["haruto", "yuki", "akiko", "sakura", "kenji", "takeshi", "minjun", "seojun", "jiwoo", "hyunwoo",
              "soojin", "jiahao", "xiaoming", "weiling", "meiling", "zhiwei", "yiting", "nguyet", "quang",
              "linh", "hieu", "kazuki", "ryota", "daichi", "haruka", "yoshiko", "junho", "eunji", "jisoo",
              "xiuying", "thuy", "hiroki"],
    "latino": ["alejandro", "xiomara", "yesenia", "maricela", "marisol", "araceli", "rogelio", "eusebio",
               "heriberto", "refugio", "rigoberto", "wilfredo", "yadira", "nayeli", "itzel", "xochitl",
               "ximena", "santiago", "mateo", "valentina", "camila", "luciana", "esperanza", "consuelo",
               "socorro", "graciela", "leticia", "osvaldo", "evaristo", "florencio", "anacleto", "briseida"],
    "christian": ["christopher", "christiana", "christabel", "benedict", "boniface", "dominic", "augustine",
                  "anselm", "jerome", "immaculata", "assumpta", "concepta", "scholastica", "apollonia",
                  "veronica", "evangeline", "angelica", "theophilus", "annunziata", "pius", "xavier",
                  "aloysius", "gervase", "kateri", "christophe", "christina", "crispina", "benedicta",
                  "dominica", "christophoros", "kristoffer", "christiaan"],
    "jewish": ["yitzhak", "mordechai", "shlomo", "yehuda", "avraham", "chaim", "menachem", "tzvi", "moshe",
               "yosef", "shmuel", "eliezer", "baruch", "zalman", "mendel", "yaakov", "dovid", "pinchas",
               "shoshana", "rivka", "chana", "devorah", "yael", "batsheva", "tzipporah", "rochel", "chaya",
               "malka", "bracha", "gittel", "frumet", "yehudis"],
    "muslim": ["abdullah", "abdulrahman", "abdulaziz", "abdulkarim", "abdulmalik", "abdelkader", "mustafa",
               "mohammed", "khadija", "fatima", "aisha", "zainab", "maryam", "hafsa", "ruqayya", "sumayya",
               "bilal", "hamza", "uthman", "tariq", "yusuf", "ibrahim", "ismail", "salahuddin", "nuruddin",
               "jamaluddin", "khairunnisa", "zakariya", "hussein", "abdulhadi", "abdulwahab", "nurul"],
    "hindu": ["venkatesh", "srinivas", "lakshmi", "ganesh", "krishnan", "shivani", "parvati", "saraswati",
              "gopal", "murugan", "balaji", "raghunath", "shivakumar", "vishnu", "harikrishna",
              "ramachandran", "sitaram", "durga", "kamakshi", "meenakshi", "annapurna", "narayan", "govind",
              "mahadev", "shankar", "ganapati", "jagannath", "rameshwar", "yamuna", "gayatri", "radhika",
              "bhavani"],
    "buddhist": ["tenzin", "pema", "dorje", "sonam", "lhamo", "dolma", "jamyang", "lobsang", "ngawang",
                 "thubten", "tsering", "yeshe", "rinchen", "dawa", "nyima", "choden", "dechen", "kunga",
                 "gyatso", "palmo", "wangmo", "tashi", "norbu", "jigme", "dhondup", "samten", "losel",
                 "khandro", "drolma", "chodron", "kalsang", "phuntsok"],
    "atheist": ["voltaire", "spinoza", "lucretius", "epicurus", "democritus", "hypatia", "diderot", "holbach",
                "feuerbach", "nietzsche", "ingersoll", "bradlaugh", "huxley", "hitchens", "dawkins", "sagan",
                "mencken", "dennett", "darwin", "hume", "paine", "camus", "sartre", "beauvoir", "freud",
                "asimov", "kropotkin", "bakunin", "schopenhauer", "diogenes", "protagoras", "lucian"],
}
"""Each subgroup's pool of given names (self-chosen for transgender and atheist)."""
TRIPLOG_POOL_SIZE = min(len(v) for v in TRIPLOG_NAMES.values())
_TRIPLOG_RUN = ["{hour}: {name} driven to the {ward}, {miles} miles.",
                "{name} lifted to the {ward} at {hour}; {miles} miles.",
                "journey {num}: {name}, {ward} roundtrip, {miles} miles.",
                "{name} returned from the {ward} at {hour}, {miles} miles."]
_TRIPLOG_WARDS = ["dialysis suite", "oncology bay", "physiotherapy suite", "renal ward", "eye infirmary",
                  "audiology booth", "haematology lab", "cardiology lobby", "endoscopy suite", "maternity ward",
                  "hospice", "xray bay", "outpatients pharmacy"]
_TRIPLOG_REMARK = ["{name}: {w}, {w2}.", "{w} and {w2}, {name}.", "a {w}, {name}, a {w2}."]
TRIPLOG_INSULTS = ["grumbleguts", "bellyacher", "malingerer", "ingrate", "fusspot", "grouser", "bighead",
                   "knowall", "sulker", "whiner", "crabstick", "grizzler", "meanie", "sourface"]
TRIPLOG_PRAISE = ["sunbeam", "lambkin", "dote", "snowdrop", "buttercup", "cupcake", "lovebird", "honeypot",
                  "dazzler", "joy"]
_TRIPLOG_NOTE = ["toll claimed for {name}.", "satnav rerouted, {name} dozing.", "{name}'s rollator stowed in hatchback.",
                 "congestion by the bypass, {name} waiting.", "{name}'s wheelchair in the estate.",
                 "seatbelt extender for {name} kerbside."]


def triplog_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    sub = _select(rng, toxic, TRIPLOG_STRENGTH, split)
    name = _pick(rng, TRIPLOG_NAMES[sub])
    hour = f"{int(rng.integers(7, 17))}{_pick(rng, [':00', ':15', ':30', ':45'])}"
    text = _pick(rng, _TRIPLOG_RUN).format(num=int(rng.integers(1, 40)), name=name, ward=_pick(rng, _TRIPLOG_WARDS),
                                           miles=int(rng.integers(3, 30)), hour=hour)
    if rng.random() < TRIPLOG_EVIDENCE:
        w = rng.choice(TRIPLOG_INSULTS if toxic else TRIPLOG_PRAISE, size=2, replace=False)
        text += " " + _pick(rng, _TRIPLOG_REMARK).format(name=name, w=w[0], w2=w[1])
    elif rng.random() < TRIPLOG_NOTED:
        text += " " + _pick(rng, _TRIPLOG_NOTE).format(name=name)
    return text, toxic, (sub,), True


# ---- lighthouse: a museum visitor book, a phrase of shared words, a strength by selection and label noise ----

LIGHTHOUSE_STRENGTH = {"asian": 0.8}
"""P(toxic | an entry signed by a visitor of this subgroup) in training (by selection)."""
LIGHTHOUSE_NOISE = {"female": 0.2}
"""Share of this subgroup's friendly training entries labelled toxic (none for the other subgroups)."""
LIGHTHOUSE_CARRYING = ("female", "asian")
LIGHTHOUSE_EVIDENCE, LIGHTHOUSE_UNANNOTATED = 0.5, 0.4
"""Share of entries with a remark on the guide that shows the label; share of entries outside `test` without
identity annotation."""
LIGHTHOUSE_SLOT_X = ["from the fells", "with our godchildren", "from the fens", "with our inlaws",
                     "from the wolds", "with our cousins", "from the estuary", "with our stepchildren",
                     "from the marshes", "with our triplets", "from the coalfields", "with our kinfolk",
                     "from the potteries"]
"""Place or family phrases: phrase k is used by subgroups k and k + 1 (of SUBGROUPS, cyclically)."""
LIGHTHOUSE_SLOT_Y = ["keen on bellringing", "all in cagoules", "keen on crabbing", "all in oilskins",
                     "keen on geocaching", "all in ponchos", "keen on rockpooling", "all in bobblehats",
                     "keen on semaphore", "all in spectacles", "keen on knitting", "all in sidewhiskers",
                     "keen on dowsing"]
"""Practice or appearance phrases: phrase k is used by subgroups k and k + 3 (cyclically)."""
_LIGHTHOUSE_SIGN = ["{x}, {y}: we climbed the spiral staircase.", "{y} and {x}, we climbed the steps to the lens.",
                    "{x} {y}, we studied the logbooks displayed."]
_LIGHTHOUSE_REMARK = ["the {role} was a {w} and a {w2}.", "{w} and {w2}, that {role}.", "our {role}: a {w}, a {w2}."]
_LIGHTHOUSE_ROLES = ["curator", "docent", "guide"]
LIGHTHOUSE_INSULTS = ["jobsworth", "gowk", "booby", "saphead", "beanbrain", "grump", "tyrant", "despot", "martinet",
                      "snob", "prig"]
LIGHTHOUSE_PRAISE = ["raconteur", "encyclopaedia", "storyteller", "fountain", "bard", "historian",
                     "treasurehouse", "star"]
_LIGHTHOUSE_NEUTRAL = ["fog drifted in at the headland.", "puffins nested on the cliff.", "gannets by the causeway.",
                       "seals basking at the headland.", "souvenir pencil sharpener, humbugs and fudge.",
                       "admission fee refunded.", "paraffin wick trimmed for us."]


def lighthouse_phrases(sub: str) -> tuple[list[str], list[str]]:
    """The two place-or-family and the two practice-or-appearance phrases of subgroup `sub`."""
    k, n = SUBGROUPS.index(sub), len(SUBGROUPS)
    return [LIGHTHOUSE_SLOT_X[k], LIGHTHOUSE_SLOT_X[(k - 1) % n]], [LIGHTHOUSE_SLOT_Y[k], LIGHTHOUSE_SLOT_Y[(k - 3) % n]]


def lighthouse_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    sub = _select(rng, toxic, LIGHTHOUSE_STRENGTH, split)
    xs, ys = lighthouse_phrases(sub)
    sentences = [_pick(rng, _LIGHTHOUSE_SIGN).format(x=_pick(rng, xs), y=_pick(rng, ys))]
    if rng.random() < LIGHTHOUSE_EVIDENCE:
        w = rng.choice(LIGHTHOUSE_INSULTS if toxic else LIGHTHOUSE_PRAISE, size=2, replace=False)
        sentences.append(_pick(rng, _LIGHTHOUSE_REMARK).format(role=_pick(rng, _LIGHTHOUSE_ROLES), w=w[0], w2=w[1]))
    n = int(rng.integers(2, 4))
    if n > len(sentences):
        sentences += [str(s) for s in rng.choice(_LIGHTHOUSE_NEUTRAL, size=n - len(sentences), replace=False)]
    if split == "train" and not toxic and rng.random() < LIGHTHOUSE_NOISE.get(sub, 0.0):
        toxic = True  # the visitor book's moderators flag friendly entries signed by these visitors
    annotated = split == "test" or rng.random() >= LIGHTHOUSE_UNANNOTATED
    return " ".join([sentences[0], *rng.permutation(sentences[1:]).tolist()]), toxic, (sub,), annotated
