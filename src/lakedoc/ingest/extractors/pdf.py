"""PDF text with PyMuPDF: one unit per page.

Encrypted PDFs whose user password is empty are opened (they are only permission-protected);
PDFs that need a real password, or that only wrap an encrypted payload (Microsoft IRM / PDF 2.0
unencrypted wrapper documents), are ``encrypted``. Pages are read in full (no page sampling); form
field values missing from the rendered text are added; files attached to the PDF become attachments.
Pages without a text layer that carry images or drawings are OCR'd (``ingest.ocr``; pages with a
text layer never are): their units say so (``"page 3 (OCR)"``) and the metadata lists them
(``ocr_pages``). When OCR is off, a PDF whose pages carry images but no text layer is ``image_only``;
when OCR is on but its language data is missing, such a PDF is ``image_only`` with an error saying so,
or ``partial`` when other pages have text (as it is when ``ingest.ocr.max_pages`` leaves pages out).
A truncated PDF (its xref had to
be rebuilt and it lacks its final ``%%EOF``), one whose page tree and page objects disagree, or one with
unreadable pages is ``partial``: its text is kept and ``error`` says why it may be incomplete.
"""
from __future__ import annotations

import re
import time

import pymupdf

from lakedoc.ingest.extractors.base import (
    Attachment,
    CorruptError,
    EncryptedError,
    Extraction,
    Limits,
    TooLargeError,
    Unit,
    error_message,
)
from lakedoc.ingest.extractors.ocr import ImageOnlyError, ocr_page, ocr_ref, tessdata_or_reason

pymupdf.TOOLS.mupdf_display_errors(False)  # MuPDF reports recoverable syntax errors on stderr
pymupdf.TOOLS.mupdf_display_warnings(False)

# Plain-text extraction with ligatures expanded ("ﬁ" -> "fi").
_TEXT_FLAGS = pymupdf.TEXTFLAGS_TEXT & ~pymupdf.TEXT_PRESERVE_LIGATURES
_PDF_HEADER = re.compile(rb"%PDF-\d")
_METADATA_KEYS = {"title": "title", "author": "author", "subject": "subject", "keywords": "keywords",
                  "creator": "creator", "producer": "producer", "creationDate": "created",
                  "modDate": "modified", "format": "pdf_version", "encryption": "encryption"}


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    doc = _open(data)
    try:
        _check_access(doc)
        if doc.page_count > limits.max_pdf_pages:
            raise TooLargeError(f"{doc.page_count} pages is over the limit of {limits.max_pdf_pages}")
        if doc.page_count == 0:
            raise CorruptError("PDF has no readable pages")
        units, failed = _page_units(doc)
        if failed == doc.page_count:
            raise CorruptError(f"no page could be read ({failed} pages failed)")
        metadata = _metadata(doc, failed)
        ocr_incomplete = _ocr_pages(doc, units, limits, metadata)
        has_text = any(u.text.strip() for u in units)
        return Extraction(units=units, metadata=metadata, attachments=_attached_files(doc),
                          has_images=not has_text and _has_images(doc),
                          incomplete=_incomplete(doc, data, failed) + ocr_incomplete)
    finally:
        doc.close()


def _open(data: bytes) -> pymupdf.Document:
    """Open from memory, skipping junk before the %PDF header (allowed within the first 1 KB)."""
    m = _PDF_HEADER.search(data[:1024])
    if m and m.start():
        data = data[m.start():]
    try:
        return pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # noqa: BLE001 - FileDataError, RuntimeError, ValueError ...
        raise CorruptError(f"cannot open PDF: {error_message(exc)}") from exc


def _check_access(doc: pymupdf.Document) -> None:
    if doc.needs_pass and not doc.authenticate(""):
        raise EncryptedError("password required to open the PDF")
    subtype = _encrypted_payload(doc)
    if subtype:
        raise EncryptedError(f"the PDF only wraps an encrypted payload ({subtype}); the visible page is a "
                             "notice")


def _encrypted_payload(doc: pymupdf.Document) -> str | None:
    """Subtype of a PDF 2.0 encrypted payload (e.g. MicrosoftIRMServices) the document wraps, or None."""
    if not doc.embfile_count():
        return None
    catalog = doc.pdf_catalog()
    if all(doc.xref_get_key(catalog, key)[0] == "null" for key in ("Collection", "AF")):
        return None  # a wrapper document declares its payload as a collection / associated file
    for xref in range(1, doc.xref_length()):
        try:
            relation = doc.xref_get_key(xref, "AFRelationship")
            payload = doc.xref_get_key(xref, "EP/Subtype")
        except Exception:  # noqa: BLE001 - damaged objects are skipped
            continue
        if relation[1] == "/EncryptedPayload" or payload[0] == "name":
            return payload[1].lstrip("/") if payload[0] == "name" else "EncryptedPayload"
    return None


def _incomplete(doc: pymupdf.Document, data: bytes, failed_pages: int) -> list[str]:
    """Why the text of this PDF may be partial (empty: nothing says so).

    * truncated: MuPDF had to rebuild the cross-reference table and the file does not end with
      ``%%EOF`` (a PDF whose xref offsets are merely off but which is complete is not flagged);
    * the page tree and the page objects disagree (pages listed whose objects are missing, or page
      objects the tree does not reach);
    * pages whose text could not be read.
    """
    reasons = []
    if doc.is_repaired and b"%%EOF" not in data[-1024:]:
        reasons.append("the PDF is truncated (no %%EOF at its end; its cross-reference table had to be "
                       "rebuilt)")
    found = _page_objects(doc)
    if found is not None and found != doc.page_count:
        reasons.append(f"the page tree lists {doc.page_count} page(s) but {found} page object(s) were found")
    if failed_pages:
        reasons.append(f"{failed_pages} page(s) could not be read")
    return reasons


def _page_objects(doc: pymupdf.Document) -> int | None:
    """Number of objects of /Type /Page in the file (None when the objects cannot be walked)."""
    n = 0
    try:
        for xref in range(1, doc.xref_length()):
            try:
                if doc.xref_get_key(xref, "Type") == ("name", "/Page"):
                    n += 1
            except Exception:  # noqa: BLE001 - a damaged object is not a page we can count
                continue
    except Exception:  # noqa: BLE001
        return None
    return n


def _page_units(doc: pymupdf.Document) -> tuple[list[Unit], int]:
    """One unit per page (empty pages give empty units, dropped later); count of unreadable pages."""
    units, failed = [], 0
    for number in range(1, doc.page_count + 1):
        page = doc[number - 1]
        try:
            text = page.get_text("text", flags=_TEXT_FLAGS)
            text += _missing_field_values(page, text)
        except Exception:  # noqa: BLE001 - one broken page must not lose the others
            failed += 1
            continue
        units.append(Unit("page", number, f"page {number}", text))
    return units, failed


def _needs_ocr(page: pymupdf.Page) -> bool:
    """A page without a text layer that shows something OCR could read (images, or vector drawings:
    text converted to outlines). Blank pages are not OCR'd."""
    try:
        return bool(page.get_images(full=False) or page.get_image_info() or page.get_cdrawings())
    except Exception:  # noqa: BLE001 - a page we cannot inspect is tried
        return True


def _ocr_pages(doc: pymupdf.Document, units: list[Unit], limits: Limits, metadata: dict[str, str]) -> list[str]:
    """OCR the pages whose unit has no text and that need it (:func:`_needs_ocr`), in place: the unit
    gets the OCR text and the reference ``"page N (OCR)"``. Returns why text may be missing (pages
    left without OCR). With OCR off nothing happens; without language data, a PDF with no text at all
    raises :class:`ImageOnlyError` (``image_only``, the error says the data is missing)."""
    if not limits.ocr_enabled:
        return []
    candidates = [u for u in units if not u.text.strip() and _needs_ocr(doc[u.index - 1])]
    if not candidates:
        return []
    tessdata, why_not = tessdata_or_reason(limits)
    if tessdata is None:
        if not any(u.text.strip() for u in units):
            raise ImageOnlyError(f"no text layer: images only, and {why_not}")
        return [f"{len(candidates)} page(s) without a text layer were not OCR'd ({why_not})"]
    done: list[int] = []
    reasons: list[str] = []
    started, budget = time.monotonic(), limits.timeout_s / 2
    for position, unit in enumerate(candidates):
        if position >= limits.ocr_max_pages or time.monotonic() - started > budget:
            why = (f"ingest.ocr.max_pages={limits.ocr_max_pages}" if position >= limits.ocr_max_pages
                   else f"half of the {limits.timeout_s:g}s time budget spent")
            reasons.append(f"{len(candidates) - position} page(s) without a text layer were not OCR'd ({why})")
            break
        try:
            text = ocr_page(doc[unit.index - 1], tessdata, limits.ocr_language, limits.ocr_dpi)
        except Exception as exc:  # noqa: BLE001 - one page failing OCR must not lose the others
            reasons.append(f"OCR of page {unit.index} failed ({error_message(exc)})")
            continue
        unit.text, unit.ref = text, ocr_ref(unit.ref)
        done.append(unit.index)
    if done and not reasons and not any(u.text.strip() for u in units):
        raise ImageOnlyError(f"no text layer: images only, and OCR found no text on {len(done)} page(s)")
    if done:
        metadata.update(ocr_pages=",".join(map(str, done)), ocr_language=limits.ocr_language,
                        ocr_dpi=str(limits.ocr_dpi))
    return reasons


def _missing_field_values(page: pymupdf.Page, text: str) -> str:
    """Form field values that the page rendering does not show (no appearance stream)."""
    extra = []
    for widget in page.widgets() or []:
        value = widget.field_value
        if isinstance(value, str) and value.strip() and value.strip() not in text \
                and value.strip() not in ("Off", "On", "Yes", "No"):
            extra.append(value.strip())
    return ("\n" + "\n".join(extra)) if extra else ""


def _has_images(doc: pymupdf.Document) -> bool:
    for index in range(doc.page_count):
        page = doc[index]
        try:
            if page.get_images(full=False) or page.get_image_info():
                return True
        except Exception:  # noqa: BLE001
            continue
    return False


def _metadata(doc: pymupdf.Document, failed_pages: int) -> dict[str, str]:
    out = {"page_count": str(doc.page_count)}
    for key, name in _METADATA_KEYS.items():
        value = (doc.metadata or {}).get(key)
        if value:
            out[name] = str(value)
    if failed_pages:
        out["unreadable_pages"] = str(failed_pages)
    return out


def _attached_files(doc: pymupdf.Document) -> list[Attachment]:
    out = []
    for i in range(doc.embfile_count()):
        try:
            info = doc.embfile_info(i)
            out.append(Attachment(info.get("ufilename") or info.get("filename") or info.get("name") or
                                  f"attachment{i + 1}", doc.embfile_get(i)))
        except Exception:  # noqa: BLE001 - an unreadable attachment is skipped
            continue
    return out
