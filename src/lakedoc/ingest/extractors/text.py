"""Plain text (``txt``, and any text-like file no family claims): one ``text`` unit.

The encoding is detected (see :func:`lakedoc.ingest.extractors.decoding.decode_text_with_encoding`)
and recorded as metadata ``encoding``.
"""
from __future__ import annotations

from lakedoc.ingest.extractors.base import Extraction, Limits, Unit
from lakedoc.ingest.extractors.decoding import decode_text_with_encoding


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    text, encoding = decode_text_with_encoding(data)
    extraction = Extraction(units=[Unit("text", 1, "text", text.replace("\x00", ""))])
    extraction.metadata["encoding"] = encoding
    return extraction
