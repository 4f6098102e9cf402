"""Oracle test: extract the 93 real files of ../shared/corpus and score them against EXPECTED.tsv.

Asserts that the file's own status matches the expected outcome for >= 96% of the files and that
phrase recall (strict matching of check_phrases.py, on the file's text plus all its attachments) is
>= 0.97 overall and >= 0.90 in every format folder, both by our own per-folder count and by the
shared checker run on the JSONL this test writes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from lakedoc.ingest.extract import FAMILIES, extract_file

SHARED = Path(os.environ.get("LAKEDOC_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
CORPUS = SHARED / "corpus"

MIN_STATUS_ACCURACY = 0.96
MIN_RECALL_OVERALL = 0.97
MIN_RECALL_PER_FORMAT = 0.90
OUTCOME_TO_STATUS = {"text": "ok"}  # other expected outcomes are status names already
FOLDER_FAMILY = {"csv": "mail_text", "eml": "mail_text", "msg": "mail_text"}  # other folders are their own family


def _family(relative_path: str) -> str | None:
    folder = relative_path.split("/", 1)[0]
    family = FOLDER_FAMILY.get(folder, folder)
    if family in FAMILIES:
        return family
    ext = relative_path.rsplit(".", 1)[-1].lower()
    return next((fam for fam, exts in FAMILIES.items() if ext in exts), None)


def _load_checker():
    path = CORPUS / "check_phrases.py"
    spec = importlib.util.spec_from_file_location("check_phrases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """Extract every corpus file once; returns (checker module, rows, results, jsonl path)."""
    if not (CORPUS / "EXPECTED.tsv").is_file():
        pytest.skip(f"../shared/corpus not found: {CORPUS} (set LAKEDOC_SHARED to the shared folder)")
    checker = _load_checker()
    rows = checker.load_expected(CORPUS / "EXPECTED.tsv")
    results = {}
    jsonl = tmp_path_factory.mktemp("corpus") / "extracted.jsonl"
    started = time.monotonic()
    with jsonl.open("w", encoding="utf-8") as out:
        for row in rows:
            rel = row["relative_path"]
            t0 = time.monotonic()
            parts = extract_file((CORPUS / rel).read_bytes(), rel.rsplit("/", 1)[-1], _family(rel))
            results[rel] = {"parts": parts, "seconds": time.monotonic() - t0}
            for part in parts:
                out.write(json.dumps({"relative_path": rel, "attachment_path": part.attachment_path,
                                      "status": part.status, "text": part.text}, ensure_ascii=False) + "\n")
    print(f"\nextracted {len(rows)} corpus files in {time.monotonic() - started:.1f}s")
    return checker, rows, results, jsonl


def _score(checker, rows, results):
    """Per format folder: [files, status hits, phrases, strict phrase hits]; plus the misses."""
    table = defaultdict(lambda: [0, 0, 0, 0])
    misses = []
    for row in rows:
        rel = row["relative_path"]
        folder = rel.split("/", 1)[0]
        parts = results[rel]["parts"]
        expected = OUTCOME_TO_STATUS.get(row["expected_outcome"], row["expected_outcome"])
        status_ok = parts[0].status == expected
        if not status_ok:
            misses.append(f"{rel}: status {parts[0].status} != {expected} ({parts[0].error})")
        text = checker.normalize("\n".join(p.text for p in parts))
        phrases = checker.split_phrases(row.get("must_contain", ""))
        hits = 0
        for phrase in phrases:
            if checker.contains(text, checker.normalize(phrase)):
                hits += 1
            else:
                misses.append(f"{rel}: phrase not found: {phrase!r}")
        for key in (folder, "ALL"):
            entry = table[key]
            entry[0] += 1
            entry[1] += status_ok
            entry[2] += len(phrases)
            entry[3] += hits
    return table, misses


def _format_table(table) -> str:
    lines = [f"{'format':8} {'files':>5} {'status':>7} {'phrases':>7} {'recall':>7}"]
    for key in sorted(k for k in table if k != "ALL") + ["ALL"]:
        files, status_hits, phrases, hits = table[key]
        recall = hits / phrases if phrases else 1.0
        lines.append(f"{key:8} {files:5d} {status_hits / files:7.3f} {phrases:7d} {recall:7.3f}")
    return "\n".join(lines)


def test_corpus_status_and_phrase_recall(corpus_run):
    checker, rows, results, _ = corpus_run
    table, misses = _score(checker, rows, results)
    report = _format_table(table) + ("\n" + "\n".join(misses) if misses else "")
    print("\n" + report)
    files, status_hits, phrases, hits = table["ALL"]
    assert status_hits / files >= MIN_STATUS_ACCURACY, report
    assert hits / phrases >= MIN_RECALL_OVERALL, report
    for key, (_, _, n, h) in table.items():
        if n:
            assert h / n >= MIN_RECALL_PER_FORMAT, f"{key}: recall {h / n:.3f}\n{report}"


def test_shared_checker_agrees(corpus_run):
    """Run check_phrases.py itself on the JSONL we wrote (its format keys split docm/pptm/xlsm)."""
    checker, _, _, jsonl = corpus_run
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        checker.main([str(CORPUS / "EXPECTED.tsv"), str(jsonl), "--json"])
    scores = json.loads(captured.getvalue())
    print("\n" + json.dumps(scores, indent=1))
    assert scores["ALL"]["strict_recall"] >= MIN_RECALL_OVERALL
    for key, entry in scores.items():
        if entry["phrases"]:
            assert entry["strict_recall"] >= MIN_RECALL_PER_FORMAT, (key, entry)


def test_corpus_parts_are_well_formed(corpus_run):
    """Every part: a known status, str metadata, text = joined units, unique attachment paths."""
    from lakedoc.ingest.extract import STATUSES

    _, _, results, _ = corpus_run
    for rel, result in results.items():
        parts = result["parts"]
        assert parts[0].attachment_path == "" and parts[0].depth == 0, rel
        paths = [p.attachment_path for p in parts]
        assert len(paths) == len(set(paths)), (rel, paths)
        for part in parts:
            assert part.status in STATUSES, (rel, part.status)
            assert part.text == "\n\n".join(u.text for u in part.units), rel
            assert all(isinstance(v, str) for v in part.metadata.values()), rel
            assert (part.error is None) == (part.status == "ok"), (rel, part.status, part.error)
            if part.attachment_path:
                parent = part.attachment_path.rpartition("/")[0]
                assert parent in paths and part.depth == part.attachment_path.count("/") + 1, rel


def test_corpus_long_documents_are_fast(corpus_run):
    """The 619-page PDF and the 872-page docx are read in full well within the default timeout."""
    _, _, results, _ = corpus_run
    slowest = max(results.items(), key=lambda kv: kv[1]["seconds"])
    print(f"\nslowest file: {slowest[0]} {slowest[1]['seconds']:.2f}s")
    for rel in ("pdf/DA-619p.pdf", "docx/handbook-872p.docx"):
        assert results[rel]["parts"][0].status == "ok"
        assert results[rel]["seconds"] < 30, (rel, results[rel]["seconds"])
    pdf = results["pdf/DA-619p.pdf"]["parts"][0]
    assert pdf.metadata["page_count"] == "619" and pdf.units[-1].ref == "page 619"
