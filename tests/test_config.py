import json

import pytest

from steward.cli.main import main
from steward.config import ConfigError, JobConfig, describe, load_config, to_toml, validate_world


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
        load_config(None, flags)
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
