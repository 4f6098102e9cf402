"""PowerPoint presentations (pptx, pptm, potx, potm, ppsx, ppsm), read from the package XML.

Slides in presentation order (hidden ones too): shapes and nested group shapes, tables (merged cells
once), charts (titles), SmartArt (diagram data), comments, footer/date placeholders that take their
text from the layout or master, then the speaker notes of each slide as their own unit. Slide-number
placeholders are left out (they only repeat the position).
"""
from __future__ import annotations

from lakedoc.ingest.extractors.base import CorruptError, Extraction, Limits, Unit
from lakedoc.ingest.extractors.ooxml import (
    Package,
    chart_text,
    core_properties,
    diagram_text,
    embedded_attachments,
)
from lakedoc.ingest.extractors.xmltree import attr, child, descendants, drawingml_paragraphs, local, rel_id

_NO_TEXT_PLACEHOLDERS = frozenset({"sldNum", "sldImg"})
_INHERITED_PLACEHOLDERS = frozenset({"ftr", "hdr"})  # empty on the slide -> layout/master text


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    pkg = Package(data, limits)
    prs_part = pkg.main_part("ppt/presentation.xml")
    prs = pkg.xml(prs_part)
    if prs is None:
        raise CorruptError(f"{prs_part} is missing")
    reader = _SlideReader(pkg)
    slides = _slide_parts(pkg, prs_part, prs)
    units: list[Unit] = []
    hidden = 0
    for number, part in enumerate(slides, 1):
        root = pkg.optional_xml(part)
        if root is None:
            continue
        if attr(root, "show") in ("0", "false"):
            hidden += 1
        units.append(Unit("slide", number, f"slide {number}", "\n".join(reader.slide_lines(part, root))))
        for notes in pkg.rel_targets(part, "notesSlide"):
            notes_root = pkg.optional_xml(notes)
            if notes_root is not None:
                text = "\n".join(reader.shape_lines(notes, notes_root))
                units.append(Unit("notes", number, f"slide {number} notes", text))
    metadata = core_properties(pkg)
    metadata["slide_count"] = str(len(slides))
    if hidden:
        metadata["hidden_slides"] = str(hidden)
    return Extraction(units=units, metadata=metadata, attachments=embedded_attachments(pkg),
                      has_images=pkg.has_media(), incomplete=pkg.incomplete())


def _slide_parts(pkg: Package, prs_part: str, prs) -> list[str]:
    """Slide part names in sldIdLst order (slides not listed there are not shown, so not read)."""
    id_list = child(prs, "sldIdLst")
    parts = []
    for sld in (id_list if id_list is not None else []):
        target = pkg.rel_by_id(prs_part, rel_id(sld))
        part = pkg.find(target) if target else None
        if part:
            parts.append(part)
    return parts


class _SlideReader:
    """Reads shapes of slides, notes, layouts and masters (parsed parts are cached by Package)."""

    def __init__(self, pkg: Package):
        self.pkg = pkg

    def slide_lines(self, part: str, root) -> list[str]:
        """Shape text, then the slide's comments."""
        return self.shape_lines(part, root) + self._comment_lines(part)

    def shape_lines(self, part: str, root) -> list[str]:
        """Text of the shape tree of a slide / notes slide, in z-order."""
        tree = next(descendants(root, "spTree"), None)
        return self._shapes(part, tree) if tree is not None else []

    def _shapes(self, part: str, container) -> list[str]:
        lines: list[str] = []
        for shape in container:
            name = local(shape)
            if name in ("sp", "cxnSp"):
                lines.extend(self._shape_text(part, shape))
            elif name == "grpSp":
                lines.extend(self._shapes(part, shape))
            elif name == "graphicFrame":
                lines.extend(self._graphic_frame(part, shape))
            elif name == "AlternateContent":
                choice = child(shape, "Choice")
                if choice is not None:
                    lines.extend(self._shapes(part, choice))
        return lines

    def _shape_text(self, part: str, shape) -> list[str]:
        ph = next(descendants(shape, "ph"), None)
        ph_type = attr(ph, "type") if ph is not None else None
        if ph_type in _NO_TEXT_PLACEHOLDERS:
            return []
        body = child(shape, "txBody")
        lines = drawingml_paragraphs(body) if body is not None else []
        if not lines and ph_type in _INHERITED_PLACEHOLDERS:
            lines = self._inherited_placeholder(part, ph_type)
        return lines

    def _inherited_placeholder(self, part: str, ph_type: str) -> list[str]:
        """Text of the same placeholder type on the slide's layout, else on its master."""
        for rel_type in ("slideLayout", "slideMaster"):
            targets = self.pkg.rel_targets(part, rel_type)
            if not targets:
                continue
            part = targets[0]
            root = self.pkg.optional_xml(part)
            for shape in (descendants(root, "sp") if root is not None else []):
                ph = next(descendants(shape, "ph"), None)
                if ph is not None and attr(ph, "type") == ph_type:
                    body = child(shape, "txBody")
                    lines = drawingml_paragraphs(body) if body is not None else []
                    if lines:
                        return lines
        return []

    def _graphic_frame(self, part: str, frame) -> list[str]:
        """Tables, charts and SmartArt inside a graphic frame."""
        lines = []
        for tbl in descendants(frame, "tbl"):
            lines.extend(_table_lines(tbl))
        for el in descendants(frame, "chart"):
            lines.extend(chart_text(self.pkg, self.pkg.rel_by_id(part, rel_id(el))))
        for el in descendants(frame, "relIds"):
            data_rid = attr(el, "dm")
            lines.extend(diagram_text(self.pkg, self.pkg.rel_by_id(part, data_rid)))
        return lines

    def _comment_lines(self, part: str) -> list[str]:
        lines = []
        for comments in self.pkg.rel_targets(part, "comments"):
            root = self.pkg.optional_xml(comments)
            for text in (descendants(root, "text") if root is not None else []):
                if text.text and text.text.strip():
                    lines.append(text.text.strip())
        return lines


def _table_lines(tbl) -> list[str]:
    """One line per row, cells tab-separated; cells covered by a merge are skipped."""
    lines = []
    for tr in tbl.iterchildren("{*}tr"):
        cells = []
        for tc in tr.iterchildren("{*}tc"):
            if attr(tc, "hMerge") in ("1", "true") or attr(tc, "vMerge") in ("1", "true"):
                continue
            body = child(tc, "txBody")
            cells.append(" ".join(drawingml_paragraphs(body)) if body is not None else "")
        row = "\t".join(cells).strip()
        if row:
            lines.append(row)
    return lines
