"""Self-contained HTML pages (inline CSS, no scripts, no network): escaping, tables and the page
shell, for every page Steward writes (the run report, `steward explain --html`). The one place for each."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2433;max-width:1080px;margin:2em auto;
padding:0 1em}h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #dde3ee;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}table{border-collapse:collapse;width:100%;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #dde3ee;padding:4px 7px;text-align:left;vertical-align:top}th{background:#f3f6fb}
table.kv th{width:24%}.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:700}.warn{color:#9a6700}
.muted{color:#6b7385}.banner{padding:.7em 1em;border-radius:6px;margin:1em 0;font-weight:600}
.banner.ok{background:#e6f4ea}.banner.bad{background:#fdecea}.chart{margin:.5em 0;display:block}
td{overflow-wrap:break-word}td.h{word-break:break-all}.tw{overflow-x:auto}td.ok,td.bad,td.warn,td.muted{white-space:nowrap}
th{white-space:nowrap}
"""
"""The stylesheet of the tables, banners and charts (classes ok, bad, warn, muted, kv, h, tw, banner, chart)."""


def esc(v: Any) -> str:
    """Any value as escaped HTML text: None as a dash, lists comma-separated, booleans yes/no,
    dicts as sorted JSON, floats to 6 significant digits."""
    if v is None:
        return "&mdash;"
    if isinstance(v, (list, tuple)):
        return ", ".join(esc(x) for x in v) or "&mdash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return html.escape(json.dumps(v, sort_keys=True))
    if isinstance(v, float):
        return html.escape(f"{v:.6g}")
    return html.escape(str(v))


def long_class(v: Any) -> str:
    """Cells with a long unbreakable token (a digest, a path, a URL) may break anywhere."""
    return ' class="h"' if any(len(tok) > 28 for tok in str(v).split()) else ""


Cell = Callable[[str, Any], "str | None"]
"""A table's own rendering of a cell: (column key, value) -> the <td> element, or None for the default."""


def table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], cell: Cell | None = None) -> str:
    """`rows` as a table of the columns `cols` ((key, heading) pairs); `cell` renders special columns."""
    if not rows:
        return '<p class="muted">none recorded</p>'
    head = "".join(f"<th>{esc(t)}</th>" for _, t in cols)
    body = []
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k)
            special = cell(k, v) if cell is not None else None
            cells.append(special if special is not None else f"<td{long_class(v)}>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='tw'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def kv(d: dict[str, Any]) -> str:
    """A two-column table: one row per key."""
    return "<table class='kv'>" + "".join(f"<tr><th>{esc(k)}</th><td{long_class(v)}>{esc(v)}</td></tr>"
                                          for k, v in d.items()) + "</table>"


def page(title_html: str, parts: Iterable[str], css: str = CSS) -> str:
    """A whole document: `title_html` (already escaped) in the head, then the non-empty `parts`, one per line."""
    head = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{title_html}</title><style>{css}</style></head><body>"]
    return "\n".join([*head, *(p for p in parts if p), "</body></html>"])
