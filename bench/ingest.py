"""Ingestion throughput: the Spark ingestion stage at local[2] against a single-process loop.

    .venv/bin/python bench/ingest.py [--copies 6] [--corpus ../shared/corpus] [--master local[2]]
        [--quick] [--json PATH]   (--quick: at most 6 copies; --json: ratio, raw figures, machine, date)

The shared corpus (93 real files) is replicated ``--copies`` times into a temporary folder (default
6 copies: 558 files). In one run, on the same files:

* baseline: one Python process reads every file and calls the same extractor
  (:func:`lakedoc.ingest.extract.extract_file`) in a loop, once before and once after the stage (the
  mean is the baseline: it cancels a steady drift of a shared machine's speed), each time in a fresh
  process (the same process image both times; the extraction children it forks cost more from a bigger
  process);
* stage: the five ingestion tasks through the local runner (``lakedoc run --only 'ingest_*'``), i.e.
  binaryFile listing, mapInPandas extraction and the Delta MERGE, into an empty warehouse. By default a
  warm-up run over one copy (into another warehouse) goes first, so that JVM start-up costs and the
  Python workers' imports — paid once per cluster, not per file — are not counted; ``--no-warmup``
  counts them.

Prints documents/s and MB/s for both and the ratio stage/baseline, and for the stage the CPU seconds
and the peak RSS of one process per kind (driver, JVM, Python worker, the worker's forked extraction
child), sampled from /proc every 0.5 s (``machine.ProcessTree``). Both use the extraction limits of
the local configuration (``Limits.from_settings(cfg.ingest)``), the memory cap included.

    .venv/bin/python bench/ingest.py --zip-bomb-mb 1100

measures instead the peak memory (RSS) of extracting one generated hostile file: a docx whose
central directory is cut off and whose document.xml inflates to the given size (about 1 MB on disk
per GB), in a fresh process, with and without the memory cap (``ingest.max_memory_mb``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import ProcessTree, machine  # bench/machine.py (this folder is first on sys.path)

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
    """Seconds of the single-process loop over ``files``, in a fresh Python process each time: the same
    process image before and after the stage (in this process, after the stage, the loop would fork
    each extraction child from a driver grown by the Spark session, and run slower for it)."""
    import subprocess

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(str(p) for p in files))
    try:
        out = subprocess.run([sys.executable, __file__, "--loop-files", fh.name], check=True,
                             capture_output=True, text=True)
    finally:
        Path(fh.name).unlink()
    return float(out.stdout.strip().splitlines()[-1])


def _loop(files: list[Path]) -> float:
    from lakedoc.config import load_config
    from lakedoc.ingest.extract import Limits, claimed_family, extract_file

    limits = Limits.from_settings(load_config("local").ingest)  # the limits the local pipeline runs with
    t0 = time.perf_counter()
    for p in files:  # as the stage: a file no family claims is extracted too (its content decides)
        extract_file(p.read_bytes(), p.name, claimed_family(p.name), limits)
    return time.perf_counter() - t0


_RSS_PROBE = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from lakedoc.ingest.extract import Limits, extract_file
data = open(sys.argv[2], "rb").read()
part = extract_file(data, "cut.docx", "docx", Limits(max_memory_bytes=int(sys.argv[3]) * 2**20))[0]
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{part.status:<10}{own:>14.0f}{child:>16.0f}  {(part.error or '')[:70]}")
"""


def zip_bomb_rss(inflated_mb: int, tmp: Path) -> None:
    """Peak RSS of extracting a docx with its central directory cut off (see the module docstring)."""
    import io
    import subprocess
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                    'content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.'
                    'openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        with zf.open("word/document.xml", "w", force_zip64=True) as fh:
            block = b" " * 2**20
            for _ in range(inflated_mb):
                fh.write(block)
    data = buf.getvalue()
    path = tmp / "cut.docx"
    path.write_bytes(data[:data.rindex(b"PK\x01\x02")])
    print(f"{path.stat().st_size / 2**20:.2f} MB on disk, document.xml inflates to {inflated_mb} MB")
    print(f"{'cap (MB)':<10}{'status':<10}{'peak RSS (MB)':>14}{'child peak (MB)':>16}  error")
    for cap in (0, 4096, 256):
        out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(ROOT / "src"), str(path), str(cap)],
                             capture_output=True, text=True, check=True)
        print(f"{cap or 'none':<10}{out.stdout.rstrip()}")


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
    ap.add_argument("--zip-bomb-mb", type=int, default=0,
                    help="instead: peak RSS of one truncated docx inflating to this many MB")
    ap.add_argument("--quick", action="store_true", help="at most 6 copies (558 files): a few minutes on 2 cores")
    ap.add_argument("--json", help="write the figures as JSON (key 'ratio' = stage docs/s / loop docs/s)")
    ap.add_argument("--loop-files", help=argparse.SUPPRESS)  # internal: run the loop over a file list, print s
    args = ap.parse_args(argv)
    if args.loop_files:
        print(f"{_loop([Path(x) for x in Path(args.loop_files).read_text().splitlines()]):.3f}")
        return 0
    if args.quick:
        args.copies = min(args.copies, 6)
    if args.zip_bomb_mb:
        with tempfile.TemporaryDirectory(prefix="lakedoc-bench-") as tmp:
            zip_bomb_rss(args.zip_bomb_mb, Path(tmp))
        return 0
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
        with ProcessTree() as tree:
            t_stage = stage(tmp / "in", tmp / "wh", args.master)
        # the loop again after the stage: a shared or throttled machine drifts over minutes, and the
        # mean of a loop before and one after the stage cancels a steady drift
        t_base_after = baseline(files)
    procs = tree.summary()
    t_base_before, t_base = t_base, (t_base + t_base_after) / 2
    n = len(files)
    print(f"{'':<28}{'seconds':>10}{'docs/s':>10}{'MB/s':>10}")
    print(f"{'single-process loop':<28}{t_base:>10.1f}{n / t_base:>10.2f}{mb / t_base:>10.2f}"
          f"   (mean of {t_base_before:.1f} s before and {t_base_after:.1f} s after the stage)")
    print(f"{'Spark stage ' + args.master:<28}{t_stage:>10.1f}{n / t_stage:>10.2f}{mb / t_stage:>10.2f}")
    print(f"ratio (stage / loop, documents/s): {t_base / t_stage:.2f}x")
    print(f"stage CPU seconds by process: {procs['cpu_s']}  (loop: {t_base:.1f} s of one core)")
    print(f"stage peak RSS of one process, MB: {procs['peak_rss_mb']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "ratio": t_base / t_stage, "ratio_means": "stage docs/s / single-process loop docs/s (> 1 = lakedoc "
            "faster)", "files": n, "mb": mb, "copies": args.copies, "master": args.master, "warmup": args.warmup,
            "loop_s": t_base, "loop_before_s": t_base_before, "loop_after_s": t_base_after,
            "stage_s": t_stage, "stage_processes": procs, "loop_docs_s": n / t_base, "stage_docs_s": n / t_stage,
            "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, *sys.argv])}, indent=1))
    return 0




if __name__ == "__main__":
    sys.exit(main())
