"""The house stays as drawn (docs/architecture.md): the import contract of pyproject.toml (layers from
cli down to config, no cycle between the modules of any package) holds, and no module or function
grows past the sizes the architecture page sets."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "steward"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def test_import_contract_holds():
    script = Path(sys.executable).with_name("lint-imports")
    if not script.exists():
        pytest.fail(f"import-linter is not installed next to {sys.executable}; pip install -e '.[dev]'")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # this checkout, not an installed copy
    proc = subprocess.run([str(script), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _sizes():
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        yield path, len(text.splitlines()), ast.parse(text)


def test_no_module_or_function_is_too_long():
    long_modules, long_functions = [], []
    for path, lines, tree in _sizes():
        rel = path.relative_to(SRC.parent)
        if lines > MAX_MODULE_LINES:
            long_modules.append(f"{rel}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_models_know_nothing_of_parallelism_or_explanations():
    """models/ defines modules only: it imports no torch.distributed and nothing of ours but config,
    and keeps no explanation state (explain installs its capture on the instances)."""
    for path in (SRC / "models").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                assert not name.startswith("torch.distributed"), f"{path.name} imports {name}"
                assert not name.startswith("steward.") or name.split(".")[1] in ("models", "config", "errors"), \
                    f"{path.name} imports {name}"
        assert "probs" not in path.read_text().replace("probabilities", ""), f"{path.name} keeps attention probs"
