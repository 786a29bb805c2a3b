"""Policies (CEL in TOML), datasheets and licenses: clear errors at load time, allow / deny / warn."""

import pytest

from steward.config import ConfigError, load_config
from steward.governance.datasheets import load_datasheets_file, normalize_licenses, resolve_datasheet
from steward.governance.policy import STAGES, PolicyError, load_policy, parse_policy, sample_context
from steward.train.checks import check_job


def rule(expr, stage="data.ingest", name="r1", extra=""):
    return f"[[rule]]\nname = \"{name}\"\nstage = \"{stage}\"\nexpr = '{expr}'\nmessage = \"no\"\n{extra}"


BAD = {
    "toml": ("[[rule]\nname = 1", "not valid TOML"),
    "no rules": ("[policy]\nname = \"x\"", "defines no [[rule]]"),
    "unknown top key": ("[rules]\n" + rule("true"), "unknown top-level key 'rules'"),
    "cel syntax": (rule("dataset.license in ("), "CEL expression does not parse at line 1, column 20"),
    "unknown name": (rule('datset.license == "x"'), "uses unknown name 'datset'"),
    "name of another stage": (rule("checkpoint.step > 0"), "uses unknown name 'checkpoint'"),
    "field typo": (rule('dataset.licence == "x"'), "no such member in mapping: 'licence'"),
    "not a bool": (rule("size(dataset.name)"), "must yield true or false"),
    "type error": (rule('dataset.tokens + "a" == 1'), "fails on a sample data.ingest context"),
    "bad stage": (rule("true", stage="data.ingested"), "stage 'data.ingested' is not one of"),
    "duplicate": (rule("true") + "\n" + rule("true"), "is defined twice"),
    "unknown rule key": (rule("true", extra='severty = "warn"'), "unknown key 'severty'"),
    "bad severity": (rule("true", extra='severity = "maybe"'), "severity must be 'deny' or 'warn'"),
    "empty message": ("[[rule]]\nname = \"a\"\nstage = \"train.start\"\nexpr = 'true'\nmessage = \"\"",
                      "needs message"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_policies_fail_at_load_with_one_clear_line(case):
    text, words = BAD[case]
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "team.toml")
    msg = str(e.value)
    assert words in msg, msg
    assert msg.startswith("team.toml") and "\n" not in msg


def test_a_bad_policy_file_is_a_config_error_before_anything_runs(tmp_path):
    p = tmp_path / "policy.toml"
    p.write_text(rule("dataset.license in ("))
    with pytest.raises(ConfigError, match=r"governance.policy: .*policy.toml: rule 'r1': CEL expression does not parse"):
        check_job(load_config(None, ["--governance.policy", str(p)]))
    with pytest.raises(ConfigError, match="no such policy file"):
        check_job(load_config(None, ["--governance.policy", str(tmp_path / "missing.toml")]))
    (tmp_path / "sheets.toml").write_text("[x]\nlicence = 'MIT'\n")
    with pytest.raises(ConfigError, match="unknown datasheet key 'licence'"):
        check_job(load_config(None, ["--governance.datasheets", str(tmp_path / "sheets.toml")]))


def test_default_policy_loads_and_covers_every_stage():
    policy = load_policy("default")
    assert policy.name == "steward-default" and len(policy.sha256) == 64
    assert {r.stage for r in policy.rules} == set(STAGES)
    assert load_policy("none") is None


def test_allow_deny_and_warn():
    text = "\n".join([
        "[vars]\nallowed = ['MIT']",
        rule("dataset.licenses.exists(l, l in vars.allowed)", name="license"),
        rule('dataset.kind != "jsonl"', name="kind", extra='severity = "warn"'),
    ])
    policy = parse_policy(text, "p.toml")
    ctx = sample_context("data.ingest")
    assert [d.effect for d in policy.evaluate("data.ingest", ctx, "ds")] == ["allow", "allow"]
    ctx["dataset"].update(licenses=["GPL-3.0-only"], kind="jsonl")
    decisions = policy.evaluate("data.ingest", ctx, "dataset ds")
    assert [d.effect for d in decisions] == ["deny", "warn"]
    assert decisions[0].reason() == "policy rule 'license' denied data.ingest for dataset ds: no"
    # enforce = false turns the denial into a warning
    assert [d.effect for d in policy.evaluate("data.ingest", ctx, "ds", enforce=False)] == ["warn", "warn"]
    # a rule that cannot be evaluated denies (fail closed) and says why
    del ctx["dataset"]["licenses"]
    d = policy.evaluate("data.ingest", ctx, "ds")[0]
    assert d.effect == "deny" and "could not be evaluated" in d.error and "licenses" in d.error


def test_default_policy_on_datasets():
    policy = load_policy("default")
    ok = {"name": "stdlib-docs", "source": "stdlib-docs", "kind": "stdlib-docs", "fingerprint": "ab" * 32,
          "license": "PSF-2.0"}
    sheet = resolve_datasheet(ok)
    assert sheet["licenses"] == ["PSF-2.0"] and sheet["origin"][0] == "builtin:stdlib-docs"

    def decide(d):
        s = resolve_datasheet(d)
        row = {**d, "licenses": s["licenses"], "datasheet": {k: v for k, v in s.items() if k not in ("licenses", "origin")}}
        ctx = {**sample_context("data.ingest"), "dataset": row}
        return {x.rule: x.effect for x in policy.evaluate("data.ingest", ctx, d["name"])}

    assert set(decide(ok).values()) == {"allow"}
    book = {"name": "bookcorpus", "source": "bookcorpus", "hf_id": "bookcorpus/bookcorpus", "preset": "bookcorpus",
            "kind": "hf", "fingerprint": "cd" * 32, "license": "unknown"}
    assert decide(book)["dataset-license-allowed"] == "deny"
    wiki = {"name": "wikitext-103", "source": "wikitext-103", "hf_id": "Salesforce/wikitext", "kind": "hf",
            "fingerprint": "ef" * 32, "license": "cc-by-sa-3.0, gfdl"}
    assert set(decide(wiki).values()) == {"allow"}
    local = {"name": "/data/corpus", "source": "/data/corpus", "kind": "text", "fingerprint": "01" * 32, "license": ""}
    got = decide(local)
    assert got["dataset-license-allowed"] == "deny" and got["dataset-datasheet-complete"] == "deny"


def test_datasheets_from_files(tmp_path):
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "a.txt").write_text("hello")
    (data / "datasheet.toml").write_text(
        'source = "our wiki"\nlicense = "CC-BY-4.0"\nintended_use = "support bot"\nknown_biases = "English only"\n')
    d = {"name": str(data), "source": str(data), "kind": "text", "path": str(data), "license": ""}
    sheet = resolve_datasheet(d)
    assert sheet["licenses"] == ["CC-BY-4.0"] and sheet["source"] == "our wiki"
    assert sheet["origin"] == [str(data / "datasheet.toml")]
    cfg = tmp_path / "sheets.toml"
    cfg.write_text(f'["{data}"]\nlicense = "MIT"\n')
    sheet = resolve_datasheet(d, load_datasheets_file(str(cfg)))
    assert sheet["licenses"] == ["MIT"] and sheet["intended_use"] == "support bot"


def test_license_names_are_normalised():
    assert normalize_licenses("odc-by") == ["ODC-By-1.0"]
    assert normalize_licenses("cc-by-sa-3.0, gfdl") == ["CC-BY-SA-3.0", "GFDL"]
    assert normalize_licenses("MIT or Apache 2.0") == ["MIT", "Apache-2.0"]
    assert normalize_licenses("") == ["unknown"]
