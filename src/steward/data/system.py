"""Three more corpora built at run time from text a Debian or Ubuntu machine already has, so that
cross-domain evaluation and the drift benchmark run anywhere without a download. With `stdlib-docs`
(Python docstrings) they make four distinct domains:

- `manpages`: the English manual pages of sections 2, 4, 5, 7 and 8 (/usr/share/man/manN, gzipped roff), one document per
  `.SH` section, the roff markup stripped by the rules below (no groff needed). `.so` redirects and
  symbolic links are skipped (their target is read once).
- `licenses`: license texts: /usr/share/common-licenses/* (base-files) and every
  /usr/share/doc/*/copyright, one document per paragraph (blank-line separated).
- `debian-packages`: the package descriptions of /var/lib/dpkg/status, one document per package
  ("name: synopsis" and the extended description).

Documents shorter than `MIN_CHARS` and exact repeats are skipped; the files are read in sorted path
order, so the corpus depends only on what is installed, and `fingerprint` pins it. Built once per
process and cached on disk like stdlib-docs (`steward.data.corpus.cached_corpus`).

Where the files are absent (a slim container image drops /usr/share/man and most of /usr/share/doc),
`system_corpus` raises a one-line DataError saying so and how to get them; `available()` lists which
of the four domains this machine has.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from steward.data.corpus import Corpus, cached_corpus, documents_fingerprint
from steward.data.errors import DataError

SYSTEM_VERSION = 1
"""Bump when the extraction rules change, so disk caches of older builds are not used."""

MIN_CHARS = 40

MAN_ROOT = "/usr/share/man"
MAN_SECTIONS = "24578"
"""System calls, special files, file formats, conventions and administration: pages of the system's own
packages. Sections 1 and 3 (user commands, library functions) are left out: on many machines they are
dominated by one vendor's generated pages (a cloud SDK's thousands of subcommands, Perl modules)."""
LICENSE_ROOTS = ("/usr/share/common-licenses", "/usr/share/doc")
DPKG_STATUS = "/var/lib/dpkg/status"

# ---- man pages -----------------------------------------------------------------------------------

_SPECIAL = {"em": "--", "en": "-", "hy": "-", "bu": "*", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'",
            "cq": "'", "co": "(c)", "rg": "(R)", "tm": "(TM)", "mi": "-", "pl": "+", "mu": "x", "<=": "<=",
            ">=": ">=", "->": "->", "<-": "<-", "ti": "~", "ha": "^", "rs": "\\", "ga": "`", "dg": "+"}
_ESCAPES = [
    (re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\s[+-]?\d+"), ""),  # size changes
    (re.compile(r"\\\*(?:\[[^\]]*\]|\(..|.)"), ""),  # user-defined strings
    (re.compile(r"\\[&|^%cdu,/:)]"), ""),  # zero-width and spacing escapes
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\[-e]"), lambda m: "-" if m.group(0) == "\\-" else "\\"),
]
_SPECIAL_RE = re.compile(r"\\(?:\(([^\s]{2})|\[([^\]]*)\])")
_MACRO_TEXT = re.compile(r"^\.(?:B|I|SM|SB|BR|BI|IB|IR|RB|RI|SS|SH|IP|TP|OP|UR|MT|Nm|Nd|Ar|Fl)\b\s*(.*)$")
_BREAKS = re.compile(r"^\.(?:PP|LP|P|TP|IP|sp|br|HP|RS|RE|nf|fi|in|Pp|Bl|El|It)\b")


def roff_text(line: str) -> str:
    """One roff text line without its escapes (fonts, sizes, strings; special characters spelled out)."""
    line = _SPECIAL_RE.sub(lambda m: _SPECIAL.get(m.group(1) or m.group(2) or "", ""), line)
    for pattern, repl in _ESCAPES:
        line = pattern.sub(repl, line)
    return line.replace("\\\\", "\\")


def man_sections(source: str) -> Iterator[str]:
    """The `.SH` sections of a man page as plain text (heading, then paragraphs)."""
    section: list[str] = []
    for raw in source.splitlines():
        if raw.startswith((".\\\"", "'\\\"", '.\\"')) or raw.strip() in (".", ""):
            continue
        if raw.startswith(".SH") and section:
            yield "\n".join(section)
            section = []
        m = _MACRO_TEXT.match(raw)
        if m:
            text = roff_text(m.group(1).replace('"', ""))
        elif _BREAKS.match(raw):
            text = ""
        elif raw.startswith((".", "'")):
            continue  # any other request: layout, definitions, conditionals
        else:
            text = roff_text(raw)
        if text or (section and section[-1]):
            section.append(text.strip())
    if section:
        yield "\n".join(section)


def _man_files(root: Path) -> list[Path]:
    files = []
    for sub in sorted(root.glob(f"man[{MAN_SECTIONS}]")):
        for f in sorted(sub.iterdir()):
            if f.is_file() and not f.is_symlink():
                files.append(f)
    return files


def _read_man(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read().decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return ""


def _man_documents(root: Path) -> tuple[list[str], int]:
    files = _man_files(root)
    docs = []
    for f in files:
        text = _read_man(f)
        if text.lstrip().startswith(".so "):
            continue  # a redirect to another page
        docs.extend(re.sub(r"\n{3,}", "\n\n", s).strip() for s in man_sections(text))
    return docs, len(files)


# ---- license texts ---------------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def _license_files(roots: tuple[str, ...]) -> list[Path]:
    common, doc = (Path(r) for r in roots)
    files = sorted(f for f in common.glob("*") if f.is_file()) if common.is_dir() else []
    if doc.is_dir():
        files += sorted(f for f in doc.glob("*/copyright") if f.is_file())
    return files


def _license_documents(files: list[Path]) -> tuple[list[str], int]:
    docs, seen_files = [], set()
    for f in files:
        real = os.path.realpath(f)
        if real in seen_files:
            continue  # common-licenses/GPL is a link to GPL-3, and packages share copyright files
        seen_files.add(real)
        text = f.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
        docs.extend(p.strip("\n") for p in _PARAGRAPH_BREAK.split(text))
    return docs, len(files)


# ---- package descriptions --------------------------------------------------------------------------


def package_descriptions(status: str) -> Iterator[str]:
    """"package: synopsis" and the extended description of each paragraph of a dpkg status file."""
    for record in _PARAGRAPH_BREAK.split(status):
        name, desc, inside = "", [], False
        for line in record.splitlines():
            if line.startswith("Package:"):
                name, inside = line.split(":", 1)[1].strip(), False
            elif line.startswith("Description:"):
                desc, inside = [line.split(":", 1)[1].strip(), ""], True
            elif inside and line.startswith(" "):
                desc.append("" if line.strip() == "." else line[1:])
            else:
                inside = False
        if name and desc:
            yield f"{name}: " + "\n".join(desc).rstrip()


# ---- the corpora ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemCorpus:
    name: str
    root: str
    what: str
    """What is missing when the files are absent, and how to get them."""
    license: str
    """The license note the datasheet carries (the builtin datasheet explains it)."""
    present: Callable[[], bool]
    documents: Callable[[], tuple[list[str], int]]
    """(documents before filtering, files read)."""


def _nonempty_dir(path: str) -> bool:
    return os.path.isdir(path) and any(os.scandir(path))


SYSTEM_CORPORA: dict[str, SystemCorpus] = {
    "manpages": SystemCorpus(
        "manpages", MAN_ROOT,
        f"no man pages under {MAN_ROOT}/man[{MAN_SECTIONS}] (slim images drop them; apt-get install manpages)",
        "various (each page under its package's license: /usr/share/doc/<package>/copyright)",
        lambda: bool(_man_files(Path(MAN_ROOT))) if os.path.isdir(MAN_ROOT) else False,
        lambda: _man_documents(Path(MAN_ROOT))),
    "licenses": SystemCorpus(
        "licenses", LICENSE_ROOTS[0],
        f"no license texts under {LICENSE_ROOTS[0]} or {LICENSE_ROOTS[1]}/*/copyright (not a Debian-based system?)",
        "verbatim copying permitted (each license text's own terms; copyright notices are facts)",
        lambda: bool(_license_files(LICENSE_ROOTS)),
        lambda: _license_documents(_license_files(LICENSE_ROOTS))),
    "debian-packages": SystemCorpus(
        "debian-packages", DPKG_STATUS, f"no {DPKG_STATUS} (not a Debian-based system?)",
        "various (each description under its package's license: /usr/share/doc/<package>/copyright)",
        lambda: os.path.isfile(DPKG_STATUS),
        lambda: (list(package_descriptions(Path(DPKG_STATUS).read_text(encoding="utf-8", errors="replace"))), 1)),
}

FOUR_DOMAINS = ("stdlib-docs", "manpages", "licenses", "debian-packages")
"""The four local domains of `steward bench drift` and the README's cross-domain example."""


def _build(name: str, root: str) -> Corpus:
    raw, num_files = SYSTEM_CORPORA[name].documents()
    docs, seen = [], set()
    for doc in raw:
        if len(doc) >= MIN_CHARS and doc not in seen:
            seen.add(doc)
            docs.append(doc)
    return Corpus(tuple(docs), documents_fingerprint(docs), root, num_files)


@functools.cache
def system_corpus(name: str, use_disk_cache: bool = True) -> Corpus:
    """The corpus `name` (one of SYSTEM_CORPORA) of this machine; DataError when its files are absent."""
    spec = SYSTEM_CORPORA[name]
    if not spec.present():
        raise DataError(f"data.source: {name}: {spec.what}; choose another source")
    corpus = cached_corpus(name, spec.root, SYSTEM_VERSION, functools.partial(_build, name), use_disk_cache)
    if not corpus.documents:
        raise DataError(f"data.source: {name}: {spec.what}; choose another source")
    return corpus


def available() -> dict[str, str]:
    """Domain -> '' when this machine has its files, else the one-line reason it does not."""
    return {name: "" if name == "stdlib-docs" or SYSTEM_CORPORA[name].present() else f"{name}: "
            f"{SYSTEM_CORPORA[name].what}" for name in FOUR_DOMAINS}
