"""The one table of the formats lakedoc knows: :data:`FORMATS`. Every other format table is derived here.

For each format that :func:`lakedoc.ingest.detect.detect_format` can return, :class:`Format` says

* ``family``: the ingestion family (task ``ingest_<family>``) whose files may hold this content. A
  file whose extension a family claims must hold a format of that family, else it is ``unsupported``.
  ``None``: the format belongs to no family; such content is read only in a file no family claims
  (the catch-all family gets those files, and their content alone decides how they are read).
* ``module``: the extractor module under :mod:`lakedoc.ingest.extractors` (``None``: not read; the row
  is ``unsupported`` with ``unsupported`` as the reason, or ``image_only`` for images; raster images
  MuPDF decodes have the OCR extractor :mod:`lakedoc.ingest.extractors.image`).
* ``extensions``: the file extensions whose files the family claims (every other file goes to the
  catch-all family :data:`CATCH_ALL_FAMILY`).
* the content signature the detector recognises: ``content_type`` (the main part's content type in
  an OOXML package's ``[Content_Types].xml``), ``main_part`` (the main part name, for packages
  without usable content types), ``magic`` (leading bytes), ``signature`` (how the detector tells it,
  in words, for the rest).

Derived here: :data:`INGEST_FAMILIES` (families in job order), :data:`FAMILIES` (family ->
extensions it claims), :data:`FAMILY_OF_FORMAT`, :data:`EXTRACTOR_MODULES`, :data:`EXTENSION_OWNER`,
:data:`UNSUPPORTED_REASONS`, the detector's tables (:data:`OOXML_CONTENT_TYPES`,
:data:`OOXML_MAIN_PARTS`, :data:`IMAGE_MAGIC`), and the task keys (:func:`ingest_task`).
``lakedoc.config_schema.INGEST_FAMILIES``, the task registry (:mod:`lakedoc.tasks`) and the job's
ingestion tasks (``jobs/lakedoc.job.yml``, kept equal by ``tests/test_tasks.py``) follow from it.

This module imports nothing else of lakedoc: the driver, the configuration and the task registry read
it without loading any extractor.
"""
from __future__ import annotations

from dataclasses import dataclass

# Ingestion families in the order of the job's tasks. ``mail_text``: mail (msg, eml), delimited and
# plain text (csv, tsv, txt, html) and, as the catch-all, every file no other family claims.
INGEST_FAMILIES: tuple[str, ...] = ("docx", "xlsx", "pptx", "pdf", "mail_text")

# The family that takes every file whose extension no family lists: legacy .doc/.xls/.ppt, .xlsb,
# .rtf, .txt, images, archives, files without an extension ... (their content decides how they are read).
CATCH_ALL_FAMILY = "mail_text"

# Family names used by earlier versions (source_task values in the documents table) -> current name.
RENAMED_FAMILIES: dict[str, str] = {"msg": "mail_text"}


@dataclass(frozen=True)
class Format:
    name: str
    family: str | None
    module: str | None
    extensions: tuple[str, ...] = ()
    content_type: str | None = None
    main_part: str | None = None
    magic: tuple[bytes, ...] = ()
    signature: str = ""
    unsupported: str | None = None  # the reason given for a format that is not read


_WML = "application/vnd.openxmlformats-officedocument.wordprocessingml"
_SML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_PML = "application/vnd.openxmlformats-officedocument.presentationml"
_ODF = "zip holding a mimetype member application/vnd.oasis.opendocument."
_ODF_REASON = "OpenDocument files are not supported"

FORMATS: tuple[Format, ...] = (
    # Word (zip packages: [Content_Types].xml, else the main part word/document.xml)
    Format("docx", "docx", "docx", ("docx",), f"{_WML}.document.main+xml", "word/document.xml"),
    Format("docm", "docx", "docx", ("docm",), "application/vnd.ms-word.document.macroenabled.main+xml"),
    Format("dotx", "docx", "docx", ("dotx",), f"{_WML}.template.main+xml"),
    Format("dotm", "docx", "docx", ("dotm",), "application/vnd.ms-word.template.macroenabledtemplate.main+xml"),
    # Excel
    Format("xlsx", "xlsx", "xlsx", ("xlsx",), f"{_SML}.sheet.main+xml", "xl/workbook.xml"),
    Format("xlsm", "xlsx", "xlsx", ("xlsm",), "application/vnd.ms-excel.sheet.macroenabled.main+xml"),
    Format("xltx", "xlsx", "xlsx", ("xltx",), f"{_SML}.template.main+xml"),
    Format("xltm", "xlsx", "xlsx", ("xltm",), "application/vnd.ms-excel.template.macroenabled.main+xml"),
    # PowerPoint (potm and ppsm files are not claimed by extension: the catch-all reads them by content)
    Format("pptx", "pptx", "pptx", ("pptx",), f"{_PML}.presentation.main+xml", "ppt/presentation.xml"),
    Format("pptm", "pptx", "pptx", ("pptm",), "application/vnd.ms-powerpoint.presentation.macroenabled.main+xml"),
    Format("potx", "pptx", "pptx", ("potx",), f"{_PML}.template.main+xml"),
    Format("potm", "pptx", "pptx", (), "application/vnd.ms-powerpoint.template.macroenabled.main+xml"),
    Format("ppsx", "pptx", "pptx", ("ppsx",), f"{_PML}.slideshow.main+xml"),
    Format("ppsm", "pptx", "pptx", (), "application/vnd.ms-powerpoint.slideshow.macroenabled.main+xml"),
    # PDF
    Format("pdf", "pdf", "pdf", ("pdf",), signature="%PDF-<digit> within the first 1024 bytes"),
    # mail and text
    Format("msg", "mail_text", "mail", ("msg",),
           signature="OLE compound file with __substg1.0_* streams or __properties_version1.0"),
    Format("eml", "mail_text", "mail", ("eml",), signature="text starting with an RFC 822 header block"),
    Format("csv", "mail_text", "delimited", ("csv",), signature="text in a .csv file"),
    Format("tsv", "mail_text", "delimited", ("tsv",), signature="text in a .tsv file"),
    Format("txt", None, "text", signature="any other text (UTF-8/16/32 with or without BOM, legacy code pages)"),
    Format("html", None, "html", signature="text starting with <!doctype html / <html, or a .html/.htm file"),
    # recognised, not read: rows say why
    Format("ooxml_encrypted", None, None,
           signature="OLE compound file holding EncryptionInfo + EncryptedPackage (read when Excel's "
                     "default password opens it)"),
    Format("xlsb", None, None, (), "application/vnd.ms-excel.sheet.binary.macroenabled.main",
           unsupported="binary Excel workbooks (.xlsb) are not supported"),
    # legacy (97-2003 binary) Office: read by content in the catch-all family (no family claims .doc/.xls/.ppt)
    Format("doc", None, "legacy_office", signature="OLE compound file with a WordDocument stream"),
    Format("xls", None, "legacy_office", signature="OLE compound file with a Workbook/Book stream"),
    Format("ppt", None, "legacy_office", signature="OLE compound file with a PowerPoint Document stream"),
    Format("ole", None, None, signature="OLE compound file of no known kind",
           unsupported="OLE compound file of an unknown kind"),
    Format("rtf", None, None, magic=(b"{\\rtf",), unsupported="RTF documents are not supported"),
    Format("odt", None, None, signature=_ODF + "text", unsupported=_ODF_REASON),
    Format("ods", None, None, signature=_ODF + "spreadsheet", unsupported=_ODF_REASON),
    Format("odp", None, None, signature=_ODF + "presentation", unsupported=_ODF_REASON),
    Format("zip", None, None, magic=(b"PK\x03\x04", b"PK\x05\x06"),
           signature="zip archive without an Office document inside"),
    Format("applesingle", None, None, magic=(b"\x00\x05\x16\x00", b"\x00\x05\x16\x07"),
           signature="AppleSingle/AppleDouble container (its data fork is read as an attachment)"),
    # images: raster formats MuPDF decodes are OCR'd (ingest.ocr; off or no language data: image_only),
    # the rest are image_only
    Format("png", None, "image", magic=(b"\x89PNG\r\n\x1a\n",)),
    Format("jpeg", None, "image", magic=(b"\xff\xd8\xff",)),
    Format("gif", None, "image", magic=(b"GIF87a", b"GIF89a")),
    Format("tiff", None, "image", magic=(b"II*\x00", b"MM\x00*")),
    Format("wmf", None, None, magic=(b"\xd7\xcd\xc6\x9a", b"\x01\x00\x09\x00\x00\x03")),
    Format("bmp", None, "image", signature="BM, reserved bytes 6-9 zero"),
    Format("webp", None, None, signature="RIFF....WEBP"),
    Format("emf", None, None, signature="EMR_HEADER record with ' EMF' at offset 40"),
    Format("unknown", None, None, signature="binary data of no known format",
           unsupported="unrecognised content: binary data of no known format"),
)

IMAGE_FORMATS: tuple[str, ...] = ("png", "jpeg", "gif", "tiff", "bmp", "webp", "emf", "wmf")

# ---------------------------------------------------------------------------------------------- derived

BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}

FAMILIES: dict[str, tuple[str, ...]] = {
    fam: tuple(ext for f in FORMATS if f.family == fam for ext in f.extensions) for fam in INGEST_FAMILIES}

# Detected format -> family. Wider than FAMILIES (which lists the extensions a family claims): e.g. a
# .pptx whose content is a macro-enabled show (ppsm) is still a presentation.
FAMILY_OF_FORMAT: dict[str, str] = {f.name: f.family for f in FORMATS if f.family}

# Detected format -> extractor module (under lakedoc.ingest.extractors), imported on first use.
EXTRACTOR_MODULES: dict[str, str] = {f.name: f.module for f in FORMATS if f.module}

EXTENSION_OWNER: dict[str, str] = {ext: fam for fam, exts in FAMILIES.items() for ext in exts}

UNSUPPORTED_REASONS: dict[str, str] = {f.name: f.unsupported for f in FORMATS if f.unsupported}

OOXML_FAMILIES: tuple[str, ...] = ("docx", "xlsx", "pptx")

OOXML_CONTENT_TYPES: dict[str, str] = {f.content_type.lower(): f.name for f in FORMATS if f.content_type}

# Main part name -> (base format, formats of that family an extension may refine it to).
OOXML_MAIN_PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    f.main_part: (f.name, tuple(g.name for g in FORMATS if g.family == f.family and g.content_type))
    for f in FORMATS if f.main_part}

IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = tuple(
    (m, f.name) for f in FORMATS if f.name in IMAGE_FORMATS for m in f.magic)


def ingest_task(family: str) -> str:
    """The job's task key of an ingestion family: ``ingest_<family>``."""
    return f"ingest_{family}"


INGEST_TASKS: dict[str, str] = {ingest_task(fam): fam for fam in INGEST_FAMILIES}


def _check() -> None:
    assert CATCH_ALL_FAMILY in INGEST_FAMILIES
    assert len(BY_NAME) == len(FORMATS), "format names must be unique"
    assert len(EXTENSION_OWNER) == sum(map(len, FAMILIES.values())), "an extension claimed twice"
    assert set(IMAGE_FORMATS) <= set(BY_NAME)
    for f in FORMATS:
        assert f.family is None or f.family in INGEST_FAMILIES, f
        assert not f.extensions or f.family, f


_check()
