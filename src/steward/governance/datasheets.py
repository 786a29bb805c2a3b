"""Datasheets: who made a dataset, under what license, for what use, with what known biases.

A dataset's datasheet is merged from, lowest precedence first:
1. the built-in datasheet of a source Steward knows by name (builtin_datasheets.toml);
2. the facts the data module reports (its `license`);
3. `datasheet.toml` next to local data (in the folder, or beside the file): flat keys;
4. the file named by governance.datasheets: a table per dataset name, e.g.
       [my-corpus]
       source = "..."; license = "CC-BY-4.0"; intended_use = "..."; known_biases = "..."
   (a table matches a dataset by its name, source, Hugging Face id, preset or path).
Licenses are normalised to SPDX identifiers where the spelling is known ('odc-by' -> 'ODC-By-1.0').
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

from steward.governance._util import GovernanceError, read_toml_file
from steward.io import tomllib

FIELDS = ("source", "license", "intended_use", "known_biases")
OPTIONAL = ("personal_data", "description", "collection", "references", "aliases")
FILE_NAME = "datasheet.toml"

_SPDX = [
    "MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Unlicense", "PSF-2.0", "Python-2.0",
    "CC0-1.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0",
    "ODC-By-1.0", "ODbL-1.0", "PDDL-1.0", "GPL-2.0-only", "GPL-3.0-only", "LGPL-3.0-only",
    "GFDL-1.3-or-later", "OpenRAIL", "Llama-2", "unknown",
]
_ALIASES = {
    **{s.lower(): s for s in _SPDX},
    "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "bsd-3": "BSD-3-Clause", "bsd": "BSD-3-Clause", "psf": "PSF-2.0", "psfl": "PSF-2.0",
    "cc0": "CC0-1.0", "cc-by": "CC-BY-4.0", "cc-by-sa": "CC-BY-SA-4.0",
    "odc-by": "ODC-By-1.0", "odc-by-1-0": "ODC-By-1.0", "odc-by-1.0": "ODC-By-1.0",
    "odbl": "ODbL-1.0", "pddl": "PDDL-1.0", "gfdl": "GFDL", "": "unknown", "other": "unknown",
}


def normalize_licenses(value: Any) -> list[str]:
    """A license string (or list) as SPDX identifiers; several separated by ',', ';', ' or ', ' and '."""
    items = value if isinstance(value, list) else re.split(r"\s*(?:,|;|\s+or\s+|\s+and\s+)\s*", str(value or ""))
    out = []
    for item in items:
        key = str(item).strip()
        norm = _ALIASES.get(key.lower(), key)
        if norm and norm not in out:
            out.append(norm)
    return out or ["unknown"]


def _check_sheet(sheet: Any, where: str) -> dict[str, Any]:
    if not isinstance(sheet, dict):
        raise GovernanceError(f"{where}: a datasheet must be a table of {', '.join(FIELDS)}")
    unknown = set(sheet) - set(FIELDS) - set(OPTIONAL)
    if unknown:
        raise GovernanceError(f"{where}: unknown datasheet key {sorted(unknown)[0]!r} "
                              f"(known: {', '.join(FIELDS + OPTIONAL)})")
    for k, v in sheet.items():
        if k in ("references", "aliases"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise GovernanceError(f"{where}: {k} must be a list of strings")
        elif not isinstance(v, str):
            raise GovernanceError(f"{where}: {k} must be a string, got {type(v).__name__}")
    return dict(sheet)


@functools.cache
def builtin_datasheets() -> dict[str, dict[str, Any]]:
    text = resources.files("steward.governance").joinpath("builtin_datasheets.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {name: _check_sheet(sheet, f"builtin datasheet {name}") for name, sheet in data.items()}


def load_datasheets_file(path: str) -> dict[str, dict[str, Any]]:
    """The governance.datasheets file: dataset name -> datasheet. Errors name the file and key."""
    p = Path(path).expanduser()
    data = read_toml_file(path, "governance.datasheets", " (a TOML file of [dataset-name] tables)")
    return {str(name): _check_sheet(sheet, f"governance.datasheets {p} [{name}]") for name, sheet in data.items()}


def _keys_of(dataset: dict[str, Any]) -> list[str]:
    keys = [dataset.get(k) for k in ("name", "preset", "source", "hf_id", "path")]
    return [str(k) for k in keys if k]


def _local_sheet(dataset: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    path = dataset.get("path")
    if not path or dataset.get("kind") in ("stdlib-docs",):
        return None
    p = Path(str(path))
    candidate = p / FILE_NAME if p.is_dir() else p.parent / FILE_NAME
    if not candidate.is_file():
        return None
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise GovernanceError(f"{candidate}: not valid TOML ({e})") from None
    return _check_sheet(data, str(candidate)), str(candidate)


def resolve_datasheet(dataset: dict[str, Any], configured: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The merged datasheet of `dataset` with `licenses` (SPDX list) and `origin` (where each layer came from)."""
    keys = _keys_of(dataset)
    sheet: dict[str, Any] = {}
    origin: list[str] = []
    for name, builtin in builtin_datasheets().items():
        if name in keys or any(a in keys for a in builtin.get("aliases", [])):
            sheet.update({k: v for k, v in builtin.items() if k != "aliases"})
            origin.append(f"builtin:{name}")
            break
    if dataset.get("license"):
        sheet["license"] = str(dataset["license"])
        origin.append("data source")
    local = _local_sheet(dataset)
    if local:
        sheet.update(local[0])
        origin.append(local[1])
    for name, cfg_sheet in (configured or {}).items():
        if name in keys:
            sheet.update(cfg_sheet)
            origin.append(f"governance.datasheets[{name}]")
            break
    sheet.pop("aliases", None)
    licenses = normalize_licenses(sheet.get("license", ""))
    return {**sheet, "licenses": licenses, "origin": origin}
