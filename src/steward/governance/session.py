"""Governance of one training run: what the trainer's GovernanceCallback calls, on rank 0 only.

    gov = RunGovernance(cfg.governance, run_dir, config_dict, config_hash, env, job_name)
    gov.start()                 # run.started (config, code, environment), train.start gate
    gov.ingest(datasets)        # data.ingested per dataset (fingerprint + datasheet), data.ingest gate
    gov.config_changed(step, changes, previous_sha256)   # run.config_changed: a resume's allowed changes
    gov.checkpoint(step, path, manifest)   # checkpoint.saved (manifest digest), gate, signed head
    gov.evaluation(step, metrics)          # eval.completed
    gov.finish(summary)         # run.finished, provenance.json, signed head, OpenLineage, MLflow, report
    gov.fail(error)             # run.failed, signed head, OpenLineage FAIL, report

A gate that denies raises PolicyDenied (with governance.enforce = false it is a recorded warning).
Nothing here imports training code: the trainer hands over plain data.
"""

from __future__ import annotations

import math
import sys
import uuid
from pathlib import Path
from typing import Any

from steward.config.credentials import mask_config, scrub
from steward.governance._util import GovernanceError, jsonable, one_line, utc_now
from steward.governance.access import current_roles
from steward.governance.approvals import trainer_key
from steward.governance.datasheets import load_datasheets_file, resolve_datasheet
from steward.governance.keys import personal_signer_if_any
from steward.governance.lineage import (
    code_version,
    config_sha256,
    dataset_documents,
    dataset_name,
    dataset_tokens,
    dir_digest,
    manifest_digest,
)
from steward.governance.policy import Decision, Policy, load_policy
from steward.governance.store import AuditStore, Entry, TreeHead
from steward.governance.workspace import Workspace, default_actor


class PolicyDenied(GovernanceError):
    """A policy rule denied a stage; `decision` is the first denying decision."""

    def __init__(self, decision: Decision):
        super().__init__(decision.reason())
        self.decision = decision


def warn(msg: str) -> None:
    print(f"steward governance: {msg}", file=sys.stderr)


def record_decisions(store: AuditStore, signer, actor: str, run_id: str, policy: Policy,
                     decisions: list[Decision], enforce: bool) -> None:
    meta = {"name": policy.name, "version": policy.version, "path": policy.path, "sha256": policy.sha256}
    for d in decisions:
        store.append("policy.decision", {**d.to_dict(), "policy": meta, "enforce": enforce},
                     actor=actor, run_id=run_id, signer=signer)
        if d.effect == "warn":
            warn(f"warning: {d.reason()}")


class RunGovernance:
    def __init__(self, gcfg, run_dir: str | Path, config: dict[str, Any], config_hash: str,
                 env: dict[str, Any], job_name: str = "steward"):
        self.gcfg = gcfg
        self.run_dir = Path(run_dir)
        self.config = mask_config(jsonable(config))  # what gets recorded: no credential of a store URL
        self.config_hash = config_hash or config_sha256(self.config)  # = steward.config.config_hash
        self.env = jsonable(env)
        self.job_name = job_name
        self.workspace = Workspace(gcfg.workspace, gcfg.key_path, gcfg.store)
        self.actor = default_actor(gcfg.actor)
        # everything that can be wrong with the set-up fails here, before anything is recorded
        self.policy = load_policy(gcfg.policy)
        self.datasheets = load_datasheets_file(gcfg.datasheets) if getattr(gcfg, "datasheets", "") else {}
        self.signer = self.workspace.signer()
        self.run_id = uuid.uuid4().hex
        self.store: AuditStore | None = None
        self.ws_store: AuditStore | None = None
        self.started = ""
        self.code: dict[str, Any] = {}
        self.datasets: list[dict[str, Any]] = []
        self.base_model: dict[str, Any] | None = None
        self.tokenizer: dict[str, Any] | None = None
        self.denials = 0
        self.alerted = False
        self.closed = False

    # ---- helpers --------------------------------------------------------------------------------

    def record(self, type: str, payload: dict[str, Any]) -> Entry:
        """Append an event of this run (also for other callbacks, e.g. fairness.evaluated)."""
        if self.store is None:
            raise GovernanceError("the run's audit store is not open (RunGovernance.start() opens it)")
        return self.store.append(type, payload, actor=self.actor, run_id=self.run_id, signer=self.signer)

    def sign_head(self) -> TreeHead:
        if self.store is None:
            raise GovernanceError("the run's audit store is not open (RunGovernance.start() opens it)")
        head = self.store.sign_head(self.signer)
        extra = [self.gcfg.publish_heads] if getattr(self.gcfg, "publish_heads", "") else []
        self.workspace.publish_head(head, self.store.display_url, extra)
        return head

    def _run_context(self, status: str = "running") -> dict[str, Any]:
        return {
            "id": self.run_id, "name": self.job_name, "actor": self.actor, "run_dir": str(self.run_dir.resolve()),
            "status": status, "config": self.config, "config_hash": self.config_hash, "code": self.code,
            "env": self.env, "datasets": self.datasets, "policy_denials": self.denials,
        }

    def _gate(self, stage: str, extra: dict[str, Any], subject: str) -> list[Decision]:
        if self.policy is None:
            return []
        roles = current_roles(self.ws_store) if self.ws_store is not None else {}
        ctx = {"actor": self.actor, "roles": roles, "actor_roles": roles.get(self.actor, []),
               "run": self._run_context(), **extra}
        decisions = self.policy.evaluate(stage, ctx, subject, enforce=self.gcfg.enforce)
        record_decisions(self.store, self.signer, self.actor, self.run_id, self.policy, decisions, self.gcfg.enforce)
        denied = [d for d in decisions if d.effect == "deny"]
        self.denials += len(denied)
        if denied:
            raise PolicyDenied(denied[0])
        return decisions

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Entry:
        """Open the stores, record run.started, evaluate train.start (may raise PolicyDenied)."""
        from steward.governance.exports import openlineage_event
        from steward.governance.runs import write_run_pointer

        self.store = AuditStore(self.workspace.run_store_url(self.run_dir))
        self.ws_store = self.workspace.open_store()
        self.started = utc_now()
        self.code = code_version()
        model = self.config.get("model", {})
        if model.get("hf_path"):
            p = Path(model["hf_path"])
            if p.is_dir():
                self.base_model = dir_digest(p)
        tok = self.config.get("data", {}).get("tokenizer", "byte")
        if tok and tok != "byte" and Path(tok).is_file():
            from steward.io import sha256_file

            self.tokenizer = {"path": str(Path(tok).resolve()), "sha256": sha256_file(tok)}
        payload = {
            "job_name": self.job_name,
            "run_dir": str(self.run_dir.resolve()),
            "config": self.config,
            "config_sha256": self.config_hash,
            "code": self.code,
            "environment": self.env,
            "base_model": self.base_model,
            "tokenizer": self.tokenizer,
            "policy": self.policy.describe() if self.policy else None,
            "enforce": self.gcfg.enforce,
            "signing_key_id": self.signer.key_id,
            "workspace": str(self.workspace.root),
        }
        personal = personal_signer_if_any("", self.actor)
        if personal is not None:  # the trainer's own key: four-eyes then compares keys, not only names
            payload["trainer_key"] = trainer_key(personal, self.actor, self.run_id, self.config_hash)
        entry = self.record("run.started", payload)
        write_run_pointer(self.run_dir, {
            "run_id": self.run_id, "log_id": self.store.log_id, "store": self.store.display_url,
            "shared_store": bool(self.gcfg.store), "workspace": str(self.workspace.root),
            "signing_key_id": self.signer.key_id, "started": self.started,
        })
        self._lineage(openlineage_event("START", self))
        self._gate("train.start", {}, f"run {self.job_name}")
        return entry

    def ingest(self, datasets: list[dict[str, Any]]) -> None:
        """Record every dataset with its datasheet, then evaluate data.ingest for each."""
        rows = []
        for d in datasets:
            d = jsonable(d)
            sheet = resolve_datasheet(d, self.datasheets)
            row = {
                **d,
                "name": dataset_name(d),
                "documents": dataset_documents(d),
                "tokens": dataset_tokens(d),
                "license": ", ".join(sheet["licenses"]),
                "licenses": sheet["licenses"],
                "datasheet": {k: v for k, v in sheet.items() if k not in ("licenses", "origin")},
                "datasheet_origin": sheet["origin"],
            }
            self.record("data.ingested", {"dataset": row})
            rows.append(row)
        self.datasets = rows
        for row in rows:
            self._gate("data.ingest", {"dataset": row}, f"dataset {row['name']} ({row.get('split', '')})")

    def _data_read(self, datasets: list[dict[str, Any]]) -> None:
        by_key = {(r["name"], r.get("split")): r for r in self.datasets}
        for d in datasets:
            d = jsonable(d)
            row = by_key.get((dataset_name(d), d.get("split")))
            if row is None or d.get("fingerprint") == row.get("fingerprint"):
                continue
            row.update(fingerprint=d.get("fingerprint"), documents=dataset_documents(d),
                       tokens=dataset_tokens(d), records_read=d.get("records_read"))
            self.record("data.read", {"dataset": {k: row.get(k) for k in (
                "name", "split", "fingerprint", "documents", "tokens", "records_read")}})

    def checkpoint(self, step: int, path: str | Path, manifest: dict[str, Any]) -> None:
        p = Path(path)
        files = manifest.get("files", {}) if isinstance(manifest, dict) else {}
        try:
            rel = str(p.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            rel = str(p)
        info = {"step": int(step), "path": rel, "manifest_sha256": manifest_digest(p, manifest),
                "files": files, "num_files": len(files)}
        self.record("checkpoint.saved", info)
        try:
            self._gate("checkpoint.save", {"checkpoint": info}, f"checkpoint {p.name}")
        finally:
            self.sign_head()

    def config_changed(self, step: int | None, changes: dict[str, dict[str, Any]], previous_sha256: str) -> Entry:
        """run.config_changed: a resume changed the keys checkpoint.allow_changes named; `changes` maps
        each key to its old and new value, as they may be recorded (secrets masked)."""
        return self.record("run.config_changed", {"step": step, "changes": jsonable(changes),
                                                  "previous_config_sha256": previous_sha256,
                                                  "config_sha256": self.config_hash})

    def evaluation(self, step: int, metrics: dict[str, Any]) -> None:
        self.record("eval.completed", {"step": int(step), "metrics": metrics})

    def monitor(self, step: int, metrics: dict[str, Any]) -> None:
        """Record an alert (once) when a logged figure is not finite (ISO/IEC 27001 A.8.16)."""
        if self.alerted:
            return
        bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            self.alerted = True
            self.record("monitor.alert", {"step": int(step), "reason": "non-finite training figures",
                                          "figures": bad})

    def finish(self, summary: dict[str, Any], datasets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """run.finished, provenance.json (the run's files and every checkpoint, the final one named), a
        signed head, exports, report.
        `datasets`: the data module's final view; a dataset whose fingerprint changed since ingest (a
        stream: the hash of the records actually read, and their count) is recorded as data.read."""
        from steward.governance.exports import export_mlflow, openlineage_event

        if datasets:
            self._data_read(datasets)
        self.record("run.finished", {"summary": jsonable(summary)})
        out: dict[str, Any] = {}
        ckpt = summary.get("final_checkpoint")
        if ckpt:
            out["provenance"] = str(self.write_provenance(self._resolve(ckpt)))
        head = self.sign_head()
        out["head"] = head.to_dict()
        self._lineage(openlineage_event("COMPLETE", self, summary=summary))
        out["report"] = self._report()
        if getattr(self.gcfg, "mlflow_uri", ""):
            try:
                out["mlflow_run"] = export_mlflow(self.gcfg.mlflow_uri, self.run_dir, self.config, summary,
                                                  self.job_name, self.run_id, head)
            except Exception as e:  # a tracking server down must not fail a finished run
                warn(f"MLflow export failed: {scrub(one_line(e), self.gcfg.mlflow_uri)}")
        return out

    def fail(self, error: BaseException) -> None:
        from steward.governance.exports import openlineage_event

        if self.store is None:  # the store never opened: nothing to record into
            return
        self.record("run.failed", {"error_type": type(error).__name__, "message": one_line(error, 1000),
                                   "stopped_by_policy": self.denials > 0})
        self.sign_head()
        try:
            self._lineage(openlineage_event("FAIL", self, error=error))
        except Exception as e:
            warn(f"OpenLineage export failed: {one_line(e)}")
        self._report()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.store, self.ws_store):
            if s is not None:
                s.close()

    # ---- artefacts ------------------------------------------------------------------------------

    def _resolve(self, path: str) -> Path:
        p = Path(path)
        if p.is_dir():
            return p
        if (self.run_dir / p).is_dir():
            return self.run_dir / p
        raise GovernanceError(f"final checkpoint {path!r} does not exist")

    def write_provenance(self, checkpoint_dir: Path) -> Path:
        from steward.governance.provenance import (
            build_statement,
            sign_envelope,
            write_provenance,
            written_event,
        )

        if self.store is None:
            raise GovernanceError("the run's audit store is not open (RunGovernance.start() opens it)")
        size, root = self.store.state()
        statement = build_statement(
            self.run_dir, checkpoint_dir, run_id=self.run_id, config=self.config, config_hash=self.config_hash,
            code=self.code, env=self.env,
            datasets=self.datasets, base_model=self.base_model, tokenizer=self.tokenizer,
            started=self.started, finished=utc_now(),
            audit={"log_id": self.store.log_id, "tree_size": size, "root_hash": root, "store": self.store.display_url},
        )
        path = write_provenance(self.run_dir, sign_envelope(statement, self.signer))
        checkpoint = str(checkpoint_dir.resolve().relative_to(self.run_dir.resolve()))
        self.record("provenance.written", written_event(path, statement, checkpoint))
        return path

    def _lineage(self, event: dict[str, Any]) -> None:
        from steward.governance.exports import write_openlineage

        try:
            write_openlineage(self.run_dir, event)
        except OSError as e:
            warn(f"OpenLineage export failed: {one_line(e)}")

    def _report(self) -> str | None:
        from steward.governance.report import generate_report

        try:
            paths = generate_report(self.run_dir, workspace=self.workspace, store=self.store, run_id=self.run_id,
                                    ws_store=self.ws_store)
            return paths["html"]
        except Exception as e:  # the report must never hide the run's own outcome
            warn(f"report failed: {type(e).__name__}: {one_line(e)}")
            return None
