"""bench/peers.py's scoring on made-up answers: no peer, no corpus needed."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "bench" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module
    spec.loader.exec_module(module)
    return module


# the corpus checker's interface (check_phrases.py), with plain whitespace folding
CHECKER = SimpleNamespace(
    normalize=lambda s: " ".join((s or "").split()),
    contains=lambda text, phrase: bool(phrase) and phrase in text,
    split_phrases=lambda cell: [p.strip() for p in (cell or "").split(" || ") if p.strip()],
)

ROWS = [
    {"relative_path": "pdf/a.pdf", "expected_outcome": "text", "must_contain": "alpha beta || gamma"},
    {"relative_path": "pdf/locked.pdf", "expected_outcome": "encrypted", "must_contain": ""},
    {"relative_path": "docx/b.docx", "expected_outcome": "text", "must_contain": "delta"},
    {"relative_path": "docx/blank.docx", "expected_outcome": "empty", "must_contain": ""},
    {"relative_path": "eml/c.eml", "expected_outcome": "text", "must_contain": "epsilon"},
]


def test_peer_outcomes_map_to_the_oracle(peers):
    assert peers.peer_outcome({"outcome": "error", "error": "EncryptedDocumentException: x"}) == "encrypted"
    assert peers.peer_outcome({"outcome": "error", "error": "PDFPasswordIncorrect"}) == "encrypted"
    assert peers.peer_outcome({"outcome": "error", "error": "BadZipFile: not a zip"}) == "error"
    assert peers.peer_outcome_matches("corrupt", "error")
    assert peers.peer_outcome_matches("image_only", "empty")
    assert peers.peer_outcome_matches("image_only", "text")  # no text layer: text can only be OCR's
    assert not peers.peer_outcome_matches("empty", "text")
    assert not peers.peer_outcome_matches("encrypted", "error")
    assert peers.outcome_matches("lakedoc", "text", {"outcome": "text", "status": "partial"})
    assert not peers.outcome_matches("lakedoc", "corrupt", {"outcome": "empty", "status": "error"})
    assert peers.outcome_matches("lakedoc", "image_only", {"outcome": "text", "status": "ok", "ocr": True})
    assert not peers.outcome_matches("lakedoc", "image_only", {"outcome": "text", "status": "ok", "ocr": False})
    assert not peers.outcome_matches("tika", "corrupt", {"outcome": "hang"})


def test_aggregate_recall_outcomes_rates_and_na(peers):
    answers = {
        "pdf/a.pdf": {"outcome": "text", "text": "alpha\n beta", "seconds": 2.0},
        "pdf/locked.pdf": {"outcome": "error", "text": "", "error": "file is encrypted", "seconds": 1.0},
        "docx/b.docx": {"outcome": "hang", "text": "", "seconds": 30.0},
        "docx/blank.docx": {"outcome": "empty", "text": "", "seconds": 0.5},
    }
    pages = {"pdf/a.pdf": 4, "pdf/locked.pdf": 2}
    table, found = peers.aggregate("tika", ROWS, answers, pages, CHECKER, {"eml": "not an input format"})
    assert found == [("pdf/a.pdf", "alpha beta")]
    pdf = table["pdf"]
    assert (pdf["files"], pdf["phrases"], pdf["hits"]) == (2, 2, 1)
    assert pdf["recall"] == 0.5 and pdf["outcome_accuracy"] == 1.0
    assert pdf["docs_per_s"] == pytest.approx(2 / 3) and pdf["pages_per_s"] == pytest.approx(6 / 3)
    docx = table["docx"]
    assert docx["hangs"] == 1 and docx["recall"] == 0.0 and docx["outcome_accuracy"] == 0.5
    assert table["eml"]["na"] == "not an input format" and table["eml"]["recall"] is None
    everything = table["ALL"]  # the n/a format's phrase counts as missed, its file as a wrong outcome
    assert (everything["files"], everything["ran"], everything["phrases"], everything["hits"]) == (5, 4, 4, 1)
    assert everything["recall"] == 0.25 and everything["outcome_accuracy"] == 3 / 5
    assert everything["docs_per_s"] == pytest.approx(4 / 33.5)


def test_peer_wins_and_summary(peers):
    found = {"lakedoc": [("pdf/a.pdf", "gamma")],
             "tika": [("pdf/a.pdf", "gamma"), ("pdf/a.pdf", "alpha beta")],
             "markitdown": [("pdf/a.pdf", "alpha beta"), ("eml/c.eml", "epsilon")]}
    assert peers.peer_wins(ROWS, found) == [
        {"file": "pdf/a.pdf", "phrase": "alpha beta", "peers": ["markitdown", "tika"]},
        {"file": "eml/c.eml", "phrase": "epsilon", "peers": ["markitdown"]},
    ]
    def cell(recall, rate, na=None):
        return {"recall": recall, "docs_per_s": rate, "na": na}

    tools = {"lakedoc": {"formats": {"ALL": cell(0.9, 5.0)}},
             "tika": {"formats": {"ALL": cell(0.8, 2.0), "pdf": cell(0.8, 1.0)}},
             "markitdown": {"formats": {"ALL": cell(0.6, 4.0), "pdf": cell(0.5, 1.0)}},
             "docling": {"formats": {"ALL": cell(0.3, 8.0), "pdf": cell(None, None, "no weights")}},
             "unstructured": {"unavailable": "not installed"}}
    summary = peers.summarise(tools, {"docs_per_s": 10.0})
    assert summary["fastest_peer"] == "docling" and summary["ratio"] == 1.25
    assert summary["fastest_all_formats_peer"] == "markitdown" and summary["ratio_all_formats"] == 2.5
    assert summary["best_peer"] == "tika" and summary["best_peer_recall"] == 0.8
    assert summary["lakedoc_recall"] == 0.9
