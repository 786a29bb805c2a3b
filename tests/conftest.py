"""Shared test set-up: every test gets its own Steward workspace (keys, published heads, workspace
store), so no test writes to ~/.steward; PostgreSQL stores for the governance tests."""

from __future__ import annotations

import os
import uuid

import pytest


def pytest_sessionstart(session):
    """One line up front when the PostgreSQL tests will skip, saying how to run them."""
    if not os.environ.get("STEWARD_TEST_PG_URL"):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = ("PostgreSQL tests will skip (STEWARD_TEST_PG_URL is unset); to run them: "
                'eval "$(bash .ci/postgres.sh)" && make test')
        if reporter is not None:
            reporter.write_line(line)


@pytest.fixture(autouse=True)
def _steward_workspace(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STEWARD_WORKSPACE", str(tmp_path_factory.mktemp("workspace")))
    monkeypatch.delenv("STEWARD_SIGNING_KEY", raising=False)
    monkeypatch.delenv("STEWARD_ACTOR", raising=False)
    # nobody's personal key: a test that needs one creates it (tests/test_governance_keys.py: person())
    monkeypatch.delenv("STEWARD_USER_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


def _pg_base() -> str:
    url = os.environ.get("STEWARD_TEST_PG_URL", "")
    if not url:
        pytest.skip("PostgreSQL tests need STEWARD_TEST_PG_URL (eval \"$(bash .ci/postgres.sh)\" sets it)")
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=5):
            pass
    except Exception as e:  # server down, wrong password, driver missing: say which
        pytest.skip(f"PostgreSQL at STEWARD_TEST_PG_URL does not answer: {type(e).__name__}: {str(e)[:200]}")
    return url


@pytest.fixture
def pg_url():
    """A SQLAlchemy URL to an empty schema of the test server (dropped afterwards)."""
    import psycopg

    base = _pg_base()
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """An empty audit store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("pg_url")
