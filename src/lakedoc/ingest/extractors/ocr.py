"""OCR with the Tesseract engine built into PyMuPDF (no ``tesseract`` binary, no Python OCR package).

Used by :mod:`.image` (image files) and :mod:`.pdf` (pages without a text layer; pages with one are
never OCR'd). Only the language data is needed: ``<language>.traineddata`` in a *tessdata* folder,
found by :func:`find_tessdata` from ``ingest.ocr.tessdata``, else ``TESSDATA_PREFIX``, else the usual
Debian/Ubuntu folders (``apt-get install tesseract-ocr-eng``). Without it OCR is unavailable
(:class:`ImageOnlyError`): image files get ``image_only`` with an error saying so, PDF pages stay
without text and the PDF is ``partial`` when other pages have text.

Units holding OCR text say so in their reference (``"page 3 (OCR)"``, :data:`.base.OCR_REF_SUFFIX`).
"""
from __future__ import annotations

import os
from pathlib import Path

import pymupdf

from lakedoc.ingest.extractors.base import OCR_REF_SUFFIX, ExtractionError, Limits

# Folders searched after ingest.ocr.tessdata and TESSDATA_PREFIX (Debian 12 / Ubuntu: tesseract 5;
# older releases: 4.00; Homebrew and source builds: share/tessdata).
TESSDATA_DIRS: tuple[str, ...] = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


class ImageOnlyError(ExtractionError):
    """OCR was needed and gave no text: no language data, an image it cannot decode, or no text found.
    The row is ``image_only`` (as without OCR) and the error says which."""

    status = "image_only"


def ocr_ref(ref: str) -> str:
    """The reference of a unit whose text came from OCR (``"page 3"`` -> ``"page 3 (OCR)"``)."""
    return ref + OCR_REF_SUFFIX


def _languages(language: str) -> list[str]:
    return [lang for lang in (language or "").split("+") if lang.strip()]


def _has_languages(folder: str | os.PathLike[str], language: str) -> bool:
    langs = _languages(language)
    return bool(langs) and all((Path(folder) / f"{lang.strip()}.traineddata").is_file() for lang in langs)


def find_tessdata(configured: str | None, language: str = "eng") -> str:
    """The tessdata folder holding ``<language>.traineddata`` for every language of ``language``
    (``eng+deu``): ``configured`` (``ingest.ocr.tessdata``; a ``/Volumes/...`` path works on
    Databricks) when set, and only it; else ``TESSDATA_PREFIX``, then :data:`TESSDATA_DIRS`. Raises
    :class:`ImageOnlyError` naming what was searched when none holds the language data."""
    candidates: list[str] = []
    if configured:
        candidates.append(configured)
    else:
        if os.environ.get("TESSDATA_PREFIX"):
            candidates.append(os.environ["TESSDATA_PREFIX"])
        candidates.extend(TESSDATA_DIRS)
    for folder in candidates:
        if _has_languages(folder, language):
            return str(folder)
    if configured:  # a configured folder without the data is a configuration error worth naming
        where = f"ingest.ocr.tessdata={configured!r}"
    else:
        where = "TESSDATA_PREFIX or " + ", ".join(TESSDATA_DIRS)
    files = ", ".join(f"{lang}.traineddata" for lang in _languages(language)) or "(no language configured)"
    raise ImageOnlyError(f"OCR language data not found: no {files} in {where} (install tesseract-ocr-"
                         f"{(_languages(language) or ['eng'])[0]} or set ingest.ocr.tessdata)")


def tessdata_or_reason(limits: Limits) -> tuple[str | None, str | None]:
    """(tessdata folder, None) when OCR can run, (None, why not) otherwise (disabled or no data)."""
    if not limits.ocr_enabled:
        return None, "OCR is disabled (ingest.ocr.enabled: false)"
    try:
        return find_tessdata(limits.ocr_tessdata, limits.ocr_language), None
    except ImageOnlyError as exc:
        return None, str(exc)


def ocr_page(page: pymupdf.Page, tessdata: str, language: str, dpi: int) -> str:
    """Text of one page by OCR, the page rendered at ``dpi`` (MuPDF's Tesseract; the whole page,
    ignoring any text layer)."""
    textpage = page.get_textpage_ocr(language=language, dpi=dpi, full=True, tessdata=tessdata)
    return page.get_text("text", textpage=textpage)


# Image files are OCR'd at their own pixel size, upsampled (at most MAX_UPSAMPLE times) when narrower
# than MIN_OCR_WIDTH_PX (an A4 page at 300 dpi): Tesseract reads small type poorly at low resolution
# (8 pt text scanned at 72 dpi: CER 0.76 read as it is, 0.011 upsampled; docs/benchmarks.md).
MIN_OCR_WIDTH_PX = 2480
MAX_UPSAMPLE = 4.0


def image_ocr_dpi(page: pymupdf.Page, default: int = 300) -> int:
    """The resolution an image document's page is rendered at for OCR: the image's own pixel size,
    upsampled when narrower than :data:`MIN_OCR_WIDTH_PX` (never downsampled)."""
    try:
        info = page.get_image_info()
        width_px = max(int(i.get("width") or 0) for i in info) if info else 0
    except Exception:  # noqa: BLE001 - fall back to the configured resolution
        width_px = 0
    if width_px <= 0 or page.rect.width <= 0:
        return default
    target = width_px * min(MAX_UPSAMPLE, max(1.0, MIN_OCR_WIDTH_PX / width_px))
    return max(1, round(72.0 * target / page.rect.width))
