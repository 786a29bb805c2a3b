"""Exports to lineage and tracking systems.

OpenLineage: a RunEvent (START, then COMPLETE or FAIL) per run, appended to
RUN_DIR/governance/openlineage.jsonl in the OpenLineage 2-0-2 JSON form, ready for any consumer
that reads the file transport (or to POST to a lineage server).
MLflow: when mlflow is installed and governance.mlflow_uri is set, params (the flattened config),
metrics (every metrics.jsonl line with its step, and summary figures), tags and artifacts.
"""

from __future__ import annotations

import json
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any

from steward.governance._util import jsonable, one_line, utc_now
from steward.io import append_line, flatten_dict, read_jsonl

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_SCHEMA = "https://openlineage.io/spec/facets/1-0-0/{}.json#/$defs/{}"
FILE_NAME = "openlineage.jsonl"


def _producer() -> str:
    import steward

    return f"https://pypi.org/project/steward/{steward.__version__}"


def _facet(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"_producer": _producer(), "_schemaURL": FACET_SCHEMA.format(name, name[0].upper() + name[1:]), **body}


def _input(d: dict[str, Any]) -> dict[str, Any]:
    if d.get("hf_id"):
        ns, name = "huggingface", f"{d['hf_id']}" + (f"/{d['hf_config']}" if d.get("hf_config") else "")
    elif d.get("path"):
        ns, name = "file", str(d["path"])
    else:
        ns, name = "steward", str(d.get("name") or d.get("source"))
    return {
        "namespace": ns,
        "name": f"{name}#{d.get('split', '')}" if d.get("split") else name,
        "facets": {"version": _facet("datasetVersionDatasetFacet", {"datasetVersion": str(d.get("fingerprint", ""))})},
    }


def openlineage_event(event_type: str, gov, summary: dict[str, Any] | None = None,
                      error: BaseException | None = None) -> dict[str, Any]:
    """One RunEvent for the run governed by `gov` (a RunGovernance)."""
    import steward

    run_facets: dict[str, Any] = {
        "processing_engine": _facet("processingEngineRunFacet",
                                    {"version": str(gov.env.get("torch", "")), "name": "steward",
                                     "openlineageAdapterVersion": steward.__version__}),
        "steward": {"_producer": _producer(), "_schemaURL": "https://steward.dev/openlineage/StewardRunFacet.json",
                    "config_sha256": gov.config_hash, "code": gov.code, "audit_log_id": gov.store.log_id if gov.store
                    else None, "run_dir": str(gov.run_dir.resolve()), "actor": gov.actor},
    }
    if error is not None:
        run_facets["errorMessage"] = _facet("errorMessageRunFacet", {
            "message": one_line(error, 2000), "programmingLanguage": "python",
            "stackTrace": "".join(traceback.format_exception(type(error), error, error.__traceback__))[-8000:],
        })
    outputs = []
    if summary and summary.get("final_checkpoint"):
        p = Path(summary["final_checkpoint"])
        p = p if p.is_absolute() else (Path.cwd() / p)
        outputs.append({"namespace": "file", "name": str(p.resolve()), "facets": {}})
    event = {
        "eventType": event_type,
        "eventTime": utc_now(),
        "run": {"runId": str(uuid.UUID(hex=gov.run_id)), "facets": run_facets},
        "job": {"namespace": "steward", "name": gov.job_name, "facets": {
            "jobType": _facet("jobTypeJobFacet", {"processingType": "BATCH", "integration": "STEWARD",
                                                  "jobType": "TRAINING"})}},
        "inputs": [_input(d) for d in gov.datasets],
        "outputs": outputs,
        "producer": _producer(),
        "schemaURL": SCHEMA_URL,
    }
    return jsonable(event)


def write_openlineage(run_dir: Path, event: dict[str, Any]) -> Path:
    path = Path(run_dir) / "governance" / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    append_line(path, json.dumps(event, sort_keys=True))
    return path


def export_mlflow(uri: str, run_dir: Path, config: dict[str, Any], summary: dict[str, Any], job_name: str,
                  run_id: str, head) -> str | None:
    """Log the run to MLflow; None when mlflow is not installed (the caller records nothing then)."""
    try:
        import mlflow
    except ImportError:
        print("steward governance: governance.mlflow_uri is set but mlflow is not installed; skipped", file=sys.stderr)
        return None
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name=job_name) as run:
        params = flatten_dict(config, sep=".", leaf=lambda v: str(v)[:500])  # MLflow: param values <= 500 chars
        items = sorted(params.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[i:i + 100]))
        for _, rec in read_jsonl(Path(run_dir) / "metrics.jsonl", skip_bad=True, missing_ok=True):
            step = int(rec.get("step", 0))
            values = {k: float(v) for k, v in rec.items()
                      if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if values:
                mlflow.log_metrics(values, step=step)
        final = {f"summary.{k}": float(v) for k, v in summary.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if final:
            mlflow.log_metrics(final)
        mlflow.set_tags({"steward.run_id": run_id, "steward.audit_log_id": head.log_id,
                         "steward.audit_root": head.root_hash, "steward.audit_tree_size": str(head.tree_size)})
        for name in ("config.toml", "summary.json", "provenance.json", "report.html", "report.json"):
            f = Path(run_dir) / name
            if f.is_file():
                mlflow.log_artifact(str(f))
        return run.info.run_id
