"""Checkpoints with torch.distributed.checkpoint (DCP).

Layout of RUN_DIR/checkpoints/step-N/: DCP shards of {"model", "optim"} (resharded on load, so a
checkpoint saved at one world size loads at another), trainer_state.json (step, scheduler, data
loader position, running figures), rng/rank-R.pt, other per-rank state as NAME/rank-R.pt (comm/:
the gradient compressor's error-feedback buffers and warm-start matrices), and manifest.json with
the SHA-256 of every file. A checkpoint is written to a hidden temporary folder and renamed into
place once complete, so a crash mid-save leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from steward.errors import StewardError
from steward.io import atomic_write_json, sha256_file
from steward.train.distributed import barrier, broadcast_object

MANIFEST = "manifest.json"
FORMAT = "steward-checkpoint/1"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(StewardError):
    """A checkpoint that cannot be used; the message names the file."""


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (with a manifest), oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / MANIFEST).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def resolve_resume(run_dir: Path, spec: str) -> Path | None:
    """'latest' -> newest complete checkpoint of the run (None when there is none); else the path."""
    if not spec:
        return None
    if spec == "latest":
        found = list_checkpoints(run_dir)
        return found[-1][1] if found else None
    return Path(spec)


@contextlib.contextmanager
def _single_process_is_intended():
    """DCP warns on every single-process save/load; in one process that is what we mean."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _sharded(optimizer: torch.optim.Optimizer) -> bool:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return isinstance(optimizer, ZeroRedundancyOptimizer)


def _param_names(model: nn.Module) -> dict[torch.Tensor, str]:
    """Each parameter's name as DCP's state dicts key it (a wrapper's 'module.' prefix dropped)."""
    return {p: name for name, p in _unwrapped(model).named_parameters()}


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside a data-parallel wrapper (DDP, or ZeRO-2's, which torch's state-dict helpers do
    not know), so that every layout's checkpoints are keyed alike."""
    from steward.parallel.zero import ShardedGradients

    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, ShardedGradients)) else model


def state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and the optimizer's state dicts keyed by parameter name, as DCP saves and loads them.
    A sharded optimizer (ZeRO-1) gives the moments of the parameters this rank owns and every
    parameter group in full, so the ranks together save exactly what an unsharded optimizer would,
    and a checkpoint loads with or without sharding, at any world size."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        get_state_dict,
    )

    model = _unwrapped(model)
    if not _sharded(optimizer):
        return get_state_dict(model, optimizer)
    optim_sd = get_optimizer_state_dict(model, optimizer.optim)  # this rank's share, its state initialised
    names = _param_names(model)
    optim_sd["param_groups"] = [  # the local AdamW's settings, the schedule's (global) learning rate
        {**{k: v for k, v in mine.items() if k != "params"}, **{k: v for k, v in group.items() if k != "params"},
         "params": [names[p] for p in group["params"]]}
        for group, mine in zip(optimizer.param_groups, optimizer.optim.param_groups, strict=True)
    ]
    return get_model_state_dict(model), optim_sd


def set_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict[str, Any],
                    optim_sd: dict[str, Any]) -> None:
    """Load what `state_dicts` describes (a sharded optimizer takes the moments of the parameters it owns)."""
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
        set_state_dict,
    )

    model = _unwrapped(model)
    if not _sharded(optimizer):
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
        return
    names = _param_names(model)
    local = optimizer.optim
    groups = [
        {**saved, "params": [names[p] for p in mine["params"]]}
        for saved, mine in zip(optim_sd["param_groups"], local.param_groups, strict=True)
    ]
    owned = {name for group in groups for name in group["params"]}
    for group, saved in zip(optimizer.param_groups, optim_sd["param_groups"], strict=True):
        # the sharded optimizer hands its groups' settings (the scheduled learning rate) to its shard at each step
        group.update({k: v for k, v in saved.items() if k in group and k != "params"})
    set_model_state_dict(model, model_sd)
    set_optimizer_state_dict(model, local, {"state": {k: v for k, v in optim_sd["state"].items() if k in owned},
                                            "param_groups": groups})


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    rank: int,
    world_size: int,
    rank_states: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Collective: every rank calls it. `rank_states` maps a name to this rank's state of some part
    (tensors, numbers, dicts of them), saved as NAME/rank-R.pt. Returns the final folder and its manifest."""
    root = checkpoint_root(run_dir)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # left over from a crash
        (tmp / "rng").mkdir(parents=True)
    barrier()
    import torch.distributed.checkpoint as dcp  # here, not at import: DCP's import costs ~1 s
    model_sd, optim_sd = state_dicts(model, optimizer)
    with _single_process_is_intended():
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp), no_dist=not dist.is_initialized())
    torch.save(_rng_state(), tmp / "rng" / f"rank-{rank}.pt")
    for name, state in (rank_states or {}).items():
        (tmp / name).mkdir(exist_ok=True)
        torch.save(state, tmp / name / f"rank-{rank}.pt")
    barrier()
    manifest = None
    if rank == 0:
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, sort_keys=True))
        files = {
            str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        manifest = {
            "format": FORMAT,
            "step": step,
            "world_size": world_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    barrier()
    return final, broadcast_object(manifest)


def _remove(path: Path) -> None:
    """Rename out of the step-N namespace first, so a crash mid-delete never leaves a listed checkpoint."""
    doomed = path.with_name(f".deleting-{path.name}")
    path.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Remove all but the `keep` newest checkpoints (rank 0 only)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(run_dir)[:-keep]:
        _remove(path)


def set_aside_after(run_dir: Path, step: int) -> list[Path]:
    """A run resumed from step N continues a different history than its checkpoints after N: rename
    them to abandoned-step-M (kept, but no longer found by 'latest' or pruned against). Rank 0 only."""
    moved = []
    for s, path in list_checkpoints(run_dir):
        if s > step:
            target = path.with_name(f"abandoned-{path.name}")
            if target.exists():
                shutil.rmtree(target)
            path.rename(target)
            moved.append(target)
    return moved


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check every file against the manifest; raise CheckpointError naming the first bad file."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint.resume: {path} is not a checkpoint folder")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"checkpoint {path}: {MANIFEST} is missing (an incomplete or foreign checkpoint)")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {mpath}: unreadable manifest ({e})") from None
    for rel, digest in files.items():
        f = path / rel
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path}: file {rel} listed in the manifest is missing")
        if sha256_file(f) != digest:
            raise CheckpointError(f"checkpoint {path}: file {rel} is corrupt or truncated (SHA-256 differs from the manifest)")
    return manifest


def run_config_and_checkpoint(run_dir: str | Path) -> tuple[Any, Path]:
    """(resolved config, newest complete checkpoint) of a finished run directory, for the commands
    that read a trained model back (explain, fairness eval). CheckpointError names what is missing."""
    from steward.config import ConfigError, load_config

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise CheckpointError(f"RUN_DIR: {str(run)!r} holds no config.toml; give the folder a `steward train` run wrote")
    try:
        cfg = load_config(run / "config.toml")
    except ConfigError as e:
        raise CheckpointError(f"RUN_DIR {run}: its config.toml no longer validates: {e}") from None
    found = list_checkpoints(run)
    if not found:
        raise CheckpointError(f"RUN_DIR {run}: no complete checkpoint (was checkpoint.enabled false?)")
    return cfg, found[-1][1]


def weights_cache(run_dir: Path, checkpoint: Path) -> Path:
    """Where `load_model_weights` keeps the consolidated weights of `checkpoint`."""
    return Path(run_dir) / "cache" / f"weights-{Path(checkpoint).name}.pt"


def load_model_weights(model: nn.Module, run_dir: Path, path: Path) -> None:
    """Checkpoint `path`'s model weights into `model` (whole, one process), verified against the manifest.

    Read through torch.distributed.checkpoint once, then from a consolidated copy,
    RUN_DIR/cache/weights-step-N.pt, tagged with the manifest's SHA-256: DCP's import alone costs
    about a second (DTensor and its ops come with it), which would dominate reading a small model
    back. A copy whose tag differs, or that cannot be read, is rebuilt; deleting it is safe."""
    import io

    from steward.io import atomic_write_bytes

    verify_checkpoint(path)
    tag = sha256_file(Path(path) / MANIFEST)
    cache = weights_cache(run_dir, path)
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("manifest_sha256") == tag:
                model.load_state_dict(saved["model"])
                return
        except Exception:  # a stale or damaged copy is rebuilt from the checkpoint below
            pass
    import torch.distributed.checkpoint as dcp

    state = {"model": model.state_dict()}
    with _single_process_is_intended():
        try:
            dcp.load(state, checkpoint_id=str(path), no_dist=True)
        except Exception as e:  # DCP's messages are long: name the folder and the first line
            raise CheckpointError(f"checkpoint {path}: cannot be loaded ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:200]})") from None
    model.load_state_dict(state["model"])
    buf = io.BytesIO()
    torch.save({"manifest_sha256": tag, "model": model.state_dict()}, buf)
    with contextlib.suppress(OSError):  # a read-only run directory: no copy, the next read uses DCP again
        atomic_write_bytes(cache, buf.getvalue())


def load_rank_state(path: Path, name: str, rank: int, world_size: int, replicated: bool = False) -> Any | None:
    """This rank's NAME/rank-R.pt of a checkpoint (verified by load_checkpoint), or None when there
    is none to continue from: saved without that part, or by another number of ranks. `replicated`:
    the part is the same on every rank (e.g. the fairness adversary), so rank 0's file serves any rank
    at any world size."""
    manifest = json.loads((Path(path) / MANIFEST).read_text())
    f = Path(path) / name / f"rank-{0 if replicated else rank}.pt"
    if (not replicated and manifest.get("world_size") != world_size) or not f.is_file():
        return None
    return torch.load(f, weights_only=True)


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, rank: int
) -> dict[str, Any]:
    """Collective: verify (rank 0), load model and optimizer (resharding as needed), restore this
    rank's RNG if the checkpoint has it. Returns the trainer state."""
    error = None
    if rank == 0:
        try:
            verify_checkpoint(path)
        except CheckpointError as e:
            error = str(e)
    error = broadcast_object(error)
    if error:
        raise CheckpointError(error)
    import torch.distributed.checkpoint as dcp  # here, not at import: DCP's import costs ~1 s
    model_sd, optim_sd = state_dicts(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    try:
        with _single_process_is_intended():
            dcp.load(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())
    except Exception as e:  # DCP's own errors are long; name the folder and the cause
        raise CheckpointError(f"checkpoint {path}: cannot be loaded into this model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    set_state_dicts(model, optimizer, state["model"], state["optim"])
    rng = Path(path) / "rng" / f"rank-{rank}.pt"
    if rng.is_file():
        _set_rng_state(torch.load(rng, weights_only=False))
    return json.loads((Path(path) / "trainer_state.json").read_text())
