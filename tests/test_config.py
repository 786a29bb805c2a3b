import ast
import json
import typing
from pathlib import Path

import pytest

from steward.cli.main import main
from steward.config import ConfigError, JobConfig, Train, describe, load_config, to_toml
from steward.config import job as job_module
from steward.parallel.mesh import validate_world
from steward.train.checks import check_job


def test_precedence_defaults_file_flags(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\nsteps = 7\nlr = 0.5\n[model]\nflavor = "debug"\n')
    cfg = load_config(f, ["--train.steps", "9", "--data.shuffle=false"])
    assert cfg.train.steps == 9  # flag beats file
    assert cfg.train.lr == 0.5  # file beats default
    assert cfg.model.flavor == "debug"
    assert cfg.data.shuffle is False
    assert cfg.train.seq_len == JobConfig().train.seq_len  # default


def test_toml_round_trip(tmp_path):
    cfg = load_config(None, ["--train.steps", "11", "--model.flavor", "debug"])
    f = tmp_path / "config.toml"
    f.write_text(to_toml(cfg))
    assert load_config(f) == cfg


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--train.stpes", "3"], "unknown config key 'train.stpes'; did you mean 'train.steps'?"),
        (["--nosuch.key", "3"], "unknown config key 'nosuch.key'"),
        (["--train.steps", "abc"], "train.steps: expected an integer, got 'abc'"),
        (["--train.steps", "0"], "train.steps: must be a positive integer"),
        (["--data.shuffle", "maybe"], "data.shuffle: expected true or false"),
        (["--model.flavor", "huge"], "model.flavor: unknown flavor 'huge'"),
        (["--parallel.dp_shard", "0"], "parallel.dp_shard"),
        (["--checkpoint.resume", "/no/such/ckpt"], "checkpoint.resume"),
        (["--data.tokenizer", "/no/tok.json"], "data.tokenizer"),
        (["--train.steps"], "--train.steps: missing value"),
        (["stray"], "unexpected argument 'stray'"),
    ],
)
def test_bad_flags_name_the_key(flags, needle):
    with pytest.raises(ConfigError) as e:
        check_job(load_config(None, flags))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_file_types(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\nsteps = "ten"\n')
    with pytest.raises(ConfigError, match="train.steps: expected an integer"):
        load_config(f)
    f.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
    f.write_text("steps = 3\n")
    with pytest.raises(ConfigError, match="must be a \\[section\\] table"):
        load_config(f)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")


def test_world_validation():
    cfg = load_config(None, ["--train.batch_size", "8", "--train.micro_batch_size", "2"])
    assert validate_world(cfg, 2) == (1, 2, 2, 2)  # dp_shard takes the rest; 4 per rank / 2 = 2 micro
    cfg = load_config(None, ["--parallel.dp_replicate", "2", "--parallel.dp_shard", "2"])
    with pytest.raises(ConfigError, match="dp_replicate x parallel.dp_shard = 2 x 2 = 4, but the world size is 2"):
        validate_world(cfg, 2)
    cfg = load_config(None, ["--train.batch_size", "3"])
    with pytest.raises(ConfigError, match="train.batch_size: 3 is not divisible"):
        validate_world(cfg, 2)
    cfg = load_config(None, ["--train.batch_size", "8", "--train.micro_batch_size", "3"])
    with pytest.raises(ConfigError, match="train.micro_batch_size: 3 does not divide"):
        validate_world(cfg, 1)


def test_every_field_documented():
    rows = describe()
    keys = {r["key"] for r in rows}
    required = {
        "job.out", "model.flavor", "model.hf_path", "data.source", "data.tokenizer", "train.steps",
        "train.batch_size", "train.seq_len", "train.lr", "train.seed", "parallel.dp_shard",
        "parallel.dp_replicate", "checkpoint.every", "checkpoint.resume",
    }
    assert required <= keys
    undocumented = [r["key"] for r in rows if not r["doc"]]
    assert undocumented == []


def test_config_command(capsys):
    assert main(["config", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    steps = next(r for r in out["keys"] if r["key"] == "train.steps")
    assert steps["type"] == "int" and steps["default"] == JobConfig().train.steps and steps["doc"]


def test_cli_bad_flag_is_one_line(capsys):
    assert main(["train", "--train.stpes", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'train.steps'" in err and "Traceback" not in err


def test_choice_errors_come_from_the_literal():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["--train.device", "gpu"])
    assert str(e.value) == "train.device: must be one of auto, cpu, cuda, got 'gpu'"
    with pytest.raises(ConfigError, match="parallel.backend: must be one of auto, nccl, gloo, got 'mpi'"):
        load_config(None, ["--parallel.backend", "mpi"])
    # a Hugging Face model has no flavor: model.flavor is not checked with model.hf_path
    cfg = load_config(None, ["--model.hf_path", "/some/folder", "--model.flavor", "huge"])
    assert cfg.model.flavor == "huge"


def test_sections_check_themselves_when_built():
    with pytest.raises(ConfigError, match="train.device: must be one of"):
        Train(device="gpu")
    with pytest.raises(ConfigError, match="train.lr: must be > 0"):
        Train(lr=0)
    # the loader builds each section once every value is in: file and flags are checked together
    with pytest.raises(ConfigError, match="train.dtype: float64 cannot train in bf16"):
        load_config(None, ["--train.dtype", "float64", "--train.mixed_precision", "bf16"])


def test_cross_section_checks_are_check_jobs():
    cfg = load_config(None, ["--train.dtype", "float64", "--comm.compressor", "int8"])  # each section is fine
    with pytest.raises(ConfigError, match="comm.compressor: the compressors send float32 or narrower"):
        check_job(cfg)
    cfg = load_config(None, ["--parallel.tp", "3"])
    with pytest.raises(ConfigError, match="parallel.tp: 3 must divide the 4 heads"):
        check_job(cfg)


def test_literals_match_the_registries():
    from steward.comm.compressors import COMPRESSORS
    from steward.config.parallel import CompressorName
    from steward.memory.apply import POLICIES
    from steward.models.gpt import FLAVORS

    assert typing.get_args(CompressorName) == tuple(COMPRESSORS)
    assert typing.get_args(job_module.Flavor) == tuple(FLAVORS)
    assert typing.get_args(job_module.RematPolicy) == POLICIES


def test_sections_are_named_after_their_classes():
    # check_choices names a key's section after the class (Train -> train.*)
    for f in JobConfig.__dataclass_fields__.values():
        assert typing.get_type_hints(JobConfig)[f.name].__name__.lower() == f.name


def test_config_imports_nothing_else_of_ours():
    allowed = ("steward.config", "steward.errors", "steward.io")
    for path in Path(job_module.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] == "steward":
                    assert name.startswith(allowed), f"{path.name} imports {name}"


def test_config_command_shows_choices(capsys):
    assert main(["config", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["keys"]}
    assert rows["train.device"]["choices"] == ["auto", "cpu", "cuda"]
    assert rows["train.device"]["type"] == "str"
    assert "choices" not in rows["train.steps"]
    assert main(["config"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("memory.policy "))
    assert line.endswith("Choices: keep, selective, full, offload, plan.")


def test_config_command_runs_the_job_checks(capsys):
    assert main(["config", "--parallel.tp", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "parallel.tp: 3 must divide" in err and "\n" not in err
