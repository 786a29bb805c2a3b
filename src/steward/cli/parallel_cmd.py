"""`steward topology`, `steward plan` and `steward simulate`: the cluster, the planner's layout and a
cluster-scale what-if. Thin: the work is in steward.planning."""

from __future__ import annotations

import json
from pathlib import Path

from steward.cli._flags import add_aliased
from steward.planning.model_spec import INT_KEYS, MLP_KINDS


def register(sub) -> None:
    t = sub.add_parser("topology", help="describe a cluster preset or file, or the machine this runs on")
    t.add_argument("--cluster", help="a preset name or cluster TOML file (omit: discover this machine)")
    t.add_argument("--nodes", type=int, help="number of nodes (replaces the preset's)")
    t.add_argument("--list", action="store_true", help="list the presets")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_topology)

    p = sub.add_parser("plan", help="choose tp/pp/dp/micro-batch/recompute for a model on a cluster")
    _request_args(p)
    p.add_argument("--top", type=int, default=5, help="how many layouts to show (the best and the next ones)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure matmul, memory and collective speed here and store them for the planner")
    add_aliased(p, "--nproc-per-node", "--nproc", type=int, default=2, metavar="N",
                help="local processes for the collective measurement (--calibrate; default 2)")
    p.add_argument("--layout", default="", metavar="tp=N,pp=N,dp_replicate=N,dp_shard=N,micro_batch=N,recompute=R",
                   help="predict exactly this layout instead of searching (recompute none, selective or full)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_plan)

    s = sub.add_parser("simulate", help="baseline vs planned layout on a described cluster, and the cost model "
                                        "checked against published runs")
    _request_args(s)
    s.add_argument("--chart", default="", help="write the PNG chart here (default simulate-MODEL-NODESxDEVICES.png)")
    s.add_argument("--no-published", action="store_true", help="skip the check against published runs")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_simulate)


def _precision(text: str) -> str:
    return text or "auto"  # --dtype "" (the old default) is auto


def _request_args(p) -> None:
    """The request's flags. Where one means a config key it is spelled as that key (--train.seq_len);
    the older spellings (--seq-len, --batch, --memory-limit-gb, --dtype) still work, unlisted."""
    p.add_argument("--model", "--model.flavor", dest="model", default="tiny", metavar="NAME",
                   help="model flavor (debug, tiny, gpt2-small, 1b, 7b, 13b, 70b, 175b)")
    p.add_argument("--model-file", default="", metavar="FILE.toml",
                   help="model dimensions (the --model.KEY keys, and mlp; top level or [model]) over the flavor")
    for key in INT_KEYS:
        p.add_argument(f"--model.{key}", dest=f"model_{key}", type=int, default=None, metavar="N",
                       help=f"model {key} (replaces the flavor's and the model file's)")
    p.add_argument("--model.mlp", dest="model_mlp", choices=MLP_KINDS, default=None,
                   help="feed-forward kind: swiglu (3 matrices) or gelu (GPT's 2 matrices; ffn_dim default 4 dim)")
    p.add_argument("--cluster", "--parallel.cluster", dest="cluster", default="", metavar="NAME|FILE",
                   help="preset name or cluster TOML file (omit: this machine, discovered)")
    p.add_argument("--nodes", type=int, help="number of nodes (replaces the preset's)")
    add_aliased(p, "--train.batch_size", "--batch", dest="batch", type=int, default=0, metavar="N",
                help="global batch in sequences (default: 4 per device)")
    add_aliased(p, "--train.seq_len", "--seq-len", dest="seq_len", type=int, default=0, metavar="N",
                help="tokens per sequence (default: the model's max_seq_len)")
    add_aliased(p, "--memory.budget_gb", "--memory-limit-gb", dest="memory_limit_gb", type=float, default=0.0,
                metavar="GB", help="memory per device in GB (1e9 bytes; default: 90%% of the device's)")
    add_aliased(p, "--train.mixed_precision", "--dtype", dest="dtype", type=_precision, default="auto",
                choices=["auto", "bf16", "fp32"], help="training precision (auto: bf16 on GPUs, fp32 on CPUs)")
    p.add_argument("--tp-across-nodes", action="store_true",
                   help="allow tensor-parallel groups to span nodes (as parallel.tp_across_nodes true)")


def _cluster(args):
    from steward.errors import UserError
    from steward.planning.topology import ClusterError, discover_cluster, load_cluster

    try:
        if args.cluster:
            return load_cluster(args.cluster, args.nodes)
        cluster = discover_cluster()
        return cluster.with_nodes(args.nodes) if args.nodes else cluster
    except ClusterError as e:
        raise UserError(str(e)) from None


def _request(args):
    from steward.errors import UserError
    from steward.planning.cost import Request
    from steward.planning.model_spec import ModelSpecError, resolve

    overrides = {key: getattr(args, f"model_{key}") for key in (*INT_KEYS, "mlp")}
    try:
        model, name = resolve(args.model, args.model_file, overrides)
    except ModelSpecError as e:
        raise UserError(str(e)) from None
    if args.batch < 0 or args.seq_len < 0 or args.memory_limit_gb < 0:
        raise UserError("--train.batch_size, --train.seq_len and --memory.budget_gb must be positive")
    cluster = _cluster(args)
    seq = args.seq_len or model.max_seq_len
    dtype = args.dtype if args.dtype != "auto" else ("bf16" if cluster.device.kind == "cuda" else "fp32")
    limit = args.memory_limit_gb * 1e9 if args.memory_limit_gb else 0.9 * cluster.device.memory_bytes
    return Request(args=model, global_batch=args.batch or 4 * cluster.world_size, seq_len=seq, cluster=cluster,
                   memory_limit=limit, dtype=dtype, allow_tp_across_nodes=args.tp_across_nodes, name=name)


def run_topology(args) -> int:
    from steward.planning.topology import describe, discover, presets

    if args.list:
        table = presets()
        if args.json:
            print(json.dumps({"presets": {name: c.to_dict() for name, c in table.items()}}))
        else:
            for name, c in table.items():
                print(f"{name:<16} {c.description}")
        return 0
    cluster = _cluster(args)
    info = None if args.cluster else discover()
    if args.json:
        out = {"cluster": cluster.to_dict()}
        if info is not None:
            out["discovered"] = info
        print(json.dumps(out, default=str))
        return 0
    if info is not None:
        print(f"this machine: {info['host']}, {info['cpu_count']} CPUs, {info['host_memory_bytes'] / 2**30:.1f} GiB, "
              f"{info['device_count']} x {info['device_name']} ({info['device_type']}); job: world size "
              f"{info['world_size']}, {info['local_world_size']} per node")
        topo = info.get("topo")
        if topo and topo.get("links"):
            kinds = sorted(set(topo["links"].values()))
            print(f"nvidia-smi topo -m: {len(topo['gpus'])} GPUs, GPU-GPU links {', '.join(kinds)}")
    print("\n".join(describe(cluster)))
    return 0


def run_plan(args) -> int:
    from steward.errors import UserError
    from steward.planning.layout import PlanError, format_plan, plan

    if args.calibrate:
        from steward.planning.calibrate import calibrate

        result = calibrate(nproc=args.nproc_per_node)
        if args.json:
            print(json.dumps(result))
        else:
            f = result["matmul_flops"]
            print(f"calibrated {result['device_name']}: matmul " + ", ".join(f"{k} {v / 1e9:.3g} GFLOP/s" for k, v in f.items())
                  + f"; memory {result['memory_bandwidth'] / 1e9:.3g} GB/s; layer overhead "
                  f"{result['layer_overhead_s'] * 1e3:.3g} ms")
            if "collective" in result:
                c = result["collective"]
                print(f"collective: {c['name']}: {c['bandwidth'] / 1e9:.3g} GB/s, {c['latency'] * 1e6:.3g} us per step")
            if "kernels" in result:
                k = result["kernels"]
                print(f"kernels: GEMM half rate at intensity {k['gemm_half']:.3g}, attention at "
                      f"{k['attention']:.0%} of the matmul rate, element-wise {k['elementwise_bandwidth'] / 1e9:.3g} GB/s")
            print(f"stored in {result['path']}")
        return 0
    if args.top < 1:
        raise UserError("--top must be >= 1")
    req = _request(args)
    if args.layout:
        return _print_layout(req, args.layout, args.json)
    try:
        result = plan(req, top=args.top)
    except PlanError as e:
        raise UserError(str(e)) from None
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print("\n".join(format_plan(result)))
    return 0


def _print_layout(req, text: str, as_json: bool) -> int:
    """`steward plan --layout`: the prediction for exactly that layout."""
    from steward.errors import UserError
    from steward.planning.layout import PlanError, evaluate, evaluation_dict, format_evaluation, parse_layout

    try:
        p = evaluate(req, parse_layout(text))
    except PlanError as e:
        raise UserError(str(e)) from None
    print(json.dumps(evaluation_dict(req, p)) if as_json else "\n".join(format_evaluation(req, p)))
    return 0


def run_simulate(args) -> int:
    from steward.io import atomic_write_bytes
    from steward.planning.simulate import chart_png, check_published, format_simulation, simulate

    req = _request(args)
    result = simulate(req)
    published = None if args.no_published else check_published()
    chart = Path(args.chart or f"simulate-{req.name}-{req.cluster.nodes}x{req.cluster.devices_per_node}.png")
    atomic_write_bytes(chart, chart_png(result))
    result["chart"] = str(chart)
    if published is not None:
        result["published"] = published
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(format_simulation(result, published)))
        print(f"chart: {chart}")
    return 0
