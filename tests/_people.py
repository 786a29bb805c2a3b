"""People for the governance tests: each has a personal key in the test's own config folder
(conftest.py points XDG_CONFIG_HOME at a fresh one), registered in the test's workspace by an admin
who holds a registered key of their own."""

from __future__ import annotations

import os
from pathlib import Path

from steward.governance.access import grant_role, load_registry, register_key
from steward.governance.keys import create_signer, load_signer
from steward.governance.workspace import Workspace

ADMIN = "ws-admin"


def key_path(name: str) -> Path:
    """`name`'s personal private key (created on first use), as `steward keys create --key` would write it."""
    p = Path(os.environ["XDG_CONFIG_HOME"]) / "people" / name / "personal_key.pem"
    if not p.exists():
        create_signer(p)
    return p


def register_person(name: str, *roles: str, admin: str = ADMIN) -> Path:
    """Register `name`'s personal key (and grant `roles`) in the workspace, as `admin`; the first call makes
    `admin` the workspace's admin with a registered key. Returns the path of `name`'s private key."""
    ws = Workspace()
    store = ws.open_store()
    try:
        admin_key = load_signer(key_path(admin))
        reg = load_registry(store)
        if admin not in reg.admins():
            grant_role(store, ws.signer(), admin, admin, "admin", admin_key)
        if not load_registry(store).active_keys(admin):
            register_key(store, ws.signer(), admin, admin, admin_key.public_key, admin_key)
        if not load_registry(store).active_keys(name):
            register_key(store, ws.signer(), admin, name, load_signer(key_path(name)).public_key, admin_key)
        for role in roles:
            if role not in load_registry(store).roles.get(name, set()):
                grant_role(store, ws.signer(), admin, name, role, admin_key)
        ws.publish_head(store.sign_head(ws.signer()), store.display_url)
    finally:
        store.close()
    return key_path(name)


def act_as(monkeypatch, name: str) -> None:
    """Commands from now on run as `name`, with `name`'s personal key."""
    monkeypatch.setenv("STEWARD_ACTOR", name)
    monkeypatch.setenv("STEWARD_USER_KEY", str(key_path(name)))
