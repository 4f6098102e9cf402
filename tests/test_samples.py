"""Tests for lakedoc.samples: the generated files open, carry their PII, and are stable."""

from __future__ import annotations

import csv
import email
import hashlib
import re
import zipfile
from email import policy
from pathlib import Path

import pytest

from lakedoc.samples import (
    LABELS,
    MANIFEST_NAME,
    generate_samples,
    iban_valid,
    load_manifest,
    luhn_valid,
    main,
)

try:
    import pymupdf
except ImportError:  # pragma: no cover
    import fitz as pymupdf


# ---------------------------------------------------------------------------
# Independent readers (the library each format is meant to be opened with)
# ---------------------------------------------------------------------------


def _docx_text(path: Path) -> str:
    import docx
    from docx.oxml.ns import qn

    document = docx.Document(str(path))
    chunks = ["".join(t.text or "" for t in p.iter(qn("w:t"))) for p in document.element.body.iter(qn("w:p"))]
    for section in document.sections:
        for part in (section.header, section.footer):
            chunks.extend(p.text for p in part.paragraphs)
    return "\n".join(chunks)


def _xlsx_text(path: Path) -> str:
    import openpyxl

    wb = openpyxl.load_workbook(path)
    return "\n".join(
        str(value) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for value in row if value is not None
    )


def _pptx_text(path: Path) -> str:
    from pptx import Presentation

    chunks = []
    for slide in Presentation(str(path)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                chunks.append(shape.text_frame.text)
            if shape.has_table:
                chunks.extend(cell.text for row in shape.table.rows for cell in row.cells)
        if slide.has_notes_slide:
            chunks.append(slide.notes_slide.notes_text_frame.text)
    return "\n".join(chunks)


def _pdf_text(data: bytes) -> str:
    with pymupdf.open(stream=data, filetype="pdf") as doc:
        return "\n".join(page.get_text() for page in doc)


def _eml_text(path: Path) -> str:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    chunks = [f"{key}: {value}" for key, value in msg.items()]
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "application/pdf":
            chunks.append(_pdf_text(part.get_content()))
        elif ctype.startswith("text/"):
            chunks.append(part.get_content())
    return "\n".join(chunks)


def _csv_text(path: Path) -> str:
    with path.open(newline="", encoding="utf-8") as fh:
        return "\n".join(",".join(row) for row in csv.reader(fh))


READERS = {
    "docx": _docx_text,
    "xlsx": _xlsx_text,
    "pptx": _pptx_text,
    "pdf": lambda path: _pdf_text(path.read_bytes()),
    "eml": _eml_text,
    "csv": _csv_text,
}


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    generate_samples(out)
    return out


@pytest.fixture(scope="module")
def manifest(sample_dir) -> dict:
    return load_manifest(sample_dir)


def _entries(manifest: dict, status: str | None = "ok") -> list[dict]:
    return [e for e in manifest["files"] if status is None or e["expected_status"] == status]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_manifest_shape_and_format_counts(sample_dir, manifest):
    assert manifest["schema_version"] == 1
    assert manifest["seed"] == 7
    good = _entries(manifest)
    counts: dict[str, int] = {}
    for entry in good:
        counts[entry["format"]] = counts.get(entry["format"], 0) + 1
        assert entry["labels"] and set(entry["labels"]) <= set(LABELS)
        assert entry["path"].startswith(entry["format"] + "/")
        assert entry["pii"], f"{entry['path']} has no planted PII"
    minimum = {"docx": 3, "xlsx": 2, "pptx": 2, "pdf": 3, "eml": 3, "csv": 2}
    for fmt, n in minimum.items():
        assert counts.get(fmt, 0) >= n, (fmt, counts)
    assert "msg" not in counts
    statuses = {e["expected_status"] for e in manifest["files"]}
    assert statuses == {"ok", "corrupt", "unsupported", "empty", "image_only"}
    # Every topic is represented and every PII type is planted somewhere.
    assert {label for e in good for label in e["labels"]} == set(LABELS)
    assert {p["type"] for e in good for p in e["pii"]} == set(manifest["pii_types"])
    # The manifest is complete and correct about the bytes on disk.
    for entry in manifest["files"]:
        path = sample_dir / entry["path"]
        assert path.is_file(), path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]


def test_files_open_and_contain_planted_pii(sample_dir, manifest):
    problems = []
    for entry in _entries(manifest):
        text = READERS[entry["format"]](sample_dir / entry["path"])
        missing = [p["value"] for p in entry["pii"] if p["value"] not in text]
        if missing:
            problems.append(f"{entry['path']}: planted values not in text: {missing}")
        words = re.findall(r"[A-Za-z][A-Za-z'-]+", text)
        if len(words) < 120:
            problems.append(f"{entry['path']}: only {len(words)} words")
        if not all(p["where"] for p in entry["pii"]):
            problems.append(f"{entry['path']}: PII without location")
    assert not problems, "\n".join(problems)


def test_structural_features(sample_dir):
    import docx
    import openpyxl
    from pptx import Presentation

    memo = docx.Document(str(sample_dir / "docx/earn_q3_results_memo.docx"))
    assert memo.sections[0].header.paragraphs[0].text
    assert memo.sections[0].footer.paragraphs[0].text
    assert memo.tables
    assert b"w:txbxContent" in zipfile.ZipFile(sample_dir / "docx/earn_q3_results_memo.docx").read("word/document.xml")
    assert memo.core_properties.created.year == 2024

    for name in ("grain_wheat_shipments", "money_fx_desk_positions"):
        wb = openpyxl.load_workbook(sample_dir / f"xlsx/{name}.xlsx")
        assert len(wb.worksheets) == 2
        assert wb.worksheets[0].merged_cells.ranges

    for name in ("crude_oil_market_update", "interest_rate_outlook"):
        slides = list(Presentation(str(sample_dir / f"pptx/{name}.pptx")).slides)
        assert any(shape.has_table for slide in slides for shape in slide.shapes)
        assert any(slide.has_notes_slide and slide.notes_slide.notes_text_frame.text for slide in slides)

    for path in (sample_dir / "pdf").glob("*.pdf"):
        if path.name != "scanned_invoice.pdf":
            with pymupdf.open(path) as doc:
                assert doc.page_count >= 2, path
    with pymupdf.open(sample_dir / "pdf/earn_annual_report_2024.pdf") as doc:
        assert doc.page_count >= 4

    kinds = set()
    for path in (sample_dir / "eml").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for part in msg.walk():
            if part.get_content_type() == "text/html":
                kinds.add("html")
            if part.get_content_disposition() == "attachment":
                kinds.add(part.get_content_type())
    assert {"html", "application/pdf", "text/plain"} <= kinds


def test_bad_files_fail_the_way_the_manifest_says(sample_dir, manifest):
    import docx
    import openpyxl

    by_status = {e["expected_status"]: sample_dir / e["path"] for e in manifest["files"]}
    with pytest.raises(Exception):
        docx.Document(str(by_status["corrupt"]))
    assert not zipfile.is_zipfile(by_status["corrupt"])

    unsupported = by_status["unsupported"]
    assert unsupported.suffix == ".docx" and unsupported.read_bytes().startswith(b"%PDF-")

    wb = openpyxl.load_workbook(by_status["empty"])
    assert all(v is None for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row)

    with pymupdf.open(by_status["image_only"]) as doc:
        assert all(not page.get_text().strip() for page in doc)
        assert all(page.get_images() for page in doc)

    for status in ("corrupt", "unsupported", "empty", "image_only"):
        entry = next(e for e in manifest["files"] if e["expected_status"] == status)
        assert entry["pii"] == [] and entry["labels"] == []


def test_planted_numbers_are_valid(manifest):
    values: dict[str, set[str]] = {}
    for entry in manifest["files"]:
        for p in entry["pii"]:
            values.setdefault(p["type"], set()).add(p["value"])
    assert values["CREDIT_CARD"] and all(luhn_valid(v) for v in values["CREDIT_CARD"])
    assert values["IBAN_CODE"] and all(iban_valid(v) for v in values["IBAN_CODE"])
    for ssn in values["US_SSN"]:  # the rules of Presidio's UsSsnRecognizer
        assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", ssn)
        digits = ssn.replace("-", "")
        assert digits[:3] not in ("000", "666") and digits[3:5] != "00" and digits[5:] != "0000"
        assert len(set(digits)) > 1 and digits not in ("123456789", "987654320", "078051120")
    for ip in values["IP_ADDRESS"]:
        assert all(0 <= int(octet) <= 255 for octet in ip.split("."))
    for phone in values["PHONE_NUMBER"]:
        assert re.search(r"555-01\d\d$", phone)


def test_checksum_helpers_reject_bad_numbers():
    assert luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid("4111 1111 1111 1112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB83 WEST 1234 5698 7654 32")


def test_second_call_is_idempotent(tmp_path):
    first = generate_samples(tmp_path)
    manifest_file = tmp_path / MANIFEST_NAME
    stamps = {p: p.stat().st_mtime_ns for p in [*first, manifest_file]}
    second = generate_samples(tmp_path, seed=99)  # existing set wins without overwrite
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert load_manifest(tmp_path)["seed"] == 7


def test_same_seed_is_byte_stable_and_seed_matters(tmp_path, manifest):
    generate_samples(tmp_path / "a", seed=7)
    generate_samples(tmp_path / "b", seed=8)
    again, other = load_manifest(tmp_path / "a"), load_manifest(tmp_path / "b")
    assert [e["sha256"] for e in again["files"]] == [e["sha256"] for e in manifest["files"]]
    assert [e["pii"] for e in other["files"]] != [e["pii"] for e in manifest["files"]]


def test_overwrite_and_repair(tmp_path):
    files = generate_samples(tmp_path)
    files[0].unlink()
    repaired = generate_samples(tmp_path)  # missing file -> regenerated
    assert repaired == files and files[0].is_file()
    reseeded = generate_samples(tmp_path, seed=8, overwrite=True)
    assert reseeded == files and load_manifest(tmp_path)["seed"] == 8


def test_cli(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--seed", "3"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(load_manifest(tmp_path / "cli")["files"])
    assert all(Path(p).is_file() for p in printed)
