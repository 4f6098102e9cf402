"""Issue #11 "Nothing lost": hostile input folders through the five ingestion tasks.

Every file is generated here in ``tmp_path`` (nothing hostile is committed): names with ``:{}[]\\``,
spaces, unicode, a leading ``_`` / ``.``, a hidden folder, a 0-byte file, text in UTF-16 without a BOM,
UTF-8 with a BOM and cp1252, a .doc / .xls that are garbage, an image, a zip, a loop symlink and a file
symlink. Every regular file must get exactly one row, keyed by its real path.
"""
from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import pytest
from test_ingest_stage import _docx, _eml, _pdf, docs, run_ingest

from lakedoc.ingest.extract import EXTRACTOR_VERSION, owner_family
from lakedoc.ingest.stage import doc_id_for, list_local
from lakedoc.tables import LocalDeltaStore

UTF16_TEXT = "Grüße aus Köln: café, naïve, résumé. Ünïcödé line two."
BOM8_TEXT = "Notes with a byte order mark: ½ ¾ – “quotes” ✓"
CP1252_TEXT = "Legacy code page: naïve café – price €5, “smart quotes”, Œuvre."
PLAIN_TEXT = "A text file without an extension: the content decides."


def _xlsx(path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active["A1"], wb.active["B1"] = "barley", "tonnes"
    wb.save(path)


def _pptx(path: Path) -> None:
    import pptx

    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Hostile slide title"
    prs.save(path)


def _png() -> bytes:
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 8, 8), False)
    pix.clear_with(200)
    return pix.tobytes("png")


def _pdf_pages(n: int) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for i in range(1, n + 1):
        doc.new_page().insert_text((72, 72), f"Page {i} carries phrase number {i}.")
    return doc.tobytes()


def truncated_pdf(n_pages: int = 10, keep: float = 0.45) -> bytes:
    """A real PDF cut short (as by an interrupted copy): no xref, no %%EOF, later pages gone."""
    data = _pdf_pages(n_pages)
    return data[:int(len(data) * keep)]


def _docx_file_bytes(paragraphs: list[str]) -> bytes:
    import io

    import docx

    d = docx.Document()
    for text in paragraphs:
        d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


BROKEN_DOCX_PARAGRAPHS = [f"Paragraph {i} of the broken document." for i in range(1, 11)]


def broken_docx(cut_at: int = 6) -> bytes:
    """A docx whose word/document.xml is cut inside paragraph ``cut_at`` (the zip itself is sound)."""
    import io

    data = _docx_file_bytes(BROKEN_DOCX_PARAGRAPHS)
    src = zipfile.ZipFile(io.BytesIO(data))
    xml = src.read("word/document.xml")
    cut = xml.index(f"Paragraph {cut_at} of".encode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, xml[:cut] if info.filename == "word/document.xml" else src.read(info))
    return out.getvalue()


def make_hostile(d: Path) -> dict[str, str]:
    """Build the folder; returns {path relative to d: expected root status} for every regular file."""
    d.mkdir(parents=True)
    (d / ".hidden").mkdir()
    (d / "_meta").mkdir()
    (d / "sub dir ü").mkdir()
    expected = {
        "a{b}.docx": "ok", "c:d[1].pdf": "ok", "back\\slash.xlsx": "ok", "sub dir ü/spaced ü.pptx": "ok",
        "_mail.eml": "ok", ".table.csv": "ok", ".hidden/inner.docx": "ok", "_meta/notes.txt": "ok",
        "zero.docx": "empty", "zero.bin": "empty", "utf16.txt": "ok", "bom8.md": "ok", "legacy.log": "ok",
        "README": "ok", "garbage.doc": "unsupported", "garbage.xls": "corrupt", "picture.png": "image_only",
        "archive.zip": "unsupported", "fake.pdf": "unsupported", "cut.pdf": "partial", "broken-xml.docx": "partial",
    }
    _docx(d / "a{b}.docx", "Braces in the name.", "hdr")
    _pdf(d / "c:d[1].pdf", ["Colon and brackets in the name."])
    _xlsx(d / "back\\slash.xlsx")
    _pptx(d / "sub dir ü" / "spaced ü.pptx")
    _eml(d / "_mail.eml")
    (d / ".table.csv").write_text("name,city\nAlpha,Oslo\n")
    _docx(d / ".hidden" / "inner.docx", "Inside a hidden folder.", "hdr")
    (d / "_meta" / "notes.txt").write_text("Underscore folder notes.")
    (d / "zero.docx").write_bytes(b"")
    (d / "zero.bin").write_bytes(b"")
    (d / "utf16.txt").write_bytes(UTF16_TEXT.encode("utf-16-le"))  # no BOM
    (d / "bom8.md").write_bytes(b"\xef\xbb\xbf" + BOM8_TEXT.encode("utf-8"))
    (d / "legacy.log").write_bytes(CP1252_TEXT.encode("cp1252"))
    (d / "README").write_text(PLAIN_TEXT)
    (d / "garbage.doc").write_bytes(bytes((i * 151 + 7) % 256 for i in range(5000)))
    (d / "garbage.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4)
    (d / "picture.png").write_bytes(_png())
    with zipfile.ZipFile(d / "archive.zip", "w") as zf:
        zf.writestr("inside.txt", "zipped text")
    (d / "fake.pdf").write_text("plain text pretending to be a pdf")
    (d / "cut.pdf").write_bytes(truncated_pdf())
    (d / "broken-xml.docx").write_bytes(broken_docx())
    os.symlink("..", d / "sub dir ü" / "loop")  # a loop: must not be followed
    os.symlink("a{b}.docx", d / "link.docx")  # a file symlink: the target has its own row
    try:  # a name that is not UTF-8 (where the file system allows it)
        with open(os.path.join(os.fsencode(d), b"latin1-\xe9.txt"), "wb") as fh:
            fh.write(b"A name that is not UTF-8.")
        expected["latin1-\\xe9.txt"] = "ok"
    except OSError:
        pass
    return expected


def _roots(wh: Path):
    df = docs(wh)
    return df, df[df.depth == 0]


def _real(d: Path, rel: str) -> str:
    return os.path.realpath(d) + "/" + rel


@pytest.mark.spark
def test_hostile_folder_one_row_per_file_idempotent_and_deletions(spark, tmp_path, caplog):
    inp, wh = tmp_path / "in", tmp_path / "wh"
    expected = make_hostile(inp)
    out = run_ingest(inp, wh)
    assert {k: o.status for k, o in out.items()} == dict.fromkeys(out, "succeeded"), out

    df, roots = _roots(wh)
    assert df.doc_id.is_unique
    want = {_real(inp, rel): status for rel, status in expected.items()}
    assert sorted(roots.source_path) == sorted(want), "exactly one row per regular file, by real path"
    got = dict(zip(roots.source_path, roots.status, strict=True))
    assert got == want, {p: (got.get(p), s) for p, s in want.items() if got.get(p) != s}
    # one owner per file: leftovers go to mail_text
    assert dict(zip(roots.source_path, roots.source_task, strict=True)) == {
        p: owner_family(p.rsplit("/", 1)[-1]) for p in want}
    assert set(roots.extractor_version) == {EXTRACTOR_VERSION}
    assert all(doc_id_for(p) == i for p, i in zip(roots.source_path, roots.doc_id, strict=True))

    by = roots.set_index("source_path")
    text = lambda rel: by.loc[_real(inp, rel), "text"]  # noqa: E731
    assert text("utf16.txt") == UTF16_TEXT and by.loc[_real(inp, "utf16.txt"), "metadata"]
    assert dict(by.loc[_real(inp, "utf16.txt"), "metadata"])["encoding"] == "utf-16-le"
    assert text("bom8.md") == BOM8_TEXT  # no U+FEFF left
    assert text("legacy.log") == CP1252_TEXT
    assert text("README") == PLAIN_TEXT
    assert "Braces in the name." in text("a{b}.docx")
    assert "Colon and brackets" in text("c:d[1].pdf")
    assert "barley" in text("back\\slash.xlsx")
    assert "Hostile slide title" in text("sub dir ü/spaced ü.pptx")
    assert "Inside a hidden folder." in text(".hidden/inner.docx")
    for rel in ("garbage.doc", "garbage.xls", "archive.zip"):
        assert by.loc[_real(inp, rel), "error"], rel
    assert by.loc[_real(inp, "garbage.doc"), "format"] == "unknown"
    assert "zip" in by.loc[_real(inp, "archive.zip"), "error"]
    assert by.loc[_real(inp, "picture.png"), "format"] == "png"
    assert by.loc[_real(inp, "zero.docx"), "size_bytes"] == 0
    for rel in ("cut.pdf", "broken-xml.docx"):  # partial: text kept, the error says why
        assert by.loc[_real(inp, rel), "text"] and "may be incomplete" in by.loc[_real(inp, rel), "error"], rel

    # a second run writes nothing new
    store = LocalDeltaStore(wh)
    version = store.version("documents")
    out = run_ingest(inp, wh)
    assert {o.status for o in out.values()} == {"succeeded"}, out
    assert all(o.rows_out == 0 for o in out.values()), {k: o.rows_out for k, o in out.items()}
    assert store.version("documents") == version

    # every docx-family file deleted: the task succeeds and marks exactly those rows deleted
    docx_files = [rel for rel in expected if owner_family(rel) == "docx"]
    for rel in docx_files:
        (inp / rel).unlink()
    out = run_ingest(inp, wh)
    assert {o.status for o in out.values()} == {"succeeded"}, out
    _, roots = _roots(wh)
    deleted = set(roots[roots.is_deleted.astype(bool)].source_path)
    assert deleted == {_real(inp, rel) for rel in docx_files}
    assert out["ingest_docx"].rows_out == len(docx_files)

    # the input emptied: every task succeeds, every row is soft-deleted, and a WARNING says so
    for rel in expected:
        if (inp / rel).exists():
            (inp / rel).unlink()
    for p in inp.iterdir():
        if p.name.startswith("latin1-") or p.is_symlink():
            p.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        out = run_ingest(inp, wh)
    assert {o.status for o in out.values()} == {"succeeded"}, out
    _, roots = _roots(wh)
    assert roots.is_deleted.astype(bool).all() and len(roots) == len(expected)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("holds no files at all" in w for w in warnings), warnings


@pytest.mark.spark
def test_empty_input_on_a_fresh_warehouse_warns(spark, tmp_path, caplog):
    inp = tmp_path / "empty"
    inp.mkdir()
    with caplog.at_level(logging.WARNING):
        out = run_ingest(inp, tmp_path / "wh", only="ingest_pdf,ingest_mail_text")
    assert {o.status for o in out.values()} == {"succeeded"}, out
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("holds no files at all" in w for w in warnings) == 2, warnings


def test_local_listing_does_not_follow_links_and_lists_every_regular_file(tmp_path):
    inp = tmp_path / "in"
    expected = make_hostile(inp)
    (tmp_path / "outside.txt").write_text("outside the input")
    os.symlink(tmp_path / "outside.txt", inp / "outside-link.txt")
    os.symlink(tmp_path, inp / "_meta" / "up")
    listing = list_local(str(inp))
    assert sorted(listing.files.path) == sorted(_real(inp, rel) for rel in expected)
    assert len(listing.symlinks) == 4  # loop, link.docx, outside-link.txt, _meta/up
    # a symlinked input root is resolved once: rows are keyed by the real path
    os.symlink(inp, tmp_path / "alias")
    assert sorted(list_local(str(tmp_path / "alias")).files.path) == sorted(listing.files.path)
    assert sorted(list_local("file://" + str(inp)).files.path) == sorted(listing.files.path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_local(str(tmp_path / "missing"))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_bad_setting_is_one_line(capsys):
    from lakedoc.cli import main

    assert main(["task", "--task", "ingest_pdf", "--set", "ingest.timeout_s=abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("configuration error:") and "ingest.timeout_s" in err[0], err


def test_cli_warehouse_that_is_a_file_stops_before_spark(tmp_path, capsys):
    from lakedoc.cli import main

    f = tmp_path / "not-a-folder"
    f.write_text("x")
    (tmp_path / "in").mkdir()
    assert main(["run", "--input", str(tmp_path / "in"), "--warehouse", str(f), "--only", "ingest_pdf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is an existing file, not a folder" in err[0], err
    assert main(["task", "--task", "ingest_pdf", "--set", f"tables.warehouse={f}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tables.warehouse" in err[0], err


def test_cli_paths_resolve_against_the_current_folder(tmp_path, monkeypatch):
    from lakedoc import cli

    monkeypatch.chdir(tmp_path)
    assert cli.cli_path("in") == str(tmp_path / "in")
    assert cli.cli_path("abfss://c@a.dfs.core.windows.net/x") == "abfss://c@a.dfs.core.windows.net/x"
    seen = {}
    monkeypatch.setattr("lakedoc.tasks.run_task", lambda task, cfg, run_id=None, input_path=None: seen.update(
        input_path=input_path))
    cli.task_main(["--task", "ingest_pdf", "--input", "rel/in"])
    assert seen["input_path"] == str(tmp_path / "rel" / "in")


# ---------------------------------------------------------------------------------------------- partial text


def test_truncated_pdf_is_partial_with_the_text_it_still_has():
    from lakedoc.ingest.extract import extract_file

    whole = extract_file(_pdf_pages(10), "whole.pdf", "pdf")[0]
    assert (whole.status, whole.error) == ("ok", None)
    part = extract_file(truncated_pdf(), "cut.pdf", "pdf")[0]
    assert part.status == "partial", (part.status, part.error)
    assert "Page 1 carries phrase number 1." in part.text
    assert "Page 10 carries" not in part.text  # the cut really lost text
    assert part.error.startswith("text may be incomplete: ")
    assert "truncated" in part.error and "page tree lists 10 page(s)" in part.error
    # cut after every page object but before the xref: the text is whole, the truncation still flagged
    late = extract_file(truncated_pdf(keep=0.97), "late.pdf", "pdf")[0]
    assert late.status == "partial" and "truncated" in late.error


def test_docx_with_broken_xml_is_partial():
    from lakedoc.ingest.extract import extract_file

    whole = extract_file(_docx_file_bytes(BROKEN_DOCX_PARAGRAPHS), "whole.docx", "docx")[0]
    assert whole.status == "ok"
    part = extract_file(broken_docx(), "broken.docx", "docx")[0]
    assert part.status == "partial", (part.status, part.error)
    assert "Paragraph 5 of the broken document." in part.text
    assert "Paragraph 9" not in part.text
    assert "word/document.xml" in part.error and "recovered" in part.error


def test_xlsx_and_pptx_with_broken_xml_are_partial(tmp_path):
    import io

    from lakedoc.ingest.extract import extract_file

    def cut_member(data: bytes, member_prefix: str, marker: bytes) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                body = src.read(info)
                if info.filename.startswith(member_prefix) and marker in body:
                    body = body[:body.index(marker) + len(marker) // 2]
                dst.writestr(info.filename, body)
        return out.getvalue()

    import openpyxl

    wb = openpyxl.Workbook()
    for r in range(1, 21):
        wb.active.cell(row=r, column=1, value=r * 7)
    wb.save(tmp_path / "n.xlsx")
    xlsx = cut_member((tmp_path / "n.xlsx").read_bytes(), "xl/worksheets/sheet", b'<row r="12"')
    part = extract_file(xlsx, "cut.xlsx", "xlsx")[0]
    assert part.status == "partial" and "xl/worksheets/sheet1.xml" in part.error, (part.status, part.error)
    assert "77" in part.text and "140" not in part.text

    _pptx(tmp_path / "s.pptx")
    pptx = cut_member((tmp_path / "s.pptx").read_bytes(), "ppt/slides/slide", b"</p:sp>")
    part = extract_file(pptx, "cut.pptx", "pptx")[0]
    assert part.status == "partial" and "ppt/slides/slide1.xml" in part.error, (part.status, part.error)
    assert "Hostile slide title" in part.text


# ---------------------------------------------------------------------------------------------- memory


def _cut_zip_bomb(inflated_mb: int) -> bytes:
    """A docx whose document.xml inflates to ``inflated_mb`` MB, with its central directory cut off."""
    import io

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
    return data[:data.rindex(b"PK\x01\x02")]


def test_zip_without_central_directory_is_not_inflated_in_full():
    from lakedoc.ingest.detect import MAX_SNIFF_MEMBER_BYTES, detect_format, local_members
    from lakedoc.ingest.extract import Limits, extract_file, memory_cap_available

    bomb = _cut_zip_bomb(300)
    assert len(bomb) < 1_000_000
    members = local_members(bomb)  # headers only: nothing inflated yet
    assert set(members) == {"[Content_Types].xml", "word/document.xml"}
    assert len(members["word/document.xml"].read(1000)) == 1000  # inflation stops at the bound
    assert detect_format(bomb, "cut.docx") == "docx"
    assert MAX_SNIFF_MEMBER_BYTES < 300 * 2**20
    if not memory_cap_available():
        pytest.skip("the hard memory cap needs Linux")
    # under a 128 MB cap: inflating 300 MB would fail with too_large; the row says corrupt instead
    part = extract_file(bomb, "cut.docx", "docx", Limits(max_memory_bytes=128 * 2**20))[0]
    assert part.status == "corrupt", (part.status, part.error)


def test_memory_cap_stops_an_extraction_and_names_the_cap():
    from lakedoc.ingest.extract import Limits, extract_file, memory_cap_available

    if not memory_cap_available():
        pytest.skip("the hard memory cap needs Linux")
    text = b"lorem ipsum dolor sit amet " * (2 * 2**20)  # 54 MB of text: decoding alone needs more than 16 MB
    capped = extract_file(text, "big.txt", None, Limits(max_memory_bytes=16 * 2**20))[0]
    assert capped.status == "too_large", (capped.status, capped.error)
    assert "memory cap of 16 MB" in capped.error and "ingest.max_memory_mb" in capped.error
    small = extract_file(b"lorem ipsum " * 1000, "small.txt", None, Limits(max_memory_bytes=16 * 2**20))[0]
    assert small.status == "ok" and small.text.startswith("lorem ipsum")
    # in the child too, attachments and the deadline work: an eml with an attachment, a tiny timeout
    parts = extract_file(bytes(_eml_bytes()), "m.eml", None, Limits(max_memory_bytes=256 * 2**20))
    assert [p.status for p in parts] == ["ok", "ok"]
    slow = extract_file(b"a,b\n" * 2_000_000, "huge.csv", None, Limits(timeout_s=0.01, max_memory_bytes=2**30))[0]
    assert slow.status == "timeout" and slow.error.startswith("ExtractionTimeout")


def _eml_bytes() -> bytes:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "ann@example.com", "bob@example.com", "Memo"
    m.set_content("Body text.")
    m.add_attachment(b"Attached note.", maintype="text", subtype="plain", filename="note.txt")
    return bytes(m)


def test_limits_come_from_the_ingest_settings():
    from lakedoc.config_schema import IngestSettings
    from lakedoc.ingest.extract import Limits

    s = IngestSettings()
    assert Limits() == Limits.from_settings(s)
    limits = Limits.from_settings(s.model_copy(update={"timeout_s": 7.5, "max_memory_mb": 0}))
    assert limits.timeout_s == 7.5 and limits.max_memory_bytes == 0
    assert limits.max_bytes == int(s.max_file_mb * 2**20)
    assert limits.max_uncompressed_bytes == int(s.max_uncompressed_mb * 2**20)
    assert (limits.max_pdf_pages, limits.max_attachment_depth) == (s.max_pdf_pages, s.max_attachment_depth)
    assert Limits(timeout_s=1).max_pdf_pages == s.max_pdf_pages  # a field not given: the configured default


def test_redaction_plans_partial_documents_like_ok_ones():
    """Downstream of bronze, ``partial`` is ``ok``: redact_pii picks those rows up (and every later stage
    reads the redacted rows)."""
    import pyarrow as pa

    from lakedoc.pii.stage import plan

    rows = pa.table({"doc_id": ["a", "b", "c", "d"], "content_hash": ["h"] * 4, "extractor_version": ["3"] * 4,
                     "status": ["ok", "partial", "corrupt", "partial"], "is_deleted": [False, False, False, True],
                     "char_count": [10, 20, 0, 5]})

    class Store:
        def exists(self, table):
            return str(table) == "documents"

        def read_arrow(self, table, columns=None, where=None):
            assert str(table) == "documents"
            return rows.select(columns) if columns else rows

    class Ctx:
        tables = Store()

    todo, gone, n_live = plan(Ctx(), "cfg")  # type: ignore[arg-type]
    assert sorted(todo.doc_id) == ["a", "b"] and n_live == 2 and gone == []
