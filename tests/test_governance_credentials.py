"""No credential of a store URL is ever written or shown: the masking of URLs (user-info password,
credential query parameters), the config as written, and a recorded run whose every file, store and
command output is searched for the secret (SQLite with credentials in the query; PostgreSQL with a
real password, on CI's server)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy.engine import make_url

from steward.config import JobConfig, config_hash, to_toml
from steward.config.credentials import mask_url, parse, scrub, unmasked_parts
from steward.governance import GovernanceError
from steward.governance.store import ENTRIES, HEADS, KEYS, META, STATE, AuditStore
from test_governance_run import cli, fake_train

MASKED = [
    # (URL, its masked rendering, strings that must not appear in it)
    ("postgresql://user:Pa/ss@host/db", "postgresql://user:***@host/db", ["Pa/ss", "Pa", "ss@"]),
    ("postgresql://user:pa:ss@host:5432/db", "postgresql://user:***@host:5432/db", ["pa:ss", "pa"]),
    ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db", ["p@ss", "ss@"]),
    ("postgresql+psycopg://al%40ice:p%2Fa%3Ab%40c%25d@h/db", "postgresql+psycopg://al%40ice:***@h/db",
     ["p%2Fa", "%25d", "p/a:b@c%d"]),
    ("postgresql://user:Pa/ss@w:rd%x@host/db", "postgresql://***", ["Pa/ss", "rd%x", "user"]),
    ("postgresql://steward@host/db?password=SECRET", "postgresql://steward@host/db?password=***", ["SECRET"]),
    ("postgresql://h/db?sslpassword=K1&sslkey=/home/a/.k.pem&sslcert=/home/a/c.crt&passfile=/p/pgpass",
     "postgresql://h/db?passfile=***&sslcert=%2Fhome%2Fa%2Fc.crt&sslkey=***&sslpassword=***",
     ["K1", ".k.pem", "/p/pgpass"]),
    ("postgresql://h/db?Password=A1&api_token=B2&client_secret=C3&accessKey=D4&password=E5&password=F6",
     "postgresql://h/db?Password=***&accessKey=***&api_token=***&client_secret=***&password=***&password=***",
     ["A1", "B2", "C3", "D4", "E5", "F6"]),
    ("postgresql://:only@h/db", "postgresql://:***@h/db", ["only"]),
    ("https://u:tok@mlflow.example.org:5000", "https://u:***@mlflow.example.org:5000", ["tok"]),
    ("sqlite:////tmp/a.db?password=S3", "sqlite:////tmp/a.db?password=***", ["S3"]),
]
UNCHANGED = ["postgresql+psycopg://steward@host:5432/db", "postgresql:///?service=steward",
             "postgresql://h/db?options=-csearch_path%3Dx&sslmode=require", "sqlite:////tmp/a.db",
             "/tmp/run/audit.db", "workspace", "", "http://localhost:5000"]


@pytest.mark.parametrize("url,masked,hidden", MASKED)
def test_every_credential_of_a_url_is_masked(url, masked, hidden):
    assert mask_url(url) == masked
    assert all(h not in masked for h in hidden), masked
    assert mask_url(masked) == masked  # a masked URL (read back from config.toml) stays as it is
    parsed = parse(url)
    if parsed is not None:
        assert mask_url(parsed) == masked  # the same rendering from a parsed URL


@pytest.mark.parametrize("url", UNCHANGED)
def test_a_url_without_credentials_is_left_as_written(url):
    assert mask_url(url) == url


def test_a_masked_url_connects_without_its_masked_parts():
    url = parse("postgresql+psycopg://steward:***@h/db?password=***&sslmode=require&sslkey=***")
    assert unmasked_parts(url) == make_url("postgresql+psycopg://steward@h/db?sslmode=require")
    real = parse("postgresql+psycopg://steward:pw@h/db?password=x")
    assert unmasked_parts(real) == real


def test_messages_are_scrubbed_of_raw_and_encoded_credentials():
    url = parse("postgresql://u:p%2Fa%40ss@h/db?password=T%26k&sslmode=require")
    msg = scrub("bad: p/a@ss p%2Fa%40ss T&k T%26k sslmode=require", url)
    assert msg == "bad: *** *** *** *** sslmode=require"
    assert scrub("GET https://u:Tk9@h/api failed", "https://u:Tk9@h") == "GET https://u:***@h/api failed"
    assert scrub("no URL here", "databricks") == "no URL here"


def test_store_errors_never_echo_a_password(tmp_path):
    for spec, leak in [("postgresql://steward:Pa/ss@w:rd%x@127.0.0.1:1/db", "rd%x"),
                       ("postgresql://steward:P@ssw0rd@127.0.0.1:1/db", "ssw0rd"),
                       ("mysql://steward:Sekr1t@h/db", "Sekr1t"),
                       ("postgresql://steward@127.0.0.1:1/db?password=Sekr1t&connect_timeout=x", "Sekr1t")]:
        with pytest.raises(GovernanceError) as e:
            AuditStore(spec)
        assert leak not in str(e.value) and "***" in str(e.value), e.value


def test_the_written_config_and_its_hash_hold_no_credential(capsys):
    cfg = JobConfig()
    cfg.governance.store = "postgresql://steward:Pa/ss@db/x?sslpassword=K9z&service=s"
    cfg.governance.mlflow_uri = "https://u:T0k3n@mlflow:5000"
    text = to_toml(cfg)
    assert "Pa/ss" not in text and "K9z" not in text and "T0k3n" not in text
    assert 'store = "postgresql://steward:***@db/x?service=s&sslpassword=***"' in text
    masked = JobConfig()
    masked.governance.store = "postgresql://steward:***@db/x?service=s&sslpassword=***"
    masked.governance.mlflow_uri = "https://u:***@mlflow:5000"
    assert config_hash(cfg) == config_hash(masked)  # the hash is of config.toml as written
    code, out, err = cli(capsys, "config", "--governance.store", cfg.governance.store)
    assert code == 0 and "Pa/ss" not in out + err and "K9z" not in out + err and "steward:***@db" in out


def secret_forms(*secrets: str) -> set[str]:
    return {f for s in secrets for f in (s, quote(s, safe=""), quote_plus(s))}


def leaks(secrets: set[str], roots: list[Path], *outputs: str) -> list[str]:
    """Where any form of the secrets appears: every file under `roots`, then each output."""
    found = []
    for root in roots:
        for f in [root] if root.is_file() else sorted(root.rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                if f.name == "provenance.json":  # the signed statement is base64 in the DSSE envelope
                    data += base64.b64decode(json.loads(data)["payload"])
                found += [f"{f}: {s!r}" for s in secrets if s.encode() in data]
    for i, out in enumerate(outputs):
        found += [f"output {i}: {s!r}" for s in secrets if s in out]
    return found


def commands_output(capsys, run_dir: Path) -> tuple[list[str], list[int]]:
    """Every governance command that reads the run: their stdout and stderr, and exit codes."""
    outs, codes = [], []
    for argv in (["audit", "verify", run_dir], ["audit", "verify", run_dir, "--json"],
                 ["audit", "log", run_dir, "--json"], ["audit", "provenance", run_dir, "--json"],
                 ["report", run_dir], ["config", "--config", run_dir / "config.toml", "--json"]):
        code, out, err = cli(capsys, *argv)
        codes.append(code)
        outs += [out, err]
    return outs, codes


def test_no_file_or_output_of_a_run_holds_the_store_credentials(tmp_path, capsys):
    """SQLite ignores query parameters (with a warning), so credentials there reach every layer."""
    import os

    secrets = ("Xq7/s3cret@Zk9", "tok-Zk9-77")
    store = tmp_path / "shared" / "audit.db"
    url = f"sqlite:///{store}?password={quote(secrets[0], safe='')}&api_token={secrets[1]}"
    _, err, _ = fake_train(tmp_path / "run", store=url)
    assert err is None, err
    trained = capsys.readouterr()
    outs, codes = commands_output(capsys, tmp_path / "run")
    assert codes == [0] * len(codes), outs
    recorded = (tmp_path / "run" / "config.toml").read_text() + (tmp_path / "run" / "governance" / "run.json").read_text()
    assert recorded.count("password=***") == 2 and recorded.count("api_token=***") == 2
    workspace = Path(os.environ["STEWARD_WORKSPACE"])
    assert leaks(secret_forms(*secrets), [tmp_path / "run", workspace, store.parent], *trained, *outs) == []


@pytest.mark.postgres
def test_no_file_or_output_of_a_postgres_run_holds_its_password(tmp_path, pg_url, capsys, monkeypatch):
    """The real server's password, in the user-info and again as ?password=: later commands find it
    in PGPASSWORD, as the README says."""
    import os

    password = make_url(pg_url).password
    assert password, "STEWARD_TEST_PG_URL must carry a password"
    url = f"{pg_url}&password={quote(password, safe='')}"
    _, err, _ = fake_train(tmp_path / "run", store=url)
    assert err is None, err
    trained = capsys.readouterr()
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    code, out, err = cli(capsys, "audit", "verify", tmp_path / "run")
    assert code != 0 and "PGPASSWORD" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("PGPASSWORD", password)
    outs, codes = commands_output(capsys, tmp_path / "run")
    assert codes == [0] * len(codes), outs
    recorded = (tmp_path / "run" / "config.toml").read_text() + (tmp_path / "run" / "governance" / "run.json").read_text()
    assert recorded.count(":***@") == 2 and recorded.count("password=***") == 2
    store = AuditStore(url, create=False)
    try:  # every row of every table of the log, not only this run's entries
        with store.engine.connect() as conn:
            rows = [str(conn.execute(t.select()).all()) for t in (META, STATE, ENTRIES, HEADS, KEYS)]
    finally:
        store.close()
    workspace = Path(os.environ["STEWARD_WORKSPACE"])
    assert leaks(secret_forms(password), [tmp_path / "run", workspace], *trained, out, err, *outs, *rows) == []
