"""The Steward decoder: a Llama-style transformer in one file.

RMSNorm, rotary position embeddings, grouped-query attention through
`scaled_dot_product_attention`, SwiGLU feed-forward, untied output head.

Built on the meta device, sharded by `steward.parallel`, then `to_empty()` and
`init_weights()` (torchtitan's order). The model never knows it is distributed: parallel
code shards the plain bias-free Linears by name (wq/wk/wv/w1/w3 colwise, wo/w2 rowwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelArgs:
    dim: int = 256
    """Width of the residual stream."""

    n_layers: int = 4
    """Number of transformer blocks."""

    n_heads: int = 8
    """Number of query heads; dim must be divisible by it."""

    n_kv_heads: int = 0
    """Number of key/value heads (grouped-query attention); 0: n_heads (plain multi-head attention)."""

    vocab_size: int = 257
    """Vocabulary size. A flavor's value is a default: the trainer replaces it with the tokenizer's."""

    ffn_hidden: int = 0
    """Hidden size of the SwiGLU feed-forward; 0: the Llama rule from ffn_dim_multiplier and multiple_of."""

    ffn_dim_multiplier: float = 1.0
    """Llama rule: scale applied to 2/3 * 4 * dim (1.3 for Llama-2 70B)."""

    multiple_of: int = 256
    """Llama rule: the hidden size is rounded up to a multiple of this (hardware-friendly shapes)."""

    norm_eps: float = 1e-5
    """Epsilon of the RMSNorms."""

    rope_theta: float = 10000.0
    """Base of the rotary position embedding frequencies."""

    max_seq_len: int = 2048
    """Longest sequence the rotary table covers."""

    init_std: float = 0.02
    """Standard deviation of the normal initialisation of linear and embedding weights."""

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "vocab_size", "max_seq_len", "multiple_of"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelArgs.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ValueError(f"ModelArgs.dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.head_dim % 2:
            raise ValueError(f"ModelArgs: head_dim dim/n_heads ({self.head_dim}) must be even for RoPE")
        if self.n_kv_heads < 0 or self.n_heads % self.kv_heads:
            raise ValueError(
                f"ModelArgs.n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})"
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        """n_kv_heads with 0 resolved to n_heads."""
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_dim(self) -> int:
        """The SwiGLU hidden size: ffn_hidden, or Llama's rule (model.py of meta-llama/llama)."""
        if self.ffn_hidden:
            return self.ffn_hidden
        # 2/3 of GPT's 4*dim keeps three SwiGLU matrices at the cost of two GELU ones
        hidden = int(self.ffn_dim_multiplier * int(2 * 4 * self.dim / 3))
        return self.multiple_of * math.ceil(hidden / self.multiple_of)


# Vocabulary sizes are defaults (the trainer substitutes the tokenizer's). 50304 is GPT-2's
# 50257 padded to a multiple of 64, as nanoGPT does, for faster matmuls.
FLAVORS: dict[str, ModelArgs] = {
    # Small enough for unit tests; GQA on (2 query heads per kv head) so tests exercise it.
    "debug": ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=257, multiple_of=32,
                       max_seq_len=256),
    # The default CPU run: byte-level vocab, ~300 steps of 16 x 256 tokens in 1-2 minutes on 2 cores.
    "tiny": ModelArgs(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=257, multiple_of=64,
                      max_seq_len=256),
    # GPT-2 small (Radford et al. 2019; nanoGPT): dim 768, 12 layers, 12 heads, context 1024,
    # SwiGLU at GPT-2's MLP parameter count (2048 = 2/3 * 3072).
    "gpt2-small": ModelArgs(dim=768, n_layers=12, n_heads=12, vocab_size=50304, max_seq_len=1024),
    # TinyLlama-1.1B (Zhang et al. 2024): Llama-2 architecture, dim 2048, 22 layers, 32 heads,
    # 4 kv heads, ffn 5632, vocab 32000.
    "1b": ModelArgs(dim=2048, n_layers=22, n_heads=32, n_kv_heads=4, vocab_size=32000, max_seq_len=2048),
    # Llama 2 (Touvron et al. 2023, table 1 and meta-llama/llama params.json): 7B ffn 11008,
    # 13B ffn 13824, 70B GQA with 8 kv heads, ffn_dim_multiplier 1.3, multiple_of 4096 -> 28672.
    "7b": ModelArgs(dim=4096, n_layers=32, n_heads=32, vocab_size=32000, max_seq_len=4096),
    "13b": ModelArgs(dim=5120, n_layers=40, n_heads=40, vocab_size=32000, max_seq_len=4096),
    "70b": ModelArgs(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, vocab_size=32000,
                     ffn_dim_multiplier=1.3, multiple_of=4096, max_seq_len=4096),
    # GPT-3 175B (Brown et al. 2020, table 2.1): dim 12288, 96 layers, 96 heads, context 2048.
    # GPT-3's 4*dim GELU MLP becomes a SwiGLU of hidden 2/3 * 4 * dim = 32768 (same parameters).
    "175b": ModelArgs(dim=12288, n_layers=96, n_heads=96, vocab_size=50304, ffn_hidden=32768,
                      max_seq_len=2048),
}


def build_model_args(flavor: str, vocab_size: int = 0, max_seq_len: int = 0) -> ModelArgs:
    """The flavor's ModelArgs, with vocab_size / max_seq_len replaced where non-zero."""
    if flavor not in FLAVORS:
        raise ValueError(f"model.flavor: unknown flavor {flavor!r}; choose one of {', '.join(FLAVORS)}")
    args = FLAVORS[flavor]
    return replace(args, vocab_size=vocab_size or args.vocab_size, max_seq_len=max_seq_len or args.max_seq_len)


def block_params(args: ModelArgs) -> int:
    """Parameters of one transformer block."""
    d, hd = args.dim, args.head_dim
    attention = d * args.n_heads * hd * 2 + d * args.kv_heads * hd * 2  # wq, wo; wk, wv
    feed_forward = 3 * d * args.ffn_dim  # w1, w2, w3
    return attention + feed_forward + 2 * d  # + attention_norm, ffn_norm


def num_params(args: ModelArgs, include_embedding: bool = True) -> int:
    """Exact parameter count by formula (no model is built).

    "Embedding" is the input token embedding only; the untied output head is a matmul per
    token and counts as a non-embedding parameter (the convention of `flops_per_token`).
    """
    d = args.dim
    total = args.n_layers * block_params(args) + d + d * args.vocab_size  # + final norm, output head
    return total + (args.vocab_size * d if include_embedding else 0)


def flops_per_token(args: ModelArgs, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), PaLM appendix B convention.

    6 * N, N the non-embedding parameters including the output head (2 FLOPs per
    multiply-add forward, twice that backward), plus 12 * n_layers * dim * seq_len for the
    attention scores QK^T and the weighted values, counted without the causal mask's saving.
    Recomputation is not included: this is the "model FLOPs" of MFU.
    """
    return 6.0 * num_params(args, include_embedding=False) + 12.0 * args.n_layers * args.dim * seq_len


def precompute_rope(head_dim: int, max_seq_len: int, theta: float, device=None) -> torch.Tensor:
    """cos and sin of the rotary angles: [max_seq_len, head_dim // 2, 2], float32."""
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, device=device, dtype=torch.float32), freqs)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """`x` in at least float32: bf16/fp16 are widened, float32 and float64 are left as they are (a
    float64 model, `train.dtype = "float64"`, keeps its precision where a bf16 one is widened)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def apply_rope(x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x [B, T, H, head_dim] by the angles of positions 0..T-1."""
    # (cos, sin) pairs read as complex numbers: one complex multiply is the rotation, and is
    # several times faster than the real-valued form. The buffer stays real so that
    # `model.to(dtype)` cannot drop an imaginary part.
    xr = upcast(x)
    xc = torch.view_as_complex(xr.unflatten(-1, (-1, 2)))
    cis = torch.view_as_complex(rope[: x.shape[1]].to(xr.dtype))[:, None]  # [T, 1, head_dim/2]
    return torch.view_as_real(xc * cis).flatten(-2).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in float32 (or float64): the mean of squares loses too much in bf16
        return F.rms_norm(upcast(x), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.head_dim = args.head_dim
        self.n_rep = args.n_heads // args.kv_heads  # query heads sharing one kv head
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        # -1, not n_heads: under tensor parallelism each rank holds a slice of the heads
        q = apply_rope(self.wq(x).view(B, T, -1, self.head_dim), rope)
        k = apply_rope(self.wk(x).view(B, T, -1, self.head_dim), rope)
        v = self.wv(x).view(B, T, -1, self.head_dim)
        k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)
        out = self.attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.wo(out.transpose(1, 2).reshape(B, T, -1))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of q, k, v [B, H, T, head_dim] (fused SDPA). The one replaceable step: a
        caller may set an instance attribute `attend` (an eager version that keeps its probabilities,
        say) and delete it to restore this."""
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, T, kv_heads, hd] -> [B, T, kv_heads * n_rep, hd]; query head h reads kv head h // n_rep."""
    if n_rep == 1:
        return x
    B, T, H, D = x.shape
    return x[:, :, :, None, :].expand(B, T, H, n_rep, D).reshape(B, T, H * n_rep, D)


class FeedForward(nn.Module):
    """SwiGLU (Shazeer 2020): w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.attention = Attention(args)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)
        self.feed_forward = FeedForward(args.dim, args.ffn_dim)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), rope)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.vocab_size = args.vocab_size
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        # a dict keyed "0", "1", ... so pipelining can delete blocks and keep the others' names
        self.layers = nn.ModuleDict({str(i): TransformerBlock(args) for i in range(args.n_layers)})
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        # not persistent: derived from args, so checkpoints need not carry it; free on meta,
        # recomputed for real by init_weights
        self.register_buffer("rope", precompute_rope(args.head_dim, args.max_seq_len, args.rope_theta),
                             persistent=False)

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> final-norm output [B, T, dim], before the head."""
        # dim 1, not -1: a later pipeline stage receives hidden states [B, T, dim]
        if tokens.shape[1] > self.rope.shape[0]:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds max_seq_len {self.rope.shape[0]}")
        # a pipeline stage may have dropped the embedding (it then receives hidden states) or the norm
        h = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        for layer in self.layers.values():
            h = layer(h, self.rope)
        return self.norm(h) if self.norm is not None else h

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] (int64) -> logits [B, T, vocab_size]."""
        h = self.hidden_states(tokens)
        return self.output(h) if self.output is not None else h

    def blocks(self) -> list[nn.Module]:
        """The transformer blocks in order (what FSDP, checkpointing and pipelining wrap)."""
        return list(self.layers.values())

    def init_buffers(self, device: torch.device | str | None = None) -> None:
        """Recompute the non-persistent buffers (the rope table), e.g. after `to_empty()` when the
        weights come from a checkpoint instead of `init_weights`."""
        args = self.args
        self.rope = precompute_rope(args.head_dim, args.max_seq_len, args.rope_theta, device=device or self.rope.device)

    def init_weights(self, buffer_device: torch.device | str | None = None) -> None:
        """Initialise every parameter and the rope table in place, deterministically given the RNG.

        Works after `to_empty()` from meta and on FSDP2/TP DTensor parameters (nn.init acts on
        them directly). Weights: normal(0, init_std); the residual output projections wo and w2
        are scaled by 1/sqrt(2 * n_layers) so the residual stream's variance does not grow with
        depth (GPT-2); norms: ones.
        """
        args = self.args
        self.init_buffers(buffer_device)
        std, out_std = args.init_std, args.init_std / math.sqrt(2 * args.n_layers)
        if self.tok_embeddings is not None:
            nn.init.normal_(self.tok_embeddings.weight, mean=0.0, std=std)
        for layer in self.layers.values():
            for linear in (layer.attention.wq, layer.attention.wk, layer.attention.wv,
                           layer.feed_forward.w1, layer.feed_forward.w3):
                nn.init.normal_(linear.weight, mean=0.0, std=std)
            nn.init.normal_(layer.attention.wo.weight, mean=0.0, std=out_std)
            nn.init.normal_(layer.feed_forward.w2.weight, mean=0.0, std=out_std)
            layer.attention_norm.reset_parameters()
            layer.ffn_norm.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        if self.output is not None:
            nn.init.normal_(self.output.weight, mean=0.0, std=std)


def build_model(args: ModelArgs, device: torch.device | str = "meta", dtype: torch.dtype | None = None) -> Transformer:
    """Build the Transformer on `device`; on the meta device (the default) nothing is allocated.

    On a real device the weights are initialised at once, exactly as the meta path would (the
    model is built on meta, then `to_empty()` and `init_weights()`), so a seed gives the same
    weights either way; on meta, call those two after sharding.
    """
    with torch.device("meta"):
        model = Transformer(args)
    if dtype is not None:
        model.to(dtype)  # on meta: only the dtype changes, so a seed draws the same way on every path
    if torch.device(device).type != "meta":
        model.to_empty(device=device)
        model.init_weights()
    return model
