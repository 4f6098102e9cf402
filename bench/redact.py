"""Benchmark of the redact_pii stage against the seed's per-row Presidio, in one run.

    .venv/bin/python bench/redact.py [--docs 600] [--long-docs 4] [--long-chars 250000] [--quick] [--json PATH]

``--quick``: at most 300 paragraphs, no long documents (a few minutes on 2 cores). ``--json PATH``: the
figures as JSON, ``ratio`` = the warm stage's docs/s / the seed baseline's (``ratio_cold`` likewise cold).

* **baseline** — single process, engine built once (not timed) with the stage's recognizers but
  Presidio's own phone recognizer (every text scanned once per region), then per text
  ``analyzer.analyze(text)`` + ``anonymizer.anonymize(...)`` one at a time: spaCy runs once per text
  with its full pipeline (the seed's way). A second baseline uses the stage's pipeline (parser,
  attribute ruler, lemmatizer off) per row, to separate the batching/parallel gain from the trim.
* **stage** — ``redact_pii`` through ``run_task`` on ``local[2]`` with a fresh warehouse: planning,
  ``mapInPandas`` over 2 Python workers (engine cached per worker, batched ``nlp.pipe``), the MERGEs.
  "cold" includes building the engine in each worker (the Python workers exist, started by a trivial
  job first, as on a running cluster; the JVM's first-job costs are not counted); "warm" reuses the
  workers and their engines.
* **long documents** — characters/s of the stage on a few very long texts (chunked under
  ``pii.chunk_chars``).

Same ~150-word paragraphs with planted PII for all. Prints documents/s and the ratio.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from machine import ProcessTree, machine  # bench/machine.py (this folder is first on sys.path)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

FIRST = ["Maria", "John", "Aiko", "Peter", "Fatima", "Lars", "Chen", "Olga", "David", "Sofia", "Ahmed", "Emma"]
LAST = ["Gonzalez", "Smith", "Tanaka", "Jackson", "Khan", "Nilsson", "Wei", "Petrova", "Miller", "Rossi"]
CITIES = ["Chicago", "Rotterdam", "Singapore", "Houston", "Hamburg", "Santos", "Durban", "Oslo"]
FILLER = ("the quarterly shipment of grain was delayed by weather and the board discussed freight rates "
          "crude oil inventories currency hedging and the outlook for interest rates in the coming months "
          "while analysts expected earnings to improve as demand recovered across the region").split()


def paragraph(rng: random.Random) -> str:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    words = [rng.choice(FILLER) for _ in range(120)]
    pii = [f"Please contact {name} in {rng.choice(CITIES)}",
           f"at {name.split()[0].lower()}.{name.split()[1].lower()}@example.com",
           f"or call (212) 555-01{rng.randint(10, 99)}",
           "and wire the fee to IBAN DE89370400440532013000"]
    for i, p in enumerate(pii):
        words.insert(rng.randint(0, len(words)), p + ("." if i == len(pii) - 1 else ","))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def bronze_rows(texts, prefix):
    from test_pii_stage import bronze_row

    return [bronze_row(f"{prefix}{i}", t) for i, t in enumerate(texts)]


def run_stage(base_cfg, texts, prefix, spark):
    from test_pii_stage import write_bronze

    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    wh = tempfile.mkdtemp(prefix="lakedoc-bench-")
    cfg = base_cfg.with_overrides({"tables": {"warehouse": wh}})
    store = LocalDeltaStore(wh, spark)
    write_bronze(store, bronze_rows(texts, prefix))
    t0 = time.perf_counter()
    run = run_task("redact_pii", cfg, spark=spark, tables=store)
    dt = time.perf_counter() - t0
    assert run.status == "succeeded", run.error
    red = store.read_arrow("documents_redacted").to_pylist()
    assert len(red) == len(texts) and all(r["status"] == "ok" for r in red)
    assert not any("DE89370400440532013000" in r["redacted_text"] for r in red)
    return dt


def start_workers(spark) -> None:
    """One trivial mapInPandas job per task slot: the JVM runs a Python job once and the Python workers
    exist (pandas and pyarrow imported), but none has imported Presidio or spaCy."""
    from lakedoc.spark import task_slots

    n = task_slots(spark)
    spark.range(n * 4, numPartitions=n).mapInPandas(lambda it: it, "id long").count()


def seed_engine(settings):
    """The baseline's engine: the same recognizers as the stage, but Presidio's own phone recognizer
    scanning every whole text once per region (the seed's), not the stage's digit-run windows."""
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from lakedoc.pii.engine import PiiEngine

    engine = PiiEngine(settings)
    reg = engine.analyzer.registry
    for i, r in enumerate(reg.recognizers):
        if type(r).__name__ == "WindowedPhoneRecognizer":
            reg.recognizers[i] = PhoneRecognizer(supported_language=r.supported_language,
                                                 supported_regions=r.supported_regions, leniency=r.leniency)
    return engine


def per_row(engine, texts, full_pipeline: bool):
    nlp = engine.nlp_engine.nlp["en"]
    disabled = list(nlp.disabled)
    if full_pipeline:
        for p in disabled:
            nlp.enable_pipe(p)
    try:
        t0 = time.perf_counter()
        for t in texts:
            res = engine.analyzer.analyze(text=t, language="en", entities=engine.entities,
                                          score_threshold=engine.min_threshold)
            engine.anonymizer.anonymize(text=t, analyzer_results=res, operators=engine.operators)
        return time.perf_counter() - t0
    finally:
        for p in disabled:
            nlp.disable_pipe(p)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--long-docs", type=int, default=4)
    ap.add_argument("--long-chars", type=int, default=250_000)
    ap.add_argument("--quick", action="store_true", help="at most 300 paragraphs, no long documents")
    ap.add_argument("--json", help="write the figures as JSON (key 'ratio' = warm stage / seed baseline)")
    args = ap.parse_args()
    if args.quick:
        args.docs, args.long_docs = min(args.docs, 300), 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from lakedoc.config import load_config
    from lakedoc.pii.engine import get_engine, load_settings
    from lakedoc.spark import get_spark

    rng = random.Random(42)
    texts = [paragraph(rng) for _ in range(args.docs)]
    words = sum(len(t.split()) for t in texts) / len(texts)
    cfg = load_config("local", conf_dir=ROOT / "conf")
    print(f"{len(texts)} paragraphs, {words:.0f} words / {sum(map(len, texts)) / len(texts):.0f} chars each; "
          f"model {cfg['pii']['spacy_models']}", flush=True)

    engine = seed_engine(load_settings(cfg["pii"]))
    per_row(engine, texts[:5], True)  # warm-up
    t_seed = per_row(engine, texts, full_pipeline=True)
    t_trim = per_row(engine, texts, full_pipeline=False)

    spark = get_spark(cfg)
    # "cold" counts the workers' engine load (what a small incremental run on a running cluster pays),
    # not the JVM's first job: start the Python workers (without any PII engine) with a trivial job first
    start_workers(spark)
    with ProcessTree() as cold_tree:
        t_cold = run_stage(cfg, texts, "cold", spark)
    with ProcessTree() as warm_tree:
        t_warm = run_stage(cfg, texts, "warm", spark)

    n = len(texts)
    print(f"baseline per-row, full spaCy pipeline (seed) : {n / t_seed:7.1f} docs/s  ({t_seed:.1f}s)")
    print(f"baseline per-row, stage pipeline (trimmed)   : {n / t_trim:7.1f} docs/s  ({t_trim:.1f}s)")
    print(f"stage local[2], cold workers (engine load)   : {n / t_cold:7.1f} docs/s  ({t_cold:.1f}s)")
    print(f"stage local[2], warm workers                 : {n / t_warm:7.1f} docs/s  ({t_warm:.1f}s)")
    print(f"ratio stage/seed: cold {t_seed / t_cold:.2f}x, warm {t_seed / t_warm:.2f}x; "
          f"vs per-row trimmed pipeline: warm {t_trim / t_warm:.2f}x")
    procs = {"cold": cold_tree.summary(), "warm": warm_tree.summary()}
    for k in ("cold", "warm"):
        print(f"stage {k}: CPU seconds by process {procs[k]['cpu_s']}, peak RSS MB {procs[k]['peak_rss_mb']}")
    report = {"stage_processes": procs, "ratio": t_seed / t_warm, "ratio_cold": t_seed / t_cold, "ratio_warm_vs_trimmed": t_trim / t_warm,
              "ratio_means": "stage docs/s / seed per-row docs/s (> 1 = lakedoc faster)", "docs": n,
              "seed_s": t_seed, "trimmed_s": t_trim, "stage_cold_s": t_cold, "stage_warm_s": t_warm,
              "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join([Path(sys.executable).name, *sys.argv])}

    if args.long_docs:
        long_texts = []
        for _ in range(args.long_docs):
            parts, size = [], 0
            while size < args.long_chars:
                p = paragraph(rng)
                parts.append(p)
                size += len(p) + 2
            long_texts.append("\n\n".join(parts))
        chars = sum(map(len, long_texts))
        t_long = run_stage(cfg, long_texts, "long", spark)
        t0 = time.perf_counter()
        stage_engine = get_engine(load_settings(cfg["pii"]))
        for t in long_texts[:1]:
            stage_engine.anonymize(t, stage_engine.analyze(t))
        t_one = time.perf_counter() - t0
        print(f"long documents: {args.long_docs} x {chars // args.long_docs:,} chars through the stage: "
              f"{chars / t_long:,.0f} chars/s ({t_long:.1f}s); one process, chunked: "
              f"{len(long_texts[0]) / t_one:,.0f} chars/s")
        report.update(long_docs=args.long_docs, long_chars_s=chars / t_long, long_one_process_chars_s=len(
            long_texts[0]) / t_one)
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0




if __name__ == "__main__":
    sys.exit(main())
