"""Types every extractor shares: the limits, the result types and the errors whose ``status`` becomes
the row status; plus the small text helpers used on every extraction result.

Each extractor module exposes ``extract(data, fmt, limits) -> Extraction``. An extractor either returns
an :class:`Extraction` (units of text, metadata, embedded files to recurse into) or raises one of the
:class:`ExtractionError` subclasses below.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field


def _default(name: str):
    """A field default of :class:`Limits`: the value ``Limits.from_settings(IngestSettings())`` gives, so
    the defaults live only in :class:`lakedoc.config_schema.IngestSettings`."""
    return field(default_factory=lambda: getattr(_defaults(), name))


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to one top-level file (and each attachment inside it).

    Built from the ``ingest`` configuration section by :meth:`from_settings`; a field not given takes
    the configuration's default (``Limits(timeout_s=1)``: every other limit as configured by default).
    """

    max_bytes: int = _default("max_bytes")  # file (or attachment) larger -> too_large
    timeout_s: float = _default("timeout_s")  # per top-level file, wall clock -> timeout
    max_uncompressed_bytes: int = _default("max_uncompressed_bytes")  # zip bomb guard: sum of member sizes
    max_compression_ratio: float = _default("max_compression_ratio")  # zip bomb guard: uncompressed/compressed
    max_attachment_depth: int = _default("max_attachment_depth")
    max_pdf_pages: int = _default("max_pdf_pages")
    # hard cap on the memory one extraction may add (bytes; 0: no cap): the extraction runs in a child
    # process whose address space is limited to the parent's size plus this (Linux only)
    max_memory_bytes: int = _default("max_memory_bytes")
    # OCR (ingest.ocr): image files and PDF pages without a text layer (lakedoc.ingest.extractors.ocr)
    ocr_enabled: bool = _default("ocr_enabled")
    ocr_tessdata: str | None = _default("ocr_tessdata")  # None: TESSDATA_PREFIX, then the usual folders
    ocr_language: str = _default("ocr_language")
    ocr_dpi: int = _default("ocr_dpi")
    ocr_max_pages: int = _default("ocr_max_pages")

    @classmethod
    def from_settings(cls, ingest) -> Limits:
        """The limits of the ``ingest`` section (:class:`lakedoc.config_schema.IngestSettings`, read by
        attribute; sizes in MB there, bytes here)."""
        from lakedoc.config_schema import OcrSettings

        mb = 1024 * 1024
        ocr = OcrSettings.from_config(getattr(ingest, "ocr", None))
        return cls(max_bytes=int(ingest.max_file_mb * mb), timeout_s=float(ingest.timeout_s),
                   max_uncompressed_bytes=int(ingest.max_uncompressed_mb * mb),
                   max_compression_ratio=float(ingest.max_compression_ratio),
                   max_attachment_depth=int(ingest.max_attachment_depth),
                   max_pdf_pages=int(ingest.max_pdf_pages),
                   max_memory_bytes=int(ingest.max_memory_mb * mb),
                   ocr_enabled=bool(ocr.enabled), ocr_tessdata=ocr.tessdata or None,
                   ocr_language=str(ocr.language), ocr_dpi=int(ocr.dpi), ocr_max_pages=int(ocr.max_pages))


@functools.lru_cache(maxsize=1)
def _defaults() -> Limits:
    from lakedoc.config_schema import IngestSettings

    return Limits.from_settings(IngestSettings())


@dataclass
class Unit:
    """A page / slide / sheet / section, so later chunking can cite where text came from.

    Text that came from OCR says so in its ``ref``: ``"page 3 (OCR)"``, ``"image (OCR)"`` (see
    :data:`OCR_REF_SUFFIX`; the ``documents.units`` struct has no other place for it, and the reference
    is what chunks and search results cite)."""

    kind: str  # "page" | "slide" | "notes" | "sheet" | "body" | "header" | "footer" | "rows" ...
    index: int  # 1-based position within its kind
    ref: str  # human-readable: "page 3", "slide 2 notes", "sheet 'Sales'", "header (default)"
    text: str


OCR_REF_SUFFIX = " (OCR)"


def is_ocr_unit(unit) -> bool:
    """Whether a unit (a :class:`Unit` or a ``documents.units`` mapping) holds OCR text."""
    ref = unit.get("ref") if isinstance(unit, dict) else getattr(unit, "ref", None)
    return bool(ref) and str(ref).endswith(OCR_REF_SUFFIX)


@dataclass
class Attachment:
    """A file found inside another one (mail attachment, embedded OLE object, PDF file attachment)."""

    name: str
    data: bytes


@dataclass
class Extraction:
    """What an extractor found in one file."""

    units: list[Unit] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    has_images: bool = False  # decides image_only vs empty when no text was found
    # why the text may be incomplete (truncated file, XML recovered): text + a reason -> status partial
    incomplete: list[str] = field(default_factory=list)


class ExtractionError(Exception):
    """Base of the errors an extractor raises on purpose; ``status`` is the row status.

    ``attachments`` may carry files found before the failure (they are still extracted)."""

    status = "error"

    def __init__(self, message: str = "", attachments: list[Attachment] | None = None):
        super().__init__(message)
        self.attachments = list(attachments or [])


class EncryptedError(ExtractionError):
    status = "encrypted"


class CorruptError(ExtractionError):
    status = "corrupt"


class UnsupportedError(ExtractionError):
    status = "unsupported"


class TooLargeError(ExtractionError):
    status = "too_large"


class ZipBombError(ExtractionError):
    """A zip whose declared sizes look like a decompression bomb (status set per instance)."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status  # "too_large" (declared size) or "corrupt" (compression ratio)


class ExtractionTimeout(BaseException):
    """Raised from the SIGALRM handler. A BaseException so that ``except Exception`` in libraries
    (and in our own fallbacks) cannot swallow it."""

    status = "timeout"


def error_message(exc: BaseException) -> str:
    """The ``"ExcClass: message"`` form used in the ``error`` column."""
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def clean_text(text: str) -> str:
    """Normalise newlines, drop control characters and trailing blanks, squeeze blank-line runs."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def text_tokens(text: str) -> set[str]:
    """Word tokens (case-folded, NFKC) used to compare two renderings of the same content."""
    return set(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


def unique_name(name: str, taken: set[str]) -> str:
    """A path-safe attachment name not yet in ``taken`` ("a.png", "a (2).png", ...); adds it."""
    name = (name or "attachment").replace("/", "_").replace("\\", "_").strip() or "attachment"
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem} ({n}).{ext}" if dot else f"{stem} ({n})"
    taken.add(candidate)
    return candidate

