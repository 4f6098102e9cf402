"""The format extractors, one module per kind of content, and the helpers they share.

Extractors (``extract(data, fmt, limits) -> Extraction``; which module reads which format:
:data:`lakedoc.ingest.formats.FORMATS`): :mod:`.docx`, :mod:`.xlsx`, :mod:`.pptx` (OOXML),
:mod:`.pdf`, :mod:`.mail` (msg, eml), :mod:`.delimited` (csv, tsv), :mod:`.text` (txt), :mod:`.html`,
:mod:`.image` (OCR of image files).

Shared helpers: :mod:`.base` (limits, result types, errors, text normalisation), :mod:`.decoding`
(text encodings), :mod:`.xmltree` (namespace-agnostic XML), :mod:`.ooxml` (the OOXML package layer and
zip-bomb guard), :mod:`.ole` (embedded OLE objects), :mod:`.crypto` (encrypted OOXML packages), :mod:`.ocr`
(Tesseract through PyMuPDF),
:mod:`.html` (HTML to text).
"""
