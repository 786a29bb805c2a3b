"""The typed config tree: one dataclass per section.

The string literal under each field is its documentation; `steward config` reads it from this
file's source, so keep one under every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    flavor: str = "tiny"
    """Named size of the decoder: debug, tiny, gpt2-small, 1b, 7b, 13b, 70b, 175b."""

    hf_path: str = ""
    """Local directory of a Hugging Face causal LM to train instead of a flavor (no hub download)."""

    vocab_size: int = 0
    """Vocabulary size. 0: taken from the tokenizer."""

    init_std: float = 0.02
    """Standard deviation of the normal initialisation of linear and embedding weights."""

    init_mode: str = "auto"
    """How sharded (FSDP2/HSDP) weights are initialised. 'rank0': the full model on rank 0's host, then
    broadcast as shards (exactly the single-process weights); 'sharded': each rank initialises only its
    shards (no full copy anywhere); 'auto': rank0 when the model's fp32 weights fit in 4 GiB."""


@dataclass
class Data:
    source: str = "stdlib-docs"
    """What to train on: 'stdlib-docs' (built from the installed Python's docstrings), a text file or
    folder, a .jsonl or .parquet file or folder, 'hf:<id>' for a Hugging Face dataset, or a preset:
    c4, c4-realnewslike, wikitext-103, bookcorpus."""

    field: str = "text"
    """Record field that holds the text, for JSONL, Parquet and Hugging Face sources."""

    text_split: str = "paragraph"
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

    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."""

    mixed_precision: str = "auto"
    """'auto' (bf16 autocast on GPU, fp32 on CPU), 'bf16' or 'fp32'."""

    compile: bool = False
    """Compile each transformer block with torch.compile."""

    threads: int = 0
    """torch intra-op threads per process on the CPU (0: torch's default divided among local workers)."""


@dataclass
class Parallel:
    dp_shard: int = -1
    """Data-parallel degree that shards parameters, gradients and optimizer state (FSDP2).
    -1: whatever world size remains after dp_replicate."""

    dp_replicate: int = 1
    """Data-parallel degree that replicates the model (DDP, or HSDP together with dp_shard > 1)."""

    backend: str = "auto"
    """Process group backend: 'auto' (nccl on GPU, gloo on CPU), 'nccl' or 'gloo'."""

    tp: int = 1
    """Tensor-parallel degree (kept inside a node)."""

    pp: int = 1
    """Pipeline-parallel degree (stages cross nodes)."""

    auto: bool = False
    """Let the planner choose tp, pp, dp_replicate, dp_shard, micro-batch size and recompute."""


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


@dataclass
class Comm:
    compressor: str = "none"
    """Gradient compressor on the data-parallel all-reduce: none, fp16, bf16, int8, topk, powersgd."""

    rank: int = 4
    """Rank of the PowerSGD approximation."""

    topk_fraction: float = 0.01
    """Fraction of gradient entries top-k sends, in (0, 1]."""

    warmup_steps: int = 0
    """Optimizer steps sent uncompressed before compression starts."""

    hierarchical: bool = False
    """Reduce-scatter inside the node, all-reduce the shard across nodes, all-gather inside the node."""


@dataclass
class Memory:
    policy: str = "keep"
    """Activation rematerialization: keep, selective, full, offload (every block), or plan (the solver
    chooses per block under memory.budget_gb)."""

    budget_gb: float = 0.0
    """Memory budget per device in GB for memory.policy = plan (0: memory.budget_fraction of the device)."""

    budget_fraction: float = 0.9
    """With budget_gb = 0: this fraction of the device's memory is the budget."""


@dataclass
class Governance:
    enabled: bool = True
    """Record the run in the audit log, evaluate policies and write the report."""

    store: str = ""
    """Audit store: a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...). Empty: RUN_DIR/governance/audit.db."""

    workspace: str = ""
    """Workspace folder holding the signing key, published tree heads and risk register. Empty: ~/.steward."""

    policy: str = "default"
    """Policy file (TOML of CEL rules), 'default' for the shipped pack, or 'none'."""

    enforce: bool = True
    """Stop a stage that a policy denies. false: record the denial as a warning and go on."""

    actor: str = ""
    """Who is acting, for the audit log. Empty: the OS user."""

    key_path: str = ""
    """Ed25519 private key (PEM) to sign tree heads with. Empty: $STEWARD_SIGNING_KEY or the workspace key."""

    mlflow_uri: str = ""
    """MLflow tracking URI; when set and mlflow is installed, params, metrics and artifacts are logged there."""


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
