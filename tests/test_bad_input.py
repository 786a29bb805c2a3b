"""Bad input gets one line, never a traceback: the cases of issue 20 (item 5), then generated values
(Hypothesis) for every config key through `load_config` + `check_job` and through `steward config`."""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steward.cli.main import main
from steward.config import JobConfig, Train, load_config
from steward.config.constraints import range_fields
from steward.config.manager import _field_types, _sections, all_keys
from steward.data import DataError, check_batch_memory
from steward.errors import StewardError
from steward.governance.policy import PolicyError, load_policy, parse_policy, sample_context
from steward.train.checks import check_job


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`steward ARGV` in this process: (exit code, stdout, stderr); a traceback fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# ---- the cases of the issue --------------------------------------------------------------------


@pytest.mark.parametrize("key, value, allowed", [
    ("train.lr", "nan", "> 0 and <= 10"),
    ("train.lr", "inf", "> 0 and <= 10"),
    ("train.beta1", "2", "in [0, 1)"),
    ("train.beta2", "1", "in [0, 1)"),
    ("train.steps", str(10**30), "a positive integer of at most 1000000000"),
    ("train.seed", str(2**70), ">= 0 and <= 9223372036854775807"),
    ("train.seed", "-1", ">= 0 and <= 9223372036854775807"),
    ("train.grad_clip", "nan", ">= 0 and <= 1000000000 (0 disables clipping)"),
    ("train.weight_decay", "-5", ">= 0 and <= 10"),
    ("train.batch_size", "1000000000", ">= 1 and <= 16777216"),
    ("model.init_std", "-inf", "in (0, 1]"),
    ("fairness.alpha", "nan", ">= 0 and <= 1000"),
])
def test_out_of_range_values_are_one_line_errors(key, value, allowed):
    rc, _, err = run_cli("config", f"--{key}", value)
    assert_one_line_error(rc, err, f"steward config: error: {key}: must be {allowed}, got ")
    shown = {"2": "2.0", "1": "1.0", "-5": "-5.0"}.get(value, value) if key != "train.seed" else value
    assert err.rstrip().endswith(f"got {shown}")


def test_a_huge_integer_is_described_not_printed():
    rc, _, err = run_cli("config", "--train.seed", str(10**500))
    assert_one_line_error(rc, err, "train.seed: must be >= 0", "got an integer of about 501 digits")


def test_every_numeric_key_has_a_finite_range():
    for section, cls in _sections().items():
        for name, tp in _field_types(cls).items():
            if tp in (int, float):
                r = range_fields(cls).get(name)
                assert r is not None, f"{section}.{name} has no Range"
                assert math.isfinite(r.low) and math.isfinite(r.high) and r.contains(getattr(cls(), name))
    assert max(r.high for r in range_fields(Train).values()) <= 2**63 - 1


@pytest.mark.parametrize("content", [
    "[train]\nsteps = 5\n".encode("utf-16"),
    b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
])
def test_a_binary_or_utf16_config_file_is_one_line(tmp_path, content):
    f = tmp_path / "c.toml"
    f.write_bytes(content)
    rc, _, err = run_cli("config", "--config", str(f))
    assert_one_line_error(rc, err, f"--config {f}: not UTF-8 text (byte ", "save")


def test_a_toml_integer_too_long_to_convert_is_one_line(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(f"[train]\nseed = {'9' * 5000}\n")
    rc, _, err = run_cli("config", "--config", str(f))
    assert_one_line_error(rc, err, "not valid TOML", "4300 digits")


def test_a_billion_sequence_batch_fails_fast_in_one_line(tmp_path):
    start = time.monotonic()
    rc, _, err = run_cli("train", "--train.batch_size", "1000000000", "--train.threads", "1",
                         "--governance.enabled", "false", "--job.out", str(tmp_path / "run"))
    assert_one_line_error(rc, err, "train.batch_size: must be >= 1 and <= 16777216, got 1000000000")
    assert time.monotonic() - start < 10


def test_batches_that_cannot_fit_in_memory_are_refused_before_allocating(tmp_path):
    train = Train(batch_size=2**24, seq_len=2**16)  # inside the ranges: 40 TiB of int64 tokens with validation
    with pytest.raises(DataError, match=r"train\.batch_size: 16777216 sequences x 65537 tokens .* more than this "
                                        r"machine's 1\.0 GiB; lower train\.batch_size"):
        check_batch_memory(train, train.batch_size, memory_bytes=2**30)
    check_batch_memory(Train(), 16, memory_bytes=2**30)  # the default: 1.3 MB
    cfg = load_config(None, ["--train.batch_size", str(2**24), "--train.seq_len", str(2**16)])
    with pytest.raises(DataError, match="GiB as int64"):
        check_job(cfg, world_size=2)  # `--nproc-per-node 2` checks the node before starting workers
    start = time.monotonic()  # one process: the loader checks before it allocates
    rc, _, err = run_cli("train", "--train.batch_size", str(2**24), "--train.seq_len", str(2**16),
                         "--model.flavor", "debug", "--train.threads", "1", "--governance.enabled", "false",
                         "--job.out", str(tmp_path / "run"))
    assert_one_line_error(rc, err, "train.batch_size: 16777216 sequences x 65537 tokens")
    assert time.monotonic() - start < 30


def test_audit_log_refuses_a_negative_limit(tmp_path):
    from steward.governance.store import AuditStore

    db = tmp_path / "audit.db"
    AuditStore(f"sqlite:///{db}").close()
    rc, _, err = run_cli("audit", "log", str(db), "--limit", "-1")
    assert_one_line_error(rc, err, "steward audit log: error: --limit: must be in 0..9223372036854775807, got -1")
    rc, _, err = run_cli("audit", "log", str(db), "--limit", str(2**64))
    assert_one_line_error(rc, err, "--limit: must be in 0..")
    assert run_cli("audit", "log", str(db), "--limit", "0")[0] == 0


def test_the_policy_gate_fails_closed_on_integers_cel_cannot_hold():
    policy = load_policy("default")
    ctx = sample_context("train.start")
    ctx["run"]["config"]["train"]["steps"] = 10**30
    decisions = policy.evaluate("train.start", ctx, "run x")
    assert decisions and all(not d.allowed for d in decisions)
    reason = decisions[0].reason()
    assert reason.startswith(f"policy rule '{decisions[0].rule}' denied train.start for run x: ")
    assert "run.config.train.steps is outside CEL's 64-bit integers" in reason and "\n" not in reason
    ctx = sample_context("model.release")
    ctx["approvals"][0]["count"] = -(2**63) - 1
    assert all("approvals[0].count is outside" in d.error for d in policy.evaluate("model.release", ctx, "run x"))
    # an overflow inside a rule's arithmetic is the rule's error too
    text = ('[[rule]]\nname = "big"\nstage = "train.start"\nexpr = "run.config.train.seed * 10000000000 > 0"\n'
            'message = "m"\n')
    rule_policy = parse_policy(text, "big.toml")
    ctx = sample_context("train.start")
    ctx["run"]["config"]["train"]["seed"] = 2**62
    (d,) = rule_policy.evaluate("train.start", ctx, "run x")
    assert not d.allowed and d.effect == "deny" and "overflow" in d.error


def test_a_policy_constant_cel_cannot_hold_is_one_line():
    text = f'[vars]\nbig = {2**64}\n[[rule]]\nname = "r"\nstage = "train.start"\nexpr = "true"\nmessage = "m"\n'
    with pytest.raises(PolicyError, match=r"^huge\.toml: rule 'r': fails on a sample train\.start context: vars\.big is "
                                          r"outside CEL's 64-bit integers"):
        parse_policy(text, "huge.toml")


# ---- generated values for every key --------------------------------------------------------------

KEYS = all_keys()
_EDGES = [0, 1, -1, 2, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30),
          0.0, -0.0, 0.5, 1.0, -1.5, 1e-320, 1e308, -1e308, math.nan, math.inf, -math.inf,
          True, False, "", " ", "\x00", "\n", "é", "\U0001f642", "nan", "-inf", "1e999", "0x10", "1_000", " 7 ",
          "\u0663", "+5", "true", "none", "default", "latest", "9" * 5000]
ANY_VALUE = st.one_of(
    st.sampled_from(_EDGES),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # nan, inf, -0.0 and subnormals included
    st.text(max_size=40),  # unicode, empty
    st.booleans(),
)


def _typed(key: str) -> st.SearchStrategy:
    """Values of the key's own type, around the ends of its range when it has one."""
    section, name = key.split(".", 1)
    cls = _sections()[section]
    tp, r = _field_types(cls)[name], range_fields(cls).get(name)
    if r is None:
        return st.booleans() if tp is bool else st.text(max_size=20)
    ends = st.sampled_from([r.low, r.high, r.low - 1, r.high + 1] if tp is int else
                           [r.low, r.high, math.nextafter(r.low, -math.inf), math.nextafter(r.high, math.inf)])
    inside = st.integers(r.low, r.high) if tp is int else st.floats(r.low, r.high)
    return st.one_of(ends, inside)


def _cli_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _loads_or_one_line(build) -> JobConfig | None:
    """The config `build()` makes and check_job accepts, or None after a one-line StewardError."""
    try:
        cfg = build()
        check_job(cfg)
    except StewardError as e:
        assert str(e).strip() and "\n" not in str(e), repr(str(e))
        return None
    return cfg


def _assert_in_range(cfg: JobConfig) -> None:
    for section, cls in _sections().items():
        for name, r in range_fields(cls).items():
            assert r.contains(getattr(getattr(cfg, section), name)), f"{section}.{name}"


_FUZZ = settings(max_examples=7, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("key", KEYS)
@_FUZZ
@given(data=st.data())
def test_every_key_takes_any_value_or_gives_one_line(key, data):
    """Generated values for `key`, from a TOML file and from a flag: a config in range, or one line."""
    value = data.draw(st.one_of(_typed(key), ANY_VALUE), label="value")
    section, name = key.split(".", 1)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "c.toml"
        f.write_text(tomli_w.dumps({section: {name: value}}))
        cfg = _loads_or_one_line(lambda: load_config(f))
    if cfg is not None:
        _assert_in_range(cfg)
    cfg = _loads_or_one_line(lambda: load_config(None, [f"--{key}={_cli_text(value)}"]))
    if cfg is not None:
        _assert_in_range(cfg)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=ANY_VALUE)
def test_the_config_command_exits_0_or_2_with_one_line(key, value):
    rc, out, err = run_cli("config", "--json", f"--{key}={_cli_text(value)}")
    assert rc in (0, 2), err
    if rc == 0:
        assert err == "" and out.startswith('{"keys": ')
    else:
        assert_one_line_error(rc, err, "steward config: error: ")
