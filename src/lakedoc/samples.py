"""Deterministic sample office documents for demos, smoke runs and tests.

``generate_samples(out_dir)`` writes a small, realistic document set that the
pipeline can run on with no other data: business documents on Reuters-21578
style topics (``earn``, ``acq``, ``crude``, ``grain``, ``money-fx``,
``interest``, ``trade``, ``ship``) with fake personal data planted in them, plus
a few deliberately broken files so that every ingest status shows up in a run.

Layout of ``out_dir`` (one folder per format)::

    docx/  3 memos/briefings (header, footer, table; one with a VML text box)
           + corrupt_board_minutes.docx (truncated zip -> "corrupt")
           + scanned_contract.docx (really a PDF -> "unsupported")
    xlsx/  2 workbooks (two sheets each, merged title cells)
           + empty_workbook.xlsx (no cell values -> "empty")
    pptx/  2 decks (bullets, a table, speaker notes)
    pdf/   3 reports written with pymupdf (real text layer, 2-5 pages)
           + scanned_invoice.pdf (a page that is only an image -> "image_only")
    eml/   3 e-mails (one with a PDF attachment, one with an HTML alternative,
           one with a text attachment)
    csv/   2 record extracts with free-text remark columns
    samples_manifest.json

Outlook ``.msg`` files are not generated: no library available here writes
the OLE compound format, so ``.msg`` extraction has to be tested with real files.

Manifest (``samples_manifest.json``)::

    {
      "schema_version": 1,
      "generator": "lakedoc.samples",
      "seed": 7,
      "labels": ["earn", "acq", ...],            # label set the topics come from
      "pii_types": {"PERSON": "...", ...},       # planted entity types
      "files": [
        {
          "path": "docx/earn_q3_results_memo.docx",   # relative, POSIX
          "format": "docx",
          "title": "...",
          "labels": ["earn"],                         # [] for the broken files
          "expected_status": "ok",     # or corrupt / unsupported / empty / image_only
          "features": ["header", "footer", "table", "text_box"],
          "sha256": "...",
          "pii": [{"type": "PERSON", "value": "...", "where": ["body", "footer"]}]
        }
      ]
    }

``pii[].value`` is the exact string written into the document; ``where`` names
the parts that contain it (``body``, ``table``, ``header``, ``footer``,
``text_box``, ``notes``, a sheet name, ``headers``/``html``/``attachment:NAME``
for e-mail). PII types use Presidio entity names (``PERSON``,
``EMAIL_ADDRESS``, ``PHONE_NUMBER``, ``US_SSN``, ``CREDIT_CARD``,
``IBAN_CODE``, ``IP_ADDRESS``) except ``STREET_ADDRESS``, which Presidio has no
default recognizer for. Card numbers are public test numbers that pass the
Luhn check, IBANs carry valid mod-97 check digits, SSNs pass Presidio's
``UsSsnRecognizer`` validation and phone numbers use the fictional 555-01xx
range (still valid for ``phonenumbers``).

Determinism: the seed chooses which fake person/number lands in which document
and perturbs some table figures. For one seed the output is byte-stable: core
properties and PDF metadata are fixed, zip entries get a fixed timestamp, and
MIME boundaries and Message-IDs are derived from the seed.

Run as ``python -m lakedoc.samples DIR [--seed N] [--overwrite]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import html
import io
import json
import random
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

try:  # PyMuPDF >= 1.24 exposes ``pymupdf``; older releases only ``fitz``.
    import pymupdf
except ImportError:  # pragma: no cover - depends on the installed version
    import fitz as pymupdf  # type: ignore[no-redef]  # the same module under its old name

__all__ = [
    "LABELS",
    "MANIFEST_NAME",
    "generate_samples",
    "iban_valid",
    "load_manifest",
    "luhn_valid",
    "main",
]

MANIFEST_NAME = "samples_manifest.json"
MANIFEST_VERSION = 1
LABELS = ("earn", "acq", "crude", "grain", "money-fx", "interest", "trade", "ship")

PII_TYPES = {
    "PERSON": "full name of a fictional person",
    "EMAIL_ADDRESS": "e-mail address",
    "PHONE_NUMBER": "US phone number in the fictional 555-01xx range",
    "US_SSN": "US social security number that passes Presidio's validation",
    "CREDIT_CARD": "public test card number (passes the Luhn check)",
    "IBAN_CODE": "IBAN with valid mod-97 check digits",
    "IP_ADDRESS": "IPv4 address",
    "STREET_ADDRESS": "US street address (no default Presidio recognizer)",
}

# Fixed timestamps keep core properties, PDF metadata and zip entries stable.
DOC_TIME = dt.datetime(2024, 11, 8, 9, 30, 0)
_ZIP_TIME = (2024, 11, 8, 9, 30, 0)
_PDF_DATE = "D:20241108093000+00'00'"
_AUTHOR = "lakedoc sample generator"

# --------------------------------------------------------------------------
# Fake personal data pools. The seed decides the order values are handed out.
# --------------------------------------------------------------------------

_POOLS: dict[str, tuple[str, ...]] = {
    "PERSON": (
        "Margaret Holloway", "Daniel Okafor", "Priya Raman", "Thomas Whitfield",
        "Elena Kowalski", "Marcus Bennett", "Sofia Lindqvist", "Robert Castellano",
        "Hannah Mercer", "James Thornton", "Laura Pemberton", "Kevin Abernathy",
        "Aisha Darmawan", "Gregory Fairbanks", "Natalie Brennan", "Victor Salazar",
    ),
    "PHONE_NUMBER": (
        "(212) 555-0147", "(312) 555-0128", "415-555-0182", "(713) 555-0163",
        "+1 617-555-0133", "(646) 555-0199", "206-555-0171", "(952) 555-0114",
        "(504) 555-0156", "(303) 555-0190", "(704) 555-0138", "(202) 555-0125",
    ),
    "US_SSN": (
        "536-22-8147", "412-67-3095", "219-84-5526", "604-31-7718",
        "347-59-2264", "158-43-6610", "281-70-9453", "463-18-2079",
    ),
    "CREDIT_CARD": (
        "4111 1111 1111 1111", "5555 5555 5555 4444", "3782 822463 10005",
        "4012 8888 8888 1881", "6011 1111 1111 1117", "5105 1051 0510 5100",
    ),
    "IBAN_CODE": (
        "GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00",
        "ES91 2100 0418 4502 0005 1332", "CH93 0076 2011 6238 5295 7",
        "BE68 5390 0754 7034",
    ),
    "IP_ADDRESS": (
        "10.24.8.117", "192.168.14.52", "172.16.40.9", "203.0.113.45",
        "198.51.100.23", "10.8.0.254",
    ),
    "STREET_ADDRESS": (
        "1450 Harbor Boulevard, Long Beach, CA 90802",
        "88 Commerce Street, Houston, TX 77002",
        "2207 Elevator Row, Minneapolis, MN 55415",
        "415 Mission Street, San Francisco, CA 94105",
        "17 Water Street, New York, NY 10004",
        "930 Lakeshore Drive, Chicago, IL 60611",
        "61 Cotton Exchange Lane, Memphis, TN 38103",
        "2740 Port Avenue, Baltimore, MD 21224",
    ),
}


def luhn_valid(number: str) -> bool:
    """Return True when the digits of ``number`` (spaces/dashes allowed) pass Luhn."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 12 or len(digits) != len(number.replace(" ", "").replace("-", "")):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """Return True when ``iban`` (spaces allowed) has valid ISO 13616 check digits."""
    compact = iban.replace(" ", "").upper()
    if len(compact) < 15 or not compact.isalnum() or not compact[:2].isalpha():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


class _Pools:
    """Seeded, cycling dispensers of fake PII values."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self._values = {kind: rng.sample(vals, len(vals)) for kind, vals in _POOLS.items()}
        self._next = {kind: 0 for kind in _POOLS}
        self.rng = rng

    def next(self, kind: str) -> str:
        values = self._values[kind]
        value = values[self._next[kind] % len(values)]
        self._next[kind] += 1
        return value


@dataclass(frozen=True)
class _Person:
    name: str
    email: str

    @property
    def first(self) -> str:
        return self.name.split()[0]


class _Plant:
    """Hands out PII values for one document and records what was used."""

    def __init__(self, pools: _Pools) -> None:
        self._pools = pools
        self.values: list[tuple[str, str]] = []
        self.rng = pools.rng

    def _record(self, kind: str, value: str) -> str:
        if (kind, value) not in self.values:
            self.values.append((kind, value))
        return value

    def take(self, kind: str) -> str:
        """Draw the next value of ``kind`` and record it as planted."""
        return self._record(kind, self._pools.next(kind))

    def person(self, domain: str) -> _Person:
        """Draw a person; both the name and ``first.last@domain`` are recorded."""
        name = self.take("PERSON")
        email = name.lower().replace(" ", ".") + "@" + domain
        return _Person(name, self._record("EMAIL_ADDRESS", email))

    @property
    def protected(self) -> list[str]:
        """Planted values that line wrapping must not split."""
        return [value for _, value in self.values]


@dataclass
class _Sample:
    """One generated file: bytes plus everything the manifest says about it."""

    path: str
    title: str
    labels: list[str]
    data: bytes
    parts: dict[str, str] = field(default_factory=dict)
    planted: list[tuple[str, str]] = field(default_factory=list)
    expected_status: str = "ok"
    features: list[str] = field(default_factory=list)

    @property
    def format(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def manifest_entry(self) -> dict:
        pii = []
        for kind, value in self.planted:
            where = [name for name, text in self.parts.items() if value in text]
            if not where:  # a builder bug: the value never made it into the file
                raise RuntimeError(f"{self.path}: planted {kind} {value!r} not written")
            pii.append({"type": kind, "value": value, "where": where})
        return {
            "path": self.path,
            "format": self.format,
            "title": self.title,
            "labels": list(self.labels),
            "expected_status": self.expected_status,
            "features": list(self.features),
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "pii": pii,
        }


@dataclass
class _Section:
    """A heading, prose paragraphs and an optional table (first row = header)."""

    heading: str | None = None
    paragraphs: Sequence[str] = ()
    table: Sequence[Sequence[str]] | None = None
    page_break: bool = False  # PDF only: start the section on a new page


def _sections_text(sections: Iterable[_Section]) -> tuple[str, str]:
    """Return (prose text, table text) of ``sections``."""
    prose: list[str] = []
    tables: list[str] = []
    for s in sections:
        if s.heading:
            prose.append(s.heading)
        prose.extend(s.paragraphs)
        if s.table:
            tables.extend(" | ".join(row) for row in s.table)
    return "\n".join(prose), "\n".join(tables)


# --------------------------------------------------------------------------
# Rendering helpers shared by the builders
# --------------------------------------------------------------------------

_GLUE = "\x00"


def _wrap(text: str, fits: Callable[[str], bool], protect: Sequence[str] = ()) -> list[str]:
    """Greedy word wrap that never breaks inside a protected value."""
    for value in sorted(protect, key=len, reverse=True):
        if " " in value:
            text = text.replace(value, value.replace(" ", _GLUE))
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and not fits(candidate.replace(_GLUE, " ")):
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return [line.replace(_GLUE, " ") for line in lines]


def _wrap_block(text: str, width: int, protect: Sequence[str]) -> str:
    """Wrap every line of ``text`` to ``width`` characters."""
    out = []
    for line in text.split("\n"):
        out.extend(_wrap(line, lambda s: len(s) <= width, protect) or [""])
    return "\n".join(out)


def _stable_zip(data: bytes) -> bytes:
    """Rewrite an OOXML zip with fixed entry timestamps (keeps entry order)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def _set_core_properties(props, title: str, author: str) -> None:
    """Fix the OPC core properties shared by python-docx and python-pptx."""
    props.title = title
    props.author = author
    props.last_modified_by = author
    props.created = DOC_TIME
    props.modified = DOC_TIME
    props.revision = 1
    props.comments = "Sample document generated by lakedoc.samples; all personal data is fictional."


# ---- docx ------------------------------------------------------------------

_VML_TEXTBOX = (
    '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">'
    "<w:pict>"
    '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" '
    'path="m,l,21600r21600,l21600,xe"><v:stroke joinstyle="miter"/>'
    '<v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>'
    '<v:shape id="lakedocTextBox1" type="#_x0000_t202" style="width:432pt;height:48pt" '
    'fillcolor="#eaf1fb" strokecolor="#1f4e79">'
    "<v:textbox><w:txbxContent><w:p><w:r><w:rPr><w:b/></w:rPr>"
    '<w:t xml:space="preserve">{text}</w:t></w:r></w:p></w:txbxContent></v:textbox>'
    "</v:shape></w:pict></w:r>"
)


def _render_docx(
    title: str,
    sections: Sequence[_Section],
    *,
    author: str,
    header: str | None = None,
    footer: str | None = None,
    text_box: str | None = None,
) -> tuple[bytes, dict[str, str], list[str]]:
    """Render a Word document; returns (bytes, text by part, features)."""
    import docx
    from docx.oxml import parse_xml
    from docx.shared import Pt

    document = docx.Document()
    _set_core_properties(document.core_properties, title, author)
    section = document.sections[0]
    parts: dict[str, str] = {}
    features: list[str] = []
    if header:
        section.header.paragraphs[0].text = header
        parts["header"] = header
        features.append("header")
    if footer:
        section.footer.paragraphs[0].text = footer
        parts["footer"] = footer
        features.append("footer")

    document.add_heading(title, level=0)
    if text_box:
        document.add_paragraph()._p.append(parse_xml(_VML_TEXTBOX.format(text=xml_escape(text_box))))
        parts["text_box"] = text_box
        features.append("text_box")
    for sec in sections:
        if sec.heading:
            document.add_heading(sec.heading, level=1)
        for para in sec.paragraphs:
            document.add_paragraph(para)
        if sec.table:
            table = document.add_table(rows=len(sec.table), cols=len(sec.table[0]))
            table.style = "Table Grid"
            for r, row in enumerate(sec.table):
                for c, value in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = value
                    run = cell.paragraphs[0].runs[0]
                    run.font.size = Pt(10)
                    run.bold = r == 0
            if "table" not in features:
                features.append("table")
    prose, tables = _sections_text(sections)
    parts["body"] = f"{title}\n{prose}"
    if tables:
        parts["table"] = tables
    buf = io.BytesIO()
    document.save(buf)
    return _stable_zip(buf.getvalue()), parts, features


# ---- xlsx ------------------------------------------------------------------


@dataclass
class _Sheet:
    """A worksheet: merged title row, optional header + rows, then notes."""

    name: str
    title: str
    header: Sequence[str] = ()
    rows: Sequence[Sequence[object]] = ()
    notes: Sequence[str] = ()
    widths: Sequence[int] = ()


def _render_xlsx(title: str, sheets: Sequence[_Sheet], *, author: str) -> tuple[bytes, dict[str, str]]:
    """Render a workbook; returns (bytes, text by sheet name)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    wb.remove(wb.active)
    parts: dict[str, str] = {}
    for spec in sheets:
        ws = wb.create_sheet(spec.name)
        ncols = max(len(spec.header), 1)
        ws.cell(row=1, column=1, value=spec.title).font = Font(bold=True, size=13)
        if ncols > 1:
            ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncols)
        row = 3
        if spec.header:
            for c, heading in enumerate(spec.header, start=1):
                ws.cell(row=row, column=c, value=heading).font = Font(bold=True)
            row += 1
        for values in spec.rows:
            for c, value in enumerate(values, start=1):
                cell = ws.cell(row=row, column=c, value=value)
                if isinstance(value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
            row += 1
        if spec.rows:
            row += 1
        for note in spec.notes:
            ws.cell(row=row, column=1, value=note).alignment = Alignment(wrap_text=True, vertical="top")
            row += 1
        for c, width in enumerate(spec.widths, start=1):
            ws.column_dimensions[get_column_letter(c)].width = width
        lines = [spec.title, " | ".join(spec.header)]
        lines += [" | ".join(str(v) for v in values) for values in spec.rows]
        parts[spec.name] = "\n".join(lines + list(spec.notes))

    props = wb.properties
    props.title = title
    props.creator = author
    props.lastModifiedBy = author
    props.created = DOC_TIME
    props.modified = DOC_TIME
    buf = io.BytesIO()
    # ExcelWriter directly: openpyxl's save_workbook() stamps "modified" with now().
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    return _stable_zip(buf.getvalue()), parts


# ---- pptx ------------------------------------------------------------------


@dataclass
class _Slide:
    """A content slide: title, bullets and/or a table, and speaker notes."""

    title: str
    bullets: Sequence[str] = ()
    table: Sequence[Sequence[str]] | None = None
    notes: str | None = None


def _render_pptx(
    title: str, subtitle: str, slides: Sequence[_Slide], *, author: str
) -> tuple[bytes, dict[str, str], list[str]]:
    """Render a deck (title slide + ``slides``); returns (bytes, parts, features)."""
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    _set_core_properties(prs.core_properties, title, author)
    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = title
    first.placeholders[1].text = subtitle
    slide_text = [title, subtitle]
    tables: list[str] = []
    notes: list[str] = []
    for spec in slides:
        layout = prs.slide_layouts[5] if spec.table else prs.slide_layouts[1]
        slide = prs.slides.add_slide(layout)
        slide.shapes.title.text = spec.title
        slide_text.append(spec.title)
        if spec.table:
            nrows, ncols = len(spec.table), len(spec.table[0])
            shape = slide.shapes.add_table(
                nrows, ncols, Inches(0.6), Inches(1.6), Inches(8.8), Inches(0.45 * nrows)
            )
            for r, row in enumerate(spec.table):
                for c, value in enumerate(row):
                    cell = shape.table.cell(r, c)
                    cell.text = value
                    for para in cell.text_frame.paragraphs:
                        for run in para.runs:
                            run.font.size = Pt(14)
            tables.extend(" | ".join(row) for row in spec.table)
            if spec.bullets:
                top = Inches(1.8 + 0.45 * nrows)
                frame = slide.shapes.add_textbox(Inches(0.6), top, Inches(8.8), Inches(1.5)).text_frame
                frame.word_wrap = True
                _fill_frame(frame, spec.bullets, Pt(14))
        elif spec.bullets:
            _fill_frame(slide.placeholders[1].text_frame, spec.bullets, Pt(16))
        slide_text.extend(spec.bullets)
        if spec.notes:
            slide.notes_slide.notes_text_frame.text = spec.notes
            notes.append(spec.notes)
    parts = {"slides": "\n".join(slide_text), "table": "\n".join(tables), "notes": "\n".join(notes)}
    features = [name for name in ("table", "notes") if parts[name]]
    buf = io.BytesIO()
    prs.save(buf)
    return _stable_zip(buf.getvalue()), parts, features


def _fill_frame(frame, lines: Sequence[str], size) -> None:
    """Write one paragraph per line into a python-pptx text frame."""
    frame.text = lines[0]
    for line in lines[1:]:
        frame.add_paragraph().text = line
    for para in frame.paragraphs:
        for run in para.runs:
            run.font.size = size


# ---- pdf -------------------------------------------------------------------


class _PdfComposer:
    """Minimal flowing-text layout on Letter pages with Base-14 fonts."""

    WIDTH, HEIGHT, MARGIN = 612, 792, 72

    def __init__(self, protect: Sequence[str] = ()) -> None:
        self.doc = pymupdf.open()
        self.protect = list(protect)
        self.y = 0.0
        self._new_page()

    def _new_page(self) -> None:
        self.page: pymupdf.Page = self.doc.new_page(width=self.WIDTH, height=self.HEIGHT)
        self.y = self.MARGIN

    def _room(self, height: float) -> None:
        if self.y + height > self.HEIGHT - self.MARGIN:
            self._new_page()

    def line(self, text: str, size: float = 10.5, font: str = "helv", x: float | None = None) -> None:
        self._room(size * 1.45)
        self.page.insert_text((x or self.MARGIN, self.y + size), text, fontsize=size, fontname=font)
        self.y += size * 1.45

    def gap(self, height: float) -> None:
        self.y += height

    def paragraph(self, text: str, size: float = 10.5, font: str = "helv") -> None:
        width = self.WIDTH - 2 * self.MARGIN
        fits = lambda s: pymupdf.get_text_length(s, fontname=font, fontsize=size) <= width  # noqa: E731
        for line in _wrap(text, fits, self.protect):
            self.line(line, size, font)
        self.gap(size * 0.6)

    def heading(self, text: str, size: float = 13) -> None:
        self.gap(4)
        self._room(size * 4)
        self.line(text, size, "hebo")
        self.gap(3)

    def table(self, rows: Sequence[Sequence[str]], size: float = 9.5) -> None:
        widths = [
            max(pymupdf.get_text_length(str(r[c]), fontname="hebo", fontsize=size) for r in rows) + 14
            for c in range(len(rows[0]))
        ]
        self._room(size * 1.45 * min(len(rows), 4))
        for i, row in enumerate(rows):
            self._room(size * 1.45)
            x = float(self.MARGIN)
            for value, w in zip(row, widths, strict=False):
                self.page.insert_text((x, self.y + size), str(value), fontsize=size,
                                      fontname="hebo" if i == 0 else "helv")
                x += w
            self.y += size * 1.45
        self.gap(size)

    def sections(self, sections: Sequence[_Section]) -> None:
        for sec in sections:
            if sec.page_break and self.y > self.MARGIN:
                self._new_page()
            if sec.heading:
                self.heading(sec.heading)
            for para in sec.paragraphs:
                self.paragraph(para)
            if sec.table:
                self.table(sec.table)

    def finish(self, title: str, author: str, footer: str | None = None) -> bytes:
        count = self.doc.page_count
        for number in range(1, count + 1):
            page = self.doc[number - 1]
            label = f"{footer} | Page {number} of {count}" if footer else f"Page {number} of {count}"
            page.insert_text((self.MARGIN, self.HEIGHT - 40), label, fontsize=8, fontname="helv", color=(0.4, 0.4, 0.4))
        return _pdf_bytes(self.doc, title, author)


def _pdf_bytes(doc, title: str, author: str) -> bytes:
    """Fix PDF metadata and serialise without a fresh /ID (byte-stable)."""
    doc.set_metadata(
        {
            "title": title,
            "author": author,
            "subject": title,
            "keywords": "lakedoc sample",
            "creator": "lakedoc.samples",
            "producer": "lakedoc.samples",
            "creationDate": _PDF_DATE,
            "modDate": _PDF_DATE,
        }
    )
    data = doc.tobytes(garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return data


def _render_pdf(
    title: str,
    sections: Sequence[_Section],
    *,
    author: str,
    protect: Sequence[str],
    subtitle: str | None = None,
    footer: str | None = None,
    cover: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """Render a text PDF; with ``cover`` the title gets a page of its own."""
    pdf = _PdfComposer(protect)
    if cover:
        pdf.gap(180)
        pdf.paragraph(title, size=22, font="hebo")
        if subtitle:
            pdf.paragraph(subtitle, size=13)
        pdf._new_page()
    else:
        pdf.paragraph(title, size=16, font="hebo")
        if subtitle:
            pdf.paragraph(subtitle, size=11, font="helv")
    pdf.sections(sections)
    prose, tables = _sections_text(sections)
    parts = {"body": "\n".join(filter(None, [title, subtitle, prose]))}
    if tables:
        parts["table"] = tables
    return pdf.finish(title, author, footer), parts


def _render_image_only_pdf(rng: random.Random) -> bytes:
    """A one-page 'scan': a pixmap of grey text-like bars, no text layer."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 510, 660), False)
    pix.clear_with(246)
    pix.set_rect(pymupdf.IRect(30, 30, 300, 52), (40, 40, 40))  # letterhead block
    y = 90
    while y < 600:
        width = rng.randint(250, 450)
        pix.set_rect(pymupdf.IRect(30, y, 30 + width, y + 7), (90, 90, 90))
        y += rng.choice((16, 16, 16, 30))
    pix.set_rect(pymupdf.IRect(330, 610, 480, 640), (30, 30, 30))  # "signature"
    page.insert_image(pymupdf.Rect(51, 66, 561, 726), pixmap=pix)
    return _pdf_bytes(doc, "Scanned invoice", _AUTHOR)


# ---- eml / csv -------------------------------------------------------------


@dataclass
class _Attachment:
    filename: str
    data: bytes | str
    text: str  # extracted text, for the manifest's "where"
    mime: str = "application/pdf"


def _render_eml(
    *,
    key: str,
    sender: _Person,
    to: Sequence[_Person],
    subject: str,
    when: dt.datetime,
    body: Sequence[str],
    protect: Sequence[str],
    table: Sequence[Sequence[str]] | None = None,
    html_alternative: bool = False,
    attachments: Sequence[_Attachment] = (),
    cc: Sequence[_Person] = (),
) -> tuple[bytes, dict[str, str], list[str]]:
    """Build an RFC 5322 message with fixed Date, Message-ID and boundaries."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"{sender.name} <{sender.email}>"
    msg["To"] = ", ".join(f"{p.name} <{p.email}>" for p in to)
    if cc:
        msg["Cc"] = ", ".join(f"{p.name} <{p.email}>" for p in cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{key}@samples.lakedoc.invalid>"

    blocks = list(body)
    if table:
        widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
        aligned = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() for row in table]
        blocks.insert(len(blocks) - 1, "\n".join(aligned))  # before the sign-off
    plain = "\n\n".join(_wrap_block(b, 76, protect) for b in blocks) + "\n"
    msg.set_content(plain)
    parts = {"headers": "\n".join(f"{k}: {v}" for k, v in msg.items()), "body": plain}
    features = []
    if html_alternative:
        html_body = _html_body(subject, body, table, protect)
        msg.add_alternative(html_body, subtype="html")
        parts["html"] = html.unescape(html_body)
        features.append("html_alternative")
    for att in attachments:
        if isinstance(att.data, str):
            msg.add_attachment(att.data, subtype="plain", filename=att.filename)
        else:
            maintype, subtype = att.mime.split("/")
            msg.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename)
        parts[f"attachment:{att.filename}"] = att.text
        features.append(f"attachment:{att.mime}")
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_lakedoc_{key}_{i}")
    return msg.as_bytes(), parts, features


def _html_body(subject: str, body: Sequence[str], table, protect: Sequence[str]) -> str:
    """HTML rendering of the same message (paragraphs, optional table)."""
    escaped = [html.escape(v, quote=False) for v in protect]
    out = ["<html><head><meta charset=\"utf-8\"><title>", html.escape(subject), "</title></head><body>"]
    for i, block in enumerate(body):
        if table and i == len(body) - 1:
            out.append("<table border=\"1\" cellpadding=\"4\">")
            for r, row in enumerate(table):
                tag = "th" if r == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{html.escape(v)}</{tag}>" for v in row) + "</tr>")
            out.append("</table>")
        for para in html.escape(block, quote=False).split("\n\n"):
            lines = ["\n".join(_wrap(line, lambda s: len(s) <= 70, escaped)) for line in para.split("\n")]
            out.append("<p>" + "<br>\n".join(lines) + "</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _render_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> tuple[bytes, dict[str, str]]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = buf.getvalue()
    return text.encode("utf-8"), {"body": text}


# --------------------------------------------------------------------------
# The documents
# --------------------------------------------------------------------------


def _docx_earn(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    ir = p.person("harrowindustries.com")
    media = p.person("harrowindustries.com")
    ir_phone, media_phone = p.take("PHONE_NUMBER"), p.take("PHONE_NUMBER")
    card, ip = p.take("CREDIT_CARD"), p.take("IP_ADDRESS")
    title = "Harrow Industries Reports Higher Third Quarter Earnings"
    sections = [
        _Section(None, [
            "Harrow Industries Inc. today reported third quarter net income of $48.6 million, or $1.12 "
            "per diluted share, compared with $39.4 million, or 91 cents per share, in the same quarter "
            "a year earlier. Revenue rose 9.3 percent to $612.7 million, helped by firmer pricing in the "
            "specialty coatings division and a recovery in industrial fastener volumes.",
            "Operating margin widened to 14.8 percent from 12.9 percent as raw material costs eased and "
            "the restructuring program announced in January delivered $11 million of savings in the "
            "quarter. Backlog at the end of September stood at a record $1.04 billion, and management "
            "said order intake in October remained firm across all three segments.",
            "The board declared a quarterly dividend of 27 cents per share, up from 25 cents, payable "
            "December 2 to shareholders of record on November 15. Harrow raised its full-year earnings "
            "guidance to a range of $4.30 to $4.40 per share from $4.05 to $4.20 previously.",
        ]),
        _Section("Quarterly summary", [
            "Nine-month net income was $131.2 million, or $3.03 per share, against $104.8 million, or "
            "$2.42 per share, in the first nine months of 2023. Free cash flow for the period reached "
            "$97.5 million after capital spending of $41 million.",
        ], table=[
            ["Metric", "Q3 2024", "Q3 2023", "Change"],
            ["Revenue ($m)", "612.7", "560.6", "+9.3%"],
            ["Net income ($m)", "48.6", "39.4", "+23.4%"],
            ["Diluted EPS ($)", "1.12", "0.91", "+23.1%"],
            ["Operating margin", "14.8%", "12.9%", "+1.9 pts"],
        ]),
        _Section("Contacts and internal notes", [
            f"Media and analyst questions should be directed to {media.name} at {media.email} or "
            f"{media_phone}. The webcast encoder for the analyst call runs on {ip}; a replay will be "
            "archived on the investor relations site for ninety days.",
            f"Note to finance: road-show travel for {ir.name} ({ir.email}) was booked on corporate card "
            f"{card}. Please reconcile the charges against the fourth quarter budget.",
        ]),
    ]
    data, parts, features = _render_docx(
        title, sections, author="Harrow Investor Relations",
        header="Harrow Industries Inc. | Investor Relations | Draft release - embargoed",
        footer=f"Prepared by {ir.name}, Investor Relations, {ir_phone}. Not for distribution before 8:00 a.m. ET.",
        text_box="At a glance: Q3 net income $48.6 million, EPS $1.12, dividend raised 8 percent.",
    )
    return _Sample("docx/earn_q3_results_memo.docx", title, ["earn"], data, parts, p.values, features=features)


def _docx_acq(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    exec_ = p.person("callowayfoods.com")
    counsel = p.person("brightwatercap.com")
    ssn, addr, iban = p.take("US_SSN"), p.take("STREET_ADDRESS"), p.take("IBAN_CODE")
    phone, hotline = p.take("PHONE_NUMBER"), p.take("PHONE_NUMBER")
    title = "Brightwater Capital to Acquire Calloway Foods in $2.3 Billion Cash Deal"
    sections = [
        _Section(None, [
            "Brightwater Capital Partners said on Monday it has agreed to acquire Calloway Foods Inc. "
            "for $38.50 per share in cash, valuing the packaged-food maker at about $2.3 billion "
            "including assumed debt. The offer represents a premium of 27 percent to Calloway's closing "
            "share price on Friday and 34 percent to its 90-day volume-weighted average.",
            "The boards of both companies have unanimously approved the merger agreement. The Reyes "
            "family trust, which controls 18.6 percent of the outstanding stock, has agreed to tender "
            "its shares. The transaction requires clearance under the Hart-Scott-Rodino Act, approval "
            "from the European Commission and a vote of Calloway shareholders, and is expected to close "
            "in the first half of 2025.",
            "Brightwater will finance the acquisition with equity from its fifth buyout fund and a "
            "committed $1.4 billion term loan arranged by three banks. It expects annual cost synergies "
            "of roughly $85 million by the end of the second full year, mainly from combining "
            "distribution networks and consolidating two plants in the Midwest.",
            "Calloway will keep its name and its headquarters in Kansas City. The agreement includes a "
            "35-day go-shop period during which Calloway may solicit competing proposals; a termination "
            "fee of $69 million would be payable if it accepts a superior bid.",
        ]),
        _Section("Transaction terms", table=[
            ["Term", "Detail"],
            ["Offer price", "$38.50 per share in cash"],
            ["Equity value", "$1.86 billion"],
            ["Enterprise value", "$2.31 billion"],
            ["Premium", "27% to last close"],
            ["Expected closing", "First half of 2025"],
            ["Termination fee", "$69 million"],
        ]),
        _Section("Retention and escrow instructions", [
            f"A retention agreement has been prepared for {exec_.name}, SSN {ssn}, residing at {addr}, "
            "who will lead integration of the combined supply chain for two years after closing.",
            f"The $5 million indemnity escrow will be funded by wire to the escrow agent, IBAN {iban}. "
            f"Questions on closing mechanics should go to {counsel.name} ({counsel.email}, {phone}); "
            f"copy {exec_.email} on anything that concerns retention.",
        ]),
    ]
    data, parts, features = _render_docx(
        title, sections, author="Brightwater Deal Team",
        header="Brightwater Capital Partners | Project Juniper | Strictly confidential",
        footer=f"Deal team hotline {hotline}. Distribution limited to the Project Juniper working group.",
    )
    return _Sample("docx/acq_merger_announcement.docx", title, ["acq"], data, parts, p.values, features=features)


def _docx_trade(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    delegate = p.person("tradepolicy-office.com")
    coordinator = p.person("tradepolicy-office.com")
    ssn, addr, ip, phone = p.take("US_SSN"), p.take("STREET_ADDRESS"), p.take("IP_ADDRESS"), p.take("PHONE_NUMBER")
    title = "Briefing Note: Steel Tariff Dispute and the Bilateral Trade Balance"
    sections = [
        _Section("Background", [
            "The bilateral trade deficit widened to $31.2 billion in the third quarter as imports of "
            "flat-rolled steel, auto parts and consumer electronics grew faster than exports of aircraft "
            "and farm goods. The figure has become the central talking point in the dispute over the "
            "25 percent safeguard tariff on steel imposed in March.",
            "Our partner has filed a request for consultations at the World Trade Organization, arguing "
            "that the safeguard is inconsistent with the Agreement on Safeguards because imports had not "
            "surged in the period before the duty took effect. If consultations fail within 60 days it "
            "may ask the Dispute Settlement Body to establish a panel.",
        ]),
        _Section("Retaliation list", [
            "The partner government has published retaliatory tariffs covering $4.8 billion of goods, "
            "including soybeans, bourbon, motorcycles and orange juice. The duties would apply from "
            "January 15 unless a settlement is reached. Farm groups warn that soybean exporters could "
            "lose market share to South American suppliers within a single season.",
        ], table=[
            ["Product", "HS chapter", "Proposed duty", "Trade value ($bn)"],
            ["Soybeans", "12", "25%", "1.9"],
            ["Bourbon whiskey", "22", "25%", "0.4"],
            ["Motorcycles", "87", "30%", "0.9"],
            ["Orange juice", "20", "20%", "0.3"],
            ["Flat-rolled steel", "72", "25%", "3.6"],
        ]),
        _Section("Recommended position", [
            "We recommend offering a tariff-rate quota that exempts the first 2.1 million tonnes of steel "
            "a year, combined with joint monitoring of transshipment and tighter rules of origin. In "
            "return we would seek withdrawal of the retaliation list and better market access for "
            "processed food and financial services.",
        ]),
        _Section("Delegation logistics", [
            f"Security clearance paperwork for {delegate.name} (SSN {ssn}) was submitted on October 28; "
            f"badges can be collected at {addr}. Negotiating texts are kept on the delegation file "
            f"server at {ip} and must not be copied to personal devices.",
            f"The delegation coordinator is {coordinator.name}, reachable at {coordinator.email} or "
            f"{phone}. Travel questions for {delegate.name} can also go to {delegate.email}.",
        ]),
    ]
    data, parts, features = _render_docx(
        title, sections, author="Office of Trade Policy",
        header="Office of Trade Policy | Briefing note | For official use only",
        footer="Prepared for the Geneva consultations, November 2024.",
    )
    return _Sample("docx/trade_dispute_briefing.docx", title, ["trade"], data, parts, p.values, features=features)


def _xlsx_grain(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    rng = p.rng
    inspectors = [p.take("PERSON"), p.take("PERSON")]
    phones = [p.take("PHONE_NUMBER"), p.take("PHONE_NUMBER")]
    settle = p.person("callowaygrain.coop")
    iban, addr = p.take("IBAN_CODE"), p.take("STREET_ADDRESS")
    loadings = [
        (2, "MV Baltic Harvest", "Hard red winter wheat", "US No. 2", "Alexandria, Egypt"),
        (7, "BNSF shuttle 4471", "Hard red spring wheat", "US No. 1", "Gulf export elevator"),
        (11, "MV Pacific Meridian", "Soft white wheat", "US No. 1", "Manila, Philippines"),
        (16, "UP shuttle 2210", "Hard red winter wheat", "US No. 2", "Gulf export elevator"),
        (23, "MV Atlantic Sheaf", "Soft red winter wheat", "US No. 2", "Lagos, Nigeria"),
        (29, "BNSF shuttle 4518", "Yellow corn", "US No. 2", "Gulf export elevator"),
    ]
    rows = [
        [dt.date(2024, 10, day), conv, com, grade, rng.randrange(9_000, 62_000, 50), dest,
         inspectors[i % 2], phones[i % 2]]
        for i, (day, conv, com, grade, dest) in enumerate(loadings)
    ]
    title = "Calloway Grain Cooperative - Wheat Export Loadings, October 2024"
    sheets = [
        _Sheet("Loadings", title,
               ["Date", "Conveyance", "Commodity", "Grade", "Tonnes", "Destination", "Inspector", "Inspector phone"],
               rows, ["Tonnes are metric; grades per official inspection certificates."],
               widths=[12, 22, 24, 10, 10, 24, 20, 18]),
        _Sheet("Market notes", "Grain market notes - October 2024", notes=[
            "Export inspections of wheat were strong in October as buyers in North Africa and Southeast "
            "Asia took advantage of the cheapest Gulf prices in four years. The cooperative loaded three "
            "vessels and eleven unit trains, its highest monthly total since the 2020/21 marketing year.",
            "Winter wheat planting reached 81 percent by the end of the month, slightly behind the "
            "five-year average because of dry topsoil in western Kansas and Oklahoma. Agronomists expect "
            "emergence to improve if the forecast rains arrive in mid-November.",
            "Protein premiums for hard red spring wheat narrowed by 12 cents a bushel as the new crop "
            "graded better than feared. Egypt's state buyer purchased 240,000 tonnes of wheat in its "
            "latest tender, mostly of Black Sea origin, which capped Gulf export basis.",
            "Corn harvest pressure has filled country elevators, and the cooperative opened temporary "
            "ground piles at two sites. December shuttle train freight trades below tariff, which should "
            "support more grain movement to the Gulf.",
            f"Grower payments for October deliveries will be wired from the clearing account IBAN {iban}. "
            f"Questions about settlement sheets go to {settle.name} at {settle.email}; the elevator office "
            f"is at {addr}.",
        ], widths=[110]),
    ]
    data, parts = _render_xlsx(title, sheets, author="Calloway Grain Cooperative")
    return _Sample("xlsx/grain_wheat_shipments.xlsx", title, ["grain"], data, parts, p.values,
                   features=["two_sheets", "merged_cells"])


def _xlsx_money_fx(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    rng = p.rng
    traders = [p.take("PERSON"), p.take("PERSON")]
    iban, phone, ip = p.take("IBAN_CODE"), p.take("PHONE_NUMBER"), p.take("IP_ADDRESS")
    book = [
        ("EUR/USD", "Long", 1.0835, 1.0732), ("USD/JPY", "Short", 154.10, 153.62),
        ("GBP/USD", "Long", 1.2990, 1.2895), ("USD/CHF", "Short", 0.8712, 0.8745),
        ("AUD/USD", "Long", 0.6640, 0.6588), ("USD/CNH", "Short", 7.1720, 7.1905),
    ]
    rows = []
    for i, (pair, side, traded, close) in enumerate(book):
        notional = rng.randrange(20, 160, 5)
        sign = 1 if side == "Long" else -1
        pnl = round(sign * (close - traded) / close * notional * 1_000_000)
        rows.append([pair, side, notional, traded, close, pnl, traders[i % 2]])
    title = "Brightwater FX Desk - End of Day Positions, 6 November 2024"
    sheets = [
        _Sheet("Positions", title,
               ["Currency pair", "Direction", "Notional (m)", "Trade rate", "Close rate", "P&L (USD)", "Trader"],
               rows, widths=[14, 10, 13, 11, 11, 13, 20]),
        _Sheet("Commentary", "Desk commentary", notes=[
            "The dollar rallied against major currencies after the election result, with the euro "
            "falling more than one and a half cents to its lowest level since June. Traders cited "
            "expectations of wider fiscal deficits and higher tariffs, both seen as supportive for U.S. "
            "yields and the currency.",
            "The yen weakened past 154 per dollar, drawing a fresh warning from Japan's top currency "
            "diplomat, who said authorities were watching foreign exchange moves with a high sense of "
            "urgency. Dealers said the risk of intervention by the Ministry of Finance limits dollar/yen "
            "upside above 155.",
            "Sterling held up better than the euro because the Bank of England is expected to cut rates "
            "only gradually. The Swiss franc was little changed, and the Swiss National Bank repeated "
            "that it stands ready to intervene in the currency market if necessary.",
            "The desk trimmed its euro long ahead of the European Central Bank meeting and will keep yen "
            "exposure small until volatility eases. Stop-loss levels are reviewed each morning.",
            f"Settlement instructions: EUR proceeds to IBAN {iban}. Desk line {phone}; trading terminal "
            f"{ip} is whitelisted on the electronic matching platform.",
        ], widths=[110]),
    ]
    data, parts = _render_xlsx(title, sheets, author="Brightwater FX Desk")
    return _Sample("xlsx/money_fx_desk_positions.xlsx", title, ["money-fx"], data, parts, p.values,
                   features=["two_sheets", "merged_cells"])


def _pptx_crude(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    speaker = p.take("PERSON")
    analyst = p.person("meridianenergy.com")
    phone, card = p.take("PHONE_NUMBER"), p.take("CREDIT_CARD")
    title = "Crude Oil Market Update"
    slides = [
        _Slide("Supply: OPEC+ and non-OPEC producers", [
            "OPEC+ agreed to delay the planned unwinding of 2.2 million barrels per day of voluntary "
            "output cuts by one month, to the end of December.",
            "Saudi Arabia's crude production is holding near 9.0 million bpd, its lowest sustained level "
            "in more than a decade.",
            "U.S. output set a record of 13.5 million bpd, led by the Permian basin, despite a falling rig count.",
            "Libyan exports recovered to 1.1 million bpd after the standoff over the central bank ended.",
        ], notes=f"Speaker: {speaker}. If the bridge drops, dial back in on {phone}."),
        _Slide("Prices and inventories", table=[
            ["Benchmark", "Settlement ($/bbl)", "Week change"],
            ["Brent (Jan)", "73.87", "+0.82"],
            ["WTI (Dec)", "70.38", "+0.91"],
            ["Dubai (Jan)", "72.10", "+0.47"],
            ["U.S. crude stocks (mb)", "427.7", "+2.1"],
        ], bullets=["Crude inventories rose for a second week as refinery runs fell during maintenance season."],
            notes=f"Table data are exchange settlements; the analyst on duty is {analyst.name} ({analyst.email})."),
        _Slide("Outlook and positioning", [
            "Asian refinery margins weakened as Chinese crude imports slowed for a sixth month.",
            "Hurricane disruptions in the Gulf of Mexico were short-lived; about 170,000 bpd remains shut in.",
            "We expect Brent between $70 and $78 a barrel through the first quarter, with downside risk "
            "if OPEC+ proceeds with production increases.",
            "Keep cargo hedges at 60 percent of December liftings and roll the rest into February.",
        ], notes=f"The Singapore oil week registration was paid with corporate card {card}; expense report pending."),
    ]
    data, parts, features = _render_pptx(
        title, "Meridian Energy Trading - Weekly briefing, 8 November 2024", slides, author="Meridian Energy Trading"
    )
    return _Sample("pptx/crude_oil_market_update.pptx", title, ["crude"], data, parts, p.values, features=features)


def _pptx_interest(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    treasurer = p.take("PERSON")
    analyst = p.person("lakeshorebank.com")
    phone, ip = p.take("PHONE_NUMBER"), p.take("IP_ADDRESS")
    title = "Interest Rate Outlook"
    slides = [
        _Slide("Federal Reserve policy path", [
            "The Federal Reserve lowered the federal funds target range by 25 basis points to "
            "4.50-4.75 percent, following a half-point cut in September.",
            "The Chair said policy remains restrictive and the committee is not on a preset course; "
            "futures price one more cut in December.",
            "Core inflation near 2.7 percent and a cooling labor market support a gradual easing cycle through 2025.",
        ], notes=f"Presented by {treasurer}, Treasurer. Dial-in number {phone}."),
        _Slide("Key rates", table=[
            ["Rate", "Current", "Prior month", "12-month forecast"],
            ["Fed funds (upper)", "4.75%", "5.00%", "3.75%"],
            ["Prime rate", "7.75%", "8.00%", "6.75%"],
            ["2-year Treasury", "4.21%", "3.64%", "3.60%"],
            ["10-year Treasury", "4.33%", "3.80%", "4.00%"],
            ["30-year mortgage", "6.79%", "6.08%", "6.25%"],
        ], notes=f"Rates pulled from the market data server at {ip} on the morning of the meeting."),
        _Slide("Implications for the balance sheet", [
            "Each 25 basis point cut lowers net interest income by about $3.1 million over twelve months "
            "because most commercial loans reprice immediately.",
            "Deposit betas on money market accounts are lower on the way down; we propose cutting "
            "promotional savings rates by 20 basis points.",
            "Extending securities portfolio duration by half a year would lock in yields before further cuts.",
            "The committee should review floor rates on variable-rate mortgages.",
        ], notes=f"Contact {analyst.name} at {analyst.email} for the full repricing gap report."),
    ]
    data, parts, features = _render_pptx(
        title, "Treasury and ALM Committee - November 2024", slides, author="Lakeshore Bank Treasury"
    )
    return _Sample("pptx/interest_rate_outlook.pptx", title, ["interest"], data, parts, p.values, features=features)


def _pdf_earn_report(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    registrar = p.person("northwindholdings.co.uk")
    holder, us_holder, cfo = p.take("PERSON"), p.take("PERSON"), p.take("PERSON")
    phone, addr = p.take("PHONE_NUMBER"), p.take("STREET_ADDRESS")
    iban, ssn = p.take("IBAN_CODE"), p.take("US_SSN")
    title = "Northwind Holdings plc - Annual Report 2024"
    sections = [
        _Section("Chairman's statement", [
            "2024 was a year of record earnings for Northwind. Group revenue increased 11 percent to "
            "GBP 3.42 billion and profit before tax rose 18 percent to GBP 412 million, the highest in the "
            "company's ninety-year history. Basic earnings per share climbed to 96.4 pence from 81.7 pence, "
            "reflecting both stronger trading and the benefit of the share buyback completed in June.",
            "Demand held up well in our logistics and industrial services businesses, and the building "
            "products division returned to growth in the second half after two difficult years. Pricing "
            "discipline, a lower cost base and a sharp reduction in working capital all contributed to "
            "the improvement in margins.",
            "The board is recommending a final dividend of 24.0 pence per share, making a total of 34.5 "
            "pence for the year, an increase of 15 percent. This is consistent with our progressive "
            "dividend policy and leaves dividend cover comfortably above two times earnings.",
            "I would like to thank our 21,000 employees for their commitment during the year, and our "
            "customers and shareholders for their continued support.",
        ]),
        _Section("Financial highlights", [
            "Adjusted operating profit rose 16 percent to GBP 458 million and the adjusted operating margin "
            "improved by 0.6 percentage points to 13.4 percent. Net debt fell to GBP 610 million, or 0.9 "
            "times EBITDA, after funding GBP 150 million of share repurchases and two bolt-on acquisitions.",
        ], table=[
            ["GBP million", "2024", "2023", "Change"],
            ["Revenue", "3,420", "3,081", "+11%"],
            ["Adjusted operating profit", "458", "395", "+16%"],
            ["Profit before tax", "412", "349", "+18%"],
            ["Basic EPS (pence)", "96.4", "81.7", "+18%"],
            ["Dividend per share (pence)", "34.5", "30.0", "+15%"],
            ["Free cash flow", "327", "262", "+25%"],
        ]),
        _Section("Segment review", [
            "Logistics revenue grew 14 percent to GBP 1.51 billion with operating profit up 19 percent. "
            "Contract wins with two large grocery retailers and higher volumes in temperature-controlled "
            "warehousing more than offset lower spot freight rates in the fourth quarter.",
            "Industrial Services revenue rose 9 percent to GBP 1.12 billion. Maintenance contracts in the "
            "energy and water sectors were renewed on improved terms, and the order book at year end was "
            "GBP 1.9 billion, up 7 percent on the prior year.",
            "Building Products revenue increased 8 percent to GBP 790 million. Volumes recovered in the "
            "second half as housing starts picked up, and the closure of the Leeds brick plant cut fixed "
            "costs by GBP 12 million a year. Operating margin in the division improved to 9.8 percent.",
        ], page_break=True),
        _Section("Capital allocation", [
            "Our priorities for capital remain unchanged: investment in organic growth, a progressive "
            "dividend, value-creating acquisitions and the return of surplus cash. Capital expenditure "
            "was GBP 148 million, mainly on automation in our warehouses and a new fleet of electric vans.",
            "We completed the acquisitions of Fenwick Cold Chain and Marsh Valve Services for a combined "
            "GBP 96 million. Both businesses are performing in line with expectations and were earnings "
            "accretive in their first year of ownership.",
        ]),
        _Section("Outlook", [
            "Trading in the first weeks of 2025 has been in line with our expectations. We expect mid "
            "single-digit revenue growth in 2025 and further margin progress as cost savings continue to "
            "come through. The board is confident of delivering another year of earnings growth, while "
            "remaining mindful of the uncertain macroeconomic environment and higher labour costs.",
        ]),
        _Section("Principal risks", [
            "The principal risks facing the group are a prolonged downturn in construction activity, the "
            "loss of a major logistics contract, cyber security incidents, inflation in wages and energy, "
            "and failure to integrate acquisitions successfully. Each risk is owned by a member of the "
            "executive committee and reviewed by the audit committee twice a year.",
            "Interest rate and currency risks are managed centrally by group treasury. At year end 78 "
            "percent of gross debt was at fixed rates, and translation exposure to the euro was partly "
            "hedged through euro-denominated borrowings.",
        ]),
        _Section("Shareholder information", [
            f"Enquiries about shareholdings should be addressed to the registrar, {registrar.name}, at "
            f"{registrar.email} or {phone}. North American holders may write to the transfer agent at {addr}.",
            f"Dividend mandates are paid by direct credit. The mandate held for {holder} directs payments to "
            f"IBAN {iban}. Withholding certificates have been issued to US holders; the certificate for "
            f"{us_holder} quotes SSN {ssn}.",
            f"Approved by the board and signed on its behalf by {cfo}, Chief Financial Officer, 4 March 2025.",
        ], page_break=True),
    ]
    data, parts = _render_pdf(
        title, sections, author="Northwind Holdings plc", protect=p.protected,
        subtitle="Annual report and accounts for the year ended 31 December 2024",
        footer="Northwind Holdings plc | Annual Report 2024", cover=True,
    )
    return _Sample("pdf/earn_annual_report_2024.pdf", title, ["earn"], data, parts, p.values,
                   features=["multi_page", "long_report", "table"])


def _pdf_ship_notice(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    agent = p.person("meridiantanker.com")
    master = p.take("PERSON")
    phone, addr, ip = p.take("PHONE_NUMBER"), p.take("STREET_ADDRESS"), p.take("IP_ADDRESS")
    title = "Meridian Tanker Lines - Port Congestion and Schedule Advisory 24-17"
    sections = [
        _Section("Situation", [
            "Dense fog in the Houston Ship Channel closed the waterway to inbound traffic for most of "
            "three days last week, leaving 41 tankers and 26 bulk carriers at anchor off Galveston. Pilots "
            "resumed daylight-only transits on Sunday, and the harbor master expects the queue to clear "
            "within eight to ten days if visibility holds.",
            "At the same time, draft restrictions at the Panama Canal remain at 44 feet for neopanamax "
            "locks and daily transits are capped at 32. Several of our product tankers bound for the west "
            "coast of South America have been rerouted through the Strait of Magellan, adding about nine "
            "days to the voyage.",
            "In Rotterdam, a strike by lashing crews at two container terminals has spilled over into "
            "the liquid bulk berths through shortages of mooring gangs. Waiting time for tankers at the "
            "Europoort anchorage averaged 3.4 days, against a normal level of less than one day.",
        ]),
        _Section("Revised vessel schedule", [
            "The following estimated times of arrival replace those in advisory 24-16. All times are local "
            "and remain subject to weather, pilotage and berth availability.",
        ], table=[
            ["Vessel", "Port", "Original ETA", "Revised ETA"],
            ["MT Coral Meridian", "Houston", "4 Nov", "12 Nov"],
            ["MT Nordic Spirit", "Rotterdam", "6 Nov", "10 Nov"],
            ["MT Atlantic Crest", "Callao", "9 Nov", "18 Nov"],
            ["MT Gulf Pioneer", "Corpus Christi", "7 Nov", "11 Nov"],
        ], page_break=True),
        _Section("Commercial impact", [
            "Freight rates for medium-range tankers on the U.S. Gulf to Europe route rose to Worldscale "
            "215 from 170 a week earlier as available tonnage tightened. Charterers should expect "
            "demurrage claims on most November liftings; laytime statements will be issued within 30 days "
            "of discharge, and the owners' rate of $28,500 per day applies under the standard charter party.",
            "Bunker consumption on rerouted voyages will be recharged according to the fuel clause of each "
            "contract. Customers with time-critical cargoes should contact the port agent to discuss "
            "priority berthing or ship-to-ship transfer options.",
        ]),
        _Section("Contacts", [
            f"Port agent: {agent.name}, telephone {phone}, e-mail {agent.email}, office at {addr}.",
            f"Captain {master}, master of MT Coral Meridian, reports all crew well and cargo temperatures "
            f"within limits. Live AIS positions are published on the vessel tracking feed at {ip}.",
        ]),
    ]
    data, parts = _render_pdf(
        title, sections, author="Meridian Tanker Lines", protect=p.protected,
        subtitle="Issued 8 November 2024 to all charterers and receivers", footer="Advisory 24-17",
    )
    return _Sample("pdf/ship_port_congestion_notice.pdf", title, ["ship"], data, parts, p.values,
                   features=["multi_page", "table"])


def _pdf_acq_tender(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    info_agent = p.person("oakridgesemi.com")
    holder = p.take("PERSON")
    phone, ssn, iban = p.take("PHONE_NUMBER"), p.take("US_SSN"), p.take("IBAN_CODE")
    title = "Offer to Purchase for Cash All Outstanding Shares of Lumen Devices Inc."
    sections = [
        _Section("Summary of the offer", [
            "Oakridge Semiconductor Corp., through its wholly owned subsidiary Orchid Merger Sub, is "
            "offering to purchase all outstanding shares of common stock of Lumen Devices Inc. at $21.75 "
            "per share, net to the seller in cash, without interest and less any required withholding. "
            "The offer values Lumen at approximately $1.2 billion and is the first step in a two-step "
            "acquisition under the merger agreement signed on October 21.",
            "The offer will expire at one minute after 11:59 p.m., New York City time, on December 6, "
            "unless extended. Shares validly tendered may be withdrawn at any time before expiration.",
            "The board of directors of Lumen has unanimously determined that the offer and the merger are "
            "fair to and in the best interests of its stockholders and recommends that stockholders "
            "tender their shares.",
        ]),
        _Section("Conditions", [
            "The offer is conditioned on the valid tender of a majority of the outstanding shares, the "
            "expiration of the waiting period under the Hart-Scott-Rodino Antitrust Improvements Act, "
            "clearance by the Committee on Foreign Investment in the United States and the absence of "
            "any material adverse effect on Lumen. The offer is not subject to a financing condition; "
            "Oakridge will fund the purchase from cash on hand and a $600 million bridge facility.",
            "Following completion of the offer, Orchid Merger Sub will merge with and into Lumen, and each "
            "share not tendered will be converted into the right to receive the same $21.75 in cash. "
            "Stockholders who do not tender and who comply with Delaware law may seek appraisal.",
        ], page_break=True),
        _Section("Background and reasons", [
            "Oakridge first approached Lumen in May about a combination of their power management chip "
            "businesses. After four revised proposals and a market check in which six other parties were "
            "contacted, the Lumen board accepted the current price, which represents a premium of 41 "
            "percent over the unaffected share price. Oakridge expects the deal to add to adjusted earnings "
            "per share in the first full year after closing.",
        ]),
        _Section("Information agent and sample transmittal", [
            f"Questions and requests for assistance may be directed to the information agent, {info_agent.name}, "
            f"at {phone} or {info_agent.email}.",
            f"Sample completed letter of transmittal: registered holder {holder}, taxpayer identification "
            f"number (SSN) {ssn}; cash consideration to be paid by wire to IBAN {iban}.",
        ]),
    ]
    data, parts = _render_pdf(
        title, sections, author="Oakridge Semiconductor Corp.", protect=p.protected,
        subtitle="at $21.75 net per share by Orchid Merger Sub, a subsidiary of Oakridge Semiconductor Corp.",
        footer="Offer to Purchase - summary term sheet",
    )
    return _Sample("pdf/acq_tender_offer_summary.pdf", title, ["acq"], data, parts, p.values,
                   features=["multi_page"])


_MAIL_TIME = dt.datetime(2024, 11, 7, 8, 15, tzinfo=dt.timezone.utc)


def _eml_ship(pools: _Pools, seed: int) -> _Sample:
    p = _Plant(pools)
    ops = p.person("meridiantanker.com")
    receiver = p.person("hollandfeeds.com")
    mobile, receiver_phone, addr = p.take("PHONE_NUMBER"), p.take("PHONE_NUMBER"), p.take("STREET_ADDRESS")
    subject = "MV Nordic Star - loading complete at Santos, bill of lading attached"
    bl_sections = [
        _Section("Bill of Lading NSL-24117", [
            "Shipper: Cooperativa Agroindustrial Vale Verde, Santos, Brazil.",
            f"Consignee: {receiver.name}, Holland Feeds Inc., {addr}, telephone {receiver_phone}.",
            "Vessel: MV Nordic Star. Port of loading: Santos. Port of discharge: Rotterdam.",
            "Description of goods: 54,300 metric tonnes of soybean meal in bulk, shipped clean on board. "
            "Freight prepaid as per charter party dated 2 October 2024. Three originals issued, one of which "
            "being accomplished the others to stand void.",
        ]),
    ]
    bl_pdf, bl_parts = _render_pdf("Bill of Lading", bl_sections, author="Meridian Tanker Lines", protect=p.protected)
    body = [
        f"Dear {receiver.name},",
        "Loading of the soybean meal cargo aboard MV Nordic Star was completed at Santos berth 38 at 14:20 "
        "local time yesterday. The vessel took 54,300 tonnes against a nominated 55,000 tonnes plus or minus "
        "10 percent at owner's option, so the final figure is within tolerance. Draft survey results and the "
        "hold cleanliness certificate are included with the shipping documents.",
        "The ship sailed at 02:10 this morning and is routed via the Cape of Good Hope because of the "
        "continuing security situation in the Red Sea. Our estimate of arrival at Rotterdam is December 3, "
        "subject to weather in the South Atlantic. The charter party allows 72 hours of laytime at the "
        "discharge port, after which demurrage accrues at $28,500 per day.",
        "The original bill of lading has been released to the bank under the letter of credit; a scanned "
        "copy is attached for your records. Freight of $1.24 million was prepaid, and the Rotterdam agent "
        "will lodge the import declaration on arrival.",
        f"If you need me while I am travelling, my mobile is {mobile}.",
        f"Best regards,\n{ops.name}\nOperations, Meridian Tanker Lines",
    ]
    attachment = _Attachment("bill_of_lading_NSL-24117.pdf", bl_pdf, bl_parts["body"])
    data, parts, features = _render_eml(
        key=f"ship-{seed}", sender=ops, to=[receiver], subject=subject, when=_MAIL_TIME,
        body=body, protect=p.protected, attachments=[attachment],
    )
    return _Sample("eml/ship_loading_complete.eml", subject, ["ship"], data, parts, p.values, features=features)


def _eml_money_fx(pools: _Pools, seed: int) -> _Sample:
    p = _Plant(pools)
    sales = p.person("brightwatercap.com")
    client = p.person("alpenmotors.de")
    iban, phone = p.take("IBAN_CODE"), p.take("PHONE_NUMBER")
    subject = "FX morning note: dollar extends rally, yen near intervention zone"
    body = [
        f"Good morning {client.first},",
        "The dollar extended its post-election rally overnight. The euro slipped to 1.0710, its weakest "
        "level since June, as traders priced in wider U.S. fiscal deficits and the prospect of new tariffs "
        "on European goods. Implied volatility in one-month euro/dollar options rose to its highest since "
        "March.",
        "Dollar/yen touched 154.70 before easing after Japan's finance ministry said it was watching "
        "currency markets with a strong sense of urgency. We think the threshold for intervention is "
        "close to 155 and would not chase the move higher from here. The Bank of Japan's next policy "
        "meeting is the key event for the yen this month.",
        "For your November euro receivables we suggest layering forward sales at 1.0750 and 1.0800 rather "
        "than selling spot at current levels. Indicative mid-market rates are below.",
        f"Settlement for yesterday's EUR/USD block will go to IBAN {iban} as agreed. Call me on {phone} "
        f"if you want to discuss hedging.\n\nKind regards,\n{sales.name}\nFX Sales, Brightwater Capital",
    ]
    table = [
        ["Pair", "Bid", "Ask", "1M forward points"],
        ["EUR/USD", "1.0708", "1.0711", "+22.1"],
        ["USD/JPY", "154.41", "154.44", "-61.5"],
        ["GBP/USD", "1.2871", "1.2874", "+3.4"],
        ["USD/CHF", "0.8761", "0.8764", "-20.8"],
    ]
    data, parts, features = _render_eml(
        key=f"money-fx-{seed}", sender=sales, to=[client], subject=subject, when=_MAIL_TIME,
        body=body, table=table, protect=p.protected, html_alternative=True,
    )
    return _Sample("eml/money_fx_morning_note.eml", subject, ["money-fx"], data, parts, p.values,
                   features=features + ["table"])


def _eml_interest(pools: _Pools, seed: int) -> _Sample:
    p = _Plant(pools)
    treasury = p.person("lakeshorebank.com")
    branch = p.person("lakeshorebank.com")
    manager = p.person("lakeshorebank.com")
    customer, card = p.take("PERSON"), p.take("CREDIT_CARD")
    phone, ip = p.take("PHONE_NUMBER"), p.take("IP_ADDRESS")
    subject = "Rate decision summary and revised loan pricing sheet"
    sheet = "\n".join([
        "LAKESHORE BANK - LOAN AND DEPOSIT PRICING, EFFECTIVE 8 NOVEMBER 2024",
        "",
        "Prime rate ........................ 7.75%  (was 8.00%)",
        "Home equity line, prime + 0.50 .... 8.25%",
        "Commercial line, SOFR + 2.25 ...... 6.83%",
        "30-year fixed mortgage ............ 6.79%",
        "Money market, balances over $50k .. 3.90%  (was 4.15%)",
        "12-month certificate of deposit ... 4.10%  (was 4.35%)",
        "",
        "Variable loans reset on the next payment date after the effective date.",
        f"Prepared by {treasury.name}, Treasury, {phone}.",
        f"Generated from pricing engine {ip}.",
    ]) + "\n"
    body = [
        f"Hi {branch.first},",
        "As expected, the Federal Reserve cut the federal funds target range by a quarter point yesterday "
        "to 4.50-4.75 percent. The statement noted that inflation has made further progress toward the "
        "two percent goal while the labor market has generally eased. Markets now expect another quarter "
        "point reduction in December and a slower pace of cuts next year.",
        "We are lowering the prime rate to 7.75 percent effective tomorrow, so home equity lines and "
        "variable-rate business loans will reprice on their next payment date. Deposit rates on money "
        "market accounts and certificates come down by 25 basis points; the attached sheet has the full "
        "list for the branch network.",
        f"One customer item: {customer} called about the interest rate on card {card}. The variable APR "
        "will reset to 21.49 percent on the next statement; please explain that the change follows the "
        "prime rate and that no fee applies.",
        f"Thanks,\n{treasury.name}\nTreasury, Lakeshore Bank",
    ]
    attachment = _Attachment("rate_sheet_2024-11-08.txt", sheet, sheet, mime="text/plain")
    data, parts, features = _render_eml(
        key=f"interest-{seed}", sender=treasury, to=[branch], cc=[manager], subject=subject, when=_MAIL_TIME,
        body=body, protect=p.protected, attachments=[attachment],
    )
    return _Sample("eml/interest_rate_decision.eml", subject, ["interest"], data, parts, p.values, features=features)


def _csv_grain(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    rng = p.rng
    drivers = [p.take("PERSON") for _ in range(3)]
    phones = [p.take("PHONE_NUMBER") for _ in range(3)]
    addr = p.take("STREET_ADDRESS")
    remarks = [
        "Sample graded clean; no dockage. Unloaded at pit 2 in under twenty minutes.",
        "Moisture slightly above the discount schedule, so a drying charge of 4 cents a bushel was applied.",
        "Test weight strong for the area this year. Grower asked for the load to go on the forward contract.",
        "Two percent foreign material from a torn tarp; the driver was asked to replace it before the next load.",
        f"Grower asked for the settlement check to be mailed to {addr} instead of the farm office.",
        "Protein measured at 13.1 percent, which qualifies for the spring wheat premium posted on Monday.",
        "Load held for an hour while the inspector re-ran the falling number test; result passed at 340.",
        "Last wheat of the season from this grower. Corn deliveries start next week at the south elevator.",
    ]
    header = ["receipt_no", "date", "commodity", "grade", "net_bushels", "moisture_pct", "test_weight_lb",
              "driver", "driver_phone", "remarks"]
    rows = []
    for i, remark in enumerate(remarks):
        commodity = "Hard red spring wheat" if i in (5, 6) else "Hard red winter wheat"
        rows.append([f"R-24-{10417 + i}", f"2024-10-{14 + i:02d}", commodity, rng.choice(["US No. 1", "US No. 2"]),
                     rng.randrange(880, 1_100), f"{rng.uniform(11.5, 14.8):.1f}", f"{rng.uniform(58.5, 62.4):.1f}",
                     drivers[i % 3], phones[i % 3], remark])
    data, parts = _render_csv(header, rows)
    title = "Elevator receipts - wheat deliveries, October 2024"
    return _Sample("csv/grain_elevator_receipts.csv", title, ["grain"], data, parts, p.values,
                   features=["free_text_column"])


def _csv_crude(pools: _Pools) -> _Sample:
    p = _Plant(pools)
    rng = p.rng
    buyers = [p.person("gulfrefining.com"), p.person("northseaoil.co.uk")]
    phone = p.take("PHONE_NUMBER")
    nominations = [
        ("1-5 Dec", "WTI Midland", "Corpus Christi", "Rotterdam",
         "Buyer confirmed the cargo will be co-loaded with condensate; quality certificate required before sailing."),
        ("4-8 Dec", "Mars Blend", "LOOP", "Houston",
         "Sulfur content guaranteed below 2.1 percent. Barge relightering may be needed if fog delays the pilot."),
        ("10-14 Dec", "Brent Forties", "Hound Point", "Wilhelmshaven",
         "Price basis is dated Brent plus a premium of 35 cents; pricing window five days around bill of lading."),
        ("15-19 Dec", "Arab Light", "Ras Tanura", "Ulsan",
         "Official selling price for December loading was cut by 30 cents, so the refinery raised its nomination."),
        ("20-24 Dec", "WTI Midland", "Houston", "Yeosu",
         f"Trader asks for a call on {phone} before the vessel is fixed because of OPEC+ meeting uncertainty."),
        ("27-31 Dec", "Johan Sverdrup", "Mongstad", "Gdansk",
         "Medium sour grade in demand after the pipeline outage; inventories at the buyer's terminal are low."),
    ]
    header = ["nomination_id", "laycan", "grade", "volume_bbl", "load_port", "discharge_port",
              "buyer_contact", "contact_email", "comments"]
    rows = []
    for i, (laycan, grade, load, disch, comment) in enumerate(nominations):
        buyer = buyers[i % 2]
        rows.append([f"NOM-{2411 + i}", laycan, grade, rng.choice([600_000, 700_000, 1_000_000, 2_000_000]),
                     load, disch, buyer.name, buyer.email, comment])
    data, parts = _render_csv(header, rows)
    title = "Crude oil cargo nominations - December 2024 loading"
    return _Sample("csv/crude_cargo_nominations.csv", title, ["crude"], data, parts, p.values,
                   features=["free_text_column"])


# ---- deliberately bad files --------------------------------------------------


def _bad_samples(pools: _Pools) -> list[_Sample]:
    """Truncated docx, PDF named .docx, empty workbook and an image-only PDF."""
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    minutes = [_Section("Minutes", [
        "The board met on 30 October to review the capital plan. Directors approved the budget for the "
        "new distribution centre and asked management to report back on financing options in December.",
    ])]
    docx_bytes, _, _ = _render_docx("Board minutes", minutes, author="Company Secretary")
    corrupt = docx_bytes[: len(docx_bytes) // 2]

    contract = [_Section(None, ["Scanned master services agreement, executed copy, 12 pages."])]
    pdf_bytes, _ = _render_pdf("Master services agreement", contract, author="Legal", protect=())

    wb = Workbook()
    wb.properties.creator = _AUTHOR
    wb.properties.created = wb.properties.modified = DOC_TIME
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    empty = _stable_zip(buf.getvalue())

    image_pdf = _render_image_only_pdf(pools.rng)
    return [
        _Sample("docx/corrupt_board_minutes.docx", "Board minutes (truncated)", [], corrupt,
                expected_status="corrupt", features=["truncated_zip"]),
        _Sample("docx/scanned_contract.docx", "Master services agreement (PDF named .docx)", [], pdf_bytes,
                expected_status="unsupported", features=["pdf_content"]),
        _Sample("xlsx/empty_workbook.xlsx", "Empty workbook", [], empty,
                expected_status="empty", features=["no_cells"]),
        _Sample("pdf/scanned_invoice.pdf", "Scanned invoice", [], image_pdf,
                expected_status="image_only", features=["image_without_text"]),
    ]


def _build_all(seed: int) -> list[_Sample]:
    """Build every sample in a fixed order (the order fixes PII assignment)."""
    pools = _Pools(seed)
    samples = [
        _docx_earn(pools), _docx_acq(pools), _docx_trade(pools),
        _xlsx_grain(pools), _xlsx_money_fx(pools),
        _pptx_crude(pools), _pptx_interest(pools),
        _pdf_earn_report(pools), _pdf_ship_notice(pools), _pdf_acq_tender(pools),
        _eml_ship(pools, seed), _eml_money_fx(pools, seed), _eml_interest(pools, seed),
        _csv_grain(pools), _csv_crude(pools),
    ]
    return samples + _bad_samples(pools)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_manifest(out_dir: str | Path) -> dict:
    """Read ``samples_manifest.json`` from ``out_dir``."""
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))


def _existing(out: Path) -> list[Path] | None:
    """Files of a complete earlier run in ``out``, or None if there is none."""
    try:
        files = [out / entry["path"] for entry in load_manifest(out)["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files if all(f.is_file() for f in files) else None


def generate_samples(out_dir: str | Path, seed: int = 7, overwrite: bool = False) -> list[Path]:
    """Write the sample documents and ``samples_manifest.json`` into ``out_dir``.

    Returns the paths of the sample files (not the manifest), in manifest
    order. If ``out_dir`` already holds a manifest whose files all exist and
    ``overwrite`` is False, nothing is written and the existing list is
    returned (a manifest with missing files is regenerated). The manifest is
    written last, so an interrupted run is redone on the next call.
    """
    out = Path(out_dir)
    if not overwrite:
        existing = _existing(out)
        if existing is not None:
            return existing
    samples = _build_all(seed)
    entries = [s.manifest_entry() for s in samples]  # validates before writing anything
    for sample in samples:
        target = out / sample.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(sample.data)
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "generator": "lakedoc.samples",
        "seed": seed,
        "labels": list(LABELS),
        "pii_types": PII_TYPES,
        "files": entries,
    }
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST_NAME)
    return [out / s.path for s in samples]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m lakedoc.samples DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m lakedoc.samples",
        description="Write a deterministic set of sample office documents with fake PII.",
    )
    parser.add_argument("out_dir", help="directory to write the samples into")
    parser.add_argument("--seed", type=int, default=7, help="seed for PII assignment (default 7)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite even if a manifest exists")
    args = parser.parse_args(argv)
    files = generate_samples(args.out_dir, seed=args.seed, overwrite=args.overwrite)
    for path in files:
        print(path)
    print(f"{len(files)} sample files; manifest: {Path(args.out_dir) / MANIFEST_NAME}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
