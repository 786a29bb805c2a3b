"""Build a JobConfig from defaults < TOML file < `--section.key VALUE` flags, validate it once,
and write it back as TOML."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import hashlib
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import tomli_w

from steward.config.job import JobConfig
from steward.errors import StewardError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigError(StewardError, ValueError):
    """Bad configuration. The message is one line that names the key and what is allowed."""


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(JobConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(JobConfig)}


def _field_types(section_cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def all_keys() -> list[str]:
    return [f"{s}.{k}" for s, cls in _sections().items() for k in _field_types(cls)]


def _type_name(tp: type) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(key: str, tp: type, value: Any, from_cli: bool) -> Any:
    """Convert `value` to `tp`, or raise ConfigError naming `key`."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_cli and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_cli and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_cli and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint} (`steward config` lists every key)")


def _apply(cfg: JobConfig, key: str, value: Any, from_cli: bool) -> None:
    section, _, name = key.partition(".")
    sections = _sections()
    if section not in sections or not name:
        raise _unknown(key)
    types = _field_types(sections[section])
    if name not in types:
        raise _unknown(key)
    setattr(getattr(cfg, section), name, _coerce(key, types[name], value, from_cli))


def parse_overrides(args: list[str]) -> list[tuple[str, str]]:
    """`--section.key VALUE` or `--section.key=VALUE` pairs, in order."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(f"unexpected argument {arg!r}; config flags look like --section.key VALUE")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            key = arg[2:]
            if i + 1 >= len(args):
                raise ConfigError(f"--{key}: missing value (write --{key} VALUE)")
            value = args[i + 1]
            i += 2
        pairs.append((key, value))
    return pairs


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """defaults < TOML file < CLI overrides, then validate."""
    cfg = JobConfig()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: no such file {str(p)!r}")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"--config {p}: not valid TOML ({e})") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{p}: top-level key '{section}' must be a [section] table")
            for name, value in table.items():
                _apply(cfg, f"{section}.{name}", value, from_cli=False)
    for key, value in parse_overrides(overrides or []):
        _apply(cfg, key, value, from_cli=True)
    validate(cfg)
    return cfg


def validate(cfg: JobConfig) -> None:
    """Every check on a config lives here; each failure names the key and what is allowed."""
    from steward.models.gpt import FLAVORS  # models imports nothing of ours but config

    t, d, m, p, c = cfg.train, cfg.data, cfg.model, cfg.parallel, cfg.checkpoint
    if not m.hf_path and m.flavor not in FLAVORS:
        raise ConfigError(f"model.flavor: unknown flavor {m.flavor!r}; choose one of {', '.join(FLAVORS)}")
    if m.hf_path and not Path(m.hf_path).is_dir():
        raise ConfigError(f"model.hf_path: {m.hf_path!r} is not a directory (give a local Hugging Face model folder)")
    if m.init_mode not in ("auto", "rank0", "sharded"):
        raise ConfigError(f"model.init_mode: must be auto, rank0 or sharded, got {m.init_mode!r}")
    if m.vocab_size < 0:
        raise ConfigError("model.vocab_size: must be >= 0 (0 takes it from the tokenizer)")
    for key, value in (("train.steps", t.steps), ("train.batch_size", t.batch_size), ("train.seq_len", t.seq_len)):
        if value < 1:
            raise ConfigError(f"{key}: must be a positive integer, got {value}")
    if t.micro_batch_size < 0:
        raise ConfigError(f"train.micro_batch_size: must be >= 0, got {t.micro_batch_size}")
    if t.lr <= 0:
        raise ConfigError(f"train.lr: must be > 0, got {t.lr}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(f"train.min_lr_ratio: must be in [0, 1], got {t.min_lr_ratio}")
    if t.warmup_steps < 0:
        raise ConfigError(f"train.warmup_steps: must be >= 0, got {t.warmup_steps}")
    if t.grad_clip < 0:
        raise ConfigError(f"train.grad_clip: must be >= 0 (0 disables clipping), got {t.grad_clip}")
    if t.val_every < 0 or t.val_batches < 1 or t.log_every < 1:
        raise ConfigError("train.val_every must be >= 0, train.val_batches and train.log_every >= 1")
    if t.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device: must be auto, cpu or cuda, got {t.device!r}")
    if t.mixed_precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"train.mixed_precision: must be auto, bf16 or fp32, got {t.mixed_precision!r}")
    if t.threads < 0:
        raise ConfigError(f"train.threads: must be >= 0, got {t.threads}")
    if not 0 < d.val_fraction < 1:
        raise ConfigError(f"data.val_fraction: must be in (0, 1), got {d.val_fraction}")
    if d.val_docs < 1 or d.max_docs < 0:
        raise ConfigError("data.val_docs must be >= 1 and data.max_docs >= 0")
    if d.text_split not in ("paragraph", "file"):
        raise ConfigError(f"data.text_split: must be paragraph or file, got {d.text_split!r}")
    if d.tokenizer != "byte" and not Path(d.tokenizer).is_file():
        raise ConfigError(f"data.tokenizer: {d.tokenizer!r} is neither 'byte' nor a tokenizer JSON file")
    if p.dp_replicate < 1:
        raise ConfigError(f"parallel.dp_replicate: must be >= 1, got {p.dp_replicate}")
    if p.dp_shard == 0 or p.dp_shard < -1:
        raise ConfigError(f"parallel.dp_shard: must be -1 (the rest of the world) or >= 1, got {p.dp_shard}")
    if p.backend not in ("auto", "nccl", "gloo"):
        raise ConfigError(f"parallel.backend: must be auto, nccl or gloo, got {p.backend!r}")
    if c.every < 0 or c.keep < 0:
        raise ConfigError("checkpoint.every and checkpoint.keep must be >= 0")
    if c.resume and c.resume != "latest" and not Path(c.resume).exists():
        raise ConfigError(f"checkpoint.resume: {c.resume!r} does not exist; give 'latest' or a checkpoint folder")
    _validate_governance(cfg)


def _validate_governance(cfg: JobConfig) -> None:
    """Governance settings that can be checked before anything runs: the policy file (TOML and every
    CEL rule), the datasheets and model card files, the store URL and the key file."""
    g = cfg.governance
    if not g.enabled:
        return
    from steward.governance._util import GovernanceError  # governance imports no training code

    if g.policy not in ("default", "none", ""):
        from steward.governance.policy import load_policy

        try:
            load_policy(g.policy)
        except GovernanceError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("governance.policy") else f"governance.policy: {msg}") from None
    if g.datasheets:
        from steward.governance.datasheets import load_datasheets_file

        try:
            load_datasheets_file(g.datasheets)
        except GovernanceError as e:
            raise ConfigError(str(e)) from None
    if g.model_card:
        from steward.governance.report import load_model_card

        try:
            load_model_card(g.model_card)
        except GovernanceError as e:
            raise ConfigError(str(e)) from None
    if g.store and g.store != "workspace":
        from steward.governance.store import parse_url

        try:
            parse_url(g.store)
        except GovernanceError as e:
            raise ConfigError(f"governance.store: {e}") from None
    if g.key_path and not Path(g.key_path).expanduser().is_file():
        raise ConfigError(f"governance.key_path: {g.key_path!r} does not exist (give an Ed25519 PEM private key, "
                          "or leave it empty for the workspace key)")
    if g.workspace and Path(g.workspace).expanduser().is_file():
        raise ConfigError(f"governance.workspace: {g.workspace!r} is a file; give a folder")


def validate_world(cfg: JobConfig, world_size: int) -> tuple[int, int, int, int]:
    """Resolve data-parallel degrees for `world_size`; returns (dp_replicate, dp_shard, dp, grad_accum)."""
    p, t = cfg.parallel, cfg.train
    rep = p.dp_replicate
    if world_size % rep:
        raise ConfigError(f"parallel.dp_replicate: {rep} does not divide the world size {world_size}")
    shard = world_size // rep if p.dp_shard == -1 else p.dp_shard
    if rep * shard != world_size:
        raise ConfigError(
            f"parallel.dp_replicate x parallel.dp_shard = {rep} x {shard} = {rep * shard}, "
            f"but the world size is {world_size}; make the product equal the number of processes"
        )
    dp = rep * shard
    if t.batch_size % dp:
        raise ConfigError(f"train.batch_size: {t.batch_size} is not divisible by the data-parallel degree {dp}")
    local = t.batch_size // dp
    micro = t.micro_batch_size or local
    if local % micro:
        raise ConfigError(
            f"train.micro_batch_size: {micro} does not divide the per-rank batch {local} "
            f"(train.batch_size {t.batch_size} / {dp} ranks)"
        )
    return rep, shard, dp, local // micro


def to_dict(cfg: JobConfig) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def to_toml(cfg: JobConfig) -> str:
    return tomli_w.dumps(to_dict(cfg))


def config_hash(cfg: JobConfig) -> str:
    """SHA-256 of the resolved config in canonical JSON form."""
    return hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()


@functools.cache
def field_docs() -> dict[str, str]:
    """The docstring under every field, read from the source of the section classes."""
    from steward.config import job as job_module

    docs: dict[str, str] = {}
    tree = ast.parse(inspect.getsource(job_module))
    sections = {cls.__name__: name for name, cls in _sections().items()}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in sections:
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and i + 1 < len(body):
                nxt = body[i + 1]
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    doc = " ".join(str(nxt.value.value).split())
                    docs[f"{sections[node.name]}.{stmt.target.id}"] = doc
    return docs


def describe() -> list[dict[str, Any]]:
    """Every key with its type, default and doc (for `steward config`)."""
    default = to_dict(JobConfig())
    docs = field_docs()
    rows = []
    for section, cls in _sections().items():
        for name, tp in _field_types(cls).items():
            key = f"{section}.{name}"
            rows.append({"key": key, "type": _type_name(tp), "default": default[section][name], "doc": docs.get(key, "")})
    return rows
