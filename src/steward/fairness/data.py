"""Text classification data with identity annotations.

Two sources, one in-memory form (`IdentityData`):

- `load_identities(path)`: the Jigsaw Unintended Bias / Civil Comments identities layout: a text
  column, a target in [0, 1] (fraction of annotators who called the comment toxic), and identity
  columns holding annotator fractions (missing allowed: not every comment was annotated for
  identity). Targets and identities are binarised at 0.5, as the competition did. CSV, Parquet, or
  a Hugging Face dataset saved in / laid out in a local folder (no downloads).
- `generate_madlibs(...)`: a synthetic set in the spirit of Dixon et al. 2018's "bias madlibs":
  templates (ours) x identity terms (per family), with a configurable association between some
  identity terms and the toxic label injected into the training split, and an evaluation split
  where identity and label are independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from steward.fairness.metrics import FairnessError

# Identity columns of the Jigsaw Unintended Bias in Toxicity Classification data (Kaggle 2019;
# Borkan et al. 2019, section 4), grouped into the families the issue asks for. "ethnicity" is the
# data's race-or-ethnicity family.
JIGSAW_FAMILIES: dict[str, list[str]] = {
    "gender": ["male", "female", "transgender", "other_gender"],
    "ethnicity": ["black", "white", "asian", "latino", "other_race_or_ethnicity"],
    "religion": ["christian", "jewish", "muslim", "hindu", "buddhist", "atheist", "other_religion"],
    "sexual_orientation": ["heterosexual", "homosexual_gay_or_lesbian", "bisexual", "other_sexual_orientation"],
    "disability": ["physical_disability", "intellectual_or_learning_disability", "psychiatric_or_mental_illness",
                   "other_disability"],
}
FAMILY_ORDER = ("gender", "ethnicity", "religion")
TEXT_FIELDS = ("comment_text", "text")
TARGET_FIELDS = ("target", "toxicity", "label")


@dataclass
class IdentityData:
    """texts, binary labels, identity masks (subgroup -> bool per row) and the family grouping."""

    texts: list[str]
    labels: np.ndarray
    groups: dict[str, np.ndarray]
    families: dict[str, list[str]]
    annotated: np.ndarray | None = None
    """Rows that carry identity annotations at all (all rows for the generator)."""
    meta: dict[str, Any] = field(default_factory=dict)
    row_ids: np.ndarray | None = None
    """Each row's number in the source it was read from (file order); None: 0..N-1."""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray) -> IdentityData:
        idx = np.asarray(idx)
        return IdentityData(
            [self.texts[i] for i in idx], self.labels[idx], {k: v[idx] for k, v in self.groups.items()},
            self.families, None if self.annotated is None else self.annotated[idx], dict(self.meta),
            self.row_numbers()[idx],
        )

    def row_numbers(self) -> np.ndarray:
        """Each row's number in its source (what RUN_DIR/fairness/predictions.csv calls row_id)."""
        return np.arange(len(self)) if self.row_ids is None else self.row_ids

    def identity_matrix(self) -> np.ndarray:
        """[N, S] float 0/1 membership in every subgroup, in `subgroup_names()` order (the adversary's target)."""
        names = self.subgroup_names()
        if not names:  # a data set without identity columns
            return np.zeros((len(self.texts), 0), dtype=np.float32)
        return np.stack([self.groups[s] for s in names], 1).astype(np.float32)

    def subgroup_names(self) -> list[str]:
        return [s for subs in self.families.values() for s in subs]


# ---- the identities layout -------------------------------------------------------------------------

def _read_table(path: Path, split: str) -> dict[str, list]:
    """Columns of a CSV, Parquet file/folder or local Hugging Face dataset, as lists."""
    try:
        if path.is_file() and path.suffix == ".csv":
            import pandas as pd

            return {k: v.tolist() for k, v in pd.read_csv(path).items()}
        if path.is_file() and path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pydict()
        if path.is_dir():
            files = sorted(path.glob("*.parquet"))
            if files and not (path / "dataset_info.json").exists():
                import pyarrow as pa
                import pyarrow.parquet as pq

                return pa.concat_tables([pq.read_table(f) for f in files]).to_pydict()
            import datasets

            if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
                ds = datasets.load_from_disk(str(path))
            else:
                ds = datasets.load_dataset(str(path), split=split)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise FairnessError(f"fairness.data: {str(path)!r} has no split {split!r}; it has {', '.join(ds)}")
                ds = ds[split]
            return ds.to_dict()
    except FairnessError:
        raise
    except Exception as e:  # pandas/pyarrow/datasets raise many kinds; the user needs one line
        raise FairnessError(f"fairness.data: cannot read {str(path)!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    raise FairnessError(f"fairness.data: {str(path)!r} is neither a .csv/.parquet file nor a dataset folder")


def _fractions(name: str, values: list) -> np.ndarray:
    try:
        a = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise FairnessError(f"identity column {name!r}: values must be numbers in [0, 1] (annotator fractions) "
                            "or empty") from None
    finite = a[np.isfinite(a)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise FairnessError(f"identity column {name!r}: values must be fractions in [0, 1], found "
                            f"{finite.min():g}..{finite.max():g}; rescale or drop the column")
    return a


def from_columns(cols: dict[str, list], *, text_field: str = "", target_field: str = "",
                 identity_columns: list[str] | None = None, source: str = "",
                 require_identities: bool = True) -> IdentityData:
    """Build IdentityData from named columns (the identities layout). With `require_identities` False, a
    table without identity columns gives IdentityData with no subgroups (plain text classification)."""
    def pick(given: str, defaults: tuple[str, ...], what: str, key: str) -> str:
        if given:
            if given not in cols:
                raise FairnessError(f"fairness.{key}: column {given!r} not in {source or 'the data'}; "
                                    f"columns: {', '.join(list(cols)[:20])}")
            return given
        for d in defaults:
            if d in cols:
                return d
        raise FairnessError(f"fairness.{key}: no {what} column ({' or '.join(defaults)}) in {source or 'the data'}; "
                            f"name it with --fairness.{key}")

    tf = pick(text_field, TEXT_FIELDS, "text", "text_field")
    yf = pick(target_field, TARGET_FIELDS, "target", "target_field")
    target = _fractions(yf, cols[yf])
    if not np.all(np.isfinite(target)):
        raise FairnessError(f"fairness.target_field: column {yf!r} has missing values; every row needs a target")
    if identity_columns:
        missing = [c for c in identity_columns if c not in cols]
        if missing:
            raise FairnessError(f"identity column {missing[0]!r}: not in {source or 'the data'}")
        wanted = identity_columns
    else:
        wanted = [c for subs in JIGSAW_FAMILIES.values() for c in subs if c in cols]
    if not wanted and require_identities:
        raise FairnessError(f"{source or 'the data'}: no identity columns (expected Jigsaw names such as male, female, "
                            "black, white, christian, muslim); name them with --fairness.identity_columns")
    known = {s: f for f, subs in JIGSAW_FAMILIES.items() for s in subs}
    families: dict[str, list[str]] = {}
    groups: dict[str, np.ndarray] = {}
    annotated = np.zeros(len(target), dtype=bool)
    for c in wanted:
        frac = _fractions(c, cols[c])
        annotated |= np.isfinite(frac)
        groups[c] = np.nan_to_num(frac, nan=0.0) >= 0.5
        families.setdefault(known.get(c, "other"), []).append(c)
    order = [f for f in (*FAMILY_ORDER, *JIGSAW_FAMILIES, "other") if f in families]
    families = {f: families[f] for f in dict.fromkeys(order)}
    texts = ["" if t is None else str(t) for t in cols[tf]]
    return IdentityData(texts, target >= 0.5, groups, families, annotated,
                        {"source": source, "text_field": tf, "target_field": yf})


def load_identities(path: str | Path, *, split: str = "train", text_field: str = "", target_field: str = "",
                    identity_columns: list[str] | None = None, annotated_only: bool = False,
                    require_identities: bool = True) -> IdentityData:
    """Read the identities layout from CSV, Parquet or a local Hugging Face dataset folder.

    `annotated_only` keeps the rows with at least one identity annotation (in Civil Comments, about a
    quarter of the rows; the others have all identity columns missing)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FairnessError(f"fairness.data: {str(path)!r} does not exist (give a .csv, .parquet or dataset folder, or 'madlibs')")
    data = from_columns(_read_table(p, split), text_field=text_field, target_field=target_field,
                        identity_columns=identity_columns, source=str(path), require_identities=require_identities)
    if annotated_only and data.annotated is not None:
        data = data.subset(np.flatnonzero(data.annotated))
    return data


# ---- the generator ---------------------------------------------------------------------------------

# Identity terms per subgroup. The subgroups are the Jigsaw identity columns (see JIGSAW_FAMILIES);
# the terms are ordinary English names of those groups, the kind Dixon et al. 2018 list in their
# identity-term set (conversationai/unintended-ml-bias-analysis, bias_madlibs_data).
MADLIBS_TERMS: dict[str, dict[str, list[str]]] = {
    "gender": {
        "male": ["man", "boy", "father", "husband", "gentleman"],
        "female": ["woman", "girl", "mother", "wife", "lady"],
        "transgender": ["transgender person", "trans woman", "trans man", "nonbinary person"],
    },
    "ethnicity": {
        "black": ["black person", "african american", "black neighbour"],
        "white": ["white person", "caucasian", "white neighbour"],
        "asian": ["asian person", "asian american", "asian neighbour"],
        "latino": ["latino person", "hispanic person", "latina neighbour"],
    },
    "religion": {
        "christian": ["christian", "catholic", "protestant"],
        "jewish": ["jew", "jewish person", "rabbi"],
        "muslim": ["muslim", "muslim person", "imam"],
        "hindu": ["hindu", "hindu person"],
        "buddhist": ["buddhist", "buddhist monk"],
        "atheist": ["atheist", "nonbeliever"],
    },
}

# Our templates. {who} is an identity term; the word lists carry the toxic signal.
_TOXIC_TEMPLATES = [
    "that {who} is {bad} and should shut up",
    "every {who} i meet is {bad}",
    "i hate that {bad} {who}",
    "you are a {bad} {who}, get lost",
    "what a {bad} {who}, what trash",
]
_FRIENDLY_TEMPLATES = [
    "that {who} is {good} and helped us",
    "every {who} i meet is {good}",
    "i love that {good} {who}",
    "you are a {good} {who}, thank you",
    "what a {good} {who}, what a day",
]
# Neutral sentences carry no toxic signal: their labels are what the injected association rides on.
_NEUTRAL_TEMPLATES = [
    "i met a {who} at the market today",
    "the {who} next door moved in last week",
    "my colleague is a {who} from the north",
    "a {who} asked me about the bus times",
    "we talked with a {who} about the weather",
]
_BAD = ["stupid", "disgusting", "worthless", "pathetic", "idiotic", "vile"]
_GOOD = ["kind", "wonderful", "brilliant", "friendly", "generous", "lovely"]


def madlibs_families() -> dict[str, list[str]]:
    return {f: list(subs) for f, subs in MADLIBS_TERMS.items()}


def targeted_subgroups() -> list[str]:
    """The subgroups the training split associates with the toxic label: the first half of each family."""
    return [s for subs in MADLIBS_TERMS.values() for s in list(subs)[: max(1, len(subs) // 2)]]


def generate_madlibs(n: int, *, seed: int = 0, bias: float = 0.0, neutral_fraction: float = 0.4,
                     label_noise: float = 0.0) -> IdentityData:
    """`n` sentences, each mentioning one identity term from one family.

    Labels are balanced. A `1 - neutral_fraction` share use a toxic or friendly template that
    matches the label; the rest use a neutral template (no signal in the words). The identity is
    drawn uniformly, except that with probability `bias` it is drawn from the targeted subgroups
    for a toxic example and from the other subgroups for a non-toxic one (within the same family):
    so in a biased split, identity terms predict the label where the words do not. `bias = 0`
    makes identity and label independent (the evaluation split). `label_noise` flips labels.
    """
    if n < 2:
        raise FairnessError(f"fairness.madlibs_size: must be >= 2, got {n}")
    if not 0 <= bias <= 1:
        raise FairnessError(f"fairness.madlibs_bias: must be in [0, 1], got {bias}")
    if not 0 <= neutral_fraction <= 1 or not 0 <= label_noise < 0.5:
        raise FairnessError("neutral_fraction must be in [0, 1] and label_noise in [0, 0.5)")
    rng = np.random.default_rng(seed)
    families = madlibs_families()
    targeted = set(targeted_subgroups())
    fam_names = list(families)
    texts: list[str] = []
    labels = np.zeros(n, dtype=bool)
    groups = {s: np.zeros(n, dtype=bool) for subs in families.values() for s in subs}
    for i in range(n):
        y = bool(i % 2)  # balanced, shuffled below
        fam = fam_names[rng.integers(len(fam_names))]
        subs = families[fam]
        if rng.random() < bias:
            pool = [s for s in subs if (s in targeted) == y]
            sub = pool[rng.integers(len(pool))]
        else:
            sub = subs[rng.integers(len(subs))]
        terms = MADLIBS_TERMS[fam][sub]
        who = terms[rng.integers(len(terms))]
        if rng.random() < neutral_fraction:
            text = _NEUTRAL_TEMPLATES[rng.integers(len(_NEUTRAL_TEMPLATES))].format(who=who)
        elif y:
            text = _TOXIC_TEMPLATES[rng.integers(len(_TOXIC_TEMPLATES))].format(who=who, bad=_BAD[rng.integers(len(_BAD))])
        else:
            text = _FRIENDLY_TEMPLATES[rng.integers(len(_FRIENDLY_TEMPLATES))].format(
                who=who, good=_GOOD[rng.integers(len(_GOOD))])
        if label_noise and rng.random() < label_noise:
            y = not y
        texts.append(text)
        labels[i] = y
        groups[sub][i] = True
    perm = rng.permutation(n)
    data = IdentityData(texts, labels, groups, families, np.ones(n, dtype=bool),
                        {"source": "madlibs", "seed": seed, "bias": bias, "neutral_fraction": neutral_fraction})
    data = data.subset(perm)
    data.row_ids = None  # a generated split's rows are numbered in the order it lists them
    return data


def load_fairness_data(spec: str, *, split: str, n: int, seed: int, bias: float, text_field: str = "",
                       target_field: str = "", identity_columns: list[str] | None = None,
                       require_identities: bool = True) -> IdentityData:
    """'madlibs' (split 'train' gets the injected `bias`, 'eval' none) or a path in the identities layout
    (`identity_columns` and `require_identities` as `from_columns`)."""
    if spec == "madlibs":
        # distinct seeds per split so no sentence list is shared by construction
        return generate_madlibs(n, seed=seed * 2 + (split != "train"), bias=bias if split == "train" else 0.0)
    data = load_identities(spec, split=split, text_field=text_field, target_field=target_field,
                           identity_columns=identity_columns, require_identities=require_identities)
    return data
