"""Benchmarks: each runs its baseline in the same invocation and reports ratios.

A benchmark is a function `(args: list[str]) -> dict` registered under a name with `register`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BenchFn = Callable[[list[str]], dict[str, Any]]
_REGISTRY: dict[str, tuple[str, BenchFn]] = {}


def register(name: str, help: str):
    def deco(fn: BenchFn) -> BenchFn:
        if name in _REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        _REGISTRY[name] = (help, fn)
        return fn

    return deco


def benchmarks() -> dict[str, tuple[str, BenchFn]]:
    import steward.bench.comm  # noqa: F401  (registers)
    import steward.bench.costmodel  # noqa: F401  (registers)
    import steward.bench.drift  # noqa: F401  (registers)
    import steward.bench.explain  # noqa: F401  (registers)
    import steward.bench.fairness  # noqa: F401  (registers)
    import steward.bench.memory  # noqa: F401  (registers)
    import steward.bench.peers  # noqa: F401  (registers)
    import steward.bench.planner  # noqa: F401  (registers)
    import steward.bench.trainer  # noqa: F401  (registers)

    return dict(_REGISTRY)
