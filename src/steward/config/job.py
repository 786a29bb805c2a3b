"""The typed config tree: one dataclass per section.

The string literal under each field is its documentation; `steward config` reads it from this
file's source, so keep one under every field. Choices are `Literal[...]` types; each section checks
its own values in `__post_init__` (one-line ConfigErrors naming the key). Checks that need another
section or a subsystem (files, the model's shape, the world size) belong to that subsystem:
`steward.train.checks.check_job` runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from steward.config.choices import check_choices, literal_choices
from steward.errors import ConfigError

Flavor = Literal["debug", "tiny", "gpt2-small", "1b", "7b", "13b", "70b", "175b"]
"""The names of steward.models.gpt.FLAVORS (a test keeps the two equal)."""

CompressorName = Literal["none", "fp16", "bf16", "int8", "topk", "powersgd"]
"""The names of steward.comm.compressors.COMPRESSORS (a test keeps the two equal)."""

RematPolicy = Literal["keep", "selective", "full", "offload"]
"""The per-block policies of steward.memory.apply.POLICIES (a test keeps the two equal)."""


def _at_least(key: str, value: float, low: float, note: str = "") -> None:
    if value < low:
        raise ConfigError(f"{key}: must be >= {low}{note}, got {value}")


@dataclass
class Job:
    out: str = ""
    """Run directory. Empty: a new folder runs/<UTC time> under the current directory."""

    name: str = "steward"
    """Human-readable name of the run, used in reports and the audit log."""

    overwrite: bool = False
    """Allow writing into a run directory that already holds a finished run."""


@dataclass
class Model:
    flavor: Flavor = "tiny"
    """Named size of the decoder, from debug (a unit test's) to 175b (GPT-3's shape)."""

    hf_path: str = ""
    """Local directory of a Hugging Face causal LM to train instead of a flavor (no hub download)."""

    vocab_size: int = 0
    """Vocabulary size. 0: taken from the tokenizer."""

    init_std: float = 0.02
    """Standard deviation of the normal initialisation of linear and embedding weights."""

    init_mode: Literal["auto", "rank0", "sharded"] = "auto"
    """How sharded (FSDP2/HSDP) weights are initialised. 'rank0': the full model on rank 0's host, then
    broadcast as shards (exactly the single-process weights); 'sharded': each rank initialises only its
    shards (no full copy anywhere); 'auto': rank0 when the model's fp32 weights fit in 4 GiB."""

    def __post_init__(self) -> None:
        check_choices(self, skip=("flavor",) if self.hf_path else ())  # a Hugging Face model has no flavor
        if self.vocab_size < 0:
            raise ConfigError("model.vocab_size: must be >= 0 (0 takes it from the tokenizer)")


@dataclass
class Data:
    source: str = "stdlib-docs"
    """What to train on: 'stdlib-docs' (built from the installed Python's docstrings), a text file or
    folder, a .jsonl or .parquet file or folder, 'hf:<id>' for a Hugging Face dataset, or a preset:
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

    hf_data_dir: str = ""
    """Local directory laid out like the dataset's hub repository; read instead of downloading."""

    streaming: bool = True
    """Stream Hugging Face datasets instead of downloading them whole."""

    tokenizer: str = "byte"
    """'byte' (256 byte values plus end-of-text) or the path of a Hugging Face tokenizers JSON file."""

    val_fraction: float = 0.05
    """Fraction of documents held out for validation (finite sources)."""

    val_docs: int = 200
    """Number of documents held out for validation (streaming sources)."""

    max_docs: int = 0
    """Read at most this many documents from a finite source (0: all)."""

    shuffle: bool = True
    """Shuffle the packed training sequences (each epoch with its own seed)."""

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction: must be in (0, 1), got {self.val_fraction}")
        if self.val_docs < 1 or self.max_docs < 0:
            raise ConfigError("data.val_docs must be >= 1 and data.max_docs >= 0")
        check_choices(self)


@dataclass
class Train:
    steps: int = 300
    """Number of optimizer steps."""

    batch_size: int = 16
    """Global batch: sequences per optimizer step, summed over all data-parallel ranks."""

    micro_batch_size: int = 0
    """Sequences per forward pass on one rank. 0: the whole per-rank batch (no accumulation)."""

    seq_len: int = 256
    """Tokens per training sequence."""

    lr: float = 3e-3
    """Peak learning rate of AdamW."""

    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine schedule as a fraction of train.lr."""

    warmup_steps: int = 30
    """Linear warmup steps before the cosine decay."""

    weight_decay: float = 0.1
    """AdamW weight decay (not applied to norms and biases)."""

    beta1: float = 0.9
    """AdamW beta1."""

    beta2: float = 0.95
    """AdamW beta2."""

    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""

    seed: int = 1234
    """Seed for initialisation and data order."""

    val_every: int = 50
    """Evaluate validation loss every this many steps (and at step 0 and the end; 0: only at the end)."""

    val_batches: int = 4
    """Global batches of validation data per evaluation."""

    log_every: int = 1
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

    threads: int = 0
    """torch intra-op threads per process on the CPU (0: torch's default divided among local workers)."""

    task: Literal["lm", "classify"] = "lm"
    """'lm' (next-token language modelling) or 'classify' (a binary classification head on the pooled
    decoder representation, trained on fairness.data; see the [fairness] section)."""

    def __post_init__(self) -> None:
        for key, value in (("train.steps", self.steps), ("train.batch_size", self.batch_size),
                           ("train.seq_len", self.seq_len)):
            if value < 1:
                raise ConfigError(f"{key}: must be a positive integer, got {value}")
        _at_least("train.micro_batch_size", self.micro_batch_size, 0)
        if self.lr <= 0:
            raise ConfigError(f"train.lr: must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"train.min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        _at_least("train.warmup_steps", self.warmup_steps, 0)
        _at_least("train.grad_clip", self.grad_clip, 0, " (0 disables clipping)")
        if self.val_every < 0 or self.val_batches < 1 or self.log_every < 1:
            raise ConfigError("train.val_every must be >= 0, train.val_batches and train.log_every >= 1")
        check_choices(self)
        if self.dtype == "float64" and self.mixed_precision == "bf16":
            raise ConfigError("train.dtype: float64 cannot train in bf16; set --train.mixed_precision fp32 (or auto)")
        _at_least("train.threads", self.threads, 0)


@dataclass
class Parallel:
    dp_shard: int = -1
    """Data-parallel degree that shards parameters, gradients and optimizer state (FSDP2).
    -1: whatever world size remains after pp, dp_replicate and tp."""

    dp_replicate: int = 1
    """Data-parallel degree that replicates the model (DDP, or HSDP together with dp_shard > 1)."""

    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Process group backend: 'auto' (nccl on GPU, gloo on CPU), 'nccl' or 'gloo'."""

    tp: int = 1
    """Tensor-parallel degree, with sequence parallel on the norms; must divide the heads and kv heads
    and train.seq_len, and stay inside a node unless parallel.tp_across_nodes."""

    pp: int = 1
    """Pipeline-parallel degree (stages cross nodes; 1F1B schedule). Needs at least pp micro-batches per
    rank: with train.micro_batch_size 0 the per-rank batch is split into pp micro-batches."""

    tp_across_nodes: bool = False
    """Allow tensor-parallel groups larger than the processes of one node (slow: tp talks every layer)."""

    auto: bool = False
    """Let the planner choose tp, pp, dp_replicate, dp_shard, micro-batch size and recompute."""

    cluster: str = ""
    """Cluster the planner assumes with parallel.auto: a preset name or cluster TOML file (`steward
    topology` lists presets). Empty: the running job, discovered (and calibrated if measured)."""

    def __post_init__(self) -> None:
        _at_least("parallel.dp_replicate", self.dp_replicate, 1)
        if self.dp_shard == 0 or self.dp_shard < -1:
            raise ConfigError(f"parallel.dp_shard: must be -1 (the rest of the world) or >= 1, got {self.dp_shard}")
        check_choices(self)
        _at_least("parallel.tp", self.tp, 1)
        _at_least("parallel.pp", self.pp, 1)


@dataclass
class Checkpoint:
    every: int = 0
    """Save a checkpoint every this many steps (0: only at the end)."""

    resume: str = ""
    """'latest' (newest checkpoint in the run directory) or a checkpoint folder to resume from."""

    keep: int = 0
    """Keep only this many newest checkpoints (0: keep all)."""

    enabled: bool = True
    """Save checkpoints at all (the final one included)."""

    allow_changes: str = ""
    """Comma-separated config keys (e.g. 'train.steps,train.lr') that may differ from the run's
    config.toml when resuming in its run directory; the change (old and new values) is recorded in the
    audit log and in config.toml. Any other difference refuses the resume."""

    def __post_init__(self) -> None:
        if self.every < 0 or self.keep < 0:
            raise ConfigError("checkpoint.every and checkpoint.keep must be >= 0")


@dataclass
class Comm:
    compressor: CompressorName = "none"
    """Gradient compressor on the data-parallel all-reduce (none: the uncompressed all-reduce)."""

    rank: int = 4
    """Rank of the PowerSGD approximation."""

    topk_fraction: float = 0.01
    """Fraction of gradient entries top-k sends, in (0, 1]."""

    warmup_steps: int = 0
    """Optimizer steps sent uncompressed before compression starts."""

    hierarchical: bool = False
    """Reduce-scatter inside the node, all-reduce the shard across nodes, all-gather inside the node."""

    ranks_per_node: int = 0
    """Processes per node: consecutive global ranks share a node (for hierarchical all-reduce and the
    intra/inter-node byte split). 0: LOCAL_WORLD_SIZE from the launcher."""

    def __post_init__(self) -> None:
        check_choices(self)
        if self.rank < 1:
            raise ConfigError(f"comm.rank: the PowerSGD rank must be >= 1, got {self.rank}")
        if not 0 < self.topk_fraction <= 1:
            raise ConfigError(f"comm.topk_fraction: must be in (0, 1] (the fraction of entries top-k sends), "
                              f"got {self.topk_fraction}")
        _at_least("comm.warmup_steps", self.warmup_steps, 0)
        _at_least("comm.ranks_per_node", self.ranks_per_node, 0, " (0: LOCAL_WORLD_SIZE)")


@dataclass
class Memory:
    policy: Literal[RematPolicy, "plan"] = "keep"
    """Activation rematerialization: keep, selective, full, offload (every block), or plan (the solver
    chooses per block under memory.budget_gb)."""

    budget_gb: float = 0.0
    """Memory budget per device in GB (10^9 bytes) for memory.policy = plan (0: memory.budget_fraction of the device)."""

    budget_fraction: float = 0.9
    """With budget_gb = 0: this fraction of the device's memory is the budget."""

    profile: Literal["auto", "measured", "analytic"] = "auto"
    """How per-block costs are found: measured (run one block on the device, timed), analytic (fake
    tensors: nothing allocated, time from a roofline of the GPU's figures), or auto (measured when one
    block takes under a quarter of the free device memory, else analytic)."""

    plan_policies: str = "keep,selective,full,offload"
    """Comma-separated policies memory.policy = plan may choose from (offload only on GPUs)."""

    def __post_init__(self) -> None:
        check_choices(self)
        _at_least("memory.budget_gb", self.budget_gb, 0, " (0: memory.budget_fraction of the device)")
        if not 0 < self.budget_fraction <= 1:
            raise ConfigError(f"memory.budget_fraction: must be in (0, 1], got {self.budget_fraction}")
        policies = literal_choices(RematPolicy)
        allowed = [x.strip() for x in self.plan_policies.split(",") if x.strip()]
        if not allowed or any(x not in policies for x in allowed):
            raise ConfigError(f"memory.plan_policies: a comma-separated list of {', '.join(policies)}, "
                              f"got {self.plan_policies!r}")


@dataclass
class Governance:
    enabled: bool = True
    """Record the run in the audit log, evaluate policies and write the report."""

    store: str = ""
    """Audit store: a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...), or 'workspace' for one
    store shared by all runs of the workspace (WORKSPACE/audit.db). Empty: RUN_DIR/governance/audit.db.
    Credentials in the URL are never written (config.toml and the log get it masked, `***`); keep them
    out of it: PGPASSWORD, ~/.pgpass or ?service=NAME, which later commands (audit, report, release) need."""

    workspace: str = ""
    """Workspace folder holding the signing key, published tree heads, roles and risk register.
    Empty: $STEWARD_WORKSPACE, else ~/.steward."""

    policy: str = "default"
    """Policy file (TOML of CEL rules), 'default' for the shipped pack, or 'none'."""

    enforce: bool = True
    """Stop a stage that a policy denies. false: record the denial as a warning and go on."""

    actor: str = ""
    """Who is acting, for the audit log. Empty: $STEWARD_ACTOR, else the OS user."""

    key_path: str = ""
    """Ed25519 private key (PEM, mode 0600) to sign the audit log and provenance with.
    Empty: $STEWARD_SIGNING_KEY, else the workspace key (created on first use)."""

    datasheets: str = ""
    """TOML file of datasheets: a [NAME] table per dataset (source, license, intended_use, known_biases),
    matched by dataset name, source, Hugging Face id or path. Overrides datasheet.toml next to the data."""

    model_card: str = ""
    """TOML file with the model card's prose for the report: intended_use, out_of_scope_use,
    ethical_considerations, caveats, license, owner, description."""

    publish_heads: str = ""
    """Also append every signed tree head to this file (e.g. on a share the store's writers cannot edit);
    WORKSPACE/heads.jsonl always gets them."""

    mlflow_uri: str = ""
    """MLflow tracking URI; when set and mlflow is installed, params, metrics and artifacts are logged there."""


@dataclass
class Fairness:
    enabled: bool = False
    """Evaluate group fairness (subgroup/BPSN/BNSP AUC gaps per family) during and after a train.task =
    classify run: metrics.jsonl, the progress line, the audit log and summary.json get the figures."""

    data: str = "madlibs"
    """Classification data with identities: 'madlibs' (generated, Dixon et al. 2018 style) or a .csv,
    .parquet or local Hugging Face dataset folder in the Jigsaw/Civil Comments identities layout."""

    eval_data: str = ""
    """Held-out identity set for the fairness evaluation. Empty: madlibs' balanced evaluation split, or
    fairness.eval_fraction of fairness.data held out."""

    eval_fraction: float = 0.1
    """Share of fairness.data held out for evaluation when fairness.eval_data is empty (not for madlibs)."""

    text_field: str = ""
    """Text column. Empty: comment_text or text."""

    target_field: str = ""
    """Target column (toxicity fraction in [0, 1], or a 0/1 label; binarised at 0.5). Empty: target,
    toxicity or label."""

    identity_columns: str = ""
    """Identity columns of fairness.data, comma-separated ("col_a,col_b"; annotator fractions in [0, 1]),
    when their names differ from the Jigsaw ones. Empty: the Jigsaw names the data has; a data set with
    none (text and label only) trains without fairness evaluation."""

    madlibs_size: int = 20000
    """Training sentences generated for fairness.data = madlibs. With a few thousand, a model also learns
    each identity term's chance label rate in the neutral sentences (an AUC gap of 0.04-0.06 per family
    with no injected association at all), which would hide the injected one."""

    madlibs_eval_size: int = 3000
    """Evaluation sentences generated for fairness.data = madlibs (identity independent of the label)."""

    madlibs_bias: float = 0.8
    """Injected association in the madlibs training split: the probability that a sentence's identity is
    drawn from the subgroups its label is associated with (0: none)."""

    pooling: Literal["mean", "last"] = "mean"
    """How the classification head pools the decoder's hidden states: 'mean' or 'last' (real tokens)."""

    adversary: Literal["none", "representation", "demographic_parity", "equalized_odds"] = "none"
    """Adversarial debiasing (Zhang et al. 2018): 'none', 'representation' (the adversary sees the pooled
    features), 'demographic_parity' (the logit) or 'equalized_odds' (the logit and the label)."""

    adversary_input: Literal["standardized_logit", "probability"] = "standardized_logit"
    """How the prediction reaches a demographic_parity / equalized_odds adversary: 'standardized_logit'
    (the logit standardised over the global batch, invariant to rescaling the logits) or 'probability'
    (sigmoid(logit), Zhang et al.'s input, which the predictor can escape by squeezing its logits into
    the sigmoid's tail; see steward.fairness.adversary)."""

    alpha: float = 1.0
    """Weight of the adversary term in the predictor update."""

    alpha_schedule: Literal["constant", "sqrt"] = "constant"
    """'constant', or 'sqrt' (alpha * sqrt(step), as Zhang et al. suggest)."""

    adversary_lr: float = 1e-2
    """Learning rate of the adversary's Adam optimizer."""

    adversary_hidden: int = 0
    """Hidden units of the adversary (0: linear)."""

    eval_every: int = 50
    """Evaluate the gaps every this many steps while training (0: only at the end)."""

    eval_examples: int = 1000
    """Examples of the held-out set used by the evaluations during training (0: all); the final one uses all."""

    bootstrap: int = 200
    """Bootstrap resamples for the confidence intervals of the final evaluation (0: none)."""

    max_gap: float = 0.0
    """Threshold on any family's mean absolute AUC gap during training (0: no threshold)."""

    on_gap: Literal["alert", "raise_alpha", "stop"] = "alert"
    """What crossing fairness.max_gap does: 'alert' (audit event and a message), 'raise_alpha' (doubles
    alpha, with an adversary) or 'stop' (ends the run with an error)."""

    def __post_init__(self) -> None:
        check_choices(self)
        if self.on_gap == "raise_alpha" and self.adversary == "none" and self.max_gap > 0:
            raise ConfigError("fairness.on_gap: raise_alpha needs an adversary; set --fairness.adversary or use "
                              "alert/stop")
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"fairness.eval_fraction: must be in (0, 1), got {self.eval_fraction}")
        if self.madlibs_size < 2 or self.madlibs_eval_size < 2:
            raise ConfigError("fairness.madlibs_size and fairness.madlibs_eval_size: must be >= 2")
        if not 0 <= self.madlibs_bias <= 1:
            raise ConfigError(f"fairness.madlibs_bias: must be in [0, 1], got {self.madlibs_bias}")
        if self.alpha < 0 or self.adversary_lr <= 0 or self.adversary_hidden < 0:
            raise ConfigError("fairness.alpha must be >= 0, fairness.adversary_lr > 0 and "
                              "fairness.adversary_hidden >= 0")
        if self.eval_every < 0 or self.eval_examples < 0 or self.bootstrap < 0 or self.max_gap < 0:
            raise ConfigError("fairness.eval_every, fairness.eval_examples, fairness.bootstrap and "
                              "fairness.max_gap must be >= 0")
        if self.identity_columns and not all(c.strip() for c in self.identity_columns.split(",")):
            raise ConfigError(f"fairness.identity_columns: {self.identity_columns!r} has an empty name; give "
                              "column names separated by commas, e.g. 'col_a,col_b'")


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
