"""provenance.json: an in-toto Statement v1 carrying a SLSA provenance v1 predicate, in a DSSE
envelope signed with the workspace key.

- subject: every file of RUN_DIR that the report, the release gate and later commands rely on, named
  relative to RUN_DIR with its SHA-256: the RUN_FILES that exist (config.toml, metrics.jsonl,
  summary.json, the fairness and explanation outputs) and every checkpoint that can be loaded
  (checkpoints/step-N with a manifest.json: the manifest and each file it lists);
- buildDefinition.externalParameters: the resolved config (passwords in URLs masked) and the hash
  of the config as the trainer resolved it (= the hash of RUN_DIR/config.toml);
- buildDefinition.resolvedDependencies: the code (package digest, git commit, hash of
  uncommitted changes), every dataset (its fingerprint), the base model and tokenizer when files;
- runDetails: builder, run id, start and finish times, and the audit log's tree head as a byproduct.

Not attested: provenance.json itself; report.html and report.json (written after it, from the
attested files and the log); governance/ (the audit store, run.json, openlineage.jsonl: `steward
audit verify` checks the log, whose id and root the statement names as a byproduct); cache/
(consolidated weights, rebuilt from a checkpoint and tagged with its manifest's digest);
fairness/eval/ (`steward fairness eval`: a re-computable evaluation the report does not read); and
hidden entries of checkpoints/ (an interrupted save or prune, which no command loads).

A later command that writes one of RUN_FILES re-attests it through the same signed statement
(attest_later_files: `steward explain --global` for explain/): it verifies provenance.json first,
replaces those subjects, re-signs with the workspace key and records provenance.written again.

Verification (`steward audit provenance RUN_DIR`) checks the signature with a trusted public key,
re-hashes every subject file on disk, finds files nobody attested (one added to an attested
checkpoint, a checkpoint added after the run, one of RUN_FILES written afterwards), compares the
config with RUN_DIR/config.toml and, when the store is at hand, the datasets, checkpoint manifests,
audit root and provenance.json itself with what the log recorded. Every problem is one line.
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
MANIFEST = "manifest.json"
# the files of RUN_DIR the report, release and later commands read, attested when they exist
RUN_FILES = ("config.toml", "metrics.jsonl", "summary.json", "fairness/report.json", "fairness/predictions.csv",
             "explain/rules.json", "explain/rules.txt", "explain/faithfulness.json")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_STEP_DIR = re.compile(r"^step-\d+$")  # a checkpoint folder, as steward.train.checkpoint names them


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _digest(value: str) -> dict[str, str]:
    return {"sha256": value} if _HEX64.match(value or "") else {"steward-fingerprint": str(value)}


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The checkpoints a command can load: the RUN_DIR/checkpoints/step-N folders with a manifest.json."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / MANIFEST).is_file())


def file_subject(run_dir: Path, name: str, **annotations: str) -> dict[str, Any]:
    """RUN_DIR/name as an in-toto subject, with its SHA-256 as it is on disk now."""
    subject: dict[str, Any] = {"name": name, "digest": {"sha256": sha256_file(Path(run_dir) / name)}}
    if annotations:
        subject["annotations"] = annotations
    return subject


def run_subjects(run_dir: Path, final_checkpoint: Path) -> list[dict[str, Any]]:
    """Every file the report relies on, as in-toto subjects: the RUN_FILES that exist, and every
    checkpoint (the final one also under another folder name) from its manifest."""
    run_dir = Path(run_dir)
    subjects = [file_subject(run_dir, name) for name in RUN_FILES if (run_dir / name).is_file()]
    folders = checkpoint_dirs(run_dir)
    if final_checkpoint.resolve() not in {d.resolve() for d in folders}:
        folders.append(final_checkpoint)
    for folder in folders:
        subjects += checkpoint_subjects(run_dir, folder)
    return subjects


def checkpoint_subjects(run_dir: Path, checkpoint_dir: Path) -> list[dict[str, Any]]:
    """A checkpoint's files as in-toto subjects, from its manifest (the manifest itself included)."""
    mpath = checkpoint_dir / MANIFEST
    if not mpath.is_file():
        raise GovernanceError(f"checkpoint {checkpoint_dir}: no manifest.json, so there is nothing to attest")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise GovernanceError(f"checkpoint {mpath}: unreadable manifest ({e})") from None
    base = checkpoint_dir.resolve().relative_to(run_dir.resolve())
    subjects = [{"name": (base / MANIFEST).as_posix(), "digest": {"sha256": sha256_file(mpath)}}]
    for rel, digest in sorted(files.items()):
        subjects.append({"name": (base / rel).as_posix(), "digest": {"sha256": str(digest)}})
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
        "subject": run_subjects(run_dir, checkpoint_dir),
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


def _audit_byproduct(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement's audit-log byproduct (the log's id, size and root when it was signed); {} without one."""
    for bp in statement.get("predicate", {}).get("runDetails", {}).get("byproducts", []):
        if bp.get("name") == "audit-log":
            return bp
    return {}


def written_event(path: Path, statement: dict[str, Any], checkpoint: str | None) -> dict[str, Any]:
    """The payload of provenance.written: the file's SHA-256, what it attests, the audit root it names."""
    log = _audit_byproduct(statement)
    return {"path": path.name, "sha256": sha256_file(path), "checkpoint": checkpoint,
            "subjects": len(statement["subject"]), "audit_tree_size": log.get("annotations", {}).get("tree_size"),
            "audit_root": log.get("digest", {}).get("sha256")}


def attest_later_files(run_dir: str | Path, names: list[str], *, store: Any, run_id: str, actor: str,
                       signer: Signer, trusted_keys: dict[str, Any], producer: str) -> Path | None:
    """Re-sign RUN_DIR/provenance.json so that it attests `names` (RUN_FILES that a later command,
    `producer`, has just written) at their SHA-256 now, once everything else it attests verifies;
    record provenance.written. None when the run has no provenance.json (no checkpoint, not finished)."""
    from steward.governance.runs import recorded_for_provenance, run_facts

    run_dir = Path(run_dir)
    if not (run_dir / FILE_NAME).is_file():
        return None
    outside = [n for n in names if n not in RUN_FILES]
    if outside:
        raise GovernanceError(f"{outside[0]} is not one of the run files provenance.json attests ({', '.join(RUN_FILES)})")
    facts = run_facts(store, run_id)
    res, st = _verify(run_dir, trusted_keys, "trusted", recorded_for_provenance(store, facts), set(names))
    if st is None or not res["ok"]:
        raise GovernanceError(f"{res['path']} does not verify, so it is not re-signed to attest {', '.join(names)}: "
                              f"{res['error']}")
    st["subject"] = [s for s in st["subject"] if s.get("name") not in names] + [
        file_subject(run_dir, n, producer=producer) for n in names]
    size, root = store.state()
    log = _audit_byproduct(st)
    log["digest"] = {"sha256": root}
    log.setdefault("annotations", {})["tree_size"] = size
    path = write_provenance(run_dir, sign_envelope(st, signer))
    store.append("provenance.written", {**written_event(path, st, (facts["provenance"] or {}).get("checkpoint")),
                                        "producer": producer}, actor=actor, run_id=run_id, signer=signer)
    return path


class _Failed(Exception):
    """A check of provenance.json that failed before its statement could be read (the message is the error)."""


def verify_provenance(
    run_dir: str | Path,
    trusted_keys: dict[str, Any],
    *,
    key_trust: str = "trusted",
    recorded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check RUN_DIR/provenance.json. `recorded` (from the audit log: datasets by name and split ->
    fingerprint, roots by tree size, checkpoint manifest digests, the SHA-256 of the provenance.json
    written last) adds cross-checks. Returns a dict with ok, problems (one line each) and error (the
    first problem, and how many more)."""
    return _verify(Path(run_dir), trusted_keys, key_trust, recorded, set())[0]


def _verify(run_dir: Path, trusted_keys: dict[str, Any], key_trust: str, recorded: dict[str, Any] | None,
            replacing: set[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """verify_provenance, and the signed statement (None when it could not be read); the files named in
    `replacing` (being re-attested) are not checked."""
    path = run_dir / FILE_NAME
    out: dict[str, Any] = {"ok": False, "path": str(path), "error": "", "problems": [], "subjects_checked": 0,
                           "key_trust": key_trust}
    try:
        st = _signed_statement(path, trusted_keys, out)
    except _Failed as e:
        out["problems"], out["error"] = [str(e)], str(e)
        return out, None
    bad = _check_subjects(run_dir, path, st, out, replacing)
    names = {str(s.get("name", "")) for s in st.get("subject", [])}
    problems = [line for _, line in bad] + _unattested(run_dir, names | replacing)
    if "config.toml" not in {name for name, _ in bad}:  # a changed or missing attested config.toml is one problem
        problems += _check_config(run_dir, st.get("predicate", {}).get("buildDefinition", {}), out)
    if recorded:
        problems += _check_recorded(recorded, path, st)
        out["log_checked"] = True
    out["statement"] = {"subjects": len(st.get("subject", [])),
                        "invocation": st.get("predicate", {}).get("runDetails", {}).get("metadata", {})}
    out["problems"] = problems
    if problems:
        out["error"] = problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
    out["ok"] = not problems
    return out, st


def _signed_statement(path: Path, trusted_keys: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement of the envelope at `path`, once a trusted key's signature verifies (its key
    id goes into `out`)."""
    if not path.is_file():
        raise _Failed(f"{path} does not exist (it is written at the end of a run that saved a checkpoint)")
    ptype, body, sigs = _read_envelope(path)
    out["key_id"] = _signed_by(path, trusted_keys, ptype, body, sigs)
    try:
        st = json.loads(body)
    except ValueError:
        raise _Failed(f"{path}: the signed payload is not JSON") from None
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE:
        raise _Failed(f"{path}: not an in-toto v1 statement with a SLSA v1 provenance predicate")
    return st


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


def _check_subjects(run_dir: Path, path: Path, st: dict[str, Any], out: dict[str, Any],
                    skip: set[str]) -> list[tuple[str, str]]:
    """(name, problem) of every attested file that is outside the run directory, missing or changed;
    the others are counted in `out`."""
    bad = []
    root = run_dir.resolve()
    for subj in st.get("subject", []):
        name, want = str(subj.get("name", "")), subj.get("digest", {}).get("sha256", "")
        if name in skip:
            continue
        f = (run_dir / name).resolve()
        if root not in f.parents:
            bad.append((name, f"{path}: subject {name!r} points outside the run directory"))
        elif not f.is_file():
            bad.append((name, f"subject {name}: file is missing"))
        elif sha256_file(f) != want:
            bad.append((name, f"subject {name}: SHA-256 differs from the attested digest (the file changed)"))
        else:
            out["subjects_checked"] += 1
    if not st.get("subject"):
        bad.append(("", f"{path}: the statement attests no files"))
    return bad


def _unattested(run_dir: Path, names: set[str]) -> list[str]:
    """Files the report or a loader reads that the statement does not attest: RUN_FILES written after
    it, files added to an attested checkpoint, checkpoints added after the run."""
    problems = [f"{n}: not attested by provenance.json (written after it)" for n in RUN_FILES
                if n not in names and (run_dir / n).is_file()]
    folders = {n.rsplit("/", 1)[0] for n in names if n.endswith("/" + MANIFEST)}
    for folder in sorted(folders):
        d = run_dir / folder
        found = [f.relative_to(run_dir).as_posix() for f in sorted(d.rglob("*")) if f.is_file()] if d.is_dir() else []
        problems += [f"{rel}: in checkpoint {folder} but not in its attested manifest (added after the checkpoint "
                     "was saved)" for rel in found if rel not in names]
    for d in checkpoint_dirs(run_dir):
        rel = d.relative_to(run_dir).as_posix()
        if rel not in folders:
            problems.append(f"{rel}: a checkpoint that provenance.json does not attest (added after the run finished)")
    return problems


def _check_config(run_dir: Path, bd: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """config.toml on disk is the attested config (`config_checked` in `out` when it was compared)."""
    params = bd.get("externalParameters", {})
    cfg_file = run_dir / "config.toml"
    if not cfg_file.is_file():
        return ["config.toml is missing, so the attested config cannot be compared with it"]
    try:
        on_disk = tomllib.loads(cfg_file.read_text())
    except tomllib.TOMLDecodeError as e:
        return [f"{cfg_file}: not valid TOML ({e})"]
    if config_sha256(on_disk) != params.get("config_sha256") or mask_config(on_disk) != params.get("config"):
        return [f"{cfg_file} differs from the config attested in provenance.json"]
    out["config_checked"] = True
    return []


def _check_recorded(recorded: dict[str, Any], path: Path, st: dict[str, Any]) -> list[str]:
    """The attested dataset digests, checkpoint manifests and audit-log root, and provenance.json
    itself, agree with what the audit log recorded."""
    problems = []
    fps = recorded.get("datasets", {})
    for dep in st.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", []):
        name = dep.get("name", "")
        if name.startswith("dataset:") and name in fps:
            got = next(iter(dep.get("digest", {}).values()), None)
            if got != fps[name]:
                problems.append(f"dependency {name}: digest differs from the fingerprint in the audit log")
    log = _audit_byproduct(st)
    size, roots = log.get("annotations", {}).get("tree_size"), recorded.get("roots", {})
    if size in roots and roots[size] != log.get("digest", {}).get("sha256"):
        problems.append(f"byproduct audit-log: root at size {size} differs from the audit store's")
    attested = {s.get("name"): s.get("digest", {}).get("sha256") for s in st.get("subject", [])}
    for folder, digest in sorted(recorded.get("manifests", {}).items()):
        got = attested.get(f"{folder}/{MANIFEST}")
        if got is not None and got != digest:
            problems.append(f"checkpoint {folder}: the attested manifest.json differs from the one its "
                            "checkpoint.saved entry recorded")
    want = recorded.get("provenance_sha256")
    if want and sha256_file(path) != want:
        problems.append(f"{path}: not the provenance.json whose SHA-256 the audit log recorded last "
                        "(provenance.written)")
    return problems
