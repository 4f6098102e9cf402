"""Decoding bytes of unknown encoding into text (BOMs, UTF-16/32 without a BOM, UTF-8, legacy code pages)."""
from __future__ import annotations

import re

from lakedoc.ingest.detect import bom_encoding, unicode_encoding


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding (see :func:`decode_text_with_encoding`)."""
    return decode_text_with_encoding(data)[0]


def decode_text_with_encoding(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown encoding; returns (text, codec name).

    A byte order mark (UTF-8, UTF-16 / UTF-32 LE/BE); then UTF-16 / UTF-32 without a BOM, told by
    their NUL byte pattern (:func:`lakedoc.ingest.detect.unicode_encoding`); then UTF-8; then a legacy
    code page (:func:`legacy_encoding`: cp1252 for Western text, a CJK/Cyrillic/... code page for runs
    of high bytes); latin-1 as the last resort (it decodes any byte).
    """
    bom = bom_encoding(data)
    if bom:
        return data[bom[1]:].decode(bom[0], errors="replace"), bom[0].replace("-sig", "")
    enc = unicode_encoding(data[:65536])
    if enc:
        return data[:len(data) // (4 if "32" in enc else 2) * (4 if "32" in enc else 2)].decode(
            enc, errors="replace"), enc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for enc in (legacy_encoding(data), "cp1252"):
        try:
            return data.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1"), "latin-1"


_HIGH_RUNS = re.compile(rb"[\x80-\xff]+")
_LEGACY_CANDIDATES = ["big5", "gb18030", "shift_jis", "euc_kr", "cp1251", "koi8_r", "cp1253", "cp1255",
                      "cp1256"]


def legacy_encoding(data: bytes) -> str:
    """Best guess of a non-UTF-8 encoding. Isolated high bytes (accented letters between ASCII ones)
    mean a Western code page (cp1252); runs of high bytes mean CJK double-byte or another script,
    chosen among a few candidates by charset-normalizer when it is installed."""
    runs = _HIGH_RUNS.findall(data[:200_000])
    if not runs or sum(map(len, runs)) / len(runs) < 1.5:
        return "cp1252"
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # optional: a transitive dependency of requests
        return "cp1252"
    best = from_bytes(data[:200_000], cp_isolation=_LEGACY_CANDIDATES).best()
    return best.encoding if best else "cp1252"

