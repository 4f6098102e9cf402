"""The run report: after a real local run of the job DAG on the sample files (plus two files whose
names carry an e-mail address; the baselines task with one fast method, so the run writes evaluations),
``lakedoc run`` writes the page; it shows the run's real counts and F1 scores, at least four inline SVG
charts, no document text and no raw file name; it renders in headless Chromium with no console error and
every chart laid out; the ``report`` task and ``lakedoc report`` write it too, the latter with the
retrieval metrics ``lakedoc evaluate-search`` measured on the run's index."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from html import escape
from pathlib import Path

import pytest
from conftest import ROOT

PII_NAME_OK = "offer_letter_jane.doe@example.com.docx"
PII_NAME_BAD = "invoice_john.smith@example.org.pdf"
PII_VALUES = ["jane.doe@example.com", "john.smith@example.org", "jane.doe", "john.smith"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
BASELINES = ["baselines.methods=[tfidf_lr]", "baselines.mlflow_enabled=false", "baselines.num_features=4096",
             "baselines.lr_max_iter=20", "baselines.parallel_labels=2"]


def _delta(wh: Path, table: str):
    from deltalake import DeltaTable

    return DeltaTable(str(wh / table)).to_pyarrow_dataset()


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample_dir, _spark_config):
    """One local run of the whole DAG (the bundle's YAML) over a copy of the samples with two PII names."""
    from conftest import live_spark

    from lakedoc.cli import main

    live_spark(_spark_config)  # the test session's one SparkSession, which the run below uses

    base = tmp_path_factory.mktemp("report")
    samples = base / "samples"
    shutil.copytree(sample_dir, samples)
    shutil.copyfile(next((samples / "docx").glob("acq_*.docx")), samples / "docx" / PII_NAME_OK)
    (samples / "pdf" / PII_NAME_BAD).write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)  # not a readable PDF
    wh = base / "wh"
    # the baselines task with its fastest method on a small synthetic labelled set (the methods
    # themselves are tested in tests/test_baselines.py): the run writes real evaluations rows
    from lakedoc.baselines.synthetic import write_synthetic

    labels = write_synthetic(base / "labels.jsonl", n_docs=160, seed=7)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["run", "--root", str(ROOT), "--input", str(samples), "--warehouse", str(wh),
                   "--config", str(ROOT / "conf" / "samples.yml"), "--parallel", "2",
                   "--only", "ingest_*,redact_pii,classify,baselines,embed,index,report",
                   *[a for kv in BASELINES for a in ("--set", kv)], "--set", f"baselines.train_path={labels}"])
    stdout = out.getvalue()
    runs = _delta(wh, "pipeline_runs").to_table().to_pylist()
    if not (wh / "documents" / "_delta_log").is_dir():
        failed = {r["task"]: (r["error"] or "")[:400] for r in runs if r["status"] != "succeeded"}
        pytest.fail(f"the local DAG run wrote no documents table (nothing to report on): {failed}")
    run_id = max(runs, key=lambda r: r["started_at"])["run_id"]
    return {"rc": rc, "stdout": stdout, "wh": wh, "samples": samples, "run_id": run_id,
            "runs": [r for r in runs if r["run_id"] == run_id]}


@pytest.fixture(scope="module")
def page(run) -> tuple[Path, str]:
    m = re.search(r"^Run report: (.+)$", run["stdout"], re.M)
    assert m, f"lakedoc run printed no report path:\n{run['stdout'][-3000:]}"
    path = Path(m.group(1).strip())
    assert path.is_file() and path.parent == run["wh"] / "_reports"
    return path, path.read_text(encoding="utf-8")


def _chart(html: str, chart_id: str) -> str:
    m = re.search(rf'<svg id="{chart_id}".*?</svg>', html, re.S)
    assert m, f"no {chart_id} in the page"
    return m.group(0)


def _row(*cells: object, numeric_from: int) -> str:
    tds = "".join(f'<td class="n">{c:,}</td>' if i >= numeric_from and isinstance(c, int)
                  else f"<td>{escape(str(c))}</td>" for i, c in enumerate(cells))
    return f"<tr>{tds}</tr>"


@pytest.mark.spark
def test_run_writes_a_self_contained_page_with_at_least_four_charts(run, page):
    _, html = page
    charts = re.findall(r'<svg id="(chart-[a-z0-9-]+)"', html)
    assert len(charts) >= 4, charts
    assert {"chart-timeline", "chart-files", "chart-pii", "chart-labels", "chart-eval", "chart-f1-heatmap",
            "chart-throughput"} <= set(charts)
    assert "chart-retrieval" not in charts and "No retrieval metrics" in html  # evaluate-search has not run
    # self-contained: no script, no stylesheet link, nothing fetched
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "url(" not in html
    assert run["run_id"] in html


@pytest.mark.spark
def test_page_shows_the_real_counts_of_the_tables(run, page):
    import pyarrow.compute as pc

    _, html = page
    wh = run["wh"]
    docs = _delta(wh, "documents").to_table(columns=["format", "status", "is_deleted"])
    docs = docs.filter(pc.invert(pc.fill_null(docs["is_deleted"], False)))
    counts = docs.group_by(["format", "status"]).aggregate([([], "count_all")]).to_pylist()
    assert counts
    for r in counts:
        assert _row(r["format"], r["status"], r["count_all"], numeric_from=2) in html, r
    assert any(r["status"] == "corrupt" for r in counts)  # the planted bad PDF
    failed = sum(r["count_all"] for r in counts if r["status"] != "ok")
    assert f"Failed files ({failed})" in html

    findings = _delta(wh, "pii_findings").to_table(columns=["entity_type"])
    by_type = findings.group_by(["entity_type"]).aggregate([([], "count_all")]).to_pylist()
    assert by_type
    for r in by_type:
        assert _row(r["entity_type"], r["count_all"], numeric_from=1) in html, r

    tasks = [r for r in run["runs"] if r["task"] != "_run"]  # _run: the run's own row, not a task
    assert len(tasks) == len(run["runs"]) - 1
    for r in tasks:
        assert f"<tr><td>{r['task']}</td><td>{r['status']}</td>" in html, r["task"]
    assert "<tr><td>_run</td>" not in html and f"{len(tasks)} task(s);" in html

    preds = _delta(wh, "predictions").to_table(columns=["method", "label", "predicted"])
    chosen = preds.filter(pc.fill_null(preds["predicted"], False))
    for r in chosen.group_by(["method", "label"]).aggregate([([], "count_all")]).to_pylist():
        assert _row(r["method"], r["label"], r["count_all"], numeric_from=2) in html, r

    # the evaluations the run's baselines task wrote: the F1 chart, the heat map and their numbers
    evals = _delta(wh, "evaluations").to_table(columns=["run_id", "method", "micro_f1", "macro_f1", "n_test",
                                                        "per_label"]).to_pylist()
    assert [e["method"] for e in evals if e["run_id"] == run["run_id"]] == ["tfidf_lr"], evals
    chart, heat = _chart(html, "chart-eval"), _chart(html, "chart-f1-heatmap")
    for e in evals:
        assert (f'<tr><td>{e["method"]}</td><td class="n">{e["micro_f1"]:,.3f}</td>'
                f'<td class="n">{e["macro_f1"]:,.3f}</td><td class="n">{e["n_test"]:,}</td></tr>') in html, e
        assert f"{e['method']} micro F1: {e['micro_f1']:.3f}" in chart and f"macro F1: {e['macro_f1']:.3f}" in chart
        per_label = json.loads(e["per_label"])
        assert len(per_label) >= 2
        for label, v in per_label.items():
            assert f'<tr><td>{e["method"]}</td><td>{escape(label)}</td><td class="n">{v["f1"]:,.3f}</td></tr>' in html
            assert escape(f"{e['method']} / {label}: {v['f1']:.3f}") in heat, label


@pytest.mark.spark
def test_page_holds_no_document_text_and_no_raw_file_name(run, page):
    _, html = page
    text = re.sub(r"<[^>]+>", "\n", html)
    for v in PII_VALUES:
        assert v not in html, f"raw file name part {v!r} in the report"
    docs = _delta(run["wh"], "documents").to_table(columns=["text", "file_name", "status"]).to_pylist()
    assert any(d["file_name"] == PII_NAME_BAD and d["status"] != "ok" for d in docs)
    sentences = {s.strip() for d in docs for s in re.split(r"[\n.;]", d["text"] or "") if len(s.strip()) >= 30}
    assert sentences
    leaked = [s for s in sentences if s in text or escape(s) in html]
    assert not leaked, leaked[:5]
    for d in docs:
        assert escape(d["file_name"]) not in html or "@" not in d["file_name"]


@pytest.mark.spark
def test_report_task_ran_last_and_wrote_latest(run):
    statuses = {r["task"]: r["status"] for r in run["runs"]}
    upstream_ok = all(s == "succeeded" for t, s in statuses.items() if t != "report")
    if not upstream_ok:
        pytest.skip(f"an upstream task did not succeed ({statuses}): the local runner skips the report task "
                    "(lakedoc run writes the page itself, checked above)")
    assert statuses.get("report") == "succeeded"
    latest = run["wh"] / "_reports" / "latest.html"
    assert latest.is_file() and run["run_id"] in latest.read_text(encoding="utf-8")


@pytest.mark.spark
def test_report_command_reads_the_warehouse(run, tmp_path, capsys):
    from lakedoc.cli import main

    out = tmp_path / "r.html"
    assert main(["report", "--warehouse", str(run["wh"]), "--run-id", run["run_id"], "--out", str(out)]) == 0
    assert "run report:" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8").count('<svg id="chart-') >= 4
    assert main(["report", "--warehouse", str(run["wh"]), "--run-id", "no-such-run", "--out", str(out)]) == 2


def test_report_command_without_tables_says_so(tmp_path, capsys):
    from lakedoc.cli import main

    assert main(["report", "--warehouse", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no pipeline_runs table" in capsys.readouterr().err


@pytest.fixture(scope="module")
def search_page(run, tmp_path_factory) -> tuple[Path, str, dict]:
    """``lakedoc evaluate-search`` on the run's index (each query: the opening words of a document's first
    chunk, relevant: that document), then ``lakedoc report`` with no --search-metrics: the page and the
    metrics evaluate-search wrote."""
    from lakedoc.cli import main

    base = tmp_path_factory.mktemp("search")
    chunks = _delta(run["wh"], "chunks").to_table(columns=["doc_id", "seq", "text"]).to_pylist()
    first = {c["doc_id"]: c["text"] for c in sorted(chunks, key=lambda c: -c["seq"])}
    assert len(first) >= 5
    queries = base / "queries.jsonl"
    queries.write_text("".join(json.dumps({"id": d, "query": " ".join(re.findall(r"[A-Za-z]{3,}", t)[:12]),
                                           "relevant": [d]}) + "\n" for d, t in sorted(first.items())),
                       encoding="utf-8")
    metrics_out = base / "metrics.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["evaluate-search", "--queries", str(queries), "--warehouse", str(run["wh"]),
                   "--out", str(metrics_out)])
    assert rc == 0, out.getvalue()
    metrics = json.loads(metrics_out.read_text(encoding="utf-8"))
    # the latest metrics are left beside the reports, where the report finds them
    assert json.loads((run["wh"] / "_reports" / "search-metrics.json").read_text(encoding="utf-8")) == metrics
    path = base / "report.html"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", "--warehouse", str(run["wh"]), "--run-id", run["run_id"], "--out", str(path)]) == 0
    return path, path.read_text(encoding="utf-8"), metrics


def base_of(search_page) -> Path:
    return search_page[0].parent


@pytest.mark.spark
def test_report_shows_the_latest_retrieval_metrics_with_their_date(run, search_page):
    from datetime import datetime

    _, html, metrics = search_page
    modes = metrics["modes"]
    assert set(modes) == {"dense", "fulltext", "hybrid"}, metrics.get("skipped")
    assert modes["dense"]["queries"] == metrics["queries"] >= 5
    assert modes["dense"]["recall@10"] > 0.5  # the opening words of a document find it
    chart = _chart(html, "chart-retrieval")
    for mode, vals in modes.items():
        for name, v in vals.items():
            assert f'<tr><td>{mode}</td><td>{escape(name)}</td><td class="n">{v:,.3f}</td></tr>' in html, (mode, name)
            if name.startswith(("recall", "mrr", "ndcg")):
                assert escape(f"{mode} {name}: {v:.3f}") in chart, (mode, name)
    when = datetime.fromisoformat(metrics["evaluated_at"])
    assert f"From lakedoc evaluate-search, {when.strftime('%Y-%m-%d %H:%M:%S UTC')} ({metrics['queries']} queries; " \
           "query set queries.jsonl; index backend lancedb)" in html
    assert metrics["queries_file"] == str(base_of(search_page) / "queries.jsonl")
    assert metrics["queries_file"] not in html  # the query set's name only, not its path


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


PROBE = (
    "<script>window.__errors=[];"
    "window.addEventListener('error',function(e){window.__errors.push(String(e.message))});"
    "(function(){var ce=console.error;console.error=function(){"
    "window.__errors.push([].join.call(arguments,' '));ce.apply(console,arguments)}})();"
    "window.addEventListener('load',function(){"
    "var s=[].map.call(document.querySelectorAll('svg.chart'),function(e){"
    "var r=e.getBoundingClientRect();return [e.id,Math.round(r.width),Math.round(r.height)]});"
    "var p=document.createElement('pre');p.id='lakedoc-probe';"
    "p.textContent=JSON.stringify({svgs:s,errors:window.__errors});document.body.appendChild(p)});</script>"
)


@pytest.mark.spark
@pytest.mark.parametrize("which", ["page", "search_page"])
def test_page_renders_in_headless_chromium(which, request, tmp_path):
    """The run's page (with the evaluation charts) and the page with the retrieval metrics."""
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; `make test` tries to install it)")
    path, html = request.getfixturevalue(which)[:2]
    charts = re.findall(r'<svg id="(chart-[a-z0-9-]+)"', html)
    assert {"chart-eval", "chart-f1-heatmap"} <= set(charts)
    assert ("chart-retrieval" in charts) == (which == "search_page")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    # the page as it is: a screenshot, and the console (logged to stderr) without an error
    shot = tmp_path / "report.png"
    res = subprocess.run([exe, *flags, "--enable-logging=stderr", "--v=0", "--window-size=1400,3000",
                          f"--screenshot={shot}", path.as_uri()], capture_output=True, text=True, timeout=180)
    assert shot.is_file(), res.stderr[-3000:]
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln or "Failed to load resource" in ln]
    assert not console, console
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size[0] >= 1000 and len(img.convert("RGB").getcolors(1 << 20) or []) > 8  # drawn, not blank
    # a copy with a probe script: every chart laid out with a non-zero size, no error raised
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    res = subprocess.run([exe, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="lakedoc-probe">(.*?)</pre>', res.stdout, re.S)
    assert m, res.stderr[-3000:]
    from html import unescape

    found = json.loads(unescape(m.group(1)))
    assert found["errors"] == []
    sizes = {sid: (w, h) for sid, w, h in found["svgs"]}
    assert set(charts) <= set(sizes), (charts, sizes)
    assert all(w > 0 and h > 0 for w, h in sizes.values()), sizes


def test_progress_is_quiet_off_a_terminal_and_in_ci(monkeypatch):
    from lakedoc.report.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("LAKEDOC_PROGRESS", raising=False)
    plain = io.StringIO()
    with Progress(3, "tasks", stream=plain) as p:
        assert not p.active
        p.write("  [a] started")
        p.update()
    assert plain.getvalue() == "  [a] started\n" and p.count == 1

    tty = Tty()
    assert list(Progress(2, "evaluate", stream=tty).iterate(["x", "y"])) == ["x", "y"]
    assert "2/2" in tty.getvalue()  # a bar was drawn on the terminal

    monkeypatch.setenv("CI", "true")
    tty = Tty()
    with Progress(2, "tasks", stream=tty) as p:
        assert not p.active
        p.update(2)
    assert tty.getvalue() == ""


def test_charts_escape_their_text():
    from lakedoc.report import svg

    out = svg.bar_chart("chart-x", "t", [("<script>alert(1)</script>", 3.0), ("b&c", 1.0)])
    assert "<script>" not in out and "&lt;script&gt;" in out and "b&amp;c" in out
    assert re.search(r'<svg id="chart-x"[^>]* width="\d+" height="\d+"', out)
    heat = svg.heatmap("chart-h", "t", ["m1"], ["a", "b"], {("m1", "a"): 0.5, ("m1", "b"): None})
    assert "0.50" in heat and "n/a" in heat


@pytest.mark.spark
def test_dashboard_queries_run_on_the_tables_of_the_run(run, spark):
    """Every dataset of the bundle's Lakeview dashboard runs (Spark SQL) over the run's tables and gives
    the counts of the report; no query reads a text column or a raw name unredacted."""
    from lakedoc import schema

    dash = json.loads((ROOT / "resources" / "lakedoc.lvdash.json").read_text())
    names = {t.name for t in vars(schema).values() if isinstance(t, schema.TableSpec)}
    views = []
    for d in dash["datasets"]:
        sql = "".join(d["queryLines"])
        assert not re.search(r"\b(redacted_)?text\b|\bunits\b", sql), d["name"]
        for t in set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", sql)):
            assert t in names, (d["name"], t)
            if t not in views and (run["wh"] / t).is_dir():
                spark.createDataFrame(_delta(run["wh"], t).to_table()).createOrReplaceTempView(t)
                views.append(t)
    try:
        results = {}
        for d in dash["datasets"]:
            tables = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", "".join(d["queryLines"])))
            if tables <= set(views):
                results[d["name"]] = [r.asDict() for r in spark.sql("".join(d["queryLines"])).collect()]
    finally:
        for v in views:
            spark.catalog.dropTempView(v)
    assert set(results) == {d["name"] for d in dash["datasets"]}, "every dataset ran"
    assert {r["task"] for r in results["runs"]} == {r["task"] for r in run["runs"]}
    docs = _delta(run["wh"], "documents").to_table(columns=["status", "is_deleted"]).to_pylist()
    live = [d for d in docs if not d["is_deleted"]]
    assert sum(r["files"] for r in results["files"]) == len(live)
    assert len(results["failed_files"]) >= sum(d["status"] != "ok" for d in live)
    blob = json.dumps(results["failed_files"], default=str)
    assert not any(v in blob for v in PII_VALUES), blob
    pii = _delta(run["wh"], "pii_findings").to_table(columns=["entity_type"])
    assert sum(r["findings"] for r in results["pii"]) == pii.num_rows
    evals = _delta(run["wh"], "evaluations").to_table(columns=["method", "micro_f1", "macro_f1", "n_test"])
    assert evals.num_rows >= 1
    assert sorted((r["method"], r["micro_f1"], r["macro_f1"], r["n_test"]) for r in results["evaluations"]) == \
        sorted((r["method"], r["micro_f1"], r["macro_f1"], r["n_test"]) for r in evals.to_pylist())


def test_report_task_is_last_in_the_job_and_runs_after_failures():
    from lakedoc.runner import load_bundle
    from lakedoc.tasks import REGISTRY

    bundle = load_bundle(ROOT)
    tasks = {t["task_key"]: t for t in bundle.jobs["lakedoc"]["tasks"]}
    report = tasks["report"]
    assert REGISTRY["report"] == "lakedoc.report.stage:run"
    assert report["run_if"] == "ALL_DONE" and report["spark_python_task"]["parameters"][:2] == ["--task", "report"]
    upstream = {d["task_key"] for k, t in tasks.items() if k != "report" for d in t.get("depends_on", [])}
    assert "report" not in upstream, "nothing runs after the report"
    leaves = set(tasks) - upstream - {"report"}
    assert leaves <= {d["task_key"] for d in report["depends_on"]}, "it waits for every other leaf task"
    assert "reports" in bundle.config["resources"]["volumes"]


@pytest.mark.spark
def test_figures_are_the_same_through_unity_catalog_tables(run, spark):
    """The Unity Catalog store's path (Spark aggregates, as on Databricks and in the rehearsal) gives the
    very figures of the local delta-rs path, over copies of the run's tables in spark_catalog."""
    import uuid

    from lakedoc.report.data import gather
    from lakedoc.tables import LocalDeltaStore, UnityCatalogStore

    local = LocalDeltaStore(run["wh"])
    uc = UnityCatalogStore(spark, "spark_catalog", f"report_{uuid.uuid4().hex[:8]}")
    for name in ("pipeline_runs", "documents", "documents_redacted", "pii_findings", "predictions", "evaluations",
                 "chunks"):
        if local.exists(name):
            cols = [c for c in local.read_arrow(name).column_names if c not in ("text", "units", "redacted_text",
                                                                                  "redacted_units", "metadata")]
            (spark.createDataFrame(local.read_arrow(name, cols)).write.format("delta")
             .saveAsTable(f"spark_catalog.{uc.schema}.{name}"))
    try:
        a, b = gather(local, run["run_id"]), gather(uc, run["run_id"])
        for f in ("tasks", "files_by_format_status", "failed_files", "failed_total", "pii_by_entity",
                  "pii_documents", "labels_by_method", "documents_by_method", "evaluations"):
            assert getattr(a, f) == getattr(b, f), f
    finally:
        spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.{uc.schema} CASCADE")
