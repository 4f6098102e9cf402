"""Ingestion throughput: the Spark ingestion stage at local[2] against a single-process loop.

    .venv/bin/python bench/ingest.py [--copies 6] [--corpus ../shared/corpus] [--master local[2]]

The shared corpus (93 real files) is replicated ``--copies`` times into a temporary folder (default
6 copies: 558 files). In one run, on the same files:

* baseline: one Python process reads every file and calls the same extractor
  (:func:`lakedoc.ingest.extract.extract_file`) in a loop;
* stage: the five ingestion tasks through the local runner (``lakedoc run --only 'ingest_*'``), i.e.
  binaryFile listing, mapInPandas extraction and the Delta MERGE, into an empty warehouse. By default a
  warm-up run over one copy (into another warehouse) goes first, so that JVM start-up costs and the
  Python workers' imports — paid once per cluster, not per file — are not counted; ``--no-warmup``
  counts them.

Prints documents/s and MB/s for both and the ratio stage/baseline.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def replicate(corpus: Path, copies: int, dest: Path) -> list[Path]:
    files = [p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() not in (".tsv", ".py", ".md")]
    out = []
    for i in range(copies):
        for p in files:
            target = dest / f"copy{i}" / p.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
            out.append(target)
    return out


def baseline(files: list[Path]) -> float:
    from lakedoc.ingest.extract import FAMILIES, Limits, extract_file

    fam_of = {ext: fam for fam, exts in FAMILIES.items() for ext in exts}
    limits = Limits()
    t0 = time.perf_counter()
    for p in files:
        fam = fam_of.get(p.suffix.lower().lstrip("."))
        if fam is None:
            continue
        extract_file(p.read_bytes(), p.name, fam, limits)
    return time.perf_counter() - t0


def stage(input_dir: Path, warehouse: Path, master: str) -> float:
    from lakedoc.config import load_config
    from lakedoc.runner import load_bundle, run_dag, select, substitution_context, task_specs
    from lakedoc.spark import get_spark

    get_spark(load_config("local", sets=[f"spark.master={master}"]))
    bundle = load_bundle(ROOT)
    ctx = substitution_context(bundle, "local", "lakedoc", run_id="bench", input_path=str(input_dir))
    specs = select(task_specs(bundle, "lakedoc", ctx), "ingest_*")
    t0 = time.perf_counter()
    outcomes = run_dag(specs, ["--set", f"tables.warehouse={warehouse}", "--set", f"spark.master={master}"])
    elapsed = time.perf_counter() - t0
    bad = [o for o in outcomes if o.status != "succeeded"]
    if bad:
        raise SystemExit(f"stage failed: {bad}")
    return elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="time the stage on a cold SparkSession (first jobs, Python worker start-up)")
    args = ap.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"corpus {corpus} not found (the shared data folder is absent)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lakedoc-bench-") as tmp:
        tmp = Path(tmp)
        files = replicate(corpus, args.copies, tmp / "in")
        mb = sum(p.stat().st_size for p in files) / 2**20
        print(f"{len(files)} files, {mb:.1f} MB ({args.copies} copies of {corpus})")
        t_base = baseline(files)
        if args.warmup:  # JVM JIT, Python workers and their imports: once per cluster, not per file
            t_warm = stage(tmp / "in" / "copy0", tmp / "wh_warmup", args.master)
            print(f"warm-up run over one copy (not counted): {t_warm:.1f}s")
        t_stage = stage(tmp / "in", tmp / "wh", args.master)
    n = len(files)
    print(f"{'':<28}{'seconds':>10}{'docs/s':>10}{'MB/s':>10}")
    print(f"{'single-process loop':<28}{t_base:>10.1f}{n / t_base:>10.2f}{mb / t_base:>10.2f}")
    print(f"{'Spark stage ' + args.master:<28}{t_stage:>10.1f}{n / t_stage:>10.2f}{mb / t_stage:>10.2f}")
    print(f"ratio (stage / loop, documents/s): {t_base / t_stage:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
