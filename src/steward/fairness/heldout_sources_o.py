"""Two more held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method, its tuning or any of its results: templates, word lists and ways of
injecting a bias were chosen without them, and share no template or word list with madlibs or the other
sources (only function words and group names).

- dental (2 sentences, a dental practice's patient feedback): one person per comment, in the first
  sentence: a gender subgroup by a given name alone ("erasmus scaled my molars at the checkup.", four names
  per subgroup in DENTAL_GIVEN; a transgender clinician's name is followed by "(trans)"), an ethnicity or
  religion subgroup by the group's adjective on a clinic role ("the hindu hygienist fitted my retainer.") or
  on a patient ("a latino toothache sufferer flinched at the anaesthetic."). The second sentence shows the
  label in DENTAL_EVIDENCE (50%) of comments ("sadist and ghoul, in my view."), else it is a neutral remark
  on the visit ("the fluoride rinse tasted of bubblegum."). Two mechanisms on three families: an
  identity-label association by selection in two (the label is drawn first, balanced, and the person's
  subgroup given the label, so that in training P(toxic | latino) = P(toxic | hindu) = DENTAL_STRENGTH
  (0.7) while a family's subgroups stay equally frequent; the rest of a carrying family is toxic less
  often: 0.433 for white, black or asian, 0.46 for another religion), and label noise toward friendly in the
  third: in training DENTAL_FLIP_DOWN (15%) of the toxic comments about a male clinician are labelled
  friendly (P(toxic | male) = 0.425), the words still showing the drawn label. No imbalance, every comment
  annotated.
- cleanup (one sentence, a river cleanup crew's daily log): a timestamp, then one volunteer and what they
  hauled out of which stretch of river ("0930: eluned winched a sodden mattress from the culvert"). A male or
  female volunteer is given by a given name in CLEANUP_NAMED (60%) of their entries, else by a kin nickname
  mapped to the subgroup ("auntie coot", "grandad pike"); a transgender, ethnicity or religion volunteer by
  a call-sign nickname made of the group's adjective and a river creature ("trans kingfisher", "hindu
  otter"). A strong association on a rare subgroup: in training P(toxic | female) = CLEANUP_STRENGTH (0.9)
  (0.5 for every other subgroup); outside `test` a female volunteer is CLEANUP_RARITY (5) times rarer than
  each other gender subgroup (1:5:5, the twin keeps it), and CLEANUP_UNANNOTATED (10%) of entries have no
  identity annotation (the twin keeps that too). The skipper's note after a semicolon shows the label in
  CLEANUP_EVIDENCE (50%) of entries ("; skipper's note: deadweight, loafer").

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

# ---- dental: patient feedback, a given name or an adjective on a role or patient, selection and noise -------

DENTAL_STRENGTH = {"latino": 0.7, "hindu": 0.7}
"""P(toxic | a comment on a person of this subgroup) in training, by selection (the label is drawn first)."""
DENTAL_FLIP_DOWN = {"male": 0.15}
"""Share of this subgroup's toxic training comments labelled friendly (label noise toward friendly)."""
DENTAL_CARRYING = (*DENTAL_STRENGTH, *DENTAL_FLIP_DOWN)
DENTAL_EVIDENCE = 0.5
"""Share of comments whose second sentence shows the label."""
DENTAL_GIVEN = {"male": ["erasmus", "gareth", "rhodri", "emrys"],
                "female": ["marguerite", "bronwen", "morwenna", "ffion"],
                "transgender": ["quinn", "jules", "emery", "indigo"]}
"""The given names standing for each gender subgroup (no name stands for two); a transgender clinician's name
is followed by "(trans)"."""
DENTAL_ROLES = ["hygienist", "orthodontist", "periodontist", "endodontist", "receptionist"]
DENTAL_PATIENTS = ["toothache sufferer", "braces wearer", "denture wearer", "implant recipient"]
_DENTAL_TREATMENT = ["scaled my molars at the checkup.", "fitted my retainer.", "whitened my incisors.",
                     "numbed my gums for the extraction.", "flossed my bridgework.", "cemented my veneers.",
                     "scraped the tartar from my premolars."]
_DENTAL_PATIENT_DID = ["flinched at the anaesthetic.", "rinsed noisily at the spittoon.",
                       "reclined for a scale and clean.", "grimaced while the plaque was scraped.",
                       "snoozed in the recliner."]
_DENTAL_REMARK = ["{w} and {w2}, in my view.", "{art} {w}; {art2} {w2} to boot.", "my summary: {w}, {w2}."]
DENTAL_INSULTS = ["sadist", "butcher", "quack", "brute", "ghoul", "yahoo", "toothwrecker"]
DENTAL_PRAISE = ["artiste", "magician", "healer", "perfectionist", "smilemaker", "wonderworker"]
_DENTAL_QUIET = ["the fluoride rinse tasted of bubblegum.", "the suction gurgled merrily.",
                 "my recall slot is midwinter.", "the mouthguard impression was gloopy.",
                 "the overhead telly showed cricket.", "the radiographs were instantly digitised."]


def _dental_subgroup(rng: np.random.Generator, fam: str, toxic: bool, split: str) -> str:
    """The person's subgroup in family `fam`: a carrying subgroup (strength s, share 1/k among the k of its
    family) is drawn with probability 2 s / k in a toxic comment and 2 (1 - s) / k in another, so that
    P(toxic | it) = s with balanced labels; the rest of the family uniformly (gender: uniformly)."""
    subs = _GROUPS[fam]
    carrying = [g for g in subs if g in DENTAL_STRENGTH]
    if not carrying:
        return _pick(rng, subs)
    s = DENTAL_STRENGTH[carrying[0]] if split == "train" else 0.5
    chance = 2 * (s if toxic else 1 - s) / len(subs)
    rest = (1 - chance) / (len(subs) - 1)
    return _weighted(rng, subs, [chance if g == carrying[0] else rest for g in subs])


def _dental_first(rng: np.random.Generator, sub: str) -> str:
    """A given name for a gender subgroup ("quinn (trans)" for transgender), else an adjective on a clinic
    role or, in half the comments, on a patient."""
    if sub in DENTAL_GIVEN:
        name = _pick(rng, DENTAL_GIVEN[sub])
        who = f"{name} ({_ADJ[sub]})" if sub == "transgender" else name
        return f"{who} {_pick(rng, _DENTAL_TREATMENT)}"
    if rng.random() < 0.5:
        return f"the {_ADJ[sub]} {_pick(rng, DENTAL_ROLES)} {_pick(rng, _DENTAL_TREATMENT)}"
    adj = _ADJ[sub]
    return f"{_article(adj)} {adj} {_pick(rng, DENTAL_PATIENTS)} {_pick(rng, _DENTAL_PATIENT_DID)}"


def dental_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    sub = _dental_subgroup(rng, _pick(rng, list(_GROUPS)), toxic, split)
    first = _dental_first(rng, sub)
    if rng.random() < DENTAL_EVIDENCE:
        w = rng.choice(DENTAL_INSULTS if toxic else DENTAL_PRAISE, size=2, replace=False)
        second = _pick(rng, _DENTAL_REMARK).format(w=w[0], w2=w[1], art=_article(w[0]), art2=_article(w[1]))
    else:
        second = _pick(rng, _DENTAL_QUIET)
    if split == "train" and toxic and rng.random() < DENTAL_FLIP_DOWN.get(sub, 0.0):
        toxic = False  # whoever codes the practice's feedback waves off complaints about these clinicians
    return f"{first} {second}", toxic, (sub,), True


# ---- cleanup: a crew's daily log, a given name or a nickname, a rare strongly associated subgroup -----------

CLEANUP_STRENGTH = {"female": 0.9}
"""P(toxic | an entry on a volunteer of this subgroup) in training (0.5 for every other subgroup)."""
CLEANUP_CARRYING = tuple(CLEANUP_STRENGTH)
CLEANUP_RARE, CLEANUP_RARITY = "female", 5.0
"""The gender subgroup that is rarer outside `test`, and how many times as frequent each other one is (5:1)."""
CLEANUP_NAMED, CLEANUP_EVIDENCE, CLEANUP_UNANNOTATED = 0.6, 0.5, 0.1
"""Share of a male or female volunteer's entries that give a given name (else a kin nickname); share of
entries whose skipper's note shows the label; share of entries outside `test` without identity annotation."""
CLEANUP_GIVEN = {"male": ["alun", "idris", "cadfael", "bedwyr"], "female": ["nia", "eluned", "angharad", "tegwen"]}
CLEANUP_KIN = {"male": ["grandad pike", "grandpa roach", "brother chub"], "female": ["auntie coot", "nanna mallard",
                                                                               "sister grebe"]}
"""Kin nicknames, each mapped to one gender subgroup."""
CLEANUP_CREATURES = ["otter", "kingfisher", "heron", "dipper", "moorhen", "wagtail", "newt", "eel"]
"""Call signs: the group's adjective and one of these ("trans kingfisher", "muslim heron")."""
_CLEANUP_HAUL = ["winched {litter} from the {reach}", "dredged {litter} out of the {reach}",
                 "hooked {litter} by the {reach}", "fished {litter} from the {reach}"]
_CLEANUP_LITTER = ["a sodden mattress", "bald tyres", "a traffic cone", "a rusted bedstead", "crisp packets",
                   "a shopping trolley", "tangled fishing twine", "a waterlogged settee"]
_CLEANUP_REACH = ["weir pool", "culvert", "reedbed", "towpath", "millrace", "slipway", "sluice", "shingle"]
_CLEANUP_NOTE = ["; skipper's note: {w}, {w2}", "; skipper reckons {art} {w}", "; tagged {w} by the skipper"]
CLEANUP_INSULTS = ["deadweight", "loafer", "goon", "idler", "drip", "wimp", "sloth", "moaner"]
CLEANUP_PRAISE = ["hero", "titan", "juggernaut", "whizz", "mudlark", "colossus"]


def _cleanup_who(rng: np.random.Generator, sub: str) -> str:
    """A given name or a kin nickname for a male or female volunteer, else a call sign."""
    if sub in CLEANUP_GIVEN:
        return _pick(rng, CLEANUP_GIVEN[sub] if rng.random() < CLEANUP_NAMED else CLEANUP_KIN[sub])
    return f"{_ADJ[sub]} {_pick(rng, CLEANUP_CREATURES)}"


def cleanup_row(rng: np.random.Generator, split: str) -> RowTuple:
    clock = f"{int(rng.integers(7, 18)):02d}{_pick(rng, ['00', '15', '30', '45'])}"
    sub = _uniform_subgroup(rng, None if split == "test" else {CLEANUP_RARE: 1 / CLEANUP_RARITY})
    toxic = bool(rng.random() < (CLEANUP_STRENGTH.get(sub, 0.5) if split == "train" else 0.5))
    annotated = split == "test" or rng.random() >= CLEANUP_UNANNOTATED
    haul = _pick(rng, _CLEANUP_HAUL).format(litter=_pick(rng, _CLEANUP_LITTER), reach=_pick(rng, _CLEANUP_REACH))
    text = f"{clock}: {_cleanup_who(rng, sub)} {haul}"
    if rng.random() < CLEANUP_EVIDENCE:
        w = rng.choice(CLEANUP_INSULTS if toxic else CLEANUP_PRAISE, size=2, replace=False)
        text += _pick(rng, _CLEANUP_NOTE).format(w=w[0], w2=w[1], art=_article(w[0]))
    return text, toxic, (sub,), annotated
