"""steward.io: the one JSON-lines reader (its callers' semantics: blank lines, a torn last line,
a missing file, gzip) and the one nested-dict flattener."""

from __future__ import annotations

import gzip

import pytest

from steward.io import JsonlError, flatten_dict, read_jsonl


def test_jsonl_skips_blank_lines_and_counts_them_in_line_numbers(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"step": 1}\n\n   \n[1, 2]\n"text"\n{"step": 2}\n', encoding="utf-8")
    assert list(read_jsonl(p)) == [(1, {"step": 1}), (4, [1, 2]), (5, "text"), (6, {"step": 2})]


def test_jsonl_torn_last_line_raises_with_its_line_number_or_is_skipped(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "lo', encoding="utf-8")
    with pytest.raises(JsonlError) as e:
        list(read_jsonl(p))
    assert (e.value.lineno, e.value.path) == (4, p)
    assert "Unterminated string" in e.value.msg and f"{p}:4: not valid JSON" in str(e.value)
    assert isinstance(e.value, ValueError)
    assert list(read_jsonl(p, skip_bad=True)) == [(1, {"step": 1}), (3, {"step": 2})]


def test_jsonl_rows_before_a_bad_line_arrive_first(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n', encoding="utf-8")
    rows = read_jsonl(p)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(JsonlError):
        next(rows)


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_jsonl(tmp_path / "nope.jsonl"))
    assert list(read_jsonl(tmp_path / "nope.jsonl", missing_ok=True)) == []
    assert list(read_jsonl(tmp_path, missing_ok=True)) == []  # a folder is not a file either


def test_jsonl_gzip_by_name_and_windows_line_ends(tmp_path):
    p = tmp_path / "docs.JSONL.GZ"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write('{"text": "caf\\u00e9"}\r\n{"text": "b\u2028c"}\r\n')
    assert list(read_jsonl(p)) == [(1, {"text": "café"}), (2, {"text": "b\u2028c"})]


def test_flatten_dict_joins_keys_and_converts_leaves():
    nested = {"overall_auc": 1, "mean_abs_gap": {"gender": 0.25, "religion": {"x": 2}}, "empty": {}}
    assert flatten_dict(nested, sep="/", leaf=float) == {
        "overall_auc": 1.0, "mean_abs_gap/gender": 0.25, "mean_abs_gap/religion/x": 2.0}
    cfg = {"train": {"lr": 0.003, "note": "x" * 600}, "job": {"name": "steward"}, 3: None}
    flat = flatten_dict(cfg, sep=".", leaf=lambda v: str(v)[:500])
    assert flat == {"train.lr": "0.003", "train.note": "x" * 500, "job.name": "steward", "3": "None"}
    with pytest.raises(TypeError):
        flatten_dict({"a": {"b": [1]}}, sep="/", leaf=float)  # a list is a leaf, and not a number
