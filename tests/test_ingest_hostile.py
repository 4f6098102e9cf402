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
        "README": "ok", "garbage.doc": "unsupported", "garbage.xls": "unsupported", "picture.png": "image_only",
        "archive.zip": "unsupported", "fake.pdf": "unsupported",
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
    # one owner per file: leftovers go to msg
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
        out = run_ingest(inp, tmp_path / "wh", only="ingest_pdf,ingest_msg")
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
