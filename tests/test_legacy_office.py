"""Legacy (97-2003 binary) Office files: .doc, .xls, .ppt (lakedoc.ingest.extractors.legacy_office).

Test files are generated, nothing binary is committed: .xls with xlwt (a BIFF8 writer); .doc and .ppt
by LibreOffice (``soffice --headless --convert-to``) from a .docx / .pptx built with python-docx /
python-pptx, an independent writer of the binary formats. Without LibreOffice the .doc/.ppt tests skip
with the reason (``apt-get install libreoffice-writer-nogui libreoffice-impress-nogui``); the error
paths (damaged, encrypted, Word 6) need nothing.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from lakedoc.ingest.extract import extract_file
from lakedoc.ingest.formats import EXTRACTOR_MODULES, UNSUPPORTED_REASONS

PHRASES = ["alpha contract renewal", "Zürich office budget", "quarterly revenue forecast", "déjà vu clause",
           "thirty day notice", "warehouse inventory audit", "Ελληνικά γράμματα", "net payment terms"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def recall(phrases: list[str], text: str) -> float:
    text = _norm(text)
    return sum(p in text for p in phrases) / len(phrases)


def _single(parts):
    assert len(parts) == 1, [(p.attachment_path, p.status, p.error) for p in parts]
    return parts[0]


def test_legacy_formats_have_an_extractor():
    assert {f: EXTRACTOR_MODULES.get(f) for f in ("doc", "xls", "ppt")} == dict.fromkeys(
        ("doc", "xls", "ppt"), "legacy_office")
    assert not {"doc", "xls", "ppt"} & set(UNSUPPORTED_REASONS)


# ---------------------------------------------------------------------------------------------- xls


def _xls_bytes() -> bytes:
    xlwt = pytest.importorskip("xlwt", reason="xlwt (test extra) writes the .xls test files")
    import datetime
    import io

    book = xlwt.Workbook(encoding="utf-8")
    sales = book.add_sheet("Sales")
    for r, row in enumerate([["region", "amount", "booked"], [PHRASES[1], 1200, datetime.date(2024, 3, 12)],
                             [PHRASES[4], 3.5, None], [PHRASES[6], -7, True]]):
        for c, value in enumerate(row):
            if isinstance(value, datetime.date):
                sales.write(r, c, value, xlwt.easyxf(num_format_str="YYYY-MM-DD"))
            elif value is not None:
                sales.write(r, c, value)
    notes = book.add_sheet("Notes")
    notes.write(2, 1, PHRASES[0])
    notes.write(4, 0, " ".join(PHRASES[2:4]))
    notes.write(5, 3, PHRASES[5] + " and " + PHRASES[7])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_xls_sheets_cells_dates_numbers():
    data = _xls_bytes()
    part = _single(extract_file(data, "book.xls"))
    assert (part.format, part.status) == ("xls", "ok"), part.error
    assert [u.ref for u in part.units] == ["sheet 'Sales'", "sheet 'Notes'"]
    assert part.units[0].text.split("\n") == ["region\tamount\tbooked", "Zürich office budget\t1200\t2024-03-12",
                                              "thirty day notice\t3.5", "Ελληνικά γράμματα\t-7\tTRUE"]
    assert recall(PHRASES, part.text) == 1.0
    # content decides: the same bytes under another name (the catch-all family reads them)
    assert _single(extract_file(data, "export.bin")).format == "xls"


def test_damaged_xls_is_corrupt():
    data = _xls_bytes()
    cut = _single(extract_file(data[:1500], "cut.xls"))
    assert cut.status == "corrupt" and cut.error
    garbage = _single(extract_file(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4, "garbage.xls"))
    assert (garbage.format, garbage.status) == ("xls", "corrupt")
    assert "cannot read the workbook" in garbage.error


# ---------------------------------------------------------------------------------------------- doc / ppt


def _soffice() -> str:
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if not exe:
        pytest.skip("LibreOffice (soffice) writes the .doc/.ppt test files and is not installed: apt-get "
                    "install libreoffice-writer-nogui libreoffice-impress-nogui")
    return exe


def _convert(tmp_path, source, target: str) -> bytes:
    exe = _soffice()
    profile = tmp_path / "lo-profile"
    subprocess.run([exe, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", target,
                    "--outdir", str(tmp_path), str(source)], check=True, capture_output=True, timeout=240)
    out = source.with_suffix(f".{target}")
    assert out.exists(), f"LibreOffice did not write {out.name}"
    return out.read_bytes()


@pytest.fixture(scope="module")
def legacy_files(tmp_path_factory):
    docx = pytest.importorskip("docx")
    pptx = pytest.importorskip("pptx")
    tmp = tmp_path_factory.mktemp("legacy")
    d = docx.Document()
    d.add_heading("Legacy heading one", 1)
    for p in PHRASES[:5]:
        d.add_paragraph(f"The {p} is discussed here.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text = PHRASES[5]
    table.cell(1, 1).text = "cell south east"
    d.add_paragraph("See ").add_run(PHRASES[6])
    d.sections[0].header.paragraphs[0].text = f"Header: {PHRASES[7]}"
    d.save(tmp / "w.docx")
    deck = pptx.Presentation()
    for i, p in enumerate(PHRASES[:6], 1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide title {i}"
        slide.placeholders[1].text = f"The {p} bullet"
        slide.notes_slide.notes_text_frame.text = f"speaker note {i}: {PHRASES[(i + 5) % len(PHRASES)]}"
    deck.save(tmp / "p.pptx")
    return {"doc": _convert(tmp, tmp / "w.docx", "doc"), "ppt": _convert(tmp, tmp / "p.pptx", "ppt")}


def test_doc_body_table_header(legacy_files):
    part = _single(extract_file(legacy_files["doc"], "letter.doc"))
    assert (part.format, part.status) == ("doc", "ok"), part.error
    assert [u.ref for u in part.units] == ["body", "footnotes, headers, comments, text boxes"]
    body = part.units[0].text
    assert body.startswith("Legacy heading one\nThe alpha contract renewal is discussed here.")
    assert "Ελληνικά γράμματα" in body and "\x07" not in body and "\r" not in body
    assert "Header: net payment terms" in part.units[1].text
    assert recall(PHRASES, part.text) == 1.0


def test_ppt_slides_and_notes(legacy_files):
    part = _single(extract_file(legacy_files["ppt"], "deck.ppt"))
    assert (part.format, part.status) == ("ppt", "ok"), part.error
    slides = [u for u in part.units if u.kind == "slide"]
    assert [u.ref for u in slides] == [f"slide {i}" for i in range(1, 7)]
    assert slides[1].text == "Slide title 2\nThe Zürich office budget bullet"
    notes = [u for u in part.units if u.kind == "notes"]
    assert [u.ref for u in notes] == [f"slide {i} notes" for i in range(1, 7)]
    assert notes[0].text == "speaker note 1: Ελληνικά γράμματα"
    assert recall(PHRASES, part.text) == 1.0


def test_doc_flags_word6_and_encryption(legacy_files):
    import olefile

    doc = legacy_files["doc"]
    ole = olefile.OleFileIO(doc)
    word = ole.openstream("WordDocument").read()
    ole.close()
    start = doc.find(word[:64])
    assert start > 0

    def patched(offset: int, fmt: str, value: int) -> bytes:
        out = bytearray(doc)
        struct.pack_into(fmt, out, start + offset, value)
        return bytes(out)

    flags = struct.unpack_from("<H", word, 0x0A)[0]
    encrypted = _single(extract_file(patched(0x0A, "<H", flags | 0x0100), "locked.doc"))
    assert (encrypted.format, encrypted.status) == ("doc", "encrypted")
    word6 = _single(extract_file(patched(2, "<H", 0x65 - 1), "old.doc"))
    assert word6.status == "unsupported" and "Word 6/95" in word6.error


def test_damaged_legacy_files_never_crash(legacy_files):
    """Cut and byte-flipped .doc/.ppt/.xls files give a status that says so, never ``error``."""
    import random

    rng = random.Random(11)
    for name, data in (("a.doc", legacy_files["doc"]), ("a.ppt", legacy_files["ppt"]), ("a.xls", _xls_bytes())):
        for i in range(40):
            if i % 2:
                damaged = data[:rng.randrange(512, len(data))]
            else:
                flipped = bytearray(data)
                for _ in range(rng.randint(1, 30)):
                    flipped[rng.randrange(512, len(flipped))] = rng.randrange(256)
                damaged = bytes(flipped)
            part = extract_file(damaged, name)[0]
            assert part.status in ("ok", "partial", "empty", "corrupt", "unsupported"), (name, i, part.error)
