"""The corpora built from the machine's own text (steward.data.system): roff and dpkg parsing on
written samples, one clear line when a domain's files are absent, and a source the trainer accepts."""

from __future__ import annotations

import gzip

import pytest

from steward.config import load_config
from steward.data import DataError, open_source
from steward.data import system as sysmod
from steward.data.sources import SYSTEM_SOURCES

PAGE = r""".\" a comment
.TH DEMO 5 "2024" "demo 1.0" "File Formats"
.SH NAME
demo \- a demonstration file format
.SH DESCRIPTION
The \fBdemo\fR file holds \fIone\fP entry per line \(em nothing else.
.PP
.B Bold
words and \-\-long\-options survive.
.SH SEE ALSO
.BR other (5)
"""

STATUS = """Package: alpha
Status: install ok installed
Description: the first package
 It does one thing
 .
 and does it well.
Homepage: https://example.org

Package: beta
Version: 1.0
Description: the second one
"""


def test_roff_sections_are_plain_text():
    sections = list(sysmod.man_sections(PAGE))
    assert [s.splitlines()[0] for s in sections] == ["NAME", "DESCRIPTION", "SEE ALSO"]
    assert "demo - a demonstration file format" in sections[0]
    desc = sections[1]
    assert "The demo file holds one entry per line -- nothing else." in desc
    assert "Bold\nwords and --long-options survive." in desc
    assert "\\" not in "".join(sections) and "comment" not in "".join(sections)


def test_package_descriptions():
    docs = list(sysmod.package_descriptions(STATUS))
    assert docs == ["alpha: the first package\n\nIt does one thing\n\nand does it well.", "beta: the second one"]


def test_the_sources_and_corpora_agree():
    assert set(SYSTEM_SOURCES) == set(sysmod.SYSTEM_CORPORA)
    assert ("stdlib-docs", *SYSTEM_SOURCES) == sysmod.FOUR_DOMAINS


def test_a_domain_whose_files_are_absent_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sysmod, "MAN_ROOT", str(tmp_path / "no-man"))
    spec = sysmod.SYSTEM_CORPORA["manpages"]
    monkeypatch.setitem(sysmod.SYSTEM_CORPORA, "manpages", sysmod.SystemCorpus(
        spec.name, str(tmp_path / "no-man"), spec.what, spec.license, lambda: False, spec.documents))
    sysmod.system_corpus.cache_clear()
    try:
        with pytest.raises(DataError, match=r"^data.source: manpages: no man pages under .*apt-get install manpages"):
            list(open_source(load_config(None, ["--data.source", "manpages"]).data).documents())
        assert sysmod.available()["manpages"].startswith("manpages: no man pages")
    finally:
        sysmod.system_corpus.cache_clear()


def test_a_man_tree_written_here_builds_a_corpus(tmp_path, monkeypatch):
    (tmp_path / "man5").mkdir()
    (tmp_path / "man1").mkdir()
    with gzip.open(tmp_path / "man5" / "demo.5.gz", "wt") as fh:
        fh.write(PAGE)
    with gzip.open(tmp_path / "man5" / "alias.5.gz", "wt") as fh:
        fh.write(".so man5/demo.5\n")
    (tmp_path / "man1" / "left-out.1").write_text(".SH NAME\nsection one is not read, at any length at all\n")
    docs, files = sysmod._man_documents(tmp_path)
    assert files == 2 and len(docs) == 3 and docs[0].startswith("NAME")


@pytest.mark.parametrize("name", SYSTEM_SOURCES)
def test_each_domain_of_this_machine_is_a_source_with_a_datasheet(name):
    if sysmod.available()[name]:
        pytest.skip(sysmod.available()[name])
    source = open_source(load_config(None, ["--data.source", name]).data)
    docs = [d for _, d in zip(range(50), source.documents())]
    assert len(docs) == 50 and all(len(d) >= sysmod.MIN_CHARS for d in docs)
    d = source.describe()
    assert d["kind"] == "system" and d["license"] and d["num_files"] >= 1
    from steward.governance.datasheets import resolve_datasheet

    sheet = resolve_datasheet({**d, "name": name})
    assert sheet["origin"][0] == f"builtin:{name}" and sheet["known_biases"]
