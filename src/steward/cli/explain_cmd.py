"""`steward explain RUN_DIR --text "..."`: the prediction, the first rule that holds and agrees with it (a
rule that contradicts the model is never shown) and a token heat line (and HTML with --html). `steward explain RUN_DIR --global --data FILE`: fit the rule list on the data, measure
faithfulness on a held-out share, and write RUN_DIR/explain/{rules.json,rules.txt,faithfulness.json} (on
a governed run: attested in provenance.json and recorded in the audit log)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("explain", help="explain a trained run's predictions: relevance, rules, faithfulness")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `steward train` run directory (newest checkpoint is used)")
    p.add_argument("--text", help="explain the prediction on this text (a language model's next token, a "
                                  "classifier's label)")
    p.add_argument("--global", dest="global_", action="store_true",
                   help="fit the global rule list on --data and write the faithfulness table")
    p.add_argument("--data", help="with --global: a .txt file (one text per line), .jsonl (field 'text', optional "
                                  "'label') or .csv (column 'text', optional 'label'); with labels, the rules are "
                                  "also checked against them on the held-out texts")
    p.add_argument("--method", default="auto",
                   help="relevance method: auto, attention, rollout, grad_attention, grad_cam, integrated_gradients "
                        "(auto: with --global, the one most comprehensive on the fitting texts; with --text, the "
                        "one the rules file was fitted with, else grad_attention)")
    p.add_argument("--search", choices=("beam", "cover"), default="beam",
                   help="with --global: beam (conjunctions of word conditions, each rule tested against chance) "
                        "or cover (the covering learner over words, bigrams and attention facts)")
    p.add_argument("--rules", help="rules JSON to apply with --text (default: RUN_DIR/explain/rules.json if present)")
    p.add_argument("--html", help="with --text: also write the highlighted words to this HTML file")
    p.add_argument("--samples", type=int, default=32,
                   help="with --text: masked samples for the firing rule's Anchors precision (resolution 1/N)")
    p.add_argument("--max-rules", type=int, default=30, help="with --global: most rules, the default line included")
    p.add_argument("--held-out", type=float, default=0.2, help="with --global: share of --data kept for faithfulness")
    p.add_argument("--limit", type=int, default=2000, help="with --global: use at most this many texts")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: one short sequence gains nothing from more, and a second "
                        "thread that spins on a busy machine made --text 30x slower in our measurements)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _heat(words: list[dict], color: bool) -> str:
    if not color:
        return " ".join(f"{w['word']}[{w['share']:.2f}]" for w in words)
    # 256-colour backgrounds from white (no relevance) to deep red (all of it)
    ramp = [231, 224, 217, 210, 203, 196, 160]
    return " ".join(f"\x1b[48;5;{ramp[min(len(ramp) - 1, int(w['share'] * 2 * len(ramp)))]}m\x1b[30m{w['word']}\x1b[0m"
                    for w in words)


def _anchor(rule: dict) -> str:
    prec = "n/a" if rule["anchor_precision"] is None else f"{rule['anchor_precision']:.2f}"
    return f"anchor precision {prec} over {rule['anchor_samples']} masked samples"


def _html(result: dict) -> str:
    from steward.htmlpage import esc, page

    spans = " ".join(
        f'<span title="{w["relevance"]:.4g}" style="background: rgba(220,40,40,{min(1.0, 2 * w["share"]):.3f})">'
        f'{esc(w["word"])}</span>' for w in result["words"])
    rule = (result["rule"] or {}).get("sentence", result.get("no_rule", "")) if "rule" in result else ""
    return page("steward explain", [
        f"<p>prediction: <b>{esc(repr(result['prediction']))}</b> (p = {result['probability']:.3f}), "
        f"relevance: {esc(result['method'])}</p>",
        f"<p style='font-size:1.3em;line-height:1.8'>{spans}</p>",
        f"<p>{esc(rule)}</p>",
    ], css="body{font-family:sans-serif}") + "\n"


def _read_texts(path: str, limit: int) -> tuple[list[str], list[str] | None]:
    """The texts of --data (.txt: one per line; .jsonl: field 'text'; .csv: column 'text') and their
    labels where the file gives them (.jsonl: field 'label' on every line; .csv: a 'label' column), else
    None."""
    from steward.explain import ExplainError
    from steward.io import JsonlError, read_jsonl

    p = Path(path)
    if not p.is_file():
        raise ExplainError(f"--data: no such file {path!r} (give a .txt with one text per line, a .jsonl or a .csv)")
    if p.suffix == ".csv":
        return _read_csv(p, limit)
    jsonl = p.suffix == ".jsonl"
    bad = f"--data {path}: line {{}} is not a JSON object with a 'text' field"
    rows = read_jsonl(p) if jsonl else (
        (n, line) for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if line.strip())
    texts, labels = [], []
    try:
        for n, row in rows:
            if jsonl and not (isinstance(row, dict) and "text" in row):
                raise ExplainError(bad.format(n))
            texts.append(str(row["text"]) if jsonl else row)
            labels.append(str(row["label"]) if jsonl and "label" in row else None)
            if len(texts) >= limit:
                break
    except JsonlError as e:
        raise ExplainError(bad.format(e.lineno)) from None
    return _checked(path, texts, labels, "a 'label' field")


def _read_csv(p: Path, limit: int) -> tuple[list[str], list[str] | None]:
    import csv

    from steward.explain import ExplainError

    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if "text" not in (reader.fieldnames or []):
            raise ExplainError(f"--data {p}: no 'text' column (columns: {', '.join(reader.fieldnames or [])}); "
                               "give a CSV with a 'text' column and optionally 'label'")
        has_label = "label" in (reader.fieldnames or [])
        texts, labels = [], []
        for row in reader:
            texts.append(row["text"] or "")
            labels.append(row["label"] or None if has_label else None)
            if len(texts) >= limit:
                break
    return _checked(str(p), texts, labels, "a value in the 'label' column")


def _checked(path: str, texts: list[str], labels: list[str | None], what: str) -> tuple[list[str], list[str] | None]:
    from steward.explain import ExplainError

    if len(texts) < 10:
        raise ExplainError(f"--data {path}: {len(texts)} texts; give at least 10 (one per line)")
    given = [i for i, y in enumerate(labels) if y is not None]
    if given and len(given) < len(labels):
        missing = next(i for i, y in enumerate(labels) if y is None)
        raise ExplainError(f"--data {path}: text {missing + 1} has no label while others do; give {what} for "
                           "every text or for none")
    return texts, ([y for y in labels if y is not None] if given else None)


def _label_ids(path: str, labels: list[str], names: list[str]) -> list[int]:
    """--data labels as the model's class indices: a class's name, or its name without surrounding
    spaces (a language model's token ' yes' is the label 'yes')."""
    from steward.explain import ExplainError

    index = {n: i for i, n in enumerate(names)}
    for i, n in enumerate(names):
        index.setdefault(n.strip(), i)
    unknown = next((y for y in labels if y not in index and y.strip() not in index), None)
    if unknown is not None:
        shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
        raise ExplainError(f"--data {path}: label {unknown!r} is not one of the model's classes ({shown})")
    return [index[y] if y in index else index[y.strip()] for y in labels]


def run(args) -> int:
    from steward.explain import METHODS, ExplainError

    if bool(args.text) == bool(args.global_):
        raise ExplainError("give either --text \"...\" or --global --data FILE")
    if args.method != "auto" and (args.method not in METHODS or args.method == "random"):
        raise ExplainError(f"--method: {args.method!r} is not one of auto, attention, rollout, grad_attention, "
                           "grad_cam, integrated_gradients")
    if args.threads < 1:
        raise ExplainError(f"--threads: must be >= 1, got {args.threads}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(before)  # an in-process caller keeps its own setting


def _run(args) -> int:
    from steward.explain import ExplainError, RuleList, explain_instance, loaded_run, make_instance
    from steward.jobs import load_trained
    from steward.train.checkpoint import CheckpointError

    t0 = time.perf_counter()
    try:
        run_ = loaded_run(load_trained(args.run_dir))
    except CheckpointError as e:
        raise ExplainError(str(e)) from None
    load_s = time.perf_counter() - t0
    if args.global_:
        return _global(args, run_)
    rules_path = Path(args.rules) if args.rules else run_.run_dir / "explain" / "rules.json"
    if args.rules and not rules_path.is_file():
        raise ExplainError(f"--rules: no such file {args.rules!r}")
    rules = RuleList.from_json(json.loads(rules_path.read_text())) if rules_path.is_file() else None
    inst = make_instance(args.text, run_.tokenizer)
    if not inst.tokens:  # only a classifier that removes its identity words encodes a word to nothing
        raise ExplainError("--text: the run takes every word of it out (its identity words, summary.json's "
                           "identity_words), so its model reads nothing; give a text with other words")
    limit = run_.config.train.seq_len
    if len(inst.tokens) > limit:
        raise ExplainError(f"--text: {len(inst.tokens)} tokens exceed the run's train.seq_len {limit}; shorten it")
    t0 = time.perf_counter()
    if args.samples < 1:
        raise ExplainError(f"--samples: must be >= 1, got {args.samples}")
    if args.method == "auto":
        args.method = ((rules.search or {}).get("relevance") if rules is not None else None) or "grad_attention"
    result = explain_instance(run_.explainable, inst, rules, args.method, n_samples=args.samples,
                              tokenizer=run_.tokenizer)
    result.update(checkpoint=str(run_.checkpoint), tokens=len(inst.tokens), load_s=load_s,
                  explain_s=time.perf_counter() - t0)
    if args.html:
        from steward.io import atomic_write_text

        atomic_write_text(args.html, _html(result))
    if args.json:
        print(json.dumps(result))
        return 0
    if "labels_note" in result:
        print(result["labels_note"])
    print(f"prediction: {result['prediction']!r} (p = {result['probability']:.3f})")
    if rules is None:
        print(f"rules: none ({rules_path} absent; `steward explain RUN_DIR --global --data FILE` fits them)")
    elif result["rule"] is None:
        print(f"rule: {result['no_rule']}")
    else:
        r = result["rule"]
        cov = "n/a" if r["coverage"] is None else f"{r['coverage']:.2f}"
        print(f"rule {r['index'] or 'default'}: {r['sentence']}  ({_anchor(r)}, coverage {cov})")
        for also in result["also_hold"]:
            print(f"  also holds: rule {also['index']}: {also['sentence']}  ({_anchor(also)})")
        if result["contradicting"]:
            print(f"  ({result['contradicting']} other rule(s) hold here but predict another class: not shown)")
    print(f"relevance ({args.method}):")
    print(_heat(result["words"], sys.stdout.isatty()))
    print(f"{result['tokens']} tokens; model loaded in {load_s:.2f} s, explained in {result['explain_s']:.3f} s")
    if args.html:
        print(f"html: {args.html}")
    return 0


def _global(args, run_) -> int:
    import numpy as np

    from steward.explain import ExplainError, analyse, faithfulness_table, format_table, make_instance
    from steward.explain.search import label_check
    from steward.io import atomic_write_json, atomic_write_text, sha256_file

    if not args.data:
        raise ExplainError("--global needs --data FILE (a .txt with one text per line or a .jsonl)")
    if not 0 < args.held_out < 1:
        raise ExplainError(f"--held-out: must be in (0, 1), got {args.held_out}")
    if args.max_rules < 2:
        raise ExplainError(f"--max-rules: must be >= 2 (one rule and the default), got {args.max_rules}")
    tok, expl = run_.tokenizer, run_.explainable
    limit = run_.config.train.seq_len
    names = expl.all_class_names(tok)
    texts, labels = _read_texts(args.data, args.limit)
    ids = _label_ids(args.data, labels, names) if labels is not None else [-1] * len(texts)
    # a text made only of the identity words a classifier removes has no tokens: nothing to explain
    kept = [(inst, y) for inst, y in ((make_instance(t, tok), y) for t, y in zip(texts, ids))
            if 0 < len(inst.tokens) <= limit]
    if len(kept) < 10:
        raise ExplainError(f"--data: fewer than 10 texts fit the run's train.seq_len {limit}")
    order = np.random.default_rng(0).permutation(len(kept))
    n_test = max(1, int(round(args.held_out * len(kept))))
    test = [kept[i][0] for i in order[:n_test]]
    train = [kept[i][0] for i in order[n_test:]]
    rules, base = _fit(args, expl, train, names)
    methods = ("attention", "rollout", "grad_attention", "grad_cam", "integrated_gradients", "random")
    an_test = analyse(expl, test, methods, batch_size=32)
    table = faithfulness_table(expl, test, an_test, rules, engine_base=base)
    rules.fidelity, rules.fidelity_texts = table["rules"]["fidelity"], len(test)  # what --text reports
    if labels is not None and rules.rules and rules.search is not None:  # the labels: never seen by the fit
        label_check(rules, rules.predict(test, an_test)[1], np.array([kept[i][1] for i in order[:n_test]]))
    out = run_.run_dir / "explain"
    atomic_write_json(out / "rules.json", rules.to_json())
    atomic_write_text(out / "rules.txt", rules.text() + "\n")
    result = {"run_dir": str(run_.run_dir), "checkpoint": str(run_.checkpoint), "data": args.data,
              "fitted_on": len(train), "held_out": len(test), "method": args.method, "search": rules.search,
              "no_rule_above_chance": rules.no_rule_above_chance,
              "rules_describe_model_only": rules.describes_model_only, "table": table, "rules": rules.text().splitlines(), "fairness_flags": rules.flagged()}
    atomic_write_json(out / "faithfulness.json", result)
    result["artifacts"] = {str(out / n): sha256_file(out / n) for n in ("rules.json", "rules.txt", "faithfulness.json")}
    result["audit_entry"] = _audit(run_.run_dir, result)
    if args.json:
        print(json.dumps(result))
        return 0
    if rules.describes_model_only:
        print(rules.labels_line())  # first: the rules below are true of the model, not of the labels
    print(format_table(table))
    print(f"\nrules (fitted on {len(train)} texts, measured on {len(test)} held out):\n{rules.text()}")
    flags = rules.flagged()
    print(f"\nfairness: {len(flags)} rule(s) use identity terms (possible spurious correlations)")
    for f in flags:
        print(f"  rule {f['rule']}: {', '.join(f['identity_terms'])}")
    for path, digest in result["artifacts"].items():
        print(f"wrote {path}  sha256 {digest[:16]}")
    if result["provenance"] is not None:
        print(f"provenance: {result['provenance']} re-signed, attesting these files")
    if result["audit_entry"] is not None:
        print(f"audit log: explain.artifacts recorded as entry {result['audit_entry']}")
    return 0


def _fit(args, expl, train: list, names: list[str]) -> tuple:
    """The rule list fitted on `train` and the engine's base ranking, both chosen on `train` (never the
    held-out texts); `args.method` becomes the relevance used (auto: chosen by the beam's fit)."""
    from steward.explain import analyse, choose_engine_base, fit_rules
    from steward.explain.faithfulness import ENGINE_BASES, RELEVANCE_CHOICES
    from steward.explain.search import fit_beam_rules, fit_searched

    if args.search == "beam":
        an_train = analyse(expl, train, RELEVANCE_CHOICES, batch_size=32)
        if args.method == "auto":
            rules, base, _ = fit_searched(expl, train, an_train, names, max_rules=args.max_rules)
            args.method = rules.search["relevance"]
            return rules, base
        rules = fit_beam_rules(train, an_train, names, args.method, max_rules=args.max_rules)
        return rules, choose_engine_base(expl, train, an_train, rules, RELEVANCE_CHOICES)
    args.method = "grad_attention" if args.method == "auto" else args.method
    bases = tuple(dict.fromkeys((args.method, *ENGINE_BASES)))
    an_train = analyse(expl, train, bases, batch_size=32)
    _, rules = fit_rules(train, an_train, names, method=args.method, max_rules=args.max_rules)
    return rules, choose_engine_base(expl, train, an_train, rules, bases)


def _audit(run_dir: Path, result: dict) -> int | None:
    """Runs trained with governance enabled: re-sign provenance.json so that it attests the artifacts
    (result["provenance"]: its path, None without one), record their digests as an
    `explain.artifacts` event in the run's audit log; returns the entry's sequence number, None for
    other runs."""
    result["provenance"] = None
    if not (run_dir / "governance" / "run.json").is_file():
        return None
    from steward.governance import default_actor, load_run_ref
    from steward.governance.provenance import attest_later_files

    ref = load_run_ref(run_dir)
    gcfg = ref.config.get("governance", {}) if isinstance(ref.config.get("governance"), dict) else {}
    actor, signer = default_actor(str(gcfg.get("actor", ""))), ref.workspace.signer()
    rules = result["table"]["rules"]
    store = ref.open_store()
    try:
        path = attest_later_files(run_dir, [f"explain/{Path(k).name}" for k in result["artifacts"]], store=store,
                                  run_id=ref.run_id, actor=actor, signer=signer,
                                  trusted_keys=ref.workspace.trusted_keys([]) or store.public_keys(),
                                  producer="steward explain --global")
        result["provenance"] = str(path) if path else None
        entry = store.append("explain.artifacts", {
            "artifacts": {Path(k).name: v for k, v in result["artifacts"].items()},
            "checkpoint": result["checkpoint"], "data": result["data"], "held_out": result["held_out"],
            "fidelity": rules["fidelity"], "n_rules": rules["n_rules"],
            "identity_rules": len(result["fairness_flags"]),
        }, actor=actor, run_id=ref.run_id, signer=signer)
        # sign and publish a tree head over it, as the trainer and the release gates do
        head = store.sign_head(signer)
        extra = [gcfg["publish_heads"]] if gcfg.get("publish_heads") else []
        ref.workspace.publish_head(head, store.display_url, extra)
    finally:
        store.close()
    return entry.seq
