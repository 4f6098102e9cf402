"""Text extraction from office files, mail and PDFs: the public API of the ingest stage.

:func:`extract_file` turns the bytes of one file into a list of :class:`Part` rows: the file itself
first, then every attachment / embedded file found inside it (recursively). It never raises: every
problem becomes a row status (see :data:`STATUSES`) with a readable ``error``.

The real format is detected from content (:mod:`lakedoc.ingest.detect`); the file's family or
extension only says what the content should be, and a mismatch gives ``unsupported``.

Every input file has exactly one owning family (:func:`owner_family`): the family that lists its
extension in :data:`FAMILIES`, else :data:`CATCH_ALL_FAMILY` (``msg``). A file no family lists is
extracted with ``family=None``: its content alone decides (a ``.log`` holding text is extracted as
text, a ``.bin`` holding a PDF as a PDF, a ``.doc`` as legacy Word -> ``unsupported``).
"""
from __future__ import annotations

import importlib
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from lakedoc.ingest.detect import detect_format, extension
from lakedoc.ingest.extractors import (
    Attachment,
    CorruptError,
    EncryptedError,
    Extraction,
    ExtractionError,
    ExtractionTimeout,
    Limits,
    TooLargeError,
    Unit,
    UnsupportedError,
    clean_text,
    decrypt_office_default,
    error_message,
    open_zip,
    unique_name,
)

__all__ = ["EXTRACTOR_VERSION", "FAMILIES", "CATCH_ALL_FAMILY", "STATUSES", "Limits", "Unit", "Part",
           "extract_file", "detect_format", "owner_family", "file_extension"]

# bump when extraction output changes. 2: files no family lists are ingested (content decides), text
# in UTF-16/32 without a BOM is decoded, text parts record their encoding.
EXTRACTOR_VERSION = "2"

FAMILIES = {
    "docx": ("docx", "docm", "dotx", "dotm"),
    "xlsx": ("xlsx", "xlsm", "xltx", "xltm"),
    "pptx": ("pptx", "pptm", "potx", "ppsx"),
    "pdf": ("pdf",),
    "msg": ("msg", "eml", "csv", "tsv"),
}

# The family (ingestion task) that takes every file whose extension no family lists: legacy .doc/.xls/
# .ppt, .xlsb, .rtf, .txt, images, archives, files without an extension ... (jobs/lakedoc.job.yml has
# five ingestion tasks and no sixth for leftovers; ``msg`` already owns the text-like csv/tsv/eml).
CATCH_ALL_FAMILY = "msg"

_EXTENSION_OWNER = {ext: fam for fam, exts in FAMILIES.items() for ext in exts}


def file_extension(file_name: str) -> str:
    """Lower-case extension of a file name (text after the last dot; "" without one)."""
    return file_name.rpartition(".")[2].lower() if "." in file_name else ""


def owner_family(file_name: str) -> str:
    """The one family that ingests an input file of this name (see the module docstring)."""
    return _EXTENSION_OWNER.get(file_extension(file_name), CATCH_ALL_FAMILY)


def claimed_family(file_name: str) -> str | None:
    """The family whose extensions include this file's, None for a leftover (content decides)."""
    return _EXTENSION_OWNER.get(file_extension(file_name))


STATUSES = ("ok", "empty", "encrypted", "corrupt", "image_only", "unsupported", "too_large", "timeout",
            "error")

# Detected format -> family. Wider than FAMILIES (which lists the extensions a family ingests):
# e.g. a .pptx whose content is a macro-enabled show (ppsm) is still a presentation.
_FAMILY_OF_FORMAT = {
    **dict.fromkeys(("docx", "docm", "dotx", "dotm"), "docx"),
    **dict.fromkeys(("xlsx", "xlsm", "xltx", "xltm"), "xlsx"),
    **dict.fromkeys(("pptx", "pptm", "potx", "potm", "ppsx", "ppsm"), "pptx"),
    "pdf": "pdf",
    **dict.fromkeys(("msg", "eml", "csv", "tsv"), "msg"),
}
_OOXML_FAMILIES = ("docx", "xlsx", "pptx")

# Detected format -> extractor module (under lakedoc.ingest.extractors), imported on first use so
# that importing this module (e.g. on a Spark driver) stays light.
_EXTRACTOR_MODULES = {
    **dict.fromkeys(("docx", "docm", "dotx", "dotm"), "docx"),
    **dict.fromkeys(("xlsx", "xlsm", "xltx", "xltm"), "xlsx"),
    **dict.fromkeys(("pptx", "pptm", "potx", "potm", "ppsx", "ppsm"), "pptx"),
    "pdf": "pdf",
    "msg": "mail",
    "eml": "mail",
    **dict.fromkeys(("csv", "tsv", "txt", "html"), "csv"),
}

_IMAGE_FORMATS = ("png", "jpeg", "gif", "tiff", "bmp", "webp", "emf", "wmf")

_UNSUPPORTED = {
    "doc": "legacy Word 97-2003 (.doc) documents are not supported",
    "xls": "legacy Excel 97-2003 (.xls) workbooks are not supported",
    "ppt": "legacy PowerPoint 97-2003 (.ppt) presentations are not supported",
    "xlsb": "binary Excel workbooks (.xlsb) are not supported",
    "rtf": "RTF documents are not supported",
    "odt": "OpenDocument files are not supported",
    "ods": "OpenDocument files are not supported",
    "odp": "OpenDocument files are not supported",
    "ole": "OLE compound file of an unknown kind",
    "unknown": "unrecognised content: binary data of no known format",
}


@dataclass
class Part:
    """One output row: the file itself, or an attachment found inside it (recursively)."""

    attachment_path: str  # "" for the file itself; "report.pdf"; "inner.msg/report.pdf" when nested
    file_name: str
    format: str  # detected real format: docx/xlsx/pptx/pdf/msg/eml/csv/... or "unknown"
    status: str  # one of STATUSES
    error: str | None  # message for non-ok statuses; None when ok
    text: str  # units joined with "\n\n"
    units: list[Unit] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    depth: int = 0  # 0 for the file, 1 for its attachments, ...


def extract_file(data: bytes, file_name: str, family: str | None = None,
                 limits: Limits | None = None) -> list[Part]:
    """Extract a file and, recursively, its attachments. Never raises.

    Returns the file's own Part first, then attachment Parts (each with ``attachment_path`` set).
    ``family`` (a key of :data:`FAMILIES`) or, without it, the file extension says what the content
    should be; content of another kind gives status ``unsupported``.
    """
    limits = limits or Limits()
    try:
        with _deadline(limits.timeout_s):
            return _extract_tree(bytes(data or b""), file_name, family, limits, "", 0)
    except ExtractionTimeout as exc:
        return [_failed_part(data, file_name, "", 0, "timeout", error_message(exc))]
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return [_failed_part(data, file_name, "", 0, "error", error_message(exc))]


# ---------------------------------------------------------------------------------------------- tree


def _extract_tree(data: bytes, file_name: str, family: str | None, limits: Limits, path: str,
                  depth: int) -> list[Part]:
    part, attachments = _extract_one(data, file_name, family, limits, path, depth)
    parts = [part]
    taken: set[str] = set()
    for att in attachments:
        name = unique_name(att.name, taken)
        att_path = f"{path}/{name}" if path else name
        if depth + 1 > limits.max_attachment_depth:
            parts.append(_failed_part(att.data, name, att_path, depth + 1, "unsupported",
                                      f"DepthLimitError: attachment nested deeper than "
                                      f"max_attachment_depth={limits.max_attachment_depth}"))
            continue
        parts.extend(_extract_tree(att.data, name, None, limits, att_path, depth + 1))
    return parts


def _extract_one(data: bytes, file_name: str, family: str | None, limits: Limits, path: str,
                 depth: int) -> tuple[Part, list[Attachment]]:
    """Extract one file (no recursion); every failure except a timeout becomes the Part status."""
    fmt = "unknown"
    try:
        if len(data) > limits.max_bytes:
            fmt = _safe_detect(data, file_name)
            raise TooLargeError(f"{len(data):,} bytes is over the limit of {limits.max_bytes:,}")
        if not data[:4096].strip() and not data.strip():
            ext = extension(file_name)
            fmt = ext if ext in _FAMILY_OF_FORMAT else "unknown"
            return _part(path, file_name, fmt, depth, Extraction()), []
        fmt = detect_format(data, file_name)
        _check_family(fmt, file_name, family)
        extraction, fmt = _run_extractor(fmt, data, file_name, limits)
        return _part(path, file_name, fmt, depth, extraction), extraction.attachments
    except ExtractionTimeout:
        raise
    except ExtractionError as exc:
        part = Part(path, file_name, fmt, exc.status, error_message(exc), "", [], {}, depth)
        return part, exc.attachments
    except Exception as exc:  # noqa: BLE001 - status "error" with the exception class and message
        return Part(path, file_name, fmt, "error", error_message(exc), "", [], {}, depth), []


def _run_extractor(fmt: str, data: bytes, file_name: str, limits: Limits) -> tuple[Extraction, str]:
    """Run the extractor for ``fmt``; returns the extraction and the (possibly refined) format."""
    if fmt in _EXTRACTOR_MODULES:
        module = importlib.import_module(f"lakedoc.ingest.extractors.{_EXTRACTOR_MODULES[fmt]}")
        return module.extract(data, fmt, limits), fmt
    if fmt in _IMAGE_FORMATS:
        return Extraction(has_images=True, metadata={"image_format": fmt}), fmt
    if fmt == "ooxml_encrypted":
        return _extract_encrypted_ooxml(data, file_name, limits)
    if fmt == "zip":
        open_zip(data, limits)  # raises CorruptError when the archive is unreadable (e.g. truncated)
        raise UnsupportedError("zip archive without an Office document inside ([Content_Types].xml "
                               "and main part missing)")
    if fmt == "applesingle":
        _raise_applesingle(data)
    raise UnsupportedError(_UNSUPPORTED.get(fmt, f"{fmt} files are not supported"))


def _extract_encrypted_ooxml(data: bytes, file_name: str, limits: Limits) -> tuple[Extraction, str]:
    """Encrypted OOXML: readable only when protected by Excel's default password."""
    decrypted = decrypt_office_default(data)
    if decrypted is None:
        raise EncryptedError("password required (encrypted Office package: EncryptionInfo + "
                             "EncryptedPackage)")
    inner = detect_format(decrypted, file_name)
    if inner not in _EXTRACTOR_MODULES or _FAMILY_OF_FORMAT.get(inner) not in _OOXML_FAMILIES:
        raise CorruptError(f"decrypted package is not an Office document ({inner})")
    extraction, _ = _run_extractor(inner, decrypted, file_name, limits)
    extraction.metadata["decrypted_with_default_password"] = "true"
    return extraction, inner


def _raise_applesingle(data: bytes) -> None:
    """AppleSingle/AppleDouble container: unsupported, but its data fork becomes an attachment."""
    import struct

    attachments, name = [], "data_fork"
    try:
        (count,) = struct.unpack_from(">H", data, 24)
        entries = [struct.unpack_from(">III", data, 26 + 12 * i) for i in range(count)]
        for entry_id, offset, length in entries:
            if entry_id == 3:  # real name
                name = data[offset:offset + length].decode("latin-1") or name
        for entry_id, offset, length in entries:
            if entry_id == 1 and length:  # data fork
                attachments.append(Attachment(name, data[offset:offset + length]))
    except struct.error:
        pass
    raise UnsupportedError("AppleSingle/AppleDouble container (its data fork is extracted as an "
                           "attachment)", attachments)


def _check_family(fmt: str, file_name: str, family: str | None) -> None:
    """Raise UnsupportedError when the content is not what the family (or extension) says."""
    if fmt in ("zip", "applesingle"):
        return  # decided by their own handlers (corrupt vs unsupported)
    expected, said_by = (family, "family") if family in FAMILIES else (None, "")
    if expected is None:
        ext = extension(file_name)
        expected = next((fam for fam, exts in FAMILIES.items() if ext in exts), None)
        said_by = f"extension .{ext}"
    if expected is None:
        return
    if fmt == "ooxml_encrypted" and expected in _OOXML_FAMILIES:
        return
    actual = _FAMILY_OF_FORMAT.get(fmt)
    if actual != expected:
        raise UnsupportedError(f"content is {fmt}, but the {said_by} says {expected}")


# ---------------------------------------------------------------------------------------------- parts


def _part(path: str, file_name: str, fmt: str, depth: int, extraction: Extraction) -> Part:
    units = []
    for unit in extraction.units:
        text = clean_text(unit.text)
        if text:
            units.append(Unit(unit.kind, int(unit.index), unit.ref, text))
    text = "\n\n".join(u.text for u in units)
    metadata = {str(k): str(v) for k, v in extraction.metadata.items() if v is not None and str(v) != ""}
    if text:
        status, error = "ok", None
    elif extraction.has_images:
        status, error = "image_only", "no text layer: images only (OCR would be needed)"
    else:
        status, error = "empty", "no text found"
    return Part(path, file_name, fmt, status, error, text, units, metadata, depth)


def _failed_part(data: bytes, file_name: str, path: str, depth: int, status: str, error: str) -> Part:
    return Part(path, file_name, _safe_detect(data, file_name), status, error, "", [], {}, depth)


def _safe_detect(data: bytes, file_name: str) -> str:
    try:
        return detect_format(bytes(data or b""), file_name)
    except Exception:  # noqa: BLE001
        return "unknown"


# ---------------------------------------------------------------------------------------------- timeout


@contextmanager
def _deadline(seconds: float | None):
    """Raise ExtractionTimeout in the body after ``seconds`` (SIGALRM; main thread only).

    Elsewhere (worker threads, platforms without setitimer) the body runs without a deadline. A timer
    that was already armed (e.g. by a test runner) is re-armed with its remaining time afterwards.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable or seconds is None:
        yield
        return
    state = {"active": True}

    def on_alarm(signum, frame):
        if state["active"]:
            raise ExtractionTimeout(f"extraction took longer than {seconds:g}s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        state["active"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            remaining = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)
