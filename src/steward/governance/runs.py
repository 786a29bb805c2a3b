"""Finding a run's governance records from its run directory, and reading its facts from the log.

RUN_DIR/governance/run.json points at the run's id, store and log id; RUN_DIR/config.toml says which
workspace and store the run used (and where else it published tree heads). Both hold the store URL with its credentials masked (`***`): a
command that reads them connects without those parts, so the PostgreSQL driver takes the password
from the environment (PGPASSWORD, ~/.pgpass, a service file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.governance._util import GovernanceError
from steward.governance.store import AuditStore, Entry, TreeHead
from steward.governance.workspace import Workspace
from steward.io import tomllib

RUN_FILE = "run.json"
TRAINING_STAGES = ("train.start", "data.ingest", "checkpoint.save")


@dataclass
class RunRef:
    run_dir: Path
    run_id: str
    store_url: str
    workspace: Workspace
    config: dict[str, Any] = field(default_factory=dict)
    log_id: str = ""
    """The log the run recorded into, as run.json names it: verification checks the store holds it."""

    def open_store(self) -> AuditStore:
        return AuditStore(self.store_url, create=False)

    def heads_files(self, against: list[str] | tuple[str, ...] = ()) -> list[str]:
        """The heads files besides WORKSPACE/heads.jsonl: the run's governance.publish_heads (when that
        file is there), then the files `against`."""
        extra = str(governance_section(self.config).get("publish_heads") or "")
        return [*([extra] if extra and Path(extra).expanduser().is_file() else []), *against]

    def published_heads(self, against: list[str] | tuple[str, ...] = ()) -> list[TreeHead]:
        """Tree heads published for the run, of every log: WORKSPACE/heads.jsonl and heads_files(against)."""
        return self.workspace.published_heads(self.heads_files(against))


def governance_section(config: dict[str, Any]) -> dict[str, Any]:
    """The [governance] table of a run's config (empty when there is none)."""
    g = config.get("governance")
    return g if isinstance(g, dict) else {}


def read_config(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "config.toml"
    if not p.is_file():
        return {}
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise GovernanceError(f"{p}: not valid TOML ({e})") from None


def load_run_ref(run_dir: str | Path, workspace: str = "", store: str = "") -> RunRef:
    """The run in RUN_DIR; `workspace` and `store` override what its config.toml says."""
    rd = Path(run_dir).expanduser()
    if not rd.is_dir():
        raise GovernanceError(f"RUN_DIR: {str(rd)!r} is not a directory")
    pointer = rd / "governance" / RUN_FILE
    if not pointer.is_file():
        raise GovernanceError(f"{rd} has no governance record ({pointer} is missing); was it trained with "
                              "governance.enabled = false?")
    try:
        info = json.loads(pointer.read_text())
        run_id, log_id = str(info["run_id"]), str(info["log_id"])
    except (ValueError, KeyError, TypeError) as e:
        raise GovernanceError(f"{pointer}: unreadable ({e})") from None
    config = read_config(rd)
    g = governance_section(config)
    ws = Workspace(workspace or g.get("workspace", ""), g.get("key_path", ""), store or g.get("store", ""))
    return RunRef(rd, run_id, ws.run_store_url(rd), ws, config, log_id)


def write_run_pointer(run_dir: Path, data: dict[str, Any]) -> None:
    from steward.io import atomic_write_text

    atomic_write_text(run_dir / "governance" / RUN_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o644)


# event type -> the run_facts key that holds the last such record, or the list of all of them
_LAST_OF = {"run.started": "started", "run.finished": "finished", "run.failed": "failed",
            "provenance.written": "provenance"}
_ALL_OF = {"data.ingested": "datasets", "data.read": "data_reads", "checkpoint.saved": "checkpoints",
           "eval.completed": "evaluations", "policy.decision": "decisions", "model.approved": "approvals",
           "model.released": "releases", "monitor.alert": "alerts"}


def run_facts(store: AuditStore, run_id: str) -> dict[str, Any]:
    """What the log says about one run: its start, datasets, checkpoints, evaluations, decisions,
    end, approvals and releases."""
    entries = store.entries(run_id=run_id)
    facts: dict[str, Any] = {
        "run_id": run_id, **dict.fromkeys(_LAST_OF.values()), **{k: [] for k in _ALL_OF.values()},
        "event_counts": {}, "entries": [e.seq for e in entries], "first_seq": None, "last_seq": None,
    }
    for e in entries:
        facts["event_counts"][e.type] = facts["event_counts"].get(e.type, 0) + 1
        rec = {"seq": e.seq, "time": e.time, "actor": e.actor, **e.payload}
        key = _LAST_OF.get(e.type)
        if key is not None:
            facts[key] = rec
        elif e.type in _ALL_OF:
            facts[_ALL_OF[e.type]].append(rec)
    if entries:
        facts["first_seq"], facts["last_seq"] = entries[0].seq, entries[-1].seq
    facts["status"] = "finished" if facts["finished"] else ("failed" if facts["failed"] else
                                                            ("running" if facts["started"] else "unknown"))
    facts["actor"] = (facts["started"] or {}).get("actor", "")
    # denials of the training stages (a denied approve or release does not taint the run itself)
    facts["policy_denials"] = sum(1 for d in facts["decisions"] if d.get("effect") == "deny"
                                  and d.get("stage") in TRAINING_STAGES)
    return facts


def recorded_for_provenance(store: AuditStore, facts: dict[str, Any]) -> dict[str, Any]:
    """Dataset fingerprints, tree roots, checkpoint manifest digests and the SHA-256 of the
    provenance.json written last, from the log, to cross-check provenance.json."""
    from steward.governance.lineage import dataset_name

    datasets = {}
    for d in facts["datasets"]:
        ds = d.get("dataset", {})
        datasets[f"dataset:{dataset_name(ds)}:{ds.get('split', '')}"] = ds.get("fingerprint")
    for d in facts["data_reads"]:  # a stream's final fingerprint (the records actually read)
        ds = d.get("dataset", {})
        datasets[f"dataset:{ds.get('name')}:{ds.get('split', '')}"] = ds.get("fingerprint")
    roots = {}
    prov = facts.get("provenance") or {}
    size = prov.get("audit_tree_size")
    if isinstance(size, int) and size > 0:
        e: Entry | None = store.entry(size - 1)
        if e is not None:
            roots[size] = e.root
    manifests = {c.get("path"): c.get("manifest_sha256") for c in facts["checkpoints"]}  # the last save of each
    return {"datasets": datasets, "roots": roots, "manifests": manifests, "provenance_sha256": prov.get("sha256")}
