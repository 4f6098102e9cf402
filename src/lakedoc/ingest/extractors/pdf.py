"""PDF text with PyMuPDF: one unit per page.

Encrypted PDFs whose user password is empty are opened (they are only permission-protected);
PDFs that need a real password, or that only wrap an encrypted payload (Microsoft IRM / PDF 2.0
unencrypted wrapper documents), are ``encrypted``. Pages are read in full (no page sampling); form
field values missing from the rendered text are added; files attached to the PDF become attachments.
A PDF whose pages carry images but no text layer is ``image_only``.
"""
from __future__ import annotations

import re

import pymupdf

from lakedoc.ingest.extractors import (
    Attachment,
    CorruptError,
    EncryptedError,
    Extraction,
    Limits,
    TooLargeError,
    Unit,
    error_message,
)

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
        has_text = any(u.text.strip() for u in units)
        metadata = _metadata(doc, failed)
        return Extraction(units=units, metadata=metadata, attachments=_attached_files(doc),
                          has_images=not has_text and _has_images(doc))
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
