"""GPU check for the foundation issue: gpt2-small in bf16 through the real trainer.

Run from a checkout on a machine with a CUDA GPU:  PYTHONPATH=src python benchmarks/gpu_check.py
Prints one table row per setting: tokens/s and MFU (median over steps after warm-up, from metrics.jsonl).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from steward.config import load_config
from steward.train.trainer import Trainer


def measure(tmp: Path, name: str, flags: list[str], steps: int = 30, warmup: int = 10) -> dict:
    out = tmp / name
    cfg = load_config(None, [
        "--model.flavor", "gpt2-small", "--model.vocab_size", "50304", "--train.seq_len", "1024",
        "--train.batch_size", "16", "--train.steps", str(steps), "--train.val_every", "0",
        "--train.val_batches", "1", "--checkpoint.enabled", "false", "--governance.enabled", "false",
        "--train.device", "cuda", "--train.mixed_precision", "bf16", "--job.out", str(out), *flags,
    ])
    summary = Trainer(cfg, callbacks=[]).run()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r and r["step"] > warmup]
    return {
        "setting": name,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows),
        "mfu": statistics.median(r.get("mfu") or 0.0 for r in rows),
        "peak_mem_gib": summary["peak_memory_bytes"] / 2**30,
        "final_loss": summary["final_loss"],
    }


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  cuda {torch.version.cuda}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in [("eager", []), ("compile", ["--train.compile", "true"])]:
            try:
                results.append(measure(Path(tmp), name, flags))
            except Exception as e:  # report and go on to the next setting
                print(f"{name}: failed: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"{'setting':<10} {'tokens/s':>10} {'MFU':>7} {'peak GiB':>9} {'loss':>7}")
    for r in results:
        print(f"{r['setting']:<10} {r['tokens_per_s']:>10.0f} {r['mfu']:>7.3f} {r['peak_mem_gib']:>9.2f} {r['final_loss']:>7.3f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
