"""The typed config tree: one dataclass per section.

The string literal under each field is its documentation; `steward config` reads it from this
file's source, so keep one under every field. Choices are `Literal[...]` types; each section checks
its own values in `__post_init__` (one-line ConfigErrors naming the key). Checks that need another
section or a subsystem (files, the model's shape, the world size) belong to that subsystem:
`steward.train.checks.check_job` runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from steward.config.choices import check_choices, literal_choices
from steward.config.constraints import PathName, Range, check_constraints
from steward.config.fairness import Fairness
from steward.config.parallel import Comm, Parallel
from steward.errors import ConfigError

Flavor = Literal["debug", "tiny", "gpt2-small", "1b", "7b", "13b", "70b", "175b"]
"""The names of steward.models.gpt.FLAVORS (a test keeps the two equal)."""

RematPolicy = Literal["keep", "selective", "full", "offload"]
"""The per-block policies of steward.memory.apply.POLICIES (a test keeps the two equal)."""


@dataclass
class Job:
    out: Annotated[str, PathName()] = ""
    """Run directory. Empty: a new folder runs/<UTC time> under the current directory."""

    name: str = "steward"
    """Human-readable name of the run, used in reports and the audit log."""

    overwrite: bool = False
    """Allow writing into a run directory that already holds a finished run."""

    def __post_init__(self) -> None:
        check_constraints(self)


@dataclass
class Model:
    flavor: Flavor = "tiny"
    """Named size of the decoder, from debug (a unit test's) to 175b (GPT-3's shape)."""

    hf_path: Annotated[str, PathName()] = ""
    """Local directory of a Hugging Face causal LM to train instead of a flavor (no hub download)."""

    vocab_size: Annotated[int, Range(0, 2**24, note=" (0: taken from the tokenizer)")] = 0
    """Vocabulary size. 0: taken from the tokenizer."""

    init_std: Annotated[float, Range(0, 1, low_open=True)] = 0.02
    """Standard deviation of the normal initialisation of linear and embedding weights."""

    init_mode: Literal["auto", "rank0", "sharded"] = "auto"
    """How sharded (FSDP2/HSDP) weights are initialised. 'rank0': the full model on rank 0's host, then
    broadcast as shards (exactly the single-process weights); 'sharded': each rank initialises only its
    shards (no full copy anywhere); 'auto': rank0 when the model's fp32 weights fit in 4 GiB."""

    def __post_init__(self) -> None:
        check_choices(self, skip=("flavor",) if self.hf_path else ())  # a Hugging Face model has no flavor
        check_constraints(self)


@dataclass
class Data:
    source: Annotated[str, PathName()] = "stdlib-docs"
    """What to train on: 'stdlib-docs' (built from the installed Python's docstrings), 'manpages',
    'licenses' or 'debian-packages' (this Debian-based machine's man pages, license texts and package
    descriptions), a text file or folder, a .jsonl or .parquet file or folder, 'hf:<id>' for a Hugging Face dataset, or a preset:
    c4, c4-realnewslike, wikitext-103, bookcorpus."""

    field: str = "text"
    """Record field that holds the text, for JSONL, Parquet and Hugging Face sources."""

    text_split: Literal["paragraph", "file"] = "paragraph"
    """What one document is in a text (.txt/.md) source: 'paragraph' (blocks separated by blank
    lines) or 'file'."""

    hf_config: str = ""
    """Hugging Face dataset config name (e.g. 'en' for allenai/c4)."""

    hf_split: str = "train"
    """Hugging Face dataset split to train on."""

    hf_data_dir: Annotated[str, PathName()] = ""
    """Local directory laid out like the dataset's hub repository; read instead of downloading."""

    streaming: bool = True
    """Stream Hugging Face datasets instead of downloading them whole."""

    tokenizer: Annotated[str, PathName()] = "byte"
    """'byte' (256 byte values plus end-of-text) or the path of a Hugging Face tokenizers JSON file."""

    val_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.05
    """Fraction of documents held out for validation (finite sources)."""

    val_docs: Annotated[int, Range(1, 10**9)] = 200
    """Number of documents held out for validation (streaming sources)."""

    max_docs: Annotated[int, Range(0, 10**12, note=" (0: all)")] = 0
    """Read at most this many documents from a finite source (0: all)."""

    shuffle: bool = True
    """Shuffle the packed training sequences (each epoch with its own seed)."""

    def __post_init__(self) -> None:
        check_constraints(self)
        check_choices(self)


@dataclass
class Train:
    steps: Annotated[int, Range(1, 10**9)] = 300
    """Number of optimizer steps."""

    batch_size: Annotated[int, Range(1, 2**24)] = 16
    """Global batch: sequences per optimizer step, summed over all data-parallel ranks."""

    micro_batch_size: Annotated[int, Range(0, 2**24, note=" (0: the whole per-rank batch)")] = 0
    """Sequences per forward pass on one rank. 0: the whole per-rank batch (no accumulation)."""

    seq_len: Annotated[int, Range(1, 2**20)] = 256
    """Tokens per training sequence."""

    lr: Annotated[float, Range(0, 10, low_open=True)] = 3e-3
    """Peak learning rate of AdamW."""

    min_lr_ratio: Annotated[float, Range(0, 1)] = 0.1
    """Final learning rate of the cosine schedule as a fraction of train.lr."""

    warmup_steps: Annotated[int, Range(0, 10**9)] = 30
    """Linear warmup steps before the cosine decay."""

    weight_decay: Annotated[float, Range(0, 10)] = 0.1
    """AdamW weight decay (not applied to norms and biases)."""

    beta1: Annotated[float, Range(0, 1, high_open=True)] = 0.9
    """AdamW beta1."""

    beta2: Annotated[float, Range(0, 1, high_open=True)] = 0.95
    """AdamW beta2."""

    grad_clip: Annotated[float, Range(0, 10**9, note=" (0 disables clipping)")] = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""

    seed: Annotated[int, Range(0, 2**63 - 1)] = 1234
    """Seed for initialisation and data order."""

    val_every: Annotated[int, Range(0, 10**9, note=" (0: only at the end)")] = 50
    """Evaluate validation loss every this many steps (and at step 0 and the end; 0: only at the end)."""

    val_batches: Annotated[int, Range(1, 10**6)] = 4
    """Global batches of validation data per evaluation."""

    log_every: Annotated[int, Range(1, 10**9)] = 1
    """Write a metrics.jsonl line every this many steps."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."""

    mixed_precision: Literal["auto", "bf16", "fp32"] = "auto"
    """'auto' (bf16 autocast on GPU, fp32 on CPU), 'bf16' or 'fp32'."""

    dtype: Literal["float32", "float64"] = "float32"
    """Dtype of the weights, gradients, optimizer states and losses: 'float32', or 'float64' for
    exactness checks on the CPU (rounding noise about 1e-16 instead of 1e-7, so two layouts that compute
    the same mathematics agree to 1e-9 relative). float64 excludes bf16 mixed precision and gradient
    compression."""

    compile: bool = False
    """Compile each transformer block with torch.compile."""

    threads: Annotated[int, Range(0, 4096, note=" (0: torch's default)")] = 0
    """torch intra-op threads per process on the CPU (0: torch's default divided among local workers)."""

    task: Literal["lm", "classify"] = "lm"
    """'lm' (next-token language modelling) or 'classify' (a binary classification head on the pooled
    decoder representation, trained on fairness.data; see the [fairness] section)."""

    def __post_init__(self) -> None:
        check_constraints(self)
        check_choices(self)
        if self.dtype == "float64" and self.mixed_precision == "bf16":
            raise ConfigError("train.dtype: float64 cannot train in bf16; set --train.mixed_precision fp32 (or auto)")


@dataclass
class Checkpoint:
    every: Annotated[int, Range(0, 10**9, note=" (0: only at the end)")] = 0
    """Save a checkpoint every this many steps (0: only at the end)."""

    resume: Annotated[str, PathName()] = ""
    """'latest' (newest checkpoint in the run directory) or a checkpoint folder to resume from."""

    keep: Annotated[int, Range(0, 10**6, note=" (0: keep all)")] = 0
    """Keep only this many newest checkpoints (0: keep all)."""

    enabled: bool = True
    """Save checkpoints at all (the final one included)."""

    allow_changes: str = ""
    """Comma-separated config keys (e.g. 'train.steps,train.lr') that may differ from the run's
    config.toml when resuming in its run directory; the change (old and new values) is recorded in the
    audit log and in config.toml. Any other difference refuses the resume."""

    def __post_init__(self) -> None:
        check_constraints(self)


@dataclass
class Memory:
    policy: Literal[RematPolicy, "plan"] = "keep"
    """Activation rematerialization: keep, selective, full, offload (every block), or plan (the solver
    chooses per block under memory.budget_gb)."""

    budget_gb: Annotated[float, Range(0, 10**6, note=" (0: memory.budget_fraction of the device)")] = 0.0
    """Memory budget per device in GB (10^9 bytes) for memory.policy = plan (0: memory.budget_fraction of the device)."""

    budget_fraction: Annotated[float, Range(0, 1, low_open=True)] = 0.9
    """With budget_gb = 0: this fraction of the device's memory is the budget."""

    profile: Literal["auto", "measured", "analytic"] = "auto"
    """How per-block costs are found: measured (run one block on the device, timed), analytic (fake
    tensors: nothing allocated, time from a roofline of the GPU's figures), or auto (measured when one
    block takes under a quarter of the free device memory, else analytic)."""

    plan_policies: str = "keep,selective,full,offload"
    """Comma-separated policies memory.policy = plan may choose from (offload only on GPUs)."""

    def __post_init__(self) -> None:
        check_choices(self)
        check_constraints(self)
        policies = literal_choices(RematPolicy)
        allowed = [x.strip() for x in self.plan_policies.split(",") if x.strip()]
        if not allowed or any(x not in policies for x in allowed):
            raise ConfigError(f"memory.plan_policies: a comma-separated list of {', '.join(policies)}, "
                              f"got {self.plan_policies!r}")


@dataclass
class Governance:
    enabled: bool = True
    """Record the run in the audit log, evaluate policies and write the report."""

    store: Annotated[str, PathName()] = ""
    """Audit store: a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...), or 'workspace' for one
    store shared by all runs of the workspace (WORKSPACE/audit.db). Empty: RUN_DIR/governance/audit.db.
    Credentials in the URL are never written (config.toml and the log get it masked, `***`); keep them
    out of it: PGPASSWORD, ~/.pgpass or ?service=NAME, which later commands (audit, report, release) need."""

    workspace: Annotated[str, PathName()] = ""
    """Workspace folder holding the signing key, published tree heads, roles and risk register.
    Empty: $STEWARD_WORKSPACE, else ~/.steward."""

    policy: Annotated[str, PathName()] = "default"
    """Policy file (TOML of CEL rules), 'default' for the shipped pack, or 'none'."""

    enforce: bool = True
    """Stop a stage that a policy denies. false: record the denial as a warning and go on."""

    actor: str = ""
    """Who is acting, for the audit log. Empty: $STEWARD_ACTOR, else the OS user."""

    key_path: Annotated[str, PathName()] = ""
    """Ed25519 private key (PEM, mode 0600) to sign the audit log and provenance with.
    Empty: $STEWARD_SIGNING_KEY, else the workspace key (created on first use)."""

    datasheets: Annotated[str, PathName()] = ""
    """TOML file of datasheets: a [NAME] table per dataset (source, license, intended_use, known_biases),
    matched by dataset name, source, Hugging Face id or path. Overrides datasheet.toml next to the data."""

    model_card: Annotated[str, PathName()] = ""
    """TOML file with the model card's prose for the report: intended_use, out_of_scope_use,
    ethical_considerations, caveats, license, owner, description."""

    publish_heads: Annotated[str, PathName()] = ""
    """Also append every signed tree head to this file (e.g. on a share the store's writers cannot edit);
    WORKSPACE/heads.jsonl always gets them."""

    mlflow_uri: str = ""
    """MLflow tracking URI; when set and mlflow is installed, params, metrics and artifacts are logged there."""

    def __post_init__(self) -> None:
        check_constraints(self)


DRIFT_DETECTORS = ("tokens", "embedding", "loss")
"""The names of steward.drift.monitor.DETECTORS (a test keeps the two equal)."""


@dataclass
class Drift:
    enabled: bool = False
    """Watch the training data for drift (train.task = lm): per-window statistics in metrics.jsonl, an audit
    event and drift.action when a window departs from the reference; see steward.drift."""

    window: Annotated[int, Range(1, 10**6)] = 4
    """Optimizer steps per window (its units: the rows of those steps' batches, on rank 0)."""

    reference_windows: Annotated[int, Range(2, 10**4)] = 8
    """Windows that make the reference (from the start, and again after each alarm)."""

    detectors: str = "tokens"
    """Comma-separated: 'tokens' (Jensen-Shannon divergence of unigram counts), 'embedding' (MMD of the
    model's pooled final hidden state; the decoder flavors, without pipeline parallelism), 'loss'
    (Page-Hinkley on the window's mean loss)."""

    alpha: Annotated[float, Range(0, 0.5, low_open=True)] = 0.0005
    """False-alarm rate per window of the whole monitor (split evenly over the detectors, Bonferroni), calibrated
    on the reference by permutation. 0.0005 is half of 'at most one false alarm per 1,000 windows', so that
    a rate measured over a few thousand windows stays under 1/1000 despite its sampling error."""

    action: Literal["alert", "stop"] = "alert"
    """What an alarm does: 'alert' (a drift.alert audit event and a message; the monitor then learns the new
    data as its reference) or 'stop' (ends the run with a one-line reason)."""

    def __post_init__(self) -> None:
        check_constraints(self)
        check_choices(self)
        names = [d.strip() for d in self.detectors.split(",")]
        bad = [d for d in names if d not in DRIFT_DETECTORS]
        if bad or len(set(names)) != len(names):
            raise ConfigError(f"drift.detectors: {self.detectors!r}: give distinct names from "
                              f"{', '.join(DRIFT_DETECTORS)}, separated by commas")

    @property
    def detector_list(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in self.detectors.split(","))


@dataclass
class Energy:
    enabled: bool = True
    """Meter the energy of every step (metrics.jsonl energy_j and energy_source, totals and CO2e in
    summary.json, a section in the report): GPU energy from NVML, CPU package energy from RAPL
    (powercap), else an estimate from CPU time labelled as one."""

    cpu_watts_per_core: Annotated[float, Range(0, 1000, low_open=True)] = 4.0
    """Watts per busy core for the estimate where no CPU counter can be read (energy = process CPU time x
    this figure). Name its source in energy.cpu_watts_source when you change it."""

    cpu_watts_source: str = ("CodeCarbon's figure for a CPU missing from its TDP table (DEFAULT_POWER_PER_CORE "
                             "= 4 W, codecarbon/core/cpu.py); AMD EPYC 7763: 280 W TDP / 64 cores = 4.4 W")
    """Where energy.cpu_watts_per_core comes from (shown with every estimate)."""

    grid_g_per_kwh: Annotated[float, Range(0, 5000)] = 475.0
    """Carbon intensity of the electricity, in g CO2e per kWh, for summary.json's co2e_g."""

    grid_source: str = "world average, IEA Global Energy & CO2 Status Report 2019 (CodeCarbon's default)"
    """Where energy.grid_g_per_kwh comes from (shown with the CO2e figure)."""

    powercap_root: Annotated[str, PathName()] = "/sys/class/powercap"
    """Folder of the RAPL zones (intel-rapl:N with energy_uj, max_energy_range_uj, name)."""

    sample_interval_s: Annotated[float, Range(0.001, 60)] = 0.1
    """Seconds between the power samples integrated on a GPU without NVML's energy counter."""

    def __post_init__(self) -> None:
        check_constraints(self)


@dataclass
class JobConfig:
    job: Job = field(default_factory=Job)
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)
    parallel: Parallel = field(default_factory=Parallel)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    comm: Comm = field(default_factory=Comm)
    memory: Memory = field(default_factory=Memory)
    governance: Governance = field(default_factory=Governance)
    fairness: Fairness = field(default_factory=Fairness)
    energy: Energy = field(default_factory=Energy)
    drift: Drift = field(default_factory=Drift)
