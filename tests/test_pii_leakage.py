"""End to end: sample office files with planted PII -> ingest_* -> redact_pii, then look for leaks.

Every value the analyzer detects in a bronze document must be absent from that document's redacted
text and units, and absent everywhere from pii_findings, pipeline_runs, every other table but bronze
`documents`, and the captured log output. The leak rate of the planted values must equal the
analyzer's miss rate: the pipeline loses nothing the analyzer finds.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path


from conftest import ROOT, all_strings

FORMATS_REQUIRED = {"docx", "pdf", "eml"}


def test_no_detected_value_leaks(tmp_path, sample_dir, spark, caplog, capfd):
    from lakedoc.cli import main
    from lakedoc.config import load_config
    from lakedoc.pii.engine import get_engine, load_settings
    from lakedoc.tables import LocalDeltaStore

    wh = tmp_path / "wh"
    caplog.set_level(logging.DEBUG)
    rc = main(["run", "--root", str(ROOT), "--only", "ingest_*,redact_pii", "--input", str(sample_dir),
               "--warehouse", str(wh), "--parallel", "2"])
    assert rc == 0
    cfg = load_config("local", conf_dir=ROOT / "conf", sets=[f"tables.warehouse={wh}"])
    store = LocalDeltaStore(wh, spark)
    bronze = [r for r in store.read_arrow("documents").to_pylist()
              if r["status"] == "ok" and not r["is_deleted"]]
    silver = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    assert {r["doc_id"] for r in bronze} == set(silver)
    formats = {(silver[r["doc_id"]]["format"] or "").lower() for r in bronze}
    assert FORMATS_REQUIRED <= formats, f"formats redacted: {formats}"
    assert all(s["status"] == "ok" for s in silver.values())

    # what the analyzer (same configuration, in this process) finds in each bronze text
    engine = get_engine(load_settings(cfg["pii"]))
    entity_types = {*cfg["pii"]["entities"], *(r["entity"] for r in cfg["pii"]["recognizers"])}
    found = engine.analyze_many([r["text"] or "" for r in bronze])
    detected_all: set[str] = set()
    for r, fs in zip(bronze, found):
        assert not isinstance(fs, Exception)
        text = r["text"] or ""
        values = {text[f.start:f.end].strip() for f in fs}
        # an entity type's own name (the samples manifest, an input file too, lists "type":
        # "PHONE_NUMBER") is in every <PHONE_NUMBER> placeholder of the redacted text: not a leak
        values = {v for v in values if len(v) >= 4 and v not in entity_types}
        detected_all |= values
        s = silver[r["doc_id"]]
        for v in values:
            assert v not in s["redacted_text"], f"{v!r} detected in {r['file_name']} but left in redacted_text"
            for u in s["redacted_units"] or []:
                assert v not in (u["text"] or ""), f"{v!r} left in a unit of {r['file_name']}"
    assert detected_all, "the analyzer found nothing: the samples should carry PII"

    # nowhere else either: findings, run records, any table but bronze, logs
    tables = [p.name for p in wh.iterdir() if (p / "_delta_log").is_dir() and p.name != "documents"]
    assert {"documents_redacted", "pii_findings", "pipeline_runs"} <= set(tables)
    for name in tables:
        strings = all_strings(store.read_arrow(name).to_pylist())
        if name == "documents_redacted":
            continue  # checked per document above (a value missed in one document may appear there)
        blob = "\n".join(strings)
        leaked = sorted(v for v in detected_all if v in blob)
        assert not leaked, f"detected values in table {name}: {leaked[:5]}"
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    leaked = sorted(v for v in detected_all if v in logs)
    assert not leaked, f"detected values in the log output: {leaked[:5]}"

    # planted values: leak rate == analyzer miss rate
    manifest = json.loads((Path(sample_dir) / "samples_manifest.json").read_text())
    by_root: dict[str, list[dict]] = {}
    for r in bronze:
        by_root.setdefault(r["source_path"], []).append(r)
    planted = leaked_n = missed_n = 0
    report = []
    for entry in manifest["files"]:
        rows = by_root.get(str(Path(sample_dir) / entry["path"]))
        if not rows:
            continue
        for pii in entry.get("pii") or []:
            value = pii["value"]
            occurrences = [(r, i) for r in rows for i in _find_all(r["text"] or "", value)]
            if not occurrences:
                continue  # not in the extracted text (e.g. a part the extractor does not read)
            planted += 1
            idx = {r["doc_id"]: k for k, r in enumerate(bronze)}
            missed = any(not any(f.start < i + len(value) and f.end > i for f in found[idx[r["doc_id"]]])
                         for r, i in occurrences)
            leaked = any(value in (silver[r["doc_id"]]["redacted_text"] or "") for r in rows)
            missed_n += missed
            leaked_n += leaked
            if missed or leaked:
                report.append((pii["type"], entry["path"], "missed" if missed else "", "leaked" if leaked else ""))
    assert planted >= 10
    print(f"\nplanted PII values found in text: {planted}; leaked: {leaked_n} ({leaked_n / planted:.1%}); "
          f"analyzer misses: {missed_n} ({missed_n / planted:.1%})")
    for line in report:
        print("  ", *line)
    assert leaked_n == missed_n


def _find_all(text: str, value: str) -> list[int]:
    out, i = [], text.find(value)
    while i >= 0:
        out.append(i)
        i = text.find(value, i + 1)
    return out
