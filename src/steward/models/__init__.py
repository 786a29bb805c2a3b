"""Model definitions: the Llama-style decoder (`gpt`) and the Hugging Face adapter (`hf`).

No parallel code lives here: `steward.parallel` shards these modules by name.
"""

from steward.models.gpt import (
    FLAVORS,
    Attention,
    FeedForward,
    ModelArgs,
    RMSNorm,
    Transformer,
    TransformerBlock,
    build_model,
    build_model_args,
    flops_per_token,
    num_params,
)
from steward.models.hf import HFCausalLM, hf_flops_per_token, hf_num_params, load_hf_causal_lm

__all__ = [
    "FLAVORS",
    "Attention",
    "FeedForward",
    "HFCausalLM",
    "ModelArgs",
    "RMSNorm",
    "Transformer",
    "TransformerBlock",
    "build_model",
    "build_model_args",
    "flops_per_token",
    "hf_flops_per_token",
    "hf_num_params",
    "load_hf_causal_lm",
    "num_params",
]
