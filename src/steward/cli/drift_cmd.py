"""`steward drift RUN --data NEW`: the run's drift monitor, calibrated on held-out windows of its own data
(or --reference), fed the held-out windows of NEW: each window's statistics and the first alarm."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("drift", help="does new data depart from a run's training data? (calibrated drift tests)")
    p.add_argument("run_dir", metavar="RUN", help="a `steward train` run directory (language model)")
    p.add_argument("--data", required=True, help="the new data: anything data.source accepts")
    p.add_argument("--reference", default="", help="the reference data (default: the run's data.source)")
    p.add_argument("--max-windows", type=int, default=0,
                   help="read at most this many held-out sequences of each source (0: all)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args) -> int:
    import torch

    from steward.errors import UserError
    from steward.jobs import drift_check

    if args.max_windows < 0 or args.threads < 1:
        raise UserError("--max-windows must be >= 0 and --threads >= 1")
    bad = [o for o in args.overrides if o.startswith("--") and not o.startswith(("--data.", "--drift."))]
    if bad:
        raise UserError(f"unrecognized arguments: {' '.join(bad)} (only --data.* and --drift.* settings apply)")
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        out = drift_check(args.run_dir, args.data, reference=args.reference, max_windows=args.max_windows,
                          overrides=args.overrides)
    finally:
        torch.set_num_threads(before)
    if args.json:
        print(json.dumps(out))
        return 0
    dets = out["detectors"]
    print(f"reference {out['reference']}, data {out['data']}: windows of {out['window_batches']} x "
          f"{out['batch_rows']} sequences, alpha {out['alpha']:g} per window")
    print(f"{'window':>6} " + " ".join(f"{d + ' (thr)':>24}" for d in dets) + "  alarm")
    for w in out["windows"]:
        cells = [f"{w[f'drift_{d}']:.4g} ({w[f'drift_{d}_threshold']:.4g})" for d in dets]
        print(f"{w['window']:>6} " + " ".join(f"{c:>24}" for c in cells) + "  " + ",".join(w.get("drift_alarm", [])))
    first = out["first_alarm_window"]
    print("no drift detected" if first is None else f"drift from window {first} ({out['alarms']} alarms)")
    print(f"wrote {out['run_dir']}/drift/offline.json")
    return 0
