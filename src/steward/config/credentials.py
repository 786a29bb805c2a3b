"""Credentials in config values, and the one masked rendering of a URL that is written and shown.

A store or tracking URL may carry a password (`postgresql://USER:PW@HOST/DB`) or credentials in
its query (`?password=`, `sslpassword=`, `passfile=`, `sslkey=`, `...token=`, ...). Nothing Steward
writes or prints holds them: config.toml, the audit log, run.json, heads.jsonl, provenance, the
report and error messages all carry `mask_url(url)` instead, where every credential reads `***`.
A URL read back from a record (config.toml) connects without its `***` parts (`unmasked_parts`
drops them), so the driver takes the password from the environment (PGPASSWORD, ~/.pgpass, a
service file) instead.

Query parameters hidden: `password`, `passwd`, `pwd`, `pass`, `sslpassword`, `passfile`, `sslkey`
and every name containing "password", "passwd", "secret", "token", "key" or "credential" (any
case). `sslkey` and `passfile` are paths, but to files that hold a credential: hidden. Shown:
`sslcert`, `sslrootcert` (public certificates), `service` (a name in pg_service.conf), `options`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

MASK = "***"
URL_KEYS = (("governance", "store"), ("governance", "mlflow_uri"))
"""Config values that are URLs and may carry credentials: recorded and shown masked."""

SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "passfile", "sslkey"})
SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "credential")


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter of this name carries a credential."""
    n = name.lower()
    return n in SECRET_PARAMS or any(w in n for w in SECRET_WORDS)


def _values(v: str | tuple[str, ...]) -> tuple[str, ...]:
    return v if isinstance(v, tuple) else (v,)


def _masked(url: URL) -> URL | None:
    """`url` with every credential replaced by MASK; None when it holds none."""
    changes: dict[str, Any] = {}
    if url.password:
        changes["password"] = MASK
    if url.host and "@" in url.host:  # an unencoded '@' in the password: the rest of it parsed as host
        changes.update(password=MASK, host=url.host.rpartition("@")[2])
    secret = {k: (MASK if isinstance(v, str) else (MASK,) * len(v)) for k, v in url.query.items()
              if is_secret_param(k) and any(_values(v))}
    if not changes and not secret:
        return None
    masked = url.set(**changes) if changes else url
    return masked.update_query_dict(secret) if secret else masked


def _render(url: URL) -> str:
    # the password renders as '***' through hide_password; a query value would be percent-encoded
    return url.render_as_string(hide_password=True).replace("=%2A%2A%2A", f"={MASK}")


def parse(value: str) -> URL | None:
    """`value` parsed by SQLAlchemy's make_url; None when it is no URL or does not parse."""
    if "://" not in value:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(value)
    except (ArgumentError, ValueError):  # e.g. an unencoded '/' and ':' in a password ('port' not a number)
        return None


def mask_url(value: str | URL) -> str:
    """The URL as it may be written or shown: user-info password and credential query parameters
    read `***`. A string with nothing to hide comes back unchanged; one with '://' that does not
    parse as a URL keeps only its scheme (its parts cannot be told apart, so all may be secret)."""
    if isinstance(value, str):
        url = parse(value)
        if url is None:
            scheme, sep, rest = value.partition("://")
            return f"{scheme}://{MASK}" if sep and rest else value
    else:
        url = value
    masked = _masked(url)
    if masked is None:
        return value if isinstance(value, str) else url.render_as_string(hide_password=False)
    return _render(masked)


def unmasked_parts(url: URL) -> URL:
    """`url` without the parts a record masked (a password or query value of exactly `***`), so
    that the driver looks for them in the environment."""
    if url.password == MASK:  # (URL.set cannot unset a part)
        url = type(url).create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    drop = [k for k, v in url.query.items() if MASK in _values(v)]
    return url.difference_update_query(drop) if drop else url


def credentials(url: URL) -> list[str]:
    """The credential strings of `url` as they may appear in a message: raw and percent-encoded,
    longest first."""
    from urllib.parse import quote, quote_plus

    found = [url.password or ""] if url.password != MASK else []
    if url.host and "@" in url.host:
        found.append(url.host.rpartition("@")[0])
    for k, v in url.query.items():
        if is_secret_param(k):
            found += [x for x in _values(v) if x != MASK]
    forms = {f for s in found if s for f in (s, quote(s, safe=""), quote_plus(s))}
    return sorted(forms, key=len, reverse=True)


def scrub(message: str, url: URL | str) -> str:
    """`message` with every credential of `url` replaced by `***` (a driver may echo the URL)."""
    parsed = parse(url) if isinstance(url, str) else url
    for s in credentials(parsed) if parsed is not None else []:
        message = message.replace(s, MASK)
    return message


def mask_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config dict (section -> key -> value) with the URL values of URL_KEYS masked."""
    out = json.loads(json.dumps(config))
    for section, key in URL_KEYS:
        sec = out.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            sec[key] = mask_url(sec[key])
    return out
