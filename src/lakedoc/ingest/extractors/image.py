"""Image files (png, jpeg, tiff, bmp, gif; detected by content): text by OCR, one unit per frame.

Each frame (a multi-page TIFF has several) is OCR'd at the image's own resolution,
upsampled when small (:func:`.ocr.image_ocr_dpi`), and becomes a unit ``"image (OCR)"`` /
``"frame 2 (OCR)"``. With OCR off
(``ingest.ocr.enabled: false``) the file is ``image_only`` as before; without language data it is
``image_only`` with an error that says the data is missing; so is an image MuPDF cannot decode, and one
in which OCR finds no text (each error says which).
"""
from __future__ import annotations

import time

import pymupdf

from lakedoc.ingest.extractors.base import Extraction, Limits, Unit, error_message
from lakedoc.ingest.extractors.ocr import ImageOnlyError, image_ocr_dpi, ocr_page, ocr_ref, tessdata_or_reason

# detected format -> MuPDF's file type
_FILETYPES = {"png": "png", "jpeg": "jpeg", "tiff": "tiff", "bmp": "bmp", "gif": "gif"}


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    metadata = {"image_format": fmt}
    if not limits.ocr_enabled:
        return Extraction(has_images=True, metadata=metadata)
    tessdata, why_not = tessdata_or_reason(limits)
    if tessdata is None:
        raise ImageOnlyError(f"no text layer: image only, and {why_not}")
    try:
        doc = pymupdf.open(stream=data, filetype=_FILETYPES.get(fmt, fmt))
    except Exception as exc:  # noqa: BLE001 - FileDataError, RuntimeError ...
        raise ImageOnlyError(f"no text layer: image only, and the {fmt} image cannot be decoded for OCR "
                             f"({error_message(exc)})") from exc
    try:
        try:
            frames = doc.page_count
        except Exception as exc:  # noqa: BLE001 - MuPDF decodes lazily: a broken image fails here
            raise ImageOnlyError(f"no text layer: image only, and the {fmt} image cannot be decoded for OCR "
                                 f"({error_message(exc)})") from exc
        if frames == 0:
            raise ImageOnlyError(f"no text layer: image only, and the {fmt} image has no frame to OCR")
        metadata.update(frames=str(frames), ocr_language=limits.ocr_language)
        units, incomplete = [], []
        started, budget = time.monotonic(), limits.timeout_s / 2
        for number in range(1, frames + 1):
            if number > limits.ocr_max_pages or time.monotonic() - started > budget:
                why = (f"ingest.ocr.max_pages={limits.ocr_max_pages}" if number > limits.ocr_max_pages
                       else f"half of the {limits.timeout_s:g}s time budget spent")
                incomplete.append(f"{frames - number + 1} of {frames} frame(s) not OCR'd ({why})")
                break
            try:
                page = doc[number - 1]
                text = ocr_page(page, tessdata, limits.ocr_language, image_ocr_dpi(page, limits.ocr_dpi))
            except Exception as exc:  # noqa: BLE001 - one bad frame must not lose the others
                if frames == 1:
                    raise ImageOnlyError(f"no text layer: image only, and the {fmt} image cannot be "
                                         f"decoded for OCR ({error_message(exc)})") from exc
                incomplete.append(f"frame {number} could not be OCR'd ({error_message(exc)})")
                continue
            ref = "image" if frames == 1 else f"frame {number}"
            units.append(Unit("image", number, ocr_ref(ref), text))
        metadata["ocr_units"] = str(sum(1 for u in units if u.text.strip()))
        if not incomplete and not any(u.text.strip() for u in units):
            raise ImageOnlyError(f"no text layer: image only, and OCR found no text in {frames} frame(s)")
        return Extraction(units=units, metadata=metadata, has_images=True, incomplete=incomplete)
    finally:
        doc.close()
