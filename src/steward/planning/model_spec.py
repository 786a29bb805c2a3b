"""The planner's description of a model: a flavor, a model TOML and single dimensions on top
(`steward plan --model 175b --model.n_layers 64`), resolved to the `ModelArgs` the cost model counts.

The trainer's decoder has one feed-forward, SwiGLU (three matrices of dim x ffn_dim). Published runs
also use GPT's GELU MLP (two matrices of dim x ffn_dim); the planner describes it as the SwiGLU of the
same parameters and matmul FLOPs, hidden 2 ffn_dim / 3 (exact where 3 divides 2 ffn_dim, otherwise
rounded: under one parameter per ffn_dim-wide row). The activation memory of that MLP is then the
SwiGLU's (4 e f kept per token instead of GELU's 2 e ffn_dim, with f = 2 ffn_dim / 3: a third more).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steward.errors import StewardError
from steward.io import tomllib

if TYPE_CHECKING:  # steward.models imports torch: the CLI imports this module at start-up
    from steward.models.gpt import ModelArgs

MLP_KINDS = ("swiglu", "gelu")
INT_KEYS = ("n_layers", "dim", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size", "max_seq_len")
"""The dimensions a model TOML or `--model.KEY` may set (n_kv_heads 0: n_heads)."""


class ModelSpecError(StewardError):
    """A model dimension, model file or flavor that cannot describe a decoder; the message names the flag."""


def swiglu_hidden(ffn_dim: int, mlp: str) -> int:
    """The SwiGLU hidden size with the parameters and FLOPs of an `mlp` feed-forward of width ffn_dim."""
    return ffn_dim if mlp == "swiglu" else round(2 * ffn_dim / 3)


def read_model_file(path: str) -> dict[str, Any]:
    """A model TOML: the keys of INT_KEYS and `mlp`, at the top level or under [model]."""
    p = Path(path)
    if not p.is_file():
        raise ModelSpecError(f"--model-file: {path!r} is not a file")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ModelSpecError(f"--model-file: {path} is not valid TOML ({e})") from None
    data = data.get("model", data)
    unknown = sorted(set(data) - set(INT_KEYS) - {"mlp", "name"})
    if unknown:
        raise ModelSpecError(f"--model-file: {path}: unknown key(s) {', '.join(unknown)}; "
                             f"use {', '.join(INT_KEYS)}, mlp, name")
    return data


def _check(dims: dict[str, Any], where: str) -> None:
    """Each dimension an integer in range, named by `where` + key (e.g. '--model.dim')."""
    for key in INT_KEYS:
        if key not in dims:
            continue
        v = dims[key]
        lowest = 0 if key in ("n_kv_heads", "ffn_dim") else 1
        if isinstance(v, bool) or not isinstance(v, int) or v < lowest:
            raise ModelSpecError(f"{where}{key}: {v!r} must be an integer >= {lowest}")
    if "mlp" in dims and dims["mlp"] not in MLP_KINDS:
        raise ModelSpecError(f"{where}mlp: {dims['mlp']!r}; choose one of {', '.join(MLP_KINDS)}")


def model_args(flavor: str, dims: dict[str, Any], where: str = "--model.") -> ModelArgs:
    """The flavor's ModelArgs with `dims` (INT_KEYS and `mlp`) replacing its dimensions. Without
    ffn_dim a GELU MLP is GPT's 4 dim wide, a SwiGLU the flavor's (Llama's rule where dim changes);
    n_heads without n_kv_heads is plain multi-head attention."""
    from steward.models.gpt import FLAVORS

    if flavor not in FLAVORS:
        raise ModelSpecError(f"--model: unknown flavor {flavor!r}; choose one of {', '.join(FLAVORS)}")
    _check(dims, where)
    base = FLAVORS[flavor]
    mlp = dims.get("mlp", "swiglu")
    changes = {k: dims[k] for k in ("n_layers", "dim", "n_heads", "n_kv_heads", "vocab_size", "max_seq_len")
               if k in dims}
    if "ffn_dim" in dims and dims["ffn_dim"]:
        changes["ffn_hidden"] = swiglu_hidden(dims["ffn_dim"], mlp)
    elif mlp == "gelu":
        changes["ffn_hidden"] = swiglu_hidden(4 * dims.get("dim", base.dim), mlp)
    elif "dim" in dims:
        changes["ffn_hidden"] = 0  # the flavor's ffn_hidden belonged to its own dim: Llama's rule instead
    if "n_heads" in dims and "n_kv_heads" not in dims:
        changes["n_kv_heads"] = 0  # the flavor's kv heads belonged to its own heads: plain multi-head instead
    d, heads = changes.get("dim", base.dim), changes.get("n_heads", base.n_heads)
    kv = changes.get("n_kv_heads", base.n_kv_heads) or heads
    if d % heads:
        raise ModelSpecError(f"{where}dim: {d} is not divisible by n_heads {heads}")
    if (d // heads) % 2:
        raise ModelSpecError(f"{where}n_heads: head dim {d} / {heads} = {d // heads} must be even (RoPE)")
    if heads % kv:
        raise ModelSpecError(f"{where}n_kv_heads: {kv} does not divide n_heads {heads}")
    return dataclasses.replace(base, **changes)


def resolve(flavor: str, model_file: str = "", overrides: dict[str, Any] | None = None) -> tuple[ModelArgs, str]:
    """The flavor, then the model file's keys, then `overrides` (`--model.KEY`, None where not given);
    and the name to print: the flavor's, the file's `name` (else its stem), '+' where flags changed it."""
    dims: dict[str, Any] = {}
    name = flavor
    if model_file:
        data = read_model_file(model_file)
        _check(data, f"--model-file {model_file}: ")
        name = str(data.pop("name", Path(model_file).stem))
        dims.update(data)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    dims.update(given)
    if given:
        name += "+" + ",".join(f"{k}={v}" for k, v in given.items())
    return model_args(flavor, dims), name
