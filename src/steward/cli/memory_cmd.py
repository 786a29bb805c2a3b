"""`steward memplan`: the rematerialization plan for a model and a memory budget, without training."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "memplan",
        help="per-block rematerialization plan (keep/selective/full/offload) for a model under a memory budget",
        description="Profile one block of the model (measured on this machine's device, or with fake tensors "
        "that allocate nothing), then choose a policy per block with the least added time whose predicted "
        "peak fits memory.budget_gb. Takes the same --section.key flags as `steward train`.",
    )
    p.add_argument("--config", help="TOML config file (as for steward train)")
    # names checked in run(); steward.planning.hardware reads the GPU table without importing torch
    from steward.planning.hardware import plannable_gpus

    p.add_argument("--gpu", type=str.lower, metavar="NAME",
                   help=f"{', '.join(sorted(plannable_gpus()))}: plan for this GPU (its memory, FLOP/s and bandwidths from "
                   "steward/gpus.toml; analytic profile) instead of this machine's device")
    p.add_argument("--world-size", type=int, default=0, metavar="N",
                   help="processes of the whole job, all nodes together (not train's --nproc-per-node, one node's "
                   "processes; default: the product of the parallel degrees, dp_shard -1 counting 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, accepts_overrides=True)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def plan_report(cfg, gpu: str | None = None, world_size: int = 0) -> dict:
    """Everything `steward memplan` prints, as one dict."""
    import dataclasses

    import torch

    from steward.data import build_tokenizer
    from steward.errors import UserError
    from steward.models import build_model_args
    from steward.parallel import ParallelDims
    from steward.planning.hardware import plannable_gpus
    from steward.planning.remat import plan_context, predict, profile_for, solve

    if cfg.model.hf_path:
        raise UserError("model.hf_path: memplan profiles a model.flavor's shapes; give --model.flavor")
    p = cfg.parallel
    world = world_size or p.pp * p.dp_replicate * p.tp * max(1, p.dp_shard)
    if world < 1:
        raise UserError(f"--world-size: must be >= 1, got {world}")
    dims = ParallelDims.from_config(cfg, world)
    if dims.pp > 1:
        raise UserError("parallel.pp: memplan does not model pipeline stages yet; plan with parallel.pp 1")
    vocab = cfg.model.vocab_size or build_tokenizer(cfg.data.tokenizer).vocab_size
    args = dataclasses.replace(
        build_model_args(cfg.model.flavor, vocab_size=vocab, max_seq_len=cfg.train.seq_len), init_std=cfg.model.init_std
    )
    gpus = plannable_gpus()
    if gpu and gpu not in gpus:
        raise UserError(f"--gpu: unknown GPU {gpu!r}; choose one of {', '.join(sorted(gpus))}")
    spec = gpus[gpu] if gpu else None
    if spec is not None:
        device = torch.device("cuda")
    elif cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda requested but torch sees no CUDA device; plan for a GPU you do not "
                        "have with --gpu NAME")
    elif cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available()):
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    ctx = plan_context(cfg, dims, device, args, spec)
    profile = profile_for(ctx, cfg.memory.profile)
    n = len(profile.blocks)
    compared = {}
    for policy in profile.policies:
        fixed = predict(profile, [policy] * n, ctx.static)
        compared[policy] = {
            "predicted_peak_bytes": fixed.peak_bytes,
            "predicted_activation_bytes": fixed.activation_peak_bytes,
            "added_time_s": fixed.added_time_s,
            "fits": fixed.peak_bytes <= ctx.budget_bytes,
        }
    plan = solve(profile, ctx.budget_bytes, ctx.static, ctx.allowed)
    keep_time = profile.block_time_s * n
    return {
        "model": cfg.model.flavor,
        "vocab_size": vocab,
        "num_blocks": n,
        "device": profile.device,
        "precision": ctx.precision,
        "micro_batch": ctx.micro_batch,
        "seq_len": ctx.seq_len,
        "strategy": ctx.strategy,
        "dp_shard": ctx.dp_shard,
        "tp": ctx.tp,
        "grad_accum": dims.grad_accum,
        "profile": profile.method,
        "time_model": profile.time_model,
        "budget_bytes": ctx.budget_bytes,
        "allowed": list(ctx.allowed),
        "static": ctx.static,
        "plan": plan.to_dict(),
        "blocks_keep_time_s": keep_time,
        "added_time_vs_keep": plan.added_time_s / keep_time if keep_time else None,
        "compared": compared,
        "block_profile": profile.to_dict(),
    }


def run(args) -> int:
    from steward.config import load_config
    from steward.train.checks import check_job

    cfg = load_config(args.config, args.overrides)
    check_job(cfg)
    r = plan_report(cfg, args.gpu, args.world_size)
    if args.json:
        print(json.dumps(r))
        return 0
    plan, s = r["plan"], r["static"]
    print(f"model       {r['model']} ({r['num_blocks']} blocks, vocab {r['vocab_size']}), micro-batch {r['micro_batch']} x "
          f"{r['seq_len']} tokens, {r['precision']}, {r['strategy']} (dp_shard {r['dp_shard']}, tp {r['tp']})")
    print(f"profile     {r['profile']} on {r['device']}; time: {r['time_model']}")
    print(f"budget      {_gb(r['budget_bytes'])} GB per device")
    print(f"static      {_gb(s['total'])} GB (params {_gb(s['params'])}, grads {_gb(s['grads'])}, optimizer "
          f"{_gb(s['optimizer'])}, data-parallel buffers {_gb(s['wrapper'])})")
    print(f"plan        {plan['blocks']}")
    ratio = r["added_time_vs_keep"]
    print(f"predicted   peak {_gb(plan['predicted_peak_bytes'])} GB (activations {_gb(plan['predicted_activation_bytes'])} GB); "
          f"added time {plan['added_time_s'] * 1e3:.3g} ms per micro-batch"
          + (f" (+{100 * ratio:.1f}% of keep's forward+backward of the blocks)" if ratio is not None else ""))
    print()
    print(f"{'policy':<10} {'peak GB':>9} {'activations GB':>15} {'added ms':>9}  fits")
    rows = [*r["compared"].items(), ("plan", {"predicted_peak_bytes": plan["predicted_peak_bytes"],
                                             "predicted_activation_bytes": plan["predicted_activation_bytes"],
                                             "added_time_s": plan["added_time_s"], "fits": True})]
    for name, c in rows:
        print(f"{name:<10} {_gb(c['predicted_peak_bytes']):>9} {_gb(c['predicted_activation_bytes']):>15} "
              f"{c['added_time_s'] * 1e3:>9.3g}  {'yes' if c['fits'] else 'no'}")
    return 0
