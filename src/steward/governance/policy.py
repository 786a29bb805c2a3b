"""Policies: rules written in the Common Expression Language (CEL, evaluated by cel-python), kept in
a TOML file, each bound to a lifecycle stage. A rule allows its stage when its expression is true.

    [policy]
    name = "my-team"
    [vars]                                # constants, available to every rule as `vars.NAME`
    allowed_licenses = ["MIT", "Apache-2.0"]
    [[rule]]
    name = "dataset-license-allowed"      # unique; letters, digits, '-', '_', '.'
    stage = "data.ingest"                 # one of STAGES
    expr = 'dataset.licenses.exists(l, l in vars.allowed_licenses)'
    message = "the dataset's license is not on the allow-list"
    severity = "deny"                     # or "warn": recorded, never stops anything

A policy file is checked completely when it is loaded (before any training): TOML syntax, keys,
stages, CEL syntax, names each expression uses, and a dry run on a sample context of its stage
that must yield true or false. Null values never reach CEL: a field that is null is absent.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import celpy

from steward.governance._util import GovernanceError, jsonable
from steward.io import tomllib

COMMON_NAMES = ("vars", "actor", "roles", "actor_roles", "run")
STAGES: dict[str, tuple[str, ...]] = {
    "train.start": (),
    "data.ingest": ("dataset",),
    "checkpoint.save": ("checkpoint",),
    "model.approve": ("approval", "approvals", "evaluation"),
    "model.release": ("release", "approvals", "evaluation"),
}
"""Lifecycle stages and the names (besides COMMON_NAMES) their rules can use."""

_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_RULE_KEYS = {"name", "stage", "expr", "message", "severity"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PolicyError(GovernanceError):
    """A policy file that cannot be used; the message names the file, the rule and the fix."""


@dataclass(frozen=True)
class Rule:
    name: str
    stage: str
    expr: str
    message: str
    severity: str
    program: Any = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True)
class Decision:
    rule: str
    stage: str
    subject: str
    allowed: bool
    effect: str
    """'allow', 'deny' (stops the stage), or 'warn' (denied but not enforced, or a warn rule)."""
    message: str
    error: str = ""

    def reason(self) -> str:
        why = f"{self.message} ({self.error})" if self.error else self.message
        return f"policy rule '{self.rule}' denied {self.stage} for {self.subject}: {why}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items()}


def _cel_value(obj: Any) -> Any:
    """Plain JSON data without nulls (CEL cannot compare null with other types)."""
    if isinstance(obj, dict):
        return {k: _cel_value(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_cel_value(v) for v in obj if v is not None]
    return obj


_CEL_INT = (-(1 << 63), (1 << 63) - 1)
"""CEL's integers are 64-bit: cel-python refuses a Python int outside this range with 'overflow'."""


def _int_out_of_range(obj: Any, path: str) -> str:
    """The path of the first integer in `obj` that CEL cannot hold ('' if none)."""
    if isinstance(obj, int) and not isinstance(obj, bool) and not _CEL_INT[0] <= obj <= _CEL_INT[1]:
        return path
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        found = _int_out_of_range(v, f"{path}.{k}" if isinstance(k, str) else f"{path}[{k}]")
        if found:
            return found
    return ""


def _activation(context: dict[str, Any], variables: dict[str, Any]) -> Any:
    """`context` and `vars` as CEL values. Raises ValueError naming the field that CEL cannot hold, for the
    rules to fail closed with (an activation that raised inside cel-python would name no rule)."""
    data = _cel_value(jsonable({**context, "vars": variables}))
    bad = _int_out_of_range(data, "").lstrip(".")
    if bad:
        raise ValueError(f"{bad} is outside CEL's 64-bit integers")
    return celpy.json_to_cel(data)


def _names_used(tree: Any) -> set[str]:
    """Top-level identifiers an expression reads (minus the variables its macros bind). `tree` is
    cel-python's parse tree (lark: subtrees have .data and .children; tokens are strings)."""
    idents: set[str] = set()
    bound: set[str] = set()

    def tokens(node: Any) -> list[str]:
        return [str(t) for n in node.iter_subtrees() if n.data == "ident" for t in n.children if isinstance(t, str)]

    for node in tree.iter_subtrees():
        if node.data == "ident":
            idents.update(str(t) for t in node.children if isinstance(t, str))
        elif node.data == "member_dot_arg" and len(node.children) >= 3:
            method, args = node.children[1], node.children[2]
            if isinstance(method, str) and str(method) in _MACROS and hasattr(args, "children") and args.children:
                first = args.children[0]
                if hasattr(first, "iter_subtrees"):
                    bound.update(tokens(first))
    return idents - bound


def _first_line(e: Exception) -> str:
    text = str(e.args[0]) if e.args else str(e)
    text = text.split(" (in activation")[0]
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


class Policy:
    def __init__(self, name: str, version: str, path: str, sha256: str, vars: dict[str, Any], rules: list[Rule]):
        self.name, self.version, self.path, self.sha256 = name, version, path, sha256
        self.vars = vars
        self.rules = rules

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "path": self.path, "sha256": self.sha256,
                "rules": [{"name": r.name, "stage": r.stage, "severity": r.severity} for r in self.rules]}

    def rules_for(self, stage: str) -> list[Rule]:
        return [r for r in self.rules if r.stage == stage]

    def evaluate(self, stage: str, context: dict[str, Any], subject: str, enforce: bool = True) -> list[Decision]:
        """Every rule of `stage` on `context`; a rule that errors denies (fail closed)."""
        if stage not in STAGES:
            raise PolicyError(f"unknown policy stage {stage!r}")
        try:
            activation, unusable = _activation(context, self.vars), None
        except ValueError as e:
            activation, unusable = None, e
        out = []
        for rule in self.rules_for(stage):
            error = ""
            try:
                if unusable is not None:
                    raise unusable
                value = rule.program.evaluate(activation)
                if isinstance(value, Exception):
                    raise value
                if not isinstance(value, celpy.celtypes.BoolType):
                    raise TypeError(f"the expression yielded {type(value).__name__}, not a bool")
                allowed = bool(value)
            except Exception as e:  # CELEvalError (an overflow too), TypeError: the rule could not decide
                allowed, error = False, f"could not be evaluated: {_first_line(e)}"
            if allowed:
                effect = "allow"
            elif rule.severity == "warn" or not enforce:
                effect = "warn"
            else:
                effect = "deny"
            out.append(Decision(rule.name, stage, subject, allowed, effect, "" if allowed else rule.message, error))
        return out


def _err(where: str, msg: str) -> PolicyError:
    return PolicyError(f"{where}: {msg}")


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()  # builds the CEL grammar's parser: do it once per process


@functools.lru_cache(maxsize=32)
def parse_policy(text: str, path: str) -> Policy:
    """Parse and check a policy (cached: the same text and path give the same Policy object)."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _err(path, f"not valid TOML ({e})") from None
    unknown = set(data) - {"policy", "vars", "rule"}
    if unknown:
        raise _err(path, f"unknown top-level key {sorted(unknown)[0]!r} (allowed: [policy], [vars], [[rule]])")
    meta = data.get("policy", {})
    if not isinstance(meta, dict):
        raise _err(path, "[policy] must be a table with name, version and description")
    variables = data.get("vars", {})
    if not isinstance(variables, dict):
        raise _err(path, "[vars] must be a table of constants")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise _err(path, "rules must be written as [[rule]] tables")
    if not raw_rules:
        raise _err(path, "defines no [[rule]]; use governance.policy = 'none' for no policy")
    env = _environment()
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, r in enumerate(raw_rules, 1):
        where = f"{path}: rule #{i}"
        name = r.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _err(where, "needs name = \"...\" (letters, digits, '-', '_', '.'; at most 64 characters)")
        where = f"{path}: rule '{name}'"
        if name in seen:
            raise _err(where, "is defined twice; rule names must be unique")
        seen.add(name)
        extra = set(r) - _RULE_KEYS
        if extra:
            raise _err(where, f"unknown key {sorted(extra)[0]!r} (allowed: {', '.join(sorted(_RULE_KEYS))})")
        stage = r.get("stage")
        if stage not in STAGES:
            raise _err(where, f"stage {stage!r} is not one of {', '.join(STAGES)}")
        for key in ("expr", "message"):
            if not isinstance(r.get(key), str) or not r[key].strip():
                raise _err(where, f"needs {key} = \"...\" (a non-empty string)")
        severity = r.get("severity", "deny")
        if severity not in ("deny", "warn"):
            raise _err(where, f"severity must be 'deny' or 'warn', got {severity!r}")
        expr = r["expr"]
        try:
            tree = env.compile(expr)
        except celpy.CELParseError as e:
            line, col = getattr(e, "line", None), getattr(e, "column", None)
            near = expr.splitlines()[line - 1][max(0, col - 1):][:20] if line and col else ""
            at = f" at line {line}, column {col}" if line else ""
            raise _err(where, f"CEL expression does not parse{at} (near {near!r}): {expr!r}") from None
        allowed_names = set(COMMON_NAMES) | set(STAGES[stage])
        unknown_names = _names_used(tree) - allowed_names
        if unknown_names:
            raise _err(where, f"uses unknown name {sorted(unknown_names)[0]!r}; at stage {stage} the names are "
                              f"{', '.join(sorted(allowed_names))}")
        rules.append(Rule(name, stage, expr, r["message"].strip(), severity, env.program(tree)))
    policy = Policy(str(meta.get("name", Path(path).stem)), str(meta.get("version", "")), path, sha,
                    jsonable(variables), rules)
    for rule in rules:  # dry run: a typo in a field name or a non-boolean result fails now, not mid-run
        try:
            value = rule.program.evaluate(_activation(sample_context(rule.stage), policy.vars))
            if isinstance(value, Exception):
                raise value
        except Exception as e:
            raise _err(f"{path}: rule '{rule.name}'", f"fails on a sample {rule.stage} context: {_first_line(e)} "
                       "(check field names; guard optional fields with has())") from None
        if not isinstance(value, celpy.celtypes.BoolType):
            raise _err(f"{path}: rule '{rule.name}'", f"must yield true or false, yields {type(value).__name__}")
    return policy


DEFAULT = "default"
NONE = "none"


def default_policy_text() -> str:
    return resources.files("steward.governance").joinpath("default_policy.toml").read_text(encoding="utf-8")


def load_policy(spec: str) -> Policy | None:
    """'default' (the shipped pack), 'none' (no policy: None), or the path of a policy file."""
    if spec == NONE:
        return None
    if spec in ("", DEFAULT):
        return parse_policy(default_policy_text(), "steward:default_policy.toml")
    p = Path(spec).expanduser()
    if not p.is_file():
        raise PolicyError(f"governance.policy: no such policy file {spec!r} (give a TOML file, 'default' or 'none')")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"governance.policy: cannot read {spec!r} ({e})") from None
    return parse_policy(text, str(p.resolve()))


# ---- sample contexts: the shape of what each stage sees ------------------------------------------


def _sample_run() -> dict[str, Any]:
    from steward.config.job import JobConfig

    return {
        "id": "00000000000000000000000000000000",
        "name": "steward",
        "actor": "trainer-user",
        "run_dir": "/tmp/run",
        "status": "finished",
        "config": dataclasses.asdict(JobConfig()),
        "config_hash": "0" * 64,
        "code": {"package": "steward", "version": "0.1.0", "git_commit": "0" * 40, "dirty": False},
        "env": {"python": "3.11.0", "torch": "2.6.0", "cuda": "12.4", "devices": ["cpu"], "hosts": ["host"],
                "world_size": 1},
        "datasets": [_sample_dataset()],
        "audit_verified": True,
        "provenance_verified": True,
        "final_checkpoint": "/tmp/run/checkpoints/step-1",
        "trainer_key_id": "0" * 64,
        "policy_denials": 0,
    }


def _sample_dataset() -> dict[str, Any]:
    sheet = {"source": "s", "license": "MIT", "intended_use": "u", "known_biases": "b"}
    return {
        "name": "sample", "source": "sample", "kind": "text", "split": "train", "fingerprint": "0" * 64,
        "documents": 1, "tokens": 1, "license": "MIT", "licenses": ["MIT"], "datasheet": sheet,
        "datasheet_origin": ["builtin"],
    }


def sample_context(stage: str) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "actor": "someone",
        "roles": {"someone": ["trainer"]},
        "actor_roles": ["trainer"],
        "run": _sample_run(),
    }
    evaluation = {"final_loss": 1.0, "final_val_loss": 1.0, "initial_loss": 2.0, "steps": 1}
    approvals = [{"actor": "approver-user", "time": "2025-01-01T00:00:00Z", "roles": ["approver"], "note": "",
                  "key_id": "0" * 64}]
    extra = {
        "train.start": {},
        "data.ingest": {"dataset": _sample_dataset()},
        "checkpoint.save": {"checkpoint": {"step": 1, "path": "checkpoints/step-1", "manifest_sha256": "0" * 64,
                                           "files": {"a": "0" * 64}, "num_files": 1}},
        "model.approve": {"approval": {"actor": "approver-user", "note": ""}, "approvals": approvals,
                          "evaluation": evaluation},
        "model.release": {"release": {"actor": "release-user"}, "approvals": approvals, "evaluation": evaluation},
    }[stage]
    return copy.deepcopy({**ctx, **extra})
