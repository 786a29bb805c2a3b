"""A Hugging Face causal LM behind the interface of our Transformer.

Only local directories are read (`local_files_only=True`): a training job never downloads
weights behind the user's back. transformers is an optional dependency (`steward[hf]`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from steward.errors import ConfigError


class HFCausalLM(nn.Module):
    """Adapter: `forward(tokens) -> logits`, `hidden_states`, `blocks()`, `init_weights()`, `vocab_size`,
    `flops_per_token(seq_len)`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config
        self.vocab_size: int = model.config.vocab_size

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, vocab_size] (causal mask built by the HF model)."""
        return self.model(input_ids=tokens, use_cache=False).logits

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> the backbone's final (normed) hidden states [B, T, hidden_size]."""
        return self.model.base_model(input_ids=tokens, use_cache=False).last_hidden_state

    def blocks(self) -> list[nn.Module]:
        """The decoder layers in order: the backbone's ModuleList of num_hidden_layers entries."""
        n = self.config.num_hidden_layers
        for module in self.model.base_model.modules():
            if isinstance(module, nn.ModuleList) and len(module) == n:
                return list(module)
        raise ConfigError(f"no list of {n} decoder layers found in {type(self.model).__name__}")

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token, as `hf_flops_per_token` of this model's config."""
        return hf_flops_per_token(self.config, seq_len)

    def init_weights(self, buffer_device: torch.device | str | None = None) -> None:
        """No-op: the weights are pretrained and were loaded by `from_pretrained`.

        Present so the trainer can treat both model kinds alike; an HF model is therefore not
        built on the meta device and not re-initialised after sharding.
        """


def load_hf_causal_lm(path: str) -> HFCausalLM:
    """Load the causal LM saved in the local directory `path` (float32), wrapped in HFCausalLM."""
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model.hf_path: {path!r} is not a Hugging Face model folder (no config.json)")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        raise ConfigError(
            f"model.hf_path: loading {path!r} needs transformers; install steward[hf]"
        ) from e
    try:
        # torch_dtype (not dtype) is understood by every transformers >= 4.44; float32 master
        # weights, mixed precision is the trainer's business
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, torch_dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"model.hf_path: cannot load a causal LM from {path!r}: {e}") from e
    return HFCausalLM(model)


def hf_num_params(model: nn.Module) -> int:
    """Parameters of an HF model or HFCausalLM; tied weights are counted once."""
    return sum(p.numel() for p in model.parameters())


def hf_flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token of the model `config` describes; convention of `gpt.flops_per_token`.

    6 * N (N: parameters other than the input embedding, the output head counted even when tied
    to the embedding, since its matmul runs either way) + 12 * num_hidden_layers * hidden_size *
    seq_len. N is exact: the model is built on the meta device, which allocates nothing.
    """
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    non_embedding = hf_num_params(model) - embedding.numel() + (head.numel() if head is embedding else 0)
    return 6.0 * non_embedding + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len
