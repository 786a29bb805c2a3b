"""Tokenizers: the built-in byte tokenizer and Hugging Face `tokenizers` JSON files.

`build_tokenizer("byte")`: ids 0..255 are the UTF-8 bytes, 256 is end-of-text (vocab 257); it
needs no file and round-trips any text. `build_tokenizer("path/tokenizer.json")`: any tokenizer
saved by the `tokenizers` library, e.g. one trained with `train_bpe` (`steward tokenizer train`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from steward.data.errors import DataError
from steward.io import atomic_write_text

EOS_TOKENS = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>")
"""Special tokens taken as end-of-text, first match wins."""

BPE_EOS = "<|endoftext|>"

MIN_BPE_VOCAB = 257
"""Smallest vocabulary `train_bpe` accepts: the 256 byte symbols and <|endoftext|>."""


class Tokenizer:
    """What the data pipeline needs from a tokenizer."""

    name: str
    vocab_size: int
    eos_id: int
    fingerprint: str
    """SHA-256 of the tokenizer definition, hex."""

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "vocab_size": self.vocab_size, "eos_id": self.eos_id,
                "fingerprint": self.fingerprint}


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes plus one end-of-text id. Decoding renders end-of-text as `<|endoftext|>`."""

    def __init__(self) -> None:
        self.name = "byte"
        self.vocab_size = 257
        self.eos_id = 256
        self.fingerprint = hashlib.sha256(b"steward byte tokenizer: utf-8 bytes 0-255, eos 256").hexdigest()

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        parts: list[str] = []
        run = bytearray()
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                parts.append(run.decode("utf-8", errors="replace"))
                parts.append(BPE_EOS)
                run = bytearray()
            elif 0 <= i < 256:
                run.append(i)
            else:
                raise ValueError(f"byte tokenizer: id {i} is outside 0..256")
        parts.append(run.decode("utf-8", errors="replace"))
        return "".join(parts)


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` JSON file."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer as _Tok

        p = Path(path)
        if not p.is_file():
            raise DataError(f"data.tokenizer: no such file {path!r}; give 'byte' or a tokenizer JSON file")
        raw = p.read_bytes()
        try:
            self._tok = _Tok.from_str(raw.decode("utf-8"))
        except Exception as e:  # the library raises bare Exceptions for bad files
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"data.tokenizer: {path!r} is not a tokenizers JSON file ({first})") from None
        eos = next((t for t in EOS_TOKENS if self._tok.token_to_id(t) is not None), None)
        if eos is None:
            raise DataError(
                f"data.tokenizer: {path!r} has no end-of-text token (one of {', '.join(EOS_TOKENS)}); "
                "add one as a special token or train one with `steward tokenizer train`"
            )
        self.name = str(p)
        self.path = str(p)
        self.eos_token = eos
        self.eos_id = int(self._tok.token_to_id(eos))
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))
        self.fingerprint = hashlib.sha256(raw).hexdigest()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


def build_tokenizer(spec: str) -> Tokenizer:
    """`'byte'` or the path of a tokenizers JSON file; a bad spec raises ValueError naming data.tokenizer."""
    if spec == "byte":
        return ByteTokenizer()
    return HFTokenizer(spec)


def train_bpe(documents: Iterable[str], vocab_size: int, out_path: str | os.PathLike) -> Path:
    """Train a byte-level BPE (GPT-2 style pre-tokenization, `<|endoftext|>` special token) on
    `documents` and write it as a tokenizers JSON file, atomically. Returns the path."""
    from tokenizers import Tokenizer as _Tok
    from tokenizers import decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < MIN_BPE_VOCAB:
        raise DataError(f"vocab size {vocab_size} is too small: byte-level BPE needs at least {MIN_BPE_VOCAB}")
    tok = _Tok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[BPE_EOS], initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(documents, trainer=trainer)
    out = Path(out_path)
    atomic_write_text(out, tok.to_str())
    return out
