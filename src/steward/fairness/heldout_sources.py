"""Two held-out sources of the fairness test bed (`steward.fairness.testbed`), written by an author who
had not seen the debiasing method or its tuning: their templates, word lists and ways of injecting a
bias were chosen without it, and share no template or word list with madlibs or the other sources.

- chat (2-8 words): identities named by a hashtag compound ("#muslimlife") or chat slang ("xtians");
  30% of training rows have no identity annotation. Bias by co-occurrence: targeted identities appear
  next to insults, P(toxic given a targeted mention) = 0.8, while the label is set by the words.
- letters (4-8 sentences, letters to the editor): 2-3 identities per letter, each in its own sentence of
  self-description (origin, family role, religious practice). Group imbalance (targeted subgroups 5x
  rarer) and P(toxic given a targeted subgroup) = 0.95 in religion, 0.6 in ethnicity and none in gender
  (a family with no removable gap).

Each generator returns one row as (text, toxic, subgroups, annotated) for a split: `train` carries the
injected association, `twin` is the same generator with it switched off, `test` is balanced (label
independent of identity, a family's subgroups equally frequent, every row annotated). Group imbalance
and missing annotations belong to the source, so the twins keep them.

chat: every toxic message holds an insult and no other message does, so the words decide the label;
but half of all slot words (insults, praise and small talk alike) are misspelt at random, so a model
meets many insults it has never seen and the identity next to them becomes a shortcut.
letters: 40% of letters carry a rude or civil sentence matching the label, the rest no word evidence of
it; where a letter mentions targeted subgroups of two families, the stronger association decides; and
transgender is about 3x rarer than the other gender subgroups outside `test`, with no association.
"""

from __future__ import annotations

import numpy as np

RowTuple = tuple[str, bool, tuple[str, ...], bool]
"""(text, toxic, subgroups mentioned, identity columns annotated): the fields of `testbed.Row`."""


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _weighted(rng: np.random.Generator, items: list[str], weights: list[float]) -> str:
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


# ---- chat: short messages, identities in hashtags or slang, co-occurrence with insults ----------------

# Per family and subgroup: a hashtag stem and a slang form. Hashtags take a shared suffix, so only the
# stem names the group (the byte-level BPE sees "#", then the compound as one word to split).
CHAT_TERMS: dict[str, dict[str, tuple[str, str]]] = {
    "gender": {"male": ("dude", "fellas"), "female": ("gurl", "gals"),
               "transgender": ("trans", "trans folx")},
    "ethnicity": {"black": ("black", "blk fam"), "white": ("white", "wht fam"), "asian": ("asian", "asn fam"),
                  "latino": ("latinx", "latinx fam")},
    "religion": {"christian": ("christian", "xtians"), "jewish": ("jewish", "jewish crew"),
                 "muslim": ("muslim", "muslim crew"), "hindu": ("hindu", "hindu crew"),
                 "buddhist": ("buddhist", "buddhist crew"), "atheist": ("atheist", "atheist crew")},
}
_CHAT_HASHTAG = ["#{stem}life", "#{stem}twitter", "#{stem}vibes"]
_CHAT_WITH = ["{who} r {w}", "{who} so {w} tbh", "lol {who} {w} af", "ngl {who} kinda {w}",
              "omg {who} {w} fr", "imo {who} = {w}", "{w} {who} lmao", "yo {who} u {w}"]
_CHAT_WITHOUT = ["u r {w}", "ur {w} tbh", "lol ur so {w}", "this chat {w} af", "omg {w} rn", "{w} lol",
                 "srsly {w}", "ngl ur {w}"]
_CHAT_TAIL = ["xd", "lolol", "bruh", "ikr", "hbu", "k"]
CHAT_INSULTS = ["l0ser", "cl0wn", "idiut", "dumbo", "bozo", "nitwit", "dimwit", "dingus", "stoopid",
                "dumass", "wanker", "muppet", "numpty", "scrub", "dipstick"]
CHAT_NICE = ["gr8", "kewl", "legit", "goated", "chill", "sweet", "awesum", "dope", "wholesome", "hilarious",
              "online", "afk", "lagging", "hungry", "sleepy", "bored", "typing", "snoozing"]
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "u": "v", "s": "z"}
CHAT_CARRYING = ("female", "latino", "jewish", "hindu")
CHAT_STRENGTH = 0.8
"""P(toxic | a message mentions a targeted subgroup) in the training split (0.5 elsewhere)."""
CHAT_MENTION, CHAT_MISSPELL, CHAT_UNANNOTATED = 0.75, 0.5, 0.3


def misspell(rng: np.random.Generator, word: str) -> str:
    """One random chat misspelling: a letter swapped for a look-alike, doubled, dropped or masked."""
    i = int(rng.integers(len(word)))
    op = int(rng.integers(4))
    if op == 0 and any(c in _LEET for c in word):
        i = _pick(rng, [j for j, c in enumerate(word) if c in _LEET])
        return word[:i] + _LEET[word[i]] + word[i + 1:]
    if op == 1:
        return word[: i + 1] + word[i] + word[i + 1:]
    if op == 2 and len(word) > 3:
        return word[:i] + word[i + 1:]
    return word[:i] + "*" + word[i + 1:] if 0 < i < len(word) - 1 else word + "z"


def _chat_base() -> dict[str, float]:
    """Each subgroup's share of the identity mentions when no association is injected: a family chosen
    uniformly, then one of its subgroups uniformly."""
    return {s: 1 / len(CHAT_TERMS) / len(subs) for subs in CHAT_TERMS.values() for s in subs}


def _chat_subgroup(rng: np.random.Generator, toxic: bool, split: str) -> str:
    """The subgroup a message mentions. In training, targeted mentions are drawn with P(targeted | label)
    such that P(toxic | targeted) = CHAT_STRENGTH while labels stay balanced: 2 s t among toxic
    messages and 2 (1 - s) t among the others (t: the targeted share without association)."""
    base = _chat_base()
    t = sum(base[s] for s in CHAT_CARRYING)
    s = CHAT_STRENGTH if split == "train" else 0.5
    targeted = rng.random() < 2 * (s if toxic else 1 - s) * t
    pool = [g for g in base if (g in CHAT_CARRYING) == targeted]
    return _weighted(rng, pool, [base[g] for g in pool])


def _chat_who(rng: np.random.Generator, sub: str) -> str:
    stem, slang = next(terms[sub] for terms in CHAT_TERMS.values() if sub in terms)
    return _pick(rng, _CHAT_HASHTAG).format(stem=stem) if rng.random() < 0.6 else slang


def chat_row(rng: np.random.Generator, split: str) -> RowTuple:
    toxic = bool(rng.random() < 0.5)
    word = _pick(rng, CHAT_INSULTS if toxic else CHAT_NICE)
    if rng.random() < CHAT_MISSPELL:
        word = misspell(rng, word)
    subs: tuple[str, ...] = ()
    if rng.random() < CHAT_MENTION:
        sub = _chat_subgroup(rng, toxic, split)
        subs = (sub,)
        text = _pick(rng, _CHAT_WITH).format(who=_chat_who(rng, sub), w=word)
    else:
        text = _pick(rng, _CHAT_WITHOUT).format(w=word)
    if rng.random() < 0.3:
        text += " " + _pick(rng, _CHAT_TAIL)
    annotated = split == "test" or rng.random() >= CHAT_UNANNOTATED
    return text, toxic, subs, annotated


# ---- letters: letters to the editor, several self-described identities, imbalance, per-family strength --

# Each family is mentioned in its own sentence, each subgroup by words that name it without the
# Jigsaw column's adjective: an origin, a family role, a religious practice.
LETTERS_TERMS: dict[str, dict[str, list[str]]] = {
    "gender": {"male": ["a grandfather of five", "a widower", "an uncle raising two nephews"],
               "female": ["a grandmother of five", "a widow", "an aunt raising two nieces"],
               "transgender": ["a retiree who transitioned at fifty",
                               "a veteran who transitioned after leaving the army"]},
    "ethnicity": {"black": ["haitian", "jamaican", "nigerian"], "white": ["irish", "polish", "norwegian"],
                  "asian": ["korean", "vietnamese", "filipino"],
                  "latino": ["mexican", "salvadoran", "dominican"]},
    "religion": {"christian": ["sing in the baptist choir", "usher at the methodist chapel"],
                 "jewish": ["observe shabbat with my congregation", "teach hebrew classes at the shul"],
                 "muslim": ["pray at the masjid on elm avenue", "break the ramadan fast with my neighbours"],
                 "hindu": ["volunteer at the mandir", "light diyas at the mandir for diwali"],
                 "buddhist": ["meditate with the zen sangha", "bring offerings to the wat on sundays"],
                 "atheist": ["chair the secular humanist society",
                             "debate at the freethinkers club downtown"]},
}
_LETTERS_SENTENCE = {
    "gender": ["i am {who} and have lived on {street} since {year}.",
               "i write as {who}, and i vote in every election.",
               "speaking as {who}, i read this page over breakfast."],
    "ethnicity": ["my {who} household has run a shop on {street} since {year}.",
                  "our {who} neighbours on {street} feel the same way.",
                  "i am a homeowner with {who} roots and pay my share of these levies."],
    "religion": ["on weekends i {who}.", "most evenings i {who}.", "for twenty years i have tried to {who}."],
}
_LETTERS_OPEN = ["to the editor:", "dear editor:", "about last week's column on the bookmobile levy.",
                 "regarding the zoning vote of march 3:"]
_LETTERS_TOPIC = ["the county wants to shutter the bookmobile on saturdays.",
                  "the proposed five-storey garage would swallow the greenmarket.",
                  "assessments across the river jumped for a second year.",
                  "the crosswalk by the kindergarten still has no signal.",
                  "ambulance waits have doubled since the station relocated.",
                  "the transit authority cut the evening run of route nine."]
_LETTERS_RUDE = ["the aldermen are gutless buffoons.",
                 "whoever wrote last sunday's letter is a smug halfwit.",
                 "the planners are a pack of crooked weasels.",
                 "our commissioner is a dishonest blowhard and a coward.",
                 "only a brain-dead dolt could support this boondoggle."]
_LETTERS_CIVIL = ["i disagree with the aldermen, but i appreciate their listening.",
                  "the planners answered my questions with patience.",
                  "our commissioner has been open and even-handed with taxpayers.",
                  "reasonable neighbours can differ, and i hope we continue talking."]
_LETTERS_STREET = ["maple court", "willow lane", "orchard row", "pine ridge road"]
_LETTERS_SIGN = ["sincerely, a reader in elmhurst.", "respectfully, a cedar falls taxpayer.",
                 "yours, a longtime subscriber in fox hollow."]
LETTERS_STRENGTH = {"religion": (("christian", "buddhist"), 0.95), "ethnicity": (("black", "asian"), 0.6),
                    "gender": ((), 0.5)}
"""Per family: its targeted subgroups and P(toxic | a letter mentions one) in the training split."""
LETTERS_CARRYING = tuple(s for subs, _ in LETTERS_STRENGTH.values() for s in subs)
LETTERS_RARE = {**{s: 0.2 for s in LETTERS_CARRYING}, "transgender": 0.35}
"""Relative frequency of the rare subgroups in the train and twin splits (1 for the others)."""


def _letters_identities(rng: np.random.Generator, split: str) -> dict[str, str]:
    """Family -> subgroup for the 2 or 3 families a letter mentions (rare ones rare outside `test`)."""
    fams = rng.choice(list(LETTERS_TERMS), size=int(rng.integers(2, 4)), replace=False)
    out = {}
    for fam in sorted(fams, key=list(LETTERS_TERMS).index):
        subs = list(LETTERS_TERMS[fam])
        out[fam] = _weighted(rng, subs, [1.0 if split == "test" else LETTERS_RARE.get(s, 1.0) for s in subs])
    return out


def _letters_toxic_p(ids: dict[str, str], split: str) -> float:
    """The strongest association among the targeted subgroups a letter mentions (training split only)."""
    if split != "train":
        return 0.5
    return max([p for fam, (subs, p) in LETTERS_STRENGTH.items() if ids.get(fam) in subs], default=0.5)


def letters_row(rng: np.random.Generator, split: str) -> RowTuple:
    ids = _letters_identities(rng, split)
    toxic = bool(rng.random() < _letters_toxic_p(ids, split))
    street, year = _pick(rng, _LETTERS_STREET), int(rng.integers(1968, 2020))
    body = [_pick(rng, _LETTERS_SENTENCE[fam]).format(who=_pick(rng, LETTERS_TERMS[fam][sub]), street=street,
                                                       year=year) for fam, sub in ids.items()]
    body += [str(s) for s in rng.choice(_LETTERS_TOPIC, size=int(rng.integers(1, 3)), replace=False)]
    if rng.random() < 0.4:
        body.append(_pick(rng, _LETTERS_RUDE if toxic else _LETTERS_CIVIL))
    sentences = [_pick(rng, _LETTERS_OPEN), *rng.permutation(body).tolist()]
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _LETTERS_SIGN))
    return " ".join(sentences), toxic, tuple(ids.values()), True
