"""lakedoc's extraction side by side with its peers on the shared corpus: recall, outcomes, speed, memory.

    .venv/bin/python bench/peers.py [--quick] [--json PATH] [--tools lakedoc,tika,...] [--timeout 60]

Tools: lakedoc (``extract_file`` with the local pipeline's limits, from .venv), unstructured
(``partition``, strategy "fast"), Microsoft MarkItDown, Apache Tika (the tika-app jar, fetched with
Maven into ~/.cache/lakedoc/jars, run by Java) and docling (no OCR, no table model) — the peers from
.venv-peers, made by ``make bench-peers`` (bench/requirements-peers.txt). Each tool is one long-lived
worker process (bench/peer_worker.py, bench/TikaWorker.java) that gets the same files one at a time;
a file that takes longer than ``--timeout`` seconds is a hang (the worker is killed and restarted
for the next file), a worker that dies mid-file is a crash. A tool that is not installed, or a format
it cannot handle here (offline, no model weights), is ``n/a`` with the reason.

Per tool and per format (the corpus's folders): phrase recall, strict, with the corpus's own checker
(check_phrases.py: ``normalize`` + ``contains``); outcome accuracy against EXPECTED.tsv (lakedoc: its
status; a peer: see :func:`peer_outcome_matches`); documents/s and pages/s (over the time spent in
its files, start-up excluded); the worker's peak RSS; errors, hangs and crashes. Then lakedoc's Spark
ingestion stage (``lakedoc run --only 'ingest_*'`` at ``local[2]``, after a warm-up run, as
bench/ingest.py) over ``--copies`` copies of the corpus; the JSON's ``ratio`` is its documents/s
divided by the fastest peer's, with ``lakedoc_recall`` and ``best_peer_recall`` beside it.

``--quick``: 3 files per format, a 30 s timeout, one copy for the stage. The tools' answers are kept as
JSONL (the checker's input format) under .bench/peers/full/ (--quick: .bench/peers/quick/), with the
workers' stderr as TOOL.log beside them.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
TIKA_VERSION = "3.2.2"
TOOLS = ("lakedoc", "unstructured", "markitdown", "tika", "docling")
OUT_DIR = ROOT / ".bench" / "peers"


# ------------------------------------------------------------------------------------------- scoring

def load_checker(corpus: Path):
    """The corpus's own check_phrases.py as a module (its normalize/contains are the strict match)."""
    spec = importlib.util.spec_from_file_location("check_phrases", corpus / "check_phrases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAKEDOC_STATUS = {"text": ("ok", "partial")}  # other expected outcomes are lakedoc status names
_ENCRYPTED = re.compile(r"encrypt|password|decrypt", re.I)


def peer_outcome(answer: dict) -> str:
    """A peer's outcome: ``text``/``empty`` from its answer; an exception is ``error``, or ``encrypted``
    when the exception says so (its only equivalent of a status)."""
    if answer["outcome"] == "error" and _ENCRYPTED.search(answer.get("error") or ""):
        return "encrypted"
    return answer["outcome"]


def peer_outcome_matches(expected: str, outcome: str) -> bool:
    """Whether a peer's outcome is the equivalent of the oracle's expected outcome. A peer has no
    statuses: ``text`` needs text; ``empty`` needs no text; ``image_only`` (no text layer) either no
    text or text, which can only come from OCR (as lakedoc's OCR'd pages count); ``encrypted`` needs
    an exception that says so; ``corrupt`` any exception; ``unsupported`` an exception or no text.
    Text where none is expected (e.g. garbage from a broken file) is wrong."""
    if expected == "text":
        return outcome == "text"
    if expected == "image_only":
        return outcome in ("empty", "text")
    if expected == "empty":
        return outcome == "empty"
    if expected == "encrypted":
        return outcome == "encrypted"
    if expected == "corrupt":
        return outcome in ("error", "encrypted")
    if expected == "unsupported":
        return outcome in ("error", "empty")
    return False


def outcome_matches(tool: str, expected: str, answer: dict) -> bool:
    if answer["outcome"] in ("hang", "crash"):
        return False
    if tool == "lakedoc":
        if expected == "image_only" and answer.get("ocr") and answer.get("status") in ("ok", "partial"):
            return True  # no text layer, read by OCR (ingest.ocr): the file's pages are OCR'd ones
        return answer.get("status") in LAKEDOC_STATUS.get(expected, (expected,))
    return peer_outcome_matches(expected, peer_outcome(answer))


def _new_cell() -> dict:
    return {"files": 0, "ran": 0, "phrases": 0, "hits": 0, "outcome_hits": 0, "seconds": 0.0, "pages": 0,
            "errors": 0, "hangs": 0, "crashes": 0, "na": None}


def aggregate(tool: str, rows: list[dict], answers: dict[str, dict], pages: dict[str, int], checker,
              na: dict[str, str]) -> tuple[dict, list[tuple[str, str]]]:
    """Per format folder and ``ALL``: recall, outcome accuracy, docs/s, pages/s, errors/hangs/crashes.

    ``answers``: relative path -> the worker's answer plus ``seconds``; a file without an answer is
    left out (not run). A format in ``na`` is reported as n/a with its reason; in ``ALL`` its phrases
    count as missed and its files as wrong outcomes (the tool gives nothing for them), and no time.
    Returns (table, found), found listing the (relative path, phrase) pairs the tool found."""
    cells: dict[str, dict] = defaultdict(_new_cell)
    found = []
    for row in rows:
        rel = row["relative_path"]
        fmt = rel.split("/", 1)[0]
        phrases = checker.split_phrases(row.get("must_contain", ""))
        if fmt in na:
            cells[fmt]["na"] = na[fmt]
            for key in (fmt, "ALL"):
                cells[key]["files"] += 1
                cells[key]["phrases"] += len(phrases)
            continue
        answer = answers.get(rel)
        if answer is None:
            continue
        text = checker.normalize(answer.get("text") or "")
        hits = 0
        for phrase in phrases:
            if checker.contains(text, checker.normalize(phrase)):
                hits += 1
                found.append((rel, phrase))
        ok = outcome_matches(tool, row["expected_outcome"], answer)
        for key in (fmt, "ALL"):
            cell = cells[key]
            cell["files"] += 1
            cell["ran"] += 1
            cell["phrases"] += len(phrases)
            cell["hits"] += hits
            cell["outcome_hits"] += ok
            cell["seconds"] += answer["seconds"]
            cell["pages"] += pages.get(rel, 1)
            cell["errors"] += answer["outcome"] == "error"
            cell["hangs"] += answer["outcome"] == "hang"
            cell["crashes"] += answer["outcome"] == "crash"
    table = {}
    for key, cell in cells.items():
        usable = cell["na"] is None
        table[key] = {
            **cell,
            "seconds": round(cell["seconds"], 3),
            "recall": cell["hits"] / cell["phrases"] if usable and cell["phrases"] else None,
            "outcome_accuracy": cell["outcome_hits"] / cell["files"] if usable and cell["files"] else None,
            "docs_per_s": cell["ran"] / cell["seconds"] if cell["seconds"] > 0 else None,
            "pages_per_s": cell["pages"] / cell["seconds"] if cell["seconds"] > 0 else None,
        }
    return table, found


def peer_wins(rows: list[dict], found: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """Every (file, phrase) that some peer finds and lakedoc does not, with the peers that find it."""
    mine = set(found.get("lakedoc", []))
    wins: dict[tuple[str, str], list[str]] = {}
    for tool, pairs in found.items():
        if tool == "lakedoc":
            continue
        for pair in pairs:
            if pair not in mine:
                wins.setdefault(pair, []).append(tool)
    order = {r["relative_path"]: i for i, r in enumerate(rows)}
    return [{"file": f, "phrase": p, "peers": sorted(t)}
            for (f, p), t in sorted(wins.items(), key=lambda kv: (order.get(kv[0][0], 0), kv[0][1]))]


# ------------------------------------------------------------------------------------------- running

def count_pages(path: Path) -> int:
    """Pages of a document for pages/s: PDF pages, PPTX slides, XLSX sheets; 1 for anything else
    (and for a file whose count cannot be read)."""
    ext = path.suffix.lower()
    try:
        if ext == ".pdf":
            import pymupdf  # in the project's .venv

            with pymupdf.open(path) as doc:
                return max(1, doc.page_count)
        if ext in (".pptx", ".xlsx"):
            pattern = r"ppt/slides/slide\d+\.xml" if ext == ".pptx" else r"xl/worksheets/sheet\d+\.xml"
            with zipfile.ZipFile(path) as zf:
                return max(1, sum(1 for n in zf.namelist() if re.fullmatch(pattern, n)))
    except Exception:  # noqa: BLE001 - encrypted or broken: counted as one page
        return 1
    return 1


def tika_jar() -> Path:
    return Path(os.environ.get("LAKEDOC_JARS_DIR") or Path.home() / ".cache" / "lakedoc" / "jars") \
        / f"tika-app-{TIKA_VERSION}.jar"


def fetch_tika() -> str | None:
    """Fetch the tika-app jar with Maven when missing; None when it is there, else the reason."""
    jar = tika_jar()
    if jar.is_file():
        return None
    mvn = shutil.which("mvn")
    if mvn is None:
        return "Maven (mvn) is not installed: cannot fetch tika-app"
    jar.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact=org.apache.tika:tika-app:{TIKA_VERSION}",
                           f"-DoutputDirectory={jar.parent}"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not jar.is_file():
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        return f"Maven could not fetch org.apache.tika:tika-app:{TIKA_VERSION}: {last[0][:200]}"
    return None


def worker_command(tool: str) -> tuple[list[str] | None, str | None]:
    """The command line of a tool's worker, or (None, why it is n/a)."""
    if tool == "lakedoc":
        return [sys.executable, str(ROOT / "bench" / "peer_worker.py"), "lakedoc"], None
    if tool == "tika":
        if shutil.which("java") is None:
            return None, "Java is not installed"
        reason = fetch_tika()
        if reason:
            return None, reason
        return ["java", "-cp", str(tika_jar()), str(ROOT / "bench" / "TikaWorker.java")], None
    if not PEERS_PY.is_file():
        return None, f"{PEERS_PY.relative_to(ROOT)} is missing (make bench-peers)"
    return [str(PEERS_PY), str(ROOT / "bench" / "peer_worker.py"), tool], None


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Worker:
    """A tool's worker process: one file at a time, with a per-file timeout."""

    def __init__(self, cmd: list[str], log: Path, start_timeout: float):
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
                   TOKENIZERS_PARALLELISM="false")
        self.log = log.open("ab")
        # its own process group, so that a kill after a hang also ends what the worker started
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, cwd=ROOT, start_new_session=True)
        self.buf = b""
        t0 = time.perf_counter()
        self.hello = self._read(start_timeout) or {"ready": False, "error": "no answer at start-up"}
        self.startup_s = time.perf_counter() - t0
        self.peak_mb = 0.0

    def _read(self, timeout: float) -> dict | None:
        """The next answer line, or None on timeout or end of output."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def extract(self, path: Path, timeout: float) -> dict:
        assert self.proc.stdin is not None
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write((str(path) + "\n").encode())
            self.proc.stdin.flush()
            answer = self._read(timeout)
        except BrokenPipeError:
            answer = None
        seconds = time.perf_counter() - t0
        self.peak_mb = max(self.peak_mb, _peak_rss_mb(self.proc.pid))
        if answer is None:
            hung = self.proc.poll() is None
            self.kill()
            return {"outcome": "hang" if hung else "crash", "text": "", "seconds": seconds,
                    "error": f"no answer within {timeout:g}s" if hung
                    else f"worker died (exit {self.proc.returncode})"}
        answer["seconds"] = seconds
        return answer

    def close(self) -> float:
        """Ends the worker; returns its peak RSS in MB (its own, or its children's if larger)."""
        self.peak_mb = max(self.peak_mb, _peak_rss_mb(self.proc.pid))
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            bye = self._read(60)
            if bye:
                self.peak_mb = max(self.peak_mb, bye.get("children_maxrss_mb", 0))
        except (BrokenPipeError, OSError):
            pass
        self.kill()
        return self.peak_mb

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this worker leads (start_new_session)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def run_tool(tool: str, files: list[tuple[str, Path]], timeout: float, log: Path) -> dict:
    """Runs one tool's worker over the files; returns {version, na, answers, peak_rss_mb, startup_s}
    or {unavailable: reason}."""
    cmd, reason = worker_command(tool)
    if cmd is None:
        return {"unavailable": reason}
    worker = Worker(cmd, log, start_timeout=600)
    if not worker.hello.get("ready"):
        worker.kill()
        return {"unavailable": f"could not start: {worker.hello.get('error', '')[:300]}"}
    hello, startup_s = worker.hello, worker.startup_s
    na: dict[str, str] = hello.get("na") or {}
    answers, peak, restarts = {}, 0.0, 0
    for rel, path in files:
        fmt = rel.split("/", 1)[0]
        if fmt in na:
            continue
        if worker.proc.poll() is not None:  # killed after a hang or a crash: a fresh one
            peak = max(peak, worker.close())
            worker = Worker(cmd, log, start_timeout=600)
            restarts += 1
        answers[rel] = worker.extract(path, timeout)
        print(f"  {tool:<12} {answers[rel]['outcome']:<6} {answers[rel]['seconds']:7.2f}s  {rel}", flush=True)
    peak = max(peak, worker.close())
    return {"version": hello.get("version"), "na": na, "answers": answers, "peak_rss_mb": peak,
            "startup_s": round(startup_s, 2), "restarts": restarts}


def spark_stage(corpus: Path, copies: int, master: str) -> dict:
    """lakedoc's Spark ingestion stage over ``copies`` copies of the corpus (bench/ingest.py's)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import ingest as bench_ingest  # bench/ingest.py

    with tempfile.TemporaryDirectory(prefix="lakedoc-peers-") as tmp:
        tmpdir = Path(tmp)
        staged = bench_ingest.replicate(corpus, copies, tmpdir / "in")
        bench_ingest.stage(tmpdir / "in" / "copy0", tmpdir / "wh_warmup", master)  # JVM + workers: not counted
        seconds = bench_ingest.stage(tmpdir / "in", tmpdir / "wh", master)
    return {"master": master, "copies": copies, "files": len(staged), "seconds": round(seconds, 2),
            "docs_per_s": len(staged) / seconds}


def machine() -> dict:
    load = os.getloadavg()
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                         if ln.startswith("model name")), platform.processor()),
            "loadavg_at_start": [round(x, 2) for x in load]}


# ------------------------------------------------------------------------------------------- report

def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def print_report(result: dict) -> None:
    tools = result["tools"]
    formats = sorted({f for t in tools.values() for f in t.get("formats", {}) if f != "ALL"}) + ["ALL"]
    print(f"\n{'tool':<13}{'format':<7}{'files':>6}{'recall':>8}{'outcome':>8}{'docs/s':>8}{'pages/s':>8}"
          f"{'err':>5}{'hang':>5}{'crash':>6}  note")
    for name, t in tools.items():
        if "unavailable" in t:
            print(f"{name:<13}{'*':<7}  n/a: {t['unavailable']}")
            continue
        for f in formats:
            c = t["formats"].get(f)
            if c is None:
                continue
            note = f"n/a: {c['na']}" if c["na"] else ""
            print(f"{name:<13}{f:<7}{c['files']:>6}{_fmt(c['recall'], '.3f'):>8}"
                  f"{_fmt(c['outcome_accuracy'], '.3f'):>8}{_fmt(c['docs_per_s'], '.2f'):>8}"
                  f"{_fmt(c['pages_per_s'], '.2f'):>8}{c['errors']:>5}{c['hangs']:>5}{c['crashes']:>6}  {note[:80]}")
        print(f"{'':<13}peak RSS {t['peak_rss_mb']:.0f} MB, start-up {t['startup_s']:.1f}s, version {t['version']}")
    if result.get("stage"):
        s = result["stage"]
        print(f"\nSpark stage {s['master']}: {s['files']} files in {s['seconds']:.1f}s = {s['docs_per_s']:.2f} docs/s;"
              f" fastest peer {result['fastest_peer']} {_fmt(result['fastest_peer_docs_per_s'], '.2f')} docs/s;"
              f" ratio {_fmt(result['ratio'], '.2f')}; lakedoc recall {_fmt(result['lakedoc_recall'], '.3f')},"
              f" best peer recall {_fmt(result['best_peer_recall'], '.3f')} ({result['best_peer']})")
        print(f"fastest peer with every format: {result['fastest_all_formats_peer']}"
              f" {_fmt(result['fastest_all_formats_peer_docs_per_s'], '.2f')} docs/s;"
              f" ratio {_fmt(result['ratio_all_formats'], '.2f')}")
    print(f"\n{len(result['peer_wins'])} phrase(s) a peer finds and lakedoc misses:")
    for w in result["peer_wins"]:
        print(f"  {w['file']}: {w['phrase']!r} ({', '.join(w['peers'])})")


def markdown_table(result: dict) -> str:
    """Tool x format: strict recall / docs/s, and the tool's peak RSS (docs/benchmarks.md's table)."""
    tools = result["tools"]
    formats = sorted({f for t in tools.values() for f in t.get("formats", {}) if f != "ALL"}) + ["ALL"]
    lines = ["| tool | " + " | ".join(formats) + " | outcome accuracy | peak RSS |",
             "| --- |" + " --- |" * (len(formats) + 2)]
    for name, t in tools.items():
        if "unavailable" in t:
            lines.append(f"| {name} | n/a: {t['unavailable']} |" + " |" * (len(formats) + 1))
            continue
        cells = []
        for f in formats:
            c = t["formats"].get(f)
            if c is None or c["na"]:
                cells.append("n/a")
            else:
                cells.append(f"{_fmt(c['recall'], '.3f')} / {_fmt(c['docs_per_s'], '.2f')}")
        acc = t["formats"]["ALL"]["outcome_accuracy"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(acc, '.3f')} | {t['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


def summarise(tools: dict, stage: dict | None) -> dict:
    peers = {n: t for n, t in tools.items() if n != "lakedoc" and "formats" in t}
    fastest = max(peers, key=lambda n: peers[n]["formats"]["ALL"]["docs_per_s"] or 0, default=None)
    best = max(peers, key=lambda n: peers[n]["formats"]["ALL"]["recall"] or 0, default=None)
    lake = tools.get("lakedoc", {}).get("formats", {}).get("ALL", {})
    fastest_rate = peers[fastest]["formats"]["ALL"]["docs_per_s"] if fastest else None
    # docs/s over the same files: the fastest peer among those with no n/a format
    full = {n: t for n, t in peers.items() if all(c["na"] is None for c in t["formats"].values())}
    fastest_full = max(full, key=lambda n: full[n]["formats"]["ALL"]["docs_per_s"] or 0, default=None)
    full_rate = full[fastest_full]["formats"]["ALL"]["docs_per_s"] if fastest_full else None
    return {
        "fastest_peer": fastest, "fastest_peer_docs_per_s": fastest_rate,
        "fastest_all_formats_peer": fastest_full, "fastest_all_formats_peer_docs_per_s": full_rate,
        "ratio_all_formats": stage["docs_per_s"] / full_rate if stage and full_rate else None,
        "best_peer": best, "best_peer_recall": peers[best]["formats"]["ALL"]["recall"] if best else None,
        "lakedoc_recall": lake.get("recall"),
        "ratio": stage["docs_per_s"] / fastest_rate if stage and fastest_rate else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    ap.add_argument("--quick", action="store_true", help="3 files per format, 30 s timeout, one copy for the stage")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    ap.add_argument("--timeout", type=float, help="per-file timeout in seconds (60; 30 with --quick)")
    ap.add_argument("--copies", type=int, help="corpus copies for the Spark stage (3; 1 with --quick)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--no-stage", dest="stage", action="store_false", help="skip lakedoc's Spark stage")
    ap.add_argument("--markdown", metavar="JSON", help="instead: print the Markdown table of a saved --json result")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.markdown).read_text(encoding="utf-8"))))
        return 0
    corpus = Path(args.corpus)
    if not (corpus / "EXPECTED.tsv").is_file():
        print(f"corpus {corpus} not found (the shared data folder is absent)", file=sys.stderr)
        return 2
    timeout = args.timeout or (30.0 if args.quick else 60.0)
    copies = args.copies or (1 if args.quick else 3)
    checker = load_checker(corpus)
    rows = checker.load_expected(corpus / "EXPECTED.tsv")
    if args.quick:
        per: dict[str, int] = defaultdict(int)
        keep = []
        for r in rows:
            fmt = r["relative_path"].split("/", 1)[0]
            per[fmt] += 1
            if per[fmt] <= 3:
                keep.append(r)
        rows = keep
    files = [(r["relative_path"], corpus / r["relative_path"]) for r in rows]
    pages = {rel: count_pages(p) for rel, p in files}
    out_dir = OUT_DIR / ("quick" if args.quick else "full")  # a --quick run keeps the full run's answers
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": "bench/peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "machine": machine(), "corpus": str(corpus), "files": len(files), "timeout_s": timeout,
                    "pages": sum(pages.values()), "tools": {}}
    found = {}
    for tool in [t.strip() for t in args.tools.split(",") if t.strip()]:
        if tool not in TOOLS:
            ap.error(f"unknown tool {tool!r}")
        print(f"{tool}: {len(files)} files", flush=True)
        run = run_tool(tool, files, timeout, out_dir / f"{tool}.log")
        if "unavailable" in run:
            result["tools"][tool] = {"unavailable": run["unavailable"]}
            print(f"  {tool}: n/a: {run['unavailable']}")
            continue
        with (out_dir / f"{tool}.jsonl").open("w", encoding="utf-8") as out:
            for rel, answer in run["answers"].items():
                out.write(json.dumps({"relative_path": rel, **answer}, ensure_ascii=False) + "\n")
        table, found[tool] = aggregate(tool, rows, run["answers"], pages, checker, run["na"])
        result["tools"][tool] = {"version": run["version"], "peak_rss_mb": round(run["peak_rss_mb"], 1),
                                 "startup_s": run["startup_s"], "restarts": run["restarts"], "formats": table,
                                 "failures": {rel: a.get("error") for rel, a in run["answers"].items()
                                              if a["outcome"] in ("error", "hang", "crash")}}
    result["peer_wins"] = peer_wins(rows, found) if "lakedoc" in found else []
    result["stage"] = spark_stage(corpus, copies, args.master) if args.stage and "lakedoc" in found else None
    result.update(summarise(result["tools"], result["stage"]))
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
