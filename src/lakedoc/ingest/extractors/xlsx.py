"""Excel workbooks (xlsx, xlsm, xltx, xltm), parsed from the sheet XML with lxml.

openpyxl returns nothing for ISO Strict workbooks and skips drawings, so the parts are read directly
(namespace-agnostic): every sheet in workbook order (hidden ones too), cell values with shared
strings (phonetic rPh runs left out), dates from number formats, headers/footers with their &-codes
stripped, text boxes and chart titles from drawings, and cell comments. Sheets are streamed with
iterparse so large sheets do not build a full tree.
"""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta

from lxml import etree

from lakedoc.ingest.extractors.base import CorruptError, Extraction, Limits, Unit
from lakedoc.ingest.extractors.ooxml import Package, chart_text, core_properties, embedded_attachments
from lakedoc.ingest.extractors.xmltree import (
    attr,
    child,
    children,
    drawingml_paragraphs,
    local,
    recovered_error,
    rel_id,
)

_SHEET_RELS = ("worksheet", "chartsheet", "dialogsheet", "macrosheet", "xlMacrosheet", "xlIntlMacrosheet")
_HEADER_FOOTER = ("oddHeader", "evenHeader", "firstHeader", "oddFooter", "evenFooter", "firstFooter")


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    pkg = Package(data, limits)
    wb_part = pkg.main_part("xl/workbook.xml")
    workbook = pkg.xml(wb_part)
    if workbook is None:
        raise CorruptError(f"{wb_part} is missing")
    sheets = _sheets(pkg, wb_part, workbook)
    shared = _shared_strings(pkg, wb_part)
    numbers = _NumberFormats(pkg, wb_part, _is_date1904(workbook))
    units = []
    for index, (name, _state, part) in enumerate(sheets, 1):
        text = "\n".join(_sheet_lines(pkg, part, shared, numbers)) if part else ""
        units.append(Unit("sheet", index, f"sheet '{name}'", text))
    metadata = core_properties(pkg)
    metadata["sheet_count"] = str(len(sheets))
    metadata["sheet_names"] = json.dumps([s[0] for s in sheets], ensure_ascii=False)
    hidden = [s[0] for s in sheets if s[1] in ("hidden", "veryHidden")]
    if hidden:
        metadata["hidden_sheets"] = json.dumps(hidden, ensure_ascii=False)
    return Extraction(units=units, metadata=metadata, attachments=embedded_attachments(pkg),
                      has_images=pkg.has_media(), incomplete=pkg.incomplete())


def _sheets(pkg: Package, wb_part: str, workbook) -> list[tuple[str, str, str | None]]:
    """(name, state, part) of every sheet, in workbook order."""
    sheets_el = child(workbook, "sheets")
    out = []
    for sheet in (children(sheets_el, "sheet") if sheets_el is not None else []):
        target = pkg.rel_by_id(wb_part, rel_id(sheet))
        out.append((attr(sheet, "name", "") or "", attr(sheet, "state", "visible") or "visible",
                    pkg.find(target) if target else None))
    if not out:  # no <sheets>: fall back to the sheet relationships
        for rel in pkg.rels(wb_part):
            if rel.type in _SHEET_RELS and pkg.find(rel.target):
                out.append((rel.target.rpartition("/")[2].rpartition(".")[0], "visible", pkg.find(rel.target)))
    return out


def _is_date1904(workbook) -> bool:
    pr = child(workbook, "workbookPr")
    return pr is not None and (attr(pr, "date1904") or "").lower() in ("1", "true")


# ---------------------------------------------------------------------------------------------- strings


def _iter_elements(data: bytes, *names: str, pkg: Package | None = None, part: str = ""):
    """Stream elements with the given local names (any namespace), freeing them as we go. Malformed XML
    the parser recovered from is recorded in ``pkg.recovered`` (the text may be partial)."""
    context = etree.iterparse(io.BytesIO(data), events=("end",), tag=[f"{{*}}{n}" for n in names],
                              huge_tree=True, resolve_entities=False, no_network=True, recover=True)
    try:
        for _, el in context:
            yield el
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise CorruptError(f"unreadable sheet XML: {exc}") from exc
    error = recovered_error(context.error_log)
    if error and pkg is not None:
        pkg.recovered.setdefault(part, error)


def rich_text(el) -> str:
    """Text of a shared-string item / inline string / comment: t and r/t, never phonetic rPh runs."""
    pieces = []
    for c in el:
        name = local(c)
        if name == "t":
            pieces.append(c.text or "")
        elif name == "r":
            t = child(c, "t")
            pieces.append(t.text or "" if t is not None else "")
    return "".join(pieces)


def _shared_strings(pkg: Package, wb_part: str) -> list[str]:
    for part in pkg.rel_targets(wb_part, "sharedStrings") or ["xl/sharedStrings.xml"]:
        data = pkg.read(part)
        if data:
            return [rich_text(si) for si in _iter_elements(data, "si", pkg=pkg, part=part)]
    return []


# ---------------------------------------------------------------------------------------------- numbers


# Built-in number formats that display dates/times (ECMA-376 18.8.30 plus common CJK/Thai ids).
_BUILTIN_DATE_FORMATS = set(range(14, 23)) | set(range(27, 37)) | set(range(45, 48)) | \
    set(range(50, 59)) | set(range(71, 82))
_QUOTED_OR_ESCAPED = re.compile(r'"[^"]*"|\\.|_.|\*.')
_BRACKETS = re.compile(r"\[[^\]]*\]")


def is_date_format(code: str) -> bool:
    """True when a custom number format code displays a date or time of day."""
    if re.search(r"\[(h+|m+|s+)\]", code, re.I):
        return False  # elapsed-time durations are numbers, not dates
    cleaned = _BRACKETS.sub("", _QUOTED_OR_ESCAPED.sub("", code)).split(";")[0]
    return bool(re.search(r"[dmyhs]", cleaned, re.I)) and "General" not in code


class _NumberFormats:
    """Maps a cell's style index to "is this a date" and renders numeric cell values."""

    def __init__(self, pkg: Package, wb_part: str, date1904: bool):
        self.date1904 = date1904
        self.date_styles: set[int] = set()
        root = pkg.optional_xml((pkg.rel_targets(wb_part, "styles") or ["xl/styles.xml"])[0])
        if root is None:
            return
        custom = {}
        num_fmts = child(root, "numFmts")
        for nf in (children(num_fmts, "numFmt") if num_fmts is not None else []):
            custom[int(attr(nf, "numFmtId", "0") or 0)] = attr(nf, "formatCode", "") or ""
        xfs = child(root, "cellXfs")
        for i, xf in enumerate(children(xfs, "xf") if xfs is not None else []):
            fid = int(attr(xf, "numFmtId", "0") or 0)
            if fid in _BUILTIN_DATE_FORMATS or (fid in custom and is_date_format(custom[fid])):
                self.date_styles.add(i)

    def render(self, raw: str, style: str | None) -> str:
        try:
            value = float(raw)
        except ValueError:
            return raw
        if style and style.isdigit() and int(style) in self.date_styles:
            return self._date(value) or _plain_number(value)
        return _plain_number(value)

    def _date(self, serial: float) -> str | None:
        if not 0 <= serial < 2958466:
            return None
        if self.date1904:
            base = datetime(1904, 1, 1)
        else:
            base = datetime(1899, 12, 31) if serial < 60 else datetime(1899, 12, 30)  # 1900 leap-year bug
        moment = base + timedelta(seconds=round(serial * 86400))
        if serial < 1:
            return moment.time().isoformat()
        if moment.hour == moment.minute == moment.second == 0:
            return moment.date().isoformat()
        return moment.isoformat(sep=" ")


def _plain_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# ---------------------------------------------------------------------------------------------- sheets


def _cell_value(c, shared: list[str], numbers: _NumberFormats) -> str:
    kind = c.get("t", "n")
    if kind == "inlineStr":
        inline = child(c, "is")
        return rich_text(inline) if inline is not None else ""
    v = child(c, "v")
    raw = v.text if v is not None and v.text is not None else ""
    if not raw:
        return ""
    if kind == "s":
        try:
            return shared[int(raw)]
        except (ValueError, IndexError):
            return ""
    if kind == "b":
        return "TRUE" if raw.strip() in ("1", "true") else "FALSE"
    if kind in ("str", "e", "d"):
        return raw
    return numbers.render(raw, c.get("s"))


_HF_SECTION = re.compile(r"&[LCR]")
_HF_CODE = re.compile(r'&(?:"[^"]*"|\d+|K(?:[0-9A-Fa-f]{6}|\d\d[+-]\d{3})|[PNDTZFAGBIUESXYOH])')


def strip_header_footer_codes(text: str) -> str:
    """Visible text of an Excel header/footer: &L/&C/&R sections joined by tabs, formatting and
    field codes (&P, &"font", &12, &K..., &B ...) removed, "&&" kept as "&"."""
    text = text.replace("&&", "\x00")
    sections = [" ".join(_HF_CODE.sub("", s).split()) for s in _HF_SECTION.split(text)]
    return "\t".join(s for s in sections if s).replace("\x00", "&")


def _sheet_lines(pkg: Package, part: str, shared: list[str], numbers: _NumberFormats) -> list[str]:
    """Header lines, one line per row (cells tab-separated), drawing/comment text, footer lines."""
    data = pkg.read(part)
    headers: list[str] = []
    footers: list[str] = []
    rows: list[str] = []
    for el in _iter_elements(data or b"<x/>", "row", "headerFooter", pkg=pkg, part=part):
        if local(el) == "row":
            values = [_cell_value(c, shared, numbers) for c in el if local(c) == "c"]
            line = "\t".join(" ".join(v.split()) for v in values if v and v.strip())
            if line:
                rows.append(line)
        else:
            for name in _HEADER_FOOTER:
                node = child(el, name)
                text = strip_header_footer_codes(node.text or "") if node is not None else ""
                target = headers if "Header" in name else footers
                if text and text not in target:
                    target.append(text)
    return headers + rows + _drawing_lines(pkg, part) + _comment_lines(pkg, part) + footers


def _drawing_lines(pkg: Package, sheet_part: str) -> list[str]:
    """Text boxes / shapes and chart titles of the sheet's drawings."""
    lines = []
    for drawing in pkg.rel_targets(sheet_part, "drawing"):
        root = pkg.optional_xml(drawing)
        if root is not None:
            lines.extend(drawingml_paragraphs(root))
        for chart in pkg.rel_targets(drawing, "chart"):
            lines.extend(chart_text(pkg, chart))
    return lines


def _comment_lines(pkg: Package, sheet_part: str) -> list[str]:
    lines = []
    for part in pkg.rel_targets(sheet_part, "comments"):
        root = pkg.optional_xml(part)
        for comment in (root.iter("{*}comment") if root is not None else []):
            text_el = child(comment, "text")
            text = " ".join(rich_text(text_el).split()) if text_el is not None else ""
            if text:
                lines.append(text)
    return lines
