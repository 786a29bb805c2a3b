"""Data: document sources, tokenizers, packing into sequences, and sharded loading per data-parallel rank."""

from steward.data.corpus import Corpus, stdlib_corpus
from steward.data.errors import DataError
from steward.data.loader import (
    DataModule,
    PackedTrainData,
    StreamTrainData,
    build_data,
    check_batch_memory,
    pack_windows,
    split_documents,
    tokenize_documents,
)
from steward.data.presets import PRESETS
from steward.data.sources import Source, open_source, read_documents
from steward.data.tokenizer import ByteTokenizer, HFTokenizer, Tokenizer, build_tokenizer, train_bpe

__all__ = [
    "PRESETS",
    "ByteTokenizer",
    "Corpus",
    "DataError",
    "DataModule",
    "HFTokenizer",
    "PackedTrainData",
    "Source",
    "StreamTrainData",
    "Tokenizer",
    "build_data",
    "build_tokenizer",
    "check_batch_memory",
    "open_source",
    "pack_windows",
    "read_documents",
    "split_documents",
    "stdlib_corpus",
    "tokenize_documents",
    "train_bpe",
]
