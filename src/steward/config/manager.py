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
from steward.io import tomllib


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
    for key, value in (("parallel.tp", p.tp), ("parallel.pp", p.pp)):
        if value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    if (p.tp > 1 or p.pp > 1) and m.hf_path:
        raise ConfigError("parallel.tp / parallel.pp: tensor and pipeline parallel need a model.flavor, not model.hf_path")
    if not m.hf_path and m.flavor in FLAVORS:
        args = FLAVORS[m.flavor]
        if args.n_heads % p.tp or args.kv_heads % p.tp:
            raise ConfigError(
                f"parallel.tp: {p.tp} must divide the {args.n_heads} heads and {args.kv_heads} kv heads of "
                f"model.flavor {m.flavor!r}"
            )
        if p.pp > args.n_layers:
            raise ConfigError(f"parallel.pp: {p.pp} stages exceed the {args.n_layers} layers of model.flavor {m.flavor!r}")
    if t.seq_len % p.tp:
        raise ConfigError(
            f"train.seq_len: {t.seq_len} must be divisible by parallel.tp {p.tp} (sequence parallel splits the sequence)"
        )
    if p.cluster:
        from steward.planning.topology import ClusterError, load_cluster

        try:
            load_cluster(p.cluster)
        except ClusterError as e:
            raise ConfigError(f"parallel.cluster: {e}") from None
    if c.every < 0 or c.keep < 0:
        raise ConfigError("checkpoint.every and checkpoint.keep must be >= 0")
    if c.resume and c.resume != "latest" and not Path(c.resume).exists():
        raise ConfigError(f"checkpoint.resume: {c.resume!r} does not exist; give 'latest' or a checkpoint folder")
    _validate_governance(cfg)
    _validate_fairness(cfg)
    _validate_comm(cfg)
    _validate_memory(cfg)


def _validate_memory(cfg: JobConfig) -> None:
    """The [memory] section (steward.memory reads it)."""
    import torch

    mem, t, p = cfg.memory, cfg.train, cfg.parallel
    policies = ("keep", "selective", "full", "offload")
    if mem.policy not in (*policies, "plan"):
        raise ConfigError(f"memory.policy: must be keep, selective, full, offload or plan, got {mem.policy!r}")
    if mem.budget_gb < 0:
        raise ConfigError(f"memory.budget_gb: must be >= 0 (0: memory.budget_fraction of the device), got {mem.budget_gb}")
    if not 0 < mem.budget_fraction <= 1:
        raise ConfigError(f"memory.budget_fraction: must be in (0, 1], got {mem.budget_fraction}")
    if mem.profile not in ("auto", "measured", "analytic"):
        raise ConfigError(f"memory.profile: must be auto, measured or analytic, got {mem.profile!r}")
    allowed = [x.strip() for x in mem.plan_policies.split(",") if x.strip()]
    bad = [x for x in allowed if x not in policies]
    if bad or not allowed:
        raise ConfigError(f"memory.plan_policies: a comma-separated list of {', '.join(policies)}, got {mem.plan_policies!r}")
    on_cpu = t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available())
    if mem.policy == "offload" and on_cpu:
        raise ConfigError("memory.policy: offload moves saved activations from a GPU to host memory, which means "
                          "nothing when training on the CPU; use selective or full, or train on a GPU")
    if mem.policy == "offload" and p.tp > 1:
        raise ConfigError("memory.policy: offload is not supported with parallel.tp > 1 (tensor-parallel activations); "
                          "use selective or full")
    if mem.policy == "plan" and cfg.model.hf_path:
        raise ConfigError("memory.policy: plan needs a model.flavor (its shapes are profiled); with model.hf_path "
                          "choose keep, selective, full or offload")
    if mem.policy == "plan" and p.pp > 1:
        raise ConfigError("memory.policy: plan does not model pipeline stages (parallel.pp > 1) yet; choose keep, "
                          "selective, full or offload")


def _validate_comm(cfg: JobConfig) -> None:
    """The [comm] settings on their own; what depends on the layout is checked in validate_world."""
    from steward.comm.compressors import COMPRESSORS

    c = cfg.comm
    if c.compressor not in COMPRESSORS:
        raise ConfigError(f"comm.compressor: unknown {c.compressor!r}; choose one of {', '.join(COMPRESSORS)}")
    if c.rank < 1:
        raise ConfigError(f"comm.rank: the PowerSGD rank must be >= 1, got {c.rank}")
    if not 0 < c.topk_fraction <= 1:
        raise ConfigError(f"comm.topk_fraction: must be in (0, 1] (the fraction of entries top-k sends), got {c.topk_fraction}")
    if c.warmup_steps < 0:
        raise ConfigError(f"comm.warmup_steps: must be >= 0, got {c.warmup_steps}")
    if c.ranks_per_node < 0:
        raise ConfigError(f"comm.ranks_per_node: must be >= 0 (0: LOCAL_WORLD_SIZE), got {c.ranks_per_node}")


def _validate_fairness(cfg: JobConfig) -> None:
    """train.task and the [fairness] section (steward.fairness reads these)."""
    t, f = cfg.train, cfg.fairness
    if t.task not in ("lm", "classify"):
        raise ConfigError(f"train.task: must be lm or classify, got {t.task!r}")
    if f.enabled and t.task != "classify":
        raise ConfigError("fairness.enabled: the fairness evaluation needs a classifier; set --train.task classify")
    if t.task == "classify" and cfg.comm.compressor != "none":
        raise ConfigError("comm.compressor: gradient compression applies to train.task lm; set --comm.compressor none "
                          "for classify")
    if f.adversary != "none" and t.task != "classify":
        raise ConfigError("fairness.adversary: adversarial debiasing trains a classifier; set --train.task classify")
    choices = {
        "fairness.pooling": (f.pooling, ("mean", "last")),
        "fairness.adversary": (f.adversary, ("none", "representation", "demographic_parity", "equalized_odds")),
        "fairness.adversary_input": (f.adversary_input, ("standardized_logit", "probability")),
        "fairness.alpha_schedule": (f.alpha_schedule, ("constant", "sqrt")),
        "fairness.on_gap": (f.on_gap, ("alert", "raise_alpha", "stop")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, got {value!r}")
    if f.on_gap == "raise_alpha" and f.adversary == "none" and f.max_gap > 0:
        raise ConfigError("fairness.on_gap: raise_alpha needs an adversary; set --fairness.adversary or use alert/stop")
    for key, value in (("fairness.data", f.data), ("fairness.eval_data", f.eval_data)):
        if value and value != "madlibs" and not Path(value).expanduser().exists():
            raise ConfigError(f"{key}: {value!r} does not exist; give 'madlibs' or a .csv, .parquet or dataset folder")
    if not 0 < f.eval_fraction < 1:
        raise ConfigError(f"fairness.eval_fraction: must be in (0, 1), got {f.eval_fraction}")
    if f.madlibs_size < 2 or f.madlibs_eval_size < 2:
        raise ConfigError("fairness.madlibs_size and fairness.madlibs_eval_size: must be >= 2")
    if not 0 <= f.madlibs_bias <= 1:
        raise ConfigError(f"fairness.madlibs_bias: must be in [0, 1], got {f.madlibs_bias}")
    if f.alpha < 0 or f.adversary_lr <= 0 or f.adversary_hidden < 0:
        raise ConfigError("fairness.alpha must be >= 0, fairness.adversary_lr > 0 and fairness.adversary_hidden >= 0")
    if f.eval_every < 0 or f.eval_examples < 0 or f.bootstrap < 0 or f.max_gap < 0:
        raise ConfigError("fairness.eval_every, fairness.eval_examples, fairness.bootstrap and fairness.max_gap "
                          "must be >= 0")


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


def validate_world(cfg: JobConfig, world_size: int, local_world_size: int | None = None) -> tuple[int, int, int, int]:
    """Resolve the parallel degrees for `world_size` processes (`local_world_size` per node, when
    known); returns (dp_replicate, dp_shard, dp, grad_accum). pp x dp_replicate x dp_shard x tp must
    be the world size; with pp > 1, grad_accum is the number of pipeline micro-batches."""
    p, t = cfg.parallel, cfg.train
    rep, tp, pp = p.dp_replicate, p.tp, p.pp
    fixed = rep * tp * pp
    if world_size % fixed:
        raise ConfigError(
            f"parallel.dp_replicate x parallel.tp x parallel.pp = {rep} x {tp} x {pp} = {fixed} does not divide "
            f"the world size {world_size}"
        )
    shard = world_size // fixed if p.dp_shard == -1 else p.dp_shard
    if fixed * shard != world_size:
        # name only the degrees in play
        keys, values = ["dp_replicate", "dp_shard"], [rep, shard]
        if tp > 1 or pp > 1:
            keys, values = ["pp", "dp_replicate", "dp_shard", "tp"], [pp, rep, shard, tp]
        raise ConfigError(
            f"{' x '.join(f'parallel.{k}' for k in keys)} = {' x '.join(map(str, values))} = {fixed * shard}, "
            f"but the world size is {world_size}; make the product equal the number of processes"
        )
    if local_world_size and tp > 1 and local_world_size % tp and not p.tp_across_nodes:
        raise ConfigError(
            f"parallel.tp: {tp} does not fit the {local_world_size} processes of a node (tensor parallel talks on every "
            "layer and must stay inside a node); lower it, or set parallel.tp_across_nodes true"
        )
    dp = rep * shard
    if t.batch_size % dp:
        raise ConfigError(f"train.batch_size: {t.batch_size} is not divisible by the data-parallel degree {dp}")
    local = t.batch_size // dp
    if pp > 1 and not t.micro_batch_size and local % pp == 0:
        micro = local // pp  # the fewest micro-batches 1F1B accepts
    else:
        micro = t.micro_batch_size or local
    if local % micro:
        raise ConfigError(
            f"train.micro_batch_size: {micro} does not divide the per-rank batch {local} "
            f"(train.batch_size {t.batch_size} / {dp} ranks)"
        )
    if local // micro < pp:
        raise ConfigError(
            f"train.micro_batch_size: {local // micro} micro-batches per rank are fewer than the parallel.pp {pp} "
            f"pipeline stages (1F1B needs at least one per stage); lower train.micro_batch_size or raise train.batch_size"
        )
    from steward.comm.hierarchical import check_comm_layout

    check_comm_layout(cfg, rep, shard, world_size, local_world_size)
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
