"""`steward tokenizer train`: train a byte-level BPE tokenizer on a data source.

Trains on the documents the trainer would train on: a finite source without its validation
documents (the same held-out split as `steward train`), a stream after its first data.val_docs
documents, up to data.max_docs documents (streams: `STREAM_DOCS` when data.max_docs is 0); with
`--source fairness`, the training split of fairness.data (what a classify run trains on).
Any data.* key can be set with --data.key VALUE; --source and --field are shortcuts.
"""

from __future__ import annotations

import json
import sys
import time

STREAM_DOCS = 100_000
"""Documents read from a stream when data.max_docs is 0."""


def register(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a tokenizer for data.tokenizer")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train a byte-level BPE tokenizer on a data source and write it as tokenizers JSON",
        description="Train a byte-level BPE tokenizer (with <|endoftext|>) on the training documents of a "
        "source. Any data.* key can be set with --data.key VALUE (see `steward config`).",
    )
    t.add_argument("--source", required=True, help="what to train on, as data.source: stdlib-docs, a file or "
                   "folder, hf:<id>, or a preset (c4, c4-realnewslike, wikitext-103, bookcorpus); or 'fairness': the "
                   "training split of fairness.data of a train.task classify run (give that run's --fairness.* and "
                   "--train.seed: madlibs' split depends on the seed; a folder named fairness: ./fairness)")
    t.add_argument("--field", help="record field holding the text (data.field; default 'text')")
    t.add_argument("--vocab-size", type=int, default=4096, metavar="N", help="vocabulary size (default 4096)")
    t.add_argument("--out", required=True, metavar="FILE.json", help="where to write the tokenizer")
    t.add_argument("--config", help="TOML config file whose [data] section to use (with --source "
                   "fairness also [fairness] and [train])")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_train, accepts_overrides=True)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def run_train(args) -> int:
    import itertools

    from steward.config import load_config
    from steward.data import build_tokenizer, open_source, read_documents, split_documents, train_bpe
    from steward.data.corpus import documents_fingerprint
    from steward.data.tokenizer import MIN_BPE_VOCAB
    from steward.errors import UserError
    from steward.train.checks import check_job

    if args.vocab_size < MIN_BPE_VOCAB:
        raise UserError(f"--vocab-size: must be at least {MIN_BPE_VOCAB} (256 bytes + <|endoftext|>), got {args.vocab_size}")
    overrides = list(args.overrides)
    if args.source == "fairness":
        if args.field:
            raise UserError("--field: not used with --source fairness; name the text column with --fairness.text_field")
        overrides[:0] = ["--train.task", "classify"]  # the fairness.* keys belong to classify runs
    cfg = load_config(args.config, overrides)
    check_job(cfg)
    data = cfg.data
    data.source = args.source
    if args.field:
        data.field = args.field

    start = time.perf_counter()
    counts = {"documents": 0, "bytes": 0}

    def counted(docs):
        for doc in docs:
            counts["documents"] += 1
            counts["bytes"] += len(doc.encode("utf-8"))
            yield doc

    source = None if args.source == "fairness" else open_source(data)
    if source is None:
        from steward.classify.data import identity_data_fingerprint, train_split_tokenizer

        path, train = train_split_tokenizer(cfg, args.vocab_size, args.out)
        counts.update(documents=len(train), bytes=sum(len(t.encode("utf-8")) for t in train.texts))
        data_fingerprint = identity_data_fingerprint(train)
    elif source.finite:
        docs = read_documents(source, data.max_docs)
        train_idx, _ = split_documents(docs, data.val_fraction)
        docs = [docs[i] for i in train_idx]
        data_fingerprint = documents_fingerprint(docs)
        path = train_bpe(counted(docs), args.vocab_size, args.out)
    else:
        limit = data.max_docs or STREAM_DOCS
        stream = itertools.islice(source.documents(), data.val_docs, data.val_docs + limit)
        path = train_bpe(counted(stream), args.vocab_size, args.out)
        data_fingerprint = source.fingerprint()
        if counts["documents"] == 0:
            raise UserError(f"--source: {args.source!r} has no documents after the first data.val_docs={data.val_docs}")
    tok = build_tokenizer(str(path))
    result = {
        "out": str(path),
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id,
        "fingerprint": tok.fingerprint,
        "source": args.source,
        "documents": counts["documents"],
        "bytes": counts["bytes"],
        "data_fingerprint": data_fingerprint,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"wrote {path}: vocabulary {tok.vocab_size} (end-of-text id {tok.eos_id}), trained on "
            f"{counts['documents']} documents ({counts['bytes'] / 1e6:.1f} MB) of {args.source} "
            f"in {result['seconds']:.1f}s",
        )
        print(f"use it with --data.tokenizer {path}", file=sys.stderr)
    return 0
