"""Word documents (docx, docm, dotx, dotm), read straight from the package XML with lxml.

python-docx refuses macro-enabled content types and misses text boxes, altChunks and notes, so the
parts are walked directly: body (per section), tables (merged cells once, nested tables), text boxes
(mc:Choice only, never the duplicate mc:Fallback), headers and footers of every type, footnotes,
endnotes, comments, altChunk HTML/text parts and embedded objects (returned as attachments).
"""
from __future__ import annotations

import email
import email.policy

from lakedoc.ingest.extractors.base import Attachment, CorruptError, Extraction, Limits, Unit
from lakedoc.ingest.extractors.decoding import decode_text
from lakedoc.ingest.extractors.html import decode_html_bytes, html_to_text
from lakedoc.ingest.extractors.ooxml import (
    Package,
    chart_text,
    core_properties,
    diagram_text,
    embedded_attachments,
)
from lakedoc.ingest.extractors.xmltree import attr, child, descendants, local, rel_id

# Subtrees that never hold visible text of their parent (or duplicate text shown elsewhere).
_SKIP_INLINE = frozenset({"Fallback", "delText", "instrText", "delInstrText", "moveFrom", "del", "rPr",
                          "pPr", "sectPr", "tblPr", "tcPr", "trPr", "tblGrid", "fldData"})
_SKIP_BLOCKS = _SKIP_INLINE | {"bookmarkStart", "bookmarkEnd", "commentRangeStart", "commentRangeEnd"}
_NOTE_SEPARATORS = frozenset({"separator", "continuationSeparator", "continuationNotice"})


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    pkg = Package(data, limits)
    main = pkg.main_part("word/document.xml")
    root = pkg.xml(main)
    body = child(root, "body") if root is not None else None
    if body is None:
        raise CorruptError(f"{main} has no w:body")
    doc = _Document(pkg, main)
    headers, footers = doc.header_footer_units(body)
    units = headers + doc.body_units(body) + doc.note_units() + footers
    metadata = core_properties(pkg)
    return Extraction(units=units, metadata=metadata, attachments=doc.attachments + embedded_attachments(pkg),
                      has_images=pkg.has_media(), incomplete=pkg.incomplete())


class _Document:
    """Walks the parts of one Word package."""

    def __init__(self, pkg: Package, main: str):
        self.pkg = pkg
        self.main = main
        self.attachments: list[Attachment] = []
        self._part = main  # part whose relationships resolve r:id attributes (altChunk)

    # ------------------------------------------------------------------ units

    def body_units(self, body) -> list[Unit]:
        """One unit per section (a section ends at a paragraph carrying w:sectPr)."""
        self._part = self.main
        sections: list[list[str]] = [[]]
        for el in body:
            if local(el) == "sectPr":
                continue
            sections[-1].extend(self.blocks([el]))
            ppr = child(el, "pPr") if local(el) == "p" else None
            if ppr is not None and child(ppr, "sectPr") is not None:
                sections.append([])
        sections = [s for s in sections if s] or [[]]
        single = len(sections) == 1
        return [Unit("body", i, "body" if single else f"body section {i}", "\n".join(lines))
                for i, lines in enumerate(sections, 1)]

    def header_footer_units(self, body) -> tuple[list[Unit], list[Unit]]:
        """Headers and footers of every type (default/first/even) referenced by any section,
        identical texts kept once."""
        refs = []  # (kind, type, part)
        for sect in descendants(body, "sectPr"):
            for ref in sect:
                kind = {"headerReference": "header", "footerReference": "footer"}.get(local(ref))
                target = self.pkg.rel_by_id(self.main, rel_id(ref)) if kind else None
                if kind and target:
                    refs.append((kind, attr(ref, "type", "default"), target))
        if not refs:  # no section references: fall back to every header/footer relationship
            refs = [(r.type, "default", r.target) for r in self.pkg.rels(self.main)
                    if r.type in ("header", "footer") and not r.external]
        out: dict[str, list[Unit]] = {"header": [], "footer": []}
        seen_parts, seen_texts = set(), set()
        for kind, typ, part in refs:
            if part in seen_parts:
                continue
            seen_parts.add(part)
            text = self._part_text(part)
            if text and text not in seen_texts:
                seen_texts.add(text)
                units = out[kind]
                units.append(Unit(kind, len(units) + 1, f"{kind} ({typ})", text))
        return out["header"], out["footer"]

    def note_units(self) -> list[Unit]:
        """Footnotes, endnotes and comments (separator notes skipped)."""
        units = []
        for rel_type, item, kind in (("footnotes", "footnote", "footnotes"), ("endnotes", "endnote", "endnotes"),
                                     ("comments", "comment", "comments")):
            lines = []
            for part in self.pkg.rel_targets(self.main, rel_type):
                root = self.pkg.optional_xml(part)
                if root is None:
                    continue
                self._part = part
                for note in root:
                    if local(note) == item and attr(note, "type") not in _NOTE_SEPARATORS:
                        lines.extend(self.blocks(note))
            if lines:
                units.append(Unit(kind, 1, kind, "\n".join(lines)))
        return units

    def _part_text(self, part: str) -> str:
        root = self.pkg.optional_xml(part)
        if root is None:
            return ""
        self._part = part
        return "\n".join(self.blocks(root))

    # ------------------------------------------------------------------ block level

    def blocks(self, container) -> list[str]:
        """Lines of block content (paragraphs, tables, altChunks) in document order."""
        lines: list[str] = []
        for el in container:
            name = local(el)
            if name == "p":
                self._paragraph(el, lines)
            elif name == "tbl":
                lines.extend(self._table(el))
            elif name == "altChunk":
                lines.extend(self._alt_chunk(el))
            elif name and name not in _SKIP_BLOCKS:
                lines.extend(self.blocks(el))  # sdt, sdtContent, customXml, ins, smartTag ...
        return lines

    def _paragraph(self, p, lines: list[str]) -> None:
        pieces: list[str] = []
        anchored: list = []
        _inline(p, pieces, anchored)
        text = "".join(pieces).strip()
        if text:
            lines.append(text)
        for el in anchored:  # text boxes, charts and SmartArt anchored in the paragraph follow it
            name = local(el)
            if name == "txbxContent":
                lines.extend(self.blocks(el))
            elif name == "chart":
                lines.extend(chart_text(self.pkg, self.pkg.rel_by_id(self._part, rel_id(el))))
            else:
                lines.extend(diagram_text(self.pkg, self.pkg.rel_by_id(self._part, attr(el, "dm"))))

    def _table(self, tbl) -> list[str]:
        """One line per row, cells separated by tabs; vertically merged cells counted once."""
        lines = []
        for tr in _items(tbl, "tr"):
            cells = []
            for tc in _items(tr, "tc"):
                cells.append("" if _is_merge_continuation(tc) else "\n".join(self.blocks(tc)))
            row = "\t".join(cells).strip()
            if row:
                lines.append(row)
        return lines

    def _alt_chunk(self, el) -> list[str]:
        """Text of an altChunk part (HTML, MHT, plain text); other kinds become attachments."""
        target = self.pkg.rel_by_id(self._part, rel_id(el))
        data = self.pkg.read(target) if target else None
        if not data or not target:
            return []
        ext = target.rpartition(".")[2].lower()
        if ext in ("htm", "html", "xhtml", "xml"):
            return [html_to_text(decode_html_bytes(data))]
        if ext in ("mht", "mhtml"):
            return [_mht_text(data)]
        if ext == "txt":
            return [decode_text(data)]
        self.attachments.append(Attachment(target.rpartition("/")[2], data))
        return []


def _inline(el, pieces: list[str], anchored: list) -> None:
    """Collect the run text of a paragraph into ``pieces``; text boxes (w:txbxContent), charts
    (c:chart) and SmartArt (dgm:relIds) are collected into ``anchored`` to be read after it."""
    for c in el:
        name = local(c)
        if not name or name in _SKIP_INLINE:
            continue
        if name == "t":
            pieces.append(c.text or "")
        elif name in ("tab", "ptab"):
            pieces.append("\t")
        elif name in ("br", "cr"):
            pieces.append("\n")
        elif name == "noBreakHyphen":
            pieces.append("-")
        elif name in ("txbxContent", "chart", "relIds"):
            anchored.append(c)
        else:
            _inline(c, pieces, anchored)


def _items(container, name: str):
    """Rows of a table / cells of a row, looking through sdt/customXml wrappers."""
    for el in container:
        n = local(el)
        if n == name:
            yield el
        elif n in ("sdt", "sdtContent", "customXml", "ins"):
            yield from _items(el, name)


def _is_merge_continuation(tc) -> bool:
    tcpr = child(tc, "tcPr")
    vmerge = child(tcpr, "vMerge") if tcpr is not None else None
    return vmerge is not None and attr(vmerge, "val", "continue") != "restart"


def _mht_text(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    texts = []
    for part in msg.walk():
        if part.get_content_type() in ("text/html", "text/plain"):
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):  # decode=True gives bytes for a non-multipart part
                payload = b""
            charset = part.get_content_charset()
            texts.append(html_to_text(decode_html_bytes(payload, charset))
                         if part.get_content_type() == "text/html" else decode_text(payload))
    return "\n".join(texts)
