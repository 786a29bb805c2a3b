"""`steward keys ...`: personal Ed25519 keys and their registration in the workspace's role registry.

    steward keys create                  make YOUR key pair in your own config folder (private half 0600)
    steward keys register NAME PUB.pub   an admin registers NAME's public key (signed with the admin's key)
    steward keys revoke NAME KEY_ID      an admin revokes it (approvals it signed before stay valid)
    steward keys list                    who holds which registered key (fingerprint = key id)
"""

from __future__ import annotations

from steward.cli.governance_cmd import (
    add_key_arg,
    add_store_args,
    emit,
    emit_registry_listing,
    sign_and_publish,
    workspace_store,
)


def register(sub) -> None:
    keys = sub.add_parser("keys", help="personal signing keys: create yours; admins register them (approvals and "
                                       "registry changes are signed with them)")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = ksub.add_parser("create", help="create your personal key pair (default: $STEWARD_USER_KEY, else "
                                       "$XDG_CONFIG_HOME/steward/personal_key.pem, mode 0600)")
    p.add_argument("--key", default="", metavar="PEM", help="where to write the private key")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_create)

    p = ksub.add_parser("list", help="the registered keys: name, key id, who registered it, when")
    add_store_args(p)
    p.set_defaults(func=run_list)

    p = ksub.add_parser("register", help="register NAME's public key (admins only)")
    p.add_argument("who", metavar="NAME")
    p.add_argument("public_key", metavar="PUBLIC_KEY", help="the .pub file `steward keys create` wrote")
    p.add_argument("--actor", default="", help="the admin making the change (default: $STEWARD_ACTOR or the OS user)")
    add_key_arg(p)
    add_store_args(p)
    p.set_defaults(func=run_register)

    p = ksub.add_parser("revoke", help="revoke one of NAME's registered keys (admins only)")
    p.add_argument("who", metavar="NAME")
    p.add_argument("key_id", metavar="KEY_ID", help="the key id, or a unique prefix of it (`steward keys list`)")
    p.add_argument("--actor", default="", help="the admin making the change (default: $STEWARD_ACTOR or the OS user)")
    add_key_arg(p)
    add_store_args(p)
    p.set_defaults(func=run_revoke)


def run_create(args) -> int:
    from steward.errors import UserError
    from steward.governance.keys import create_signer, personal_key_path, public_key_file

    path = personal_key_path(args.key)
    if path.exists():
        raise UserError(f"a personal key already exists at {path}; use it (give its {public_key_file(path)} to "
                        "an admin to register), or give another place with --key")
    signer = create_signer(path)
    pub = public_key_file(path)
    emit(args, {"ok": True, "private_key": str(path), "public_key": str(pub), "key_id": signer.key_id},
          f"created {path} (mode 0600) and {pub}\nkey id {signer.key_id}\n"
          f"an admin registers it with: steward keys register NAME {pub}")
    return 0


def run_list(args) -> int:
    from steward.governance.access import load_registry

    ws, store = workspace_store(args)
    try:
        reg = load_registry(store)
        rows = [{"name": k.name, "key_id": k.key_id, "registered": k.registered, "by": k.by, "entry": k.seq,
                 "revoked": k.revoked} for k in reg.keys]
        text = "\n".join(f"{r['name']}: {r['key_id'][:16]}  registered {r['registered']} by {r['by']} "
                         f"(entry {r['entry']})" + (f", revoked {r['revoked']}" if r["revoked"] else "")
                         for r in rows) or "no keys registered"
        return emit_registry_listing(args, "keys list", ws, store,
                                     {"store": store.display_url, "keys": rows, "problems": reg.problems}, text)
    finally:
        store.close()


def _change(args, fn, target) -> int:
    from steward.governance.keys import personal_signer_if_any
    from steward.governance.workspace import default_actor

    ws, store = workspace_store(args)
    try:
        by = default_actor(args.actor)
        entry = fn(store, ws.signer(), by, args.who, target, personal_signer_if_any(args.key, by))
        sign_and_publish(ws, store)
    finally:
        store.close()
    verb = "registered" if entry.type == "key.registered" else "revoked"
    emit(args, {"ok": True, "entry": entry.to_dict()},
          f"{verb} key {entry.payload['key_id'][:16]} for {args.who} (audit entry {entry.seq})")
    return 0


def run_register(args) -> int:
    from steward.governance.access import register_key
    from steward.governance.keys import load_public_key_file

    return _change(args, register_key, load_public_key_file(args.public_key, "PUBLIC_KEY"))


def run_revoke(args) -> int:
    from steward.governance.access import revoke_key

    return _change(args, revoke_key, args.key_id)
