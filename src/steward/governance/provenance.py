"""provenance.json: an in-toto Statement v1 carrying a SLSA provenance v1 predicate, in a DSSE
envelope signed with the workspace key.

- subject: every file of the final checkpoint (and its manifest.json), named relative to RUN_DIR,
  with its SHA-256;
- buildDefinition.externalParameters: the resolved config (passwords in URLs masked) and the hash
  of the config as the trainer resolved it (= the hash of RUN_DIR/config.toml);
- buildDefinition.resolvedDependencies: the code (package digest, git commit, hash of
  uncommitted changes), every dataset (its fingerprint), the base model and tokenizer when files;
- runDetails: builder, run id, start and finish times, and the audit log's tree head as a byproduct.

Verification (`steward audit provenance RUN_DIR`) checks the signature with a trusted public key,
re-hashes every subject file on disk, compares the config with RUN_DIR/config.toml and, when the
store is at hand, the datasets and audit root with what the log recorded.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from steward.config.credentials import mask_config
from steward.governance._util import GovernanceError, canonical_json, jsonable
from steward.governance.keys import Signer, verify_signature
from steward.governance.lineage import config_sha256, dataset_documents, dataset_name, dataset_tokens
from steward.io import atomic_write_text, sha256_file, tomllib

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://steward.dev/buildtypes/train/v1"
BUILDER_ID = "urn:steward:trainer"
FILE_NAME = "provenance.json"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _digest(value: str) -> dict[str, str]:
    return {"sha256": value} if _HEX64.match(value or "") else {"steward-fingerprint": str(value)}


def checkpoint_subjects(run_dir: Path, checkpoint_dir: Path) -> list[dict[str, Any]]:
    """The final checkpoint's files as in-toto subjects, from its manifest (the manifest itself included)."""
    mpath = checkpoint_dir / "manifest.json"
    if not mpath.is_file():
        raise GovernanceError(f"checkpoint {checkpoint_dir}: no manifest.json, so there is nothing to attest")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise GovernanceError(f"checkpoint {mpath}: unreadable manifest ({e})") from None
    base = checkpoint_dir.resolve().relative_to(run_dir.resolve())
    subjects = [{"name": str(base / "manifest.json"), "digest": {"sha256": sha256_file(mpath)}}]
    for rel, digest in sorted(files.items()):
        subjects.append({"name": str(base / rel), "digest": {"sha256": str(digest)}})
    return subjects


def build_statement(
    run_dir: Path,
    checkpoint_dir: Path,
    *,
    run_id: str,
    config: dict[str, Any],
    config_hash: str,
    code: dict[str, Any],
    env: dict[str, Any],
    datasets: list[dict[str, Any]],
    base_model: dict[str, Any] | None,
    tokenizer: dict[str, Any] | None,
    started: str,
    finished: str,
    audit: dict[str, Any],
) -> dict[str, Any]:
    deps: list[dict[str, Any]] = []
    code_digest = {"sha256": code.get("package_sha256", "")}
    if code.get("git_commit"):
        code_digest["gitCommit"] = code["git_commit"]
    code_dep: dict[str, Any] = {
        "name": "code:steward",
        "digest": code_digest,
        "annotations": {"version": code.get("version"), "dirty": code.get("dirty", False),
                        "uncommitted_sha256": code.get("uncommitted_sha256")},
    }
    if code.get("git_remote") and code.get("git_commit"):
        code_dep["uri"] = f"git+{code['git_remote']}@{code['git_commit']}"
    deps.append(code_dep)
    for d in datasets:
        deps.append({
            "name": f"dataset:{dataset_name(d)}:{d.get('split', '')}",
            "digest": _digest(str(d.get("fingerprint", ""))),
            "annotations": {"documents": dataset_documents(d), "tokens": dataset_tokens(d),
                            "license": d.get("license"), "source": d.get("source"), "kind": d.get("kind")},
        })
    if base_model:
        deps.append({"name": "base-model", "uri": f"file://{base_model['path']}",
                     "digest": {"sha256": base_model["sha256"]}, "annotations": {"num_files": base_model.get("num_files")}})
    if tokenizer:
        deps.append({"name": "tokenizer", "uri": f"file://{tokenizer['path']}", "digest": {"sha256": tokenizer["sha256"]}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": checkpoint_subjects(run_dir, checkpoint_dir),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"config": config, "config_sha256": config_hash},
                "internalParameters": {"environment": env},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"steward": str(code.get("version"))}},
                "metadata": {"invocationId": run_id, "startedOn": started, "finishedOn": finished},
                "byproducts": [{
                    "name": "audit-log",
                    "digest": {"sha256": audit["root_hash"]},
                    "annotations": {"log_id": audit["log_id"], "tree_size": audit["tree_size"],
                                    "store": audit.get("store")},
                }],
            },
        },
    }


def sign_envelope(statement: dict[str, Any], signer: Signer) -> dict[str, Any]:
    body = canonical_json(jsonable(statement))
    sig = signer.sign(pae(PAYLOAD_TYPE, body))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(sig).decode()}],
    }


def write_provenance(run_dir: Path, envelope: dict[str, Any]) -> Path:
    path = Path(run_dir) / FILE_NAME
    atomic_write_text(path, json.dumps(envelope, indent=2) + "\n", mode=0o644)
    return path


class _Failed(Exception):
    """The first check of provenance.json that failed (its message is the result's error)."""


def verify_provenance(
    run_dir: str | Path,
    trusted_keys: dict[str, Any],
    *,
    key_trust: str = "trusted",
    recorded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check RUN_DIR/provenance.json. `recorded` (from the audit log: datasets by name and split ->
    fingerprint, roots by tree size) adds cross-checks. Returns a dict with ok and error (one line)."""
    run_dir = Path(run_dir)
    path = run_dir / FILE_NAME
    out: dict[str, Any] = {"ok": False, "path": str(path), "error": "", "subjects_checked": 0,
                           "key_trust": key_trust, "warnings": []}
    try:
        if not path.is_file():
            raise _Failed(f"{path} does not exist (it is written at the end of a run that saved a checkpoint)")
        ptype, body, sigs = _read_envelope(path)
        out["key_id"] = _signed_by(path, trusted_keys, ptype, body, sigs)
        try:
            st = json.loads(body)
        except ValueError:
            raise _Failed(f"{path}: the signed payload is not JSON") from None
        if st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE:
            raise _Failed(f"{path}: not an in-toto v1 statement with a SLSA v1 provenance predicate")
        _check_subjects(run_dir, path, st, out)
        bd = st.get("predicate", {}).get("buildDefinition", {})
        _check_config(run_dir, bd.get("externalParameters", {}), out)
        if recorded:
            _check_recorded(recorded, bd, st)
            out["log_checked"] = True
    except _Failed as e:
        out["error"] = str(e)
        return out
    out["statement"] = {"subjects": len(st.get("subject", [])),
                        "invocation": st.get("predicate", {}).get("runDetails", {}).get("metadata", {})}
    out["ok"] = True
    return out


def _read_envelope(path: Path) -> tuple[Any, bytes, Any]:
    """The DSSE envelope's payload type, payload and signatures."""
    try:
        env = json.loads(path.read_text())
        body = base64.b64decode(env["payload"], validate=True)
        sigs = env["signatures"]
        ptype = env["payloadType"]
    except (ValueError, KeyError, TypeError) as e:
        raise _Failed(f"{path}: not a DSSE envelope ({type(e).__name__}: {e})") from None
    if ptype != PAYLOAD_TYPE:
        raise _Failed(f"{path}: payloadType is {ptype!r}, expected {PAYLOAD_TYPE!r}")
    return ptype, body, sigs


def _signed_by(path: Path, trusted_keys: dict[str, Any], ptype: str, body: bytes, sigs: Any) -> str:
    """The key id of the first signature that verifies with a trusted key."""
    for s in sigs if isinstance(sigs, list) else []:
        key = trusted_keys.get(str(s.get("keyid", "")))
        try:
            raw = base64.b64decode(s.get("sig", ""), validate=True)
        except ValueError:
            continue
        if key is not None and verify_signature(key, pae(ptype, body), raw):
            return s["keyid"]
    ids = ", ".join(str(s.get("keyid", ""))[:16] for s in sigs if isinstance(s, dict)) or "none"
    raise _Failed(f"{path}: no signature verifies with a trusted key (signed by {ids}); the file was edited or "
                  "signed by another key")


def _check_subjects(run_dir: Path, path: Path, st: dict[str, Any], out: dict[str, Any]) -> None:
    """Every attested file is inside the run directory and has its attested SHA-256 (counted in `out`)."""
    for subj in st.get("subject", []):
        name, want = subj.get("name", ""), subj.get("digest", {}).get("sha256", "")
        f = (run_dir / name).resolve()
        if run_dir.resolve() not in f.parents:
            raise _Failed(f"{path}: subject {name!r} points outside the run directory")
        if not f.is_file():
            raise _Failed(f"subject {name}: file is missing")
        if sha256_file(f) != want:
            raise _Failed(f"subject {name}: SHA-256 differs from the attested digest (the file changed)")
        out["subjects_checked"] += 1
    if not out["subjects_checked"]:
        raise _Failed(f"{path}: the statement attests no files")


def _check_config(run_dir: Path, params: dict[str, Any], out: dict[str, Any]) -> None:
    """config.toml on disk is the attested config (a warning in `out` when it is missing)."""
    cfg_file = run_dir / "config.toml"
    if not cfg_file.is_file():
        out["warnings"].append("config.toml is missing; the attested config was not compared")
        return
    try:
        on_disk = tomllib.loads(cfg_file.read_text())
    except tomllib.TOMLDecodeError as e:
        raise _Failed(f"{cfg_file}: not valid TOML ({e})") from None
    if config_sha256(on_disk) != params.get("config_sha256") or mask_config(on_disk) != params.get("config"):
        raise _Failed(f"{cfg_file} differs from the config attested in provenance.json")
    out["config_checked"] = True


def _check_recorded(recorded: dict[str, Any], bd: dict[str, Any], st: dict[str, Any]) -> None:
    """The attested dataset digests and audit-log root agree with what the audit log recorded."""
    fps = recorded.get("datasets", {})
    for dep in bd.get("resolvedDependencies", []):
        name = dep.get("name", "")
        if name.startswith("dataset:") and name in fps:
            got = next(iter(dep.get("digest", {}).values()), None)
            if got != fps[name]:
                raise _Failed(f"dependency {name}: digest differs from the fingerprint in the audit log")
    for bp in st.get("predicate", {}).get("runDetails", {}).get("byproducts", []):
        if bp.get("name") == "audit-log":
            size = bp.get("annotations", {}).get("tree_size")
            roots = recorded.get("roots", {})
            if size in roots and roots[size] != bp.get("digest", {}).get("sha256"):
                raise _Failed(f"byproduct audit-log: root at size {size} differs from the audit store's")
