"""Unit tests of lakedoc.ingest.extract on files generated at test time (no shared corpus needed)."""
from __future__ import annotations

import io
import re
import signal
import zipfile
from email.message import EmailMessage

import pytest

from lakedoc.ingest.detect import detect_format
from lakedoc.ingest.extract import FAMILIES, STATUSES, Limits, Part, extract_file
from lakedoc.ingest.extractors.xlsx import strip_header_footer_codes

# ---------------------------------------------------------------------------------------------- helpers


def _single(parts: list[Part]) -> Part:
    assert len(parts) == 1, [(p.attachment_path, p.status, p.error) for p in parts]
    return parts[0]


def _assert_part_shape(part: Part) -> None:
    assert part.status in STATUSES
    assert part.text == "\n\n".join(u.text for u in part.units)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in part.metadata.items())
    assert (part.error is None) == (part.status == "ok")
    assert all(u.index >= 1 and u.text for u in part.units)


def _rezip(data: bytes, replace: dict[str, bytes], rename: dict[str, str] | None = None) -> bytes:
    """Copy a zip, replacing some members' contents (and optionally renaming members)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = (rename or {}).get(info.filename, info.filename)
            dst.writestr(name, replace.get(info.filename, src.read(info.filename)))
    return out.getvalue()


def _docx_bytes(build) -> bytes:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    build(document)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


_TEXTBOX_XML = (
    '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml">'
    "<mc:AlternateContent><mc:Choice Requires=\"wps\"><w:drawing><wps:txbx><w:txbxContent>"
    "<w:p><w:r><w:t>Text box phrase</w:t></w:r></w:p>"
    "</w:txbxContent></wps:txbx></w:drawing></mc:Choice>"
    "<mc:Fallback><w:pict><v:textbox><w:txbxContent>"
    "<w:p><w:r><w:t>Text box phrase</w:t></w:r></w:p>"
    "</w:txbxContent></v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r>"
)


def _rich_docx(document) -> None:
    from docx.oxml import parse_xml

    section = document.sections[0]
    section.header.paragraphs[0].text = "Default header phrase"
    section.footer.paragraphs[0].text = "Default footer phrase"
    section.different_first_page_header_footer = True
    section.first_page_header.paragraphs[0].text = "First page header phrase"
    document.add_paragraph("Body paragraph one")
    table = document.add_table(rows=3, cols=3)
    for r in range(3):
        for c in range(3):
            table.cell(r, c).text = str(r * 3 + c + 1)
    merged = table.cell(1, 0).merge(table.cell(2, 0))  # vertical merge: text must appear once
    merged.text = "Merged cell phrase"
    nested = table.cell(0, 2).add_table(rows=1, cols=2)
    nested.cell(0, 0).text = "nested left"
    nested.cell(0, 1).text = "nested right"
    paragraph = document.add_paragraph("Anchor paragraph")
    paragraph._p.append(parse_xml(_TEXTBOX_XML))
    if hasattr(document, "add_comment"):  # python-docx >= 1.2
        document.add_comment(paragraph.runs, text="Reviewer comment phrase", author="Ann")


# ---------------------------------------------------------------------------------------------- docx


def test_docx_headers_footers_tables_textboxes():
    part = _single(extract_file(_docx_bytes(_rich_docx), "rich.docx", "docx"))
    _assert_part_shape(part)
    assert (part.status, part.format) == ("ok", "docx")
    text = part.text
    for phrase in ("Default header phrase", "First page header phrase", "Default footer phrase",
                   "Body paragraph one", "nested left\tnested right", "Anchor paragraph"):
        assert phrase in text
    assert text.count("Text box phrase") == 1  # mc:Fallback duplicate skipped
    assert text.count("Merged cell phrase") == 1
    assert "1\t2" in text  # cells of a row are tab separated
    kinds = [u.kind for u in part.units]
    assert kinds[0] == "header" and kinds[-1] == "footer" and "body" in kinds
    if "comments" in kinds:
        assert part.units[kinds.index("comments")].text == "Reviewer comment phrase"
    assert {u.ref for u in part.units if u.kind == "header"} == {"header (default)", "header (first)"}


def test_docm_content_type_is_read():
    data = _docx_bytes(lambda d: d.add_paragraph("Macro enabled body"))
    src = zipfile.ZipFile(io.BytesIO(data))
    types = src.read("[Content_Types].xml").replace(
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        b"application/vnd.ms-word.document.macroEnabled.main+xml")
    docm = _rezip(data, {"[Content_Types].xml": types})
    part = _single(extract_file(docm, "macro.docm", "docx"))
    assert (part.status, part.format, part.text) == ("ok", "docm", "Macro enabled body")


def test_docx_embedded_package_becomes_attachment():
    inner = _docx_bytes(lambda d: d.add_paragraph("Inner embedded phrase"))
    outer = _docx_bytes(lambda d: d.add_paragraph("Outer body"))
    src = zipfile.ZipFile(io.BytesIO(outer))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr("word/embeddings/Microsoft_Word_Document1.docx", inner)
    parts = extract_file(buf.getvalue(), "outer.docx")
    assert [p.attachment_path for p in parts] == ["", "Microsoft_Word_Document1.docx"]
    assert parts[1].depth == 1 and parts[1].text == "Inner embedded phrase"


def test_truncated_docx_is_corrupt():
    data = _docx_bytes(lambda d: d.add_paragraph("Some text"))
    part = _single(extract_file(data[: len(data) // 2], "cut.docx", "docx"))
    assert part.status == "corrupt" and part.error.startswith("CorruptError:")


def test_pdf_renamed_as_docx_is_unsupported():
    fitz = pytest.importorskip("pymupdf")
    doc = fitz.open()
    doc.new_page().insert_text((72, 72), "I am really a PDF")
    data = doc.tobytes()
    for family in ("docx", None):
        part = _single(extract_file(data, "report.docx", family))
        assert (part.status, part.format) == ("unsupported", "pdf")
        assert "pdf" in part.error and "docx" in part.error


def test_encrypted_ooxml_and_default_password():
    pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = _docx_bytes(lambda d: d.add_paragraph("Readable after decryption"))

    def encrypt(password: str) -> bytes:
        out = io.BytesIO()
        OOXMLFile(io.BytesIO(plain)).encrypt(password, out)
        return out.getvalue()

    locked = _single(extract_file(encrypt("s3cret"), "locked.docx", "docx"))
    assert (locked.status, locked.format) == ("encrypted", "ooxml_encrypted")
    assert locked.error.startswith("EncryptedError:")
    default = _single(extract_file(encrypt("VelvetSweatshop"), "default.docx", "docx"))
    assert (default.status, default.format, default.text) == ("ok", "docx", "Readable after decryption")


# ---------------------------------------------------------------------------------------------- zip guard


def _bomb_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                    'content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.'
                    'openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        zf.writestr("word/document.xml", b"\0" * (40 * 1024 * 1024))
    return buf.getvalue()


def test_zip_bomb_ratio_is_corrupt_and_size_is_too_large():
    bomb = _bomb_zip()
    assert len(bomb) < 200_000
    part = _single(extract_file(bomb, "bomb.docx", "docx"))
    assert part.status == "corrupt" and "compression ratio" in part.error
    small = Limits(max_uncompressed_bytes=10 * 1024 * 1024)
    part = _single(extract_file(bomb, "bomb.docx", "docx", small))
    assert part.status == "too_large" and "uncompressed" in part.error


def test_file_over_max_bytes_is_too_large():
    part = _single(extract_file(b"a,b\n" * 1000, "big.csv", "mail_text", Limits(max_bytes=100)))
    assert part.status == "too_large" and part.format == "csv"


# ---------------------------------------------------------------------------------------------- xlsx


def test_xlsx_hidden_sheet_headers_dates_and_phonetic_runs():
    openpyxl = pytest.importorskip("openpyxl")
    import datetime

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Visible"
    ws.append(["Name", "When", "Amount"])
    ws.append(["Alpha", datetime.date(2024, 3, 1), 12.5])
    ws.oddHeader.left.text = "Left header phrase"
    ws.oddHeader.center.text = "Page &P"
    ws.oddFooter.right.text = "Footer phrase"
    hidden = wb.create_sheet("Secret")
    hidden.sheet_state = "hidden"
    hidden["B7"] = "Hidden sheet phrase"
    phon = wb.create_sheet("Kana")
    phon["A1"] = "漢字"
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    # give the string a phonetic reading run, as Japanese Excel does (it must not be interleaved)
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet3.xml").decode()
    sheet, count = re.subn(r"<is><t>[^<]*</t></is>",
                           '<is><t>漢字</t><rPh sb="0" eb="2"><t>かんじ</t></rPh></is>', sheet)
    assert count == 1
    data = _rezip(data, {"xl/worksheets/sheet3.xml": sheet.encode()})

    part = _single(extract_file(data, "book.xlsx", "xlsx"))
    _assert_part_shape(part)
    assert [u.ref for u in part.units] == ["sheet 'Visible'", "sheet 'Secret'", "sheet 'Kana'"]
    visible = part.units[0].text.splitlines()
    assert visible[0] == "Left header phrase\tPage"
    assert "Alpha\t2024-03-01\t12.5" in visible
    assert visible[-1] == "Footer phrase"
    assert "Hidden sheet phrase" in part.units[1].text
    assert part.units[2].text == "漢字"
    assert part.metadata["hidden_sheets"] == '["Secret"]'
    assert part.metadata["sheet_names"] == '["Visible", "Secret", "Kana"]'


def test_header_footer_codes_are_stripped():
    assert strip_header_footer_codes('&L&"Arial,Bold"&12Left&CPage &P of &N&RA && B') == "Left\tPage of\tA & B"


# ---------------------------------------------------------------------------------------------- pptx


def test_pptx_slides_tables_groups_charts_and_notes():
    pptx = pytest.importorskip("pptx")
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "Slide title phrase"
    table = slide.shapes.add_table(2, 3, Inches(1), Inches(2), Inches(6), Inches(1)).table
    for r in range(2):
        for c in range(3):
            table.cell(r, c).text = f"r{r}c{c}"
    group = slide.shapes.add_group_shape()
    inner = group.shapes.add_group_shape()
    inner.shapes.add_textbox(Inches(1), Inches(4), Inches(2), Inches(1)).text_frame.text = "Deep group text"
    slide.notes_slide.notes_text_frame.text = "Speaker notes phrase"
    prs.slides.add_slide(prs.slide_layouts[6])  # blank second slide
    chart_data = CategoryChartData()
    chart_data.categories = ["a", "b"]
    chart_data.add_series("Series one", (1, 2))
    chart_slide = prs.slides.add_slide(prs.slide_layouts[6])
    chart = chart_slide.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1), Inches(4),
                                         Inches(3), chart_data).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Chart title phrase"
    buf = io.BytesIO()
    prs.save(buf)

    parts = extract_file(buf.getvalue(), "deck.pptx", "pptx")
    part = parts[0]
    _assert_part_shape(part)
    assert [(u.kind, u.ref) for u in part.units] == [("slide", "slide 1"), ("notes", "slide 1 notes"),
                                                     ("slide", "slide 3")]
    assert "r1c0\tr1c1\tr1c2" in part.units[0].text
    assert "Deep group text" in part.units[0].text
    assert part.units[1].text == "Speaker notes phrase"
    assert part.units[2].text == "Chart title phrase"
    assert part.metadata["slide_count"] == "3"
    # the chart's embedded workbook is extracted as an attachment
    assert [(p.format, p.depth) for p in parts[1:]] == [("xlsx", 1)]
    assert "Series one" in parts[1].text


# ---------------------------------------------------------------------------------------------- pdf


def test_pdf_pages_rotation_and_image_only():
    fitz = pytest.importorskip("pymupdf")
    doc = fitz.open()
    for i in range(1, 4):
        page = doc.new_page()
        page.insert_text((72, 72), f"Page {i} phrase")
    doc[1].set_rotation(90)
    part = _single(extract_file(doc.tobytes(), "three.pdf", "pdf"))
    _assert_part_shape(part)
    assert [u.ref for u in part.units] == ["page 1", "page 2", "page 3"]
    assert "Page 2 phrase" in part.units[1].text
    assert part.metadata["page_count"] == "3"

    img = fitz.open()
    pix = fitz.Pixmap(fitz.csRGB, fitz.IRect(0, 0, 40, 20), False)
    pix.clear_with(200)
    img.new_page().insert_image(fitz.Rect(50, 50, 250, 150), pixmap=pix)
    assert _single(extract_file(img.tobytes(), "scan.pdf", "pdf")).status == "image_only"


def test_pdf_passwords():
    fitz = pytest.importorskip("pymupdf")
    doc = fitz.open()
    doc.new_page().insert_text((72, 72), "Permission protected text")
    owner_only = doc.tobytes(encryption=fitz.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="",
                             permissions=fitz.PDF_PERM_PRINT)
    user_pw = doc.tobytes(encryption=fitz.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="user")
    part = _single(extract_file(owner_only, "owner.pdf", "pdf"))
    assert (part.status, part.text) == ("ok", "Permission protected text")
    part = _single(extract_file(user_pw, "user.pdf", "pdf"))
    assert part.status == "encrypted" and part.error.startswith("EncryptedError:")


def test_pdf_with_junk_before_header():
    fitz = pytest.importorskip("pymupdf")
    doc = fitz.open()
    doc.new_page().insert_text((72, 72), "After the junk")
    data = b"\x00JUNK" * 40 + doc.tobytes()
    assert detect_format(data, "x.pdf") == "pdf"
    assert _single(extract_file(data, "x.pdf", "pdf")).text == "After the junk"


# ---------------------------------------------------------------------------------------------- mail


def _eml(subject: str, body: str, html: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Sender <ann@example.com>"
    msg["To"] = "bob@example.com"
    msg["Cc"] = "carol@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 01 Oct 2024 12:34:56 -0500"
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def test_eml_with_attachment_gives_two_parts():
    msg = _eml("Quarterly report ☸", "Plain body phrase")
    msg.add_attachment(b"Attachment phrase inside", maintype="text", subtype="plain", filename="note.txt")
    parts = extract_file(msg.as_bytes(), "mail.eml", "mail_text")
    assert [(p.attachment_path, p.depth, p.status) for p in parts] == [("", 0, "ok"), ("note.txt", 1, "ok")]
    top = parts[0]
    _assert_part_shape(top)
    assert "Subject: Quarterly report ☸" in top.text and "Cc: carol@example.com" in top.text
    assert top.metadata["subject"] == "Quarterly report ☸"
    assert top.metadata["sent_date"] == "2024-10-01T12:34:56-05:00"
    assert parts[1].text == "Attachment phrase inside"


def test_eml_keeps_html_alternative_only_when_it_differs():
    same = extract_file(_eml("s", "Same words here", "<p>Same <b>words</b> here</p>").as_bytes(), "a.eml")
    assert [u.ref for u in same[0].units] == ["header", "body"]
    differ = extract_file(_eml("s", "Plain only", "<div>HTML only words</div>").as_bytes(), "b.eml")
    assert [u.ref for u in differ[0].units] == ["header", "body", "body (html)"]
    assert "HTML only words" in differ[0].text


def test_nested_messages_and_depth_limit():
    inner = _eml("Inner", "Inner body")
    inner.add_attachment(b"Deepest text", maintype="text", subtype="plain", filename="deep.txt")
    outer = _eml("Outer", "Outer body")
    outer.add_attachment(inner)  # message/rfc822
    parts = extract_file(outer.as_bytes(), "outer.eml")
    assert [(p.attachment_path, p.depth) for p in parts] == [("", 0), ("Inner.eml", 1), ("Inner.eml/deep.txt", 2)]
    assert parts[2].text == "Deepest text"
    limited = extract_file(outer.as_bytes(), "outer.eml", limits=Limits(max_attachment_depth=1))
    assert [(p.attachment_path, p.status) for p in limited] == [("", "ok"), ("Inner.eml", "ok"),
                                                                ("Inner.eml/deep.txt", "unsupported")]
    assert "max_attachment_depth" in limited[2].error


def test_duplicate_attachment_names_are_made_unique():
    msg = _eml("dup", "body")
    for _ in range(2):
        msg.add_attachment(b"same name", maintype="text", subtype="plain", filename="a/b.txt")
    paths = [p.attachment_path for p in extract_file(msg.as_bytes(), "d.eml")]
    assert paths == ["", "a_b.txt", "a_b (2).txt"]


def test_pgp_encrypted_eml():
    raw = (b"From: a@example.com\nTo: b@example.com\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/encrypted; boundary=foo; protocol="application/pgp-encrypted"\n\n'
           b"--foo\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n"
           b"--foo\nContent-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\nabc\n"
           b"-----END PGP MESSAGE-----\n--foo--\n")
    assert _single(extract_file(raw, "secret.eml", "mail_text")).status == "encrypted"


def test_image_attachment_is_image_only_and_empty_mail_is_empty():
    msg = _eml("pic", "see picture")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, maintype="image", subtype="png", filename="p.png")
    parts = extract_file(msg.as_bytes(), "pic.eml")
    assert (parts[1].format, parts[1].status) == ("png", "image_only")
    assert _single(extract_file(b"  \n\n  ", "empty.eml", "mail_text")).status == "empty"


def test_truncated_msg_is_corrupt():
    ole_header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500
    part = _single(extract_file(ole_header, "broken.msg", "mail_text"))
    assert (part.format, part.status) == ("msg", "corrupt")


# ---------------------------------------------------------------------------------------------- csv


def test_csv_delimiter_quotes_and_long_lines():
    header = ";".join(f"col{i}" for i in range(400))
    data = (header + "\n" + 'x;"multi\nline; quoted";z\n' + "last;row;Final cell\n").encode("cp1252")
    part = _single(extract_file(data, "data.csv", "mail_text"))
    _assert_part_shape(part)
    lines = part.text.splitlines()
    assert lines[0].endswith("col398\tcol399")
    assert lines[1] == "x\tmulti line; quoted\tz"
    assert lines[2] == "last\trow\tFinal cell"
    assert part.metadata["delimiter"] == ";" and part.units[0].ref == "rows 1-3"


def test_csv_pipe_and_legacy_encodings():
    part = _single(extract_file("café|naïve\nx|y\n".encode("latin-1"), "p.csv", "mail_text"))
    assert part.text.splitlines() == ["café\tnaïve", "x\ty"]
    big5 = "名稱,說明\n產業工會,將贈送一點小小禮品以示獎勵\n".encode("big5")
    assert "將贈送一點小小禮品以示獎勵" in _single(extract_file(big5, "b.csv", "mail_text")).text


# ---------------------------------------------------------------------------------------------- robustness


def test_timeout_with_tiny_limit_restores_signal_state():
    before = signal.getsignal(signal.SIGALRM)
    rows = "\n".join(f"{i},value {i},more text {i}" for i in range(200_000)).encode()
    part = _single(extract_file(rows, "huge.csv", "mail_text", Limits(timeout_s=0.01)))
    assert part.status == "timeout" and part.error.startswith("ExtractionTimeout:")
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("name", ["x.docx", "x.xlsx", "x.pptx", "x.pdf", "x.msg", "x.eml", "x.csv", "x.bin"])
def test_garbage_never_raises(name):
    for data in (b"", b"PK\x03\x04garbage", b"%PDF-1.7\ngarbage", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1junk",
                 bytes(range(256)) * 8):
        for part in extract_file(data, name):
            _assert_part_shape(part)


def test_detect_format_from_content():
    assert detect_format(b"From: a@b.c\nTo: d@e.f\nSubject: hi\n\nbody", "x.txt") == "eml"
    assert detect_format(b"a,b,c\n1,2,3\n", "x.csv") == "csv"
    assert detect_format(b"just some words", "notes.txt") == "txt"
    assert detect_format(b"\x89PNG\r\n\x1a\n....", "x.docx") == "png"
    assert detect_format(b"\x00\x05\x16\x00" + b"\0" * 40, "x.pdf") == "applesingle"
    assert detect_format(_docx_bytes(lambda d: d.add_paragraph("x")), "renamed.bin") == "docx"
    assert detect_format(b"BMW,Audi\n", "cars.csv") == "csv"


def test_families_cover_their_formats():
    assert FAMILIES["mail_text"] == ("msg", "eml", "csv", "tsv")
    assert set(FAMILIES) == {"docx", "xlsx", "pptx", "pdf", "mail_text"}


def test_raster_images_have_the_ocr_extractor_and_stay_image_only_without_ocr():
    from lakedoc.ingest.formats import EXTRACTOR_MODULES

    assert {f: EXTRACTOR_MODULES.get(f) for f in ("png", "jpeg", "tiff", "bmp", "gif", "wmf", "emf")} == {
        "png": "image", "jpeg": "image", "tiff": "image", "bmp": "image", "gif": "image", "wmf": None, "emf": None}
    fitz = pytest.importorskip("pymupdf")
    pix = fitz.Pixmap(fitz.csRGB, fitz.IRect(0, 0, 40, 20), False)
    pix.clear_with(200)
    part = _single(extract_file(pix.tobytes("png"), "pic.bin", limits=Limits(ocr_enabled=False)))
    assert (part.format, part.status, part.metadata.get("image_format")) == ("png", "image_only", "png")
