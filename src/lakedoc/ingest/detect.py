"""Format sniffing from content (the extension is only a tie-breaker).

:func:`detect_format` returns the name of one format of :data:`lakedoc.ingest.formats.FORMATS` (whose
content types, main parts and magic bytes it uses):

* OOXML: ``docx docm dotx dotm xlsx xlsm xltx xltm xlsb pptx pptm potx potm ppsx ppsm``;
  ``ooxml_encrypted`` (an OLE container holding EncryptionInfo + EncryptedPackage);
* ``pdf``, ``msg``, ``eml``, ``csv``, ``tsv``, ``txt``, ``html``, ``rtf``;
* legacy/other containers we do not read: ``doc xls ppt ole odt ods odp zip applesingle``;
* images: ``png jpeg gif tiff bmp webp emf wmf``;
* ``unknown``.
"""
from __future__ import annotations

import io
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable

from lakedoc.ingest.formats import BY_NAME, IMAGE_MAGIC, OOXML_CONTENT_TYPES, OOXML_MAIN_PARTS

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_ODF_MIMETYPES = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}

_MAIL_HEADERS = {"from", "to", "cc", "subject", "date", "message-id", "mime-version", "received",
                 "return-path", "content-type", "reply-to", "sender", "delivered-to", "x-mailer",
                 "in-reply-to", "references", "dkim-signature", "thread-topic", "x-originating-ip"}
_HEADER_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)[ \t]*:")
_PDF_HEADER = re.compile(rb"%PDF-\d")


def extension(file_name: str) -> str:
    """Lower-case extension without the dot ("" when none)."""
    base = file_name.replace("\\", "/").rpartition("/")[2]
    return base.rpartition(".")[2].lower() if "." in base else ""


def detect_format(data: bytes, file_name: str) -> str:
    """Detect the real format of ``data``; ``file_name``'s extension only refines ambiguous cases."""
    ext = extension(file_name)
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _detect_zip(data, ext)
    if data.startswith(OLE_MAGIC):
        return _detect_ole(data, ext)
    if data[:4] in (b"\x00\x05\x16\x00", b"\x00\x05\x16\x07"):
        return "applesingle"
    if _PDF_HEADER.search(data[:1024]):
        return "pdf"
    image = _detect_image(data)
    if image:
        return image
    if data.lstrip()[:5] == b"{\\rtf":
        return "rtf"
    text = _as_text(data[:65536])
    if text is None:
        return "unknown"
    return _detect_text(text, ext)


def _detect_image(data: bytes) -> str | None:
    for magic, fmt in IMAGE_MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:2] == b"BM" and len(data) > 26 and data[6:10] == b"\x00\x00\x00\x00":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] == b"\x01\x00\x00\x00" and data[40:44] == b" EMF":
        return "emf"
    return None


# ---------------------------------------------------------------------------------------------- zip


def _detect_zip(data: bytes, ext: str) -> str:
    read: Callable[[str], bytes]
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()

        def read(name: str) -> bytes:
            with zf.open(name) as fh:
                return fh.read(MAX_SNIFF_MEMBER_BYTES)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        members = local_members(data)  # truncated zip: no central directory

        def read(name: str) -> bytes:
            return members[name].read(MAX_SNIFF_MEMBER_BYTES)

        names = list(members)
    lower = {n.lower(): n for n in names}
    if "[content_types].xml" in lower:
        try:
            fmt = _format_from_content_types(read(lower["[content_types].xml"]))
        except Exception:  # noqa: BLE001 - unreadable member: fall back to part names
            fmt = None
        if fmt:
            return fmt
    for main, (base, variants) in OOXML_MAIN_PARTS.items():
        if main in lower:
            return ext if ext in variants else base
    if "mimetype" in lower:
        try:
            mime = read(lower["mimetype"]).decode("ascii", "ignore").strip()
        except Exception:  # noqa: BLE001
            mime = ""
        if mime in _ODF_MIMETYPES:
            return _ODF_MIMETYPES[mime]
    return "zip"


def _format_from_content_types(xml: bytes) -> str | None:
    from lxml import etree

    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True, recover=True))
    if root is None:
        return None
    for el in root:
        ctype = (el.get("ContentType") or "").lower()
        if ctype in OOXML_CONTENT_TYPES and el.get("PartName"):
            return OOXML_CONTENT_TYPES[ctype]
    return None


# The detector reads at most this much of a zip member ([Content_Types].xml, mimetype): a member that
# inflates to more is cut, never inflated in full (a zip bomb costs no memory here).
MAX_SNIFF_MEMBER_BYTES = 4 * 1024 * 1024


class LocalMember:
    """A zip member found through its local file header (no central directory needed); nothing is
    inflated until :meth:`read`, which stops at the size it is asked for."""

    def __init__(self, data: bytes, method: int, start: int, end: int):
        self._data, self.method, self.start, self.end = data, method, start, end

    def read(self, max_bytes: int) -> bytes:
        raw = memoryview(self._data)[self.start:self.end]
        if self.method == 0:
            return bytes(raw[:max_bytes])
        if self.method != 8:
            return b""
        inflater = zlib.decompressobj(-15)
        out = bytearray()
        step = 64 * 1024
        for pos in range(0, len(raw), step):
            try:
                out += inflater.decompress(raw[pos:pos + step], max_bytes - len(out) + 1)
            except zlib.error:
                break
            while inflater.unconsumed_tail and len(out) <= max_bytes:
                out += inflater.decompress(inflater.unconsumed_tail, max_bytes - len(out) + 1)
            if len(out) > max_bytes or inflater.eof:
                break
        return bytes(out[:max_bytes])


def local_members(data: bytes) -> dict[str, LocalMember]:
    """Members named by local file headers alone (used when the central directory is gone). Only the
    headers are read: a member's data is inflated by :meth:`LocalMember.read`, up to a bound."""
    out: dict[str, LocalMember] = {}
    pos = 0
    while True:
        pos = data.find(b"PK\x03\x04", pos)
        if pos < 0 or pos + 30 > len(data):
            return out
        try:
            (_, flags, method, _, _, _, csize, _, nlen, xlen) = struct.unpack_from("<HHHHHIIIHH", data, pos + 4)
        except struct.error:
            return out
        name = data[pos + 30:pos + 30 + nlen].decode("utf-8", "replace")
        start = pos + 30 + nlen + xlen
        sized = bool(csize) and not flags & 0x08
        out[name] = LocalMember(data, method, start, start + csize if sized else len(data))
        pos = start + csize if sized else start


# ---------------------------------------------------------------------------------------------- OLE


# The formats _detect_ole tells apart by their streams (each a FORMATS row with an extractor); a damaged
# compound file, or one whose streams say nothing, is trusted by an extension naming one of them.
_OLE_KINDS: tuple[str, ...] = ("msg", "doc", "xls", "ppt")
assert all(BY_NAME[k].module for k in _OLE_KINDS), "every OLE kind is a format with an extractor"


def _detect_ole(data: bytes, ext: str) -> str:
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except Exception:  # noqa: BLE001 - damaged compound file: trust a matching extension
        return ext if ext in _OLE_KINDS else "ole"
    try:
        top = {entry[0] for entry in ole.listdir(streams=True, storages=True)}
    finally:
        ole.close()
    if {"EncryptionInfo", "EncryptedPackage"} <= top:
        return "ooxml_encrypted"
    if any(name.startswith("__substg1.0_") for name in top) or "__properties_version1.0" in top:
        return "msg"
    if "WordDocument" in top:
        return "doc"
    if "Workbook" in top or "Book" in top:
        return "xls"
    if "PowerPoint Document" in top:
        return "ppt"
    return ext if ext in _OLE_KINDS else "ole"  # e.g. a truncated directory


# ---------------------------------------------------------------------------------------------- text


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when ``data`` starts with a Unicode byte order mark, else None."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return enc, len(bom)
    return None


def unicode_encoding(sample: bytes) -> str | None:
    """UTF-16 / UTF-32 (LE or BE) recognised *without* a byte order mark, else None.

    Text in those encodings is full of NUL bytes at fixed positions, which binary data is not:

    * UTF-32: the two high bytes of every 4-byte unit are zero (all of the BMP);
    * UTF-16: at least half of the 2-byte units have one zero byte, always the same one (text mostly
      in Latin script), or at least a tenth do (spaces, digits, newlines) while the other units stay
      in a few 256-character blocks below U+3000 (one alphabet, e.g. Cyrillic or Greek).

    The candidate must then decode strictly and read as text (see :func:`looks_like_text`). UTF-16
    text of a large script (CJK) without a BOM has no such pattern and is not recognised here.
    """
    if b"\x00" not in sample or len(sample) < 4:
        return None
    n4 = len(sample) // 4 * 4
    if n4 >= 4:
        units = [sample[i:i + 4] for i in range(0, n4, 4)]
        for enc, low, high in (("utf-32-le", 0, slice(2, 4)), ("utf-32-be", 3, slice(0, 2))):
            if all(u[high] == b"\x00\x00" for u in units) and sum(u[low] != 0 for u in units) >= len(units) / 2:
                if _strict(sample[:n4], enc):
                    return enc
    n2 = len(sample) // 2 * 2
    le = sum(1 for i in range(0, n2, 2) if sample[i] and not sample[i + 1])
    be = sum(1 for i in range(0, n2, 2) if sample[i + 1] and not sample[i])
    n_units = n2 // 2
    for enc, hits, other, hi_at in (("utf-16-le", le, be, 1), ("utf-16-be", be, le, 0)):
        if other > n_units * 0.02 or hits < n_units * 0.1:
            continue
        if hits < n_units * 0.5:
            # an alphabet of its own: the other units' high bytes name at most 4 blocks, all below
            # U+3000 (Greek, Cyrillic, Hebrew, Arabic, Indic, ..., punctuation), never ASCII-like
            blocks = {sample[i + hi_at] for i in range(0, n2, 2)} - {0}
            if len(blocks) > 4 or max(blocks, default=0) >= 0x30:
                continue
        body = sample[:n2]
        # a sample cut inside a surrogate pair: drop the dangling high surrogate
        last_hi = body[-2 + hi_at]
        if 0xD8 <= last_hi <= 0xDB:
            body = body[:-2]
        if _strict(body, enc):
            return enc
    return None


def _strict(data: bytes, enc: str) -> bool:
    try:
        return looks_like_text(data.decode(enc), strict=True)
    except UnicodeDecodeError:
        return False


def looks_like_text(text: str, strict: bool = False) -> bool:
    """At most 2% control or replacement characters (``strict``: unassigned, private-use and
    surrogate code points count too, and NUL is a control character)."""
    if not text:
        return True
    bad_categories = ("Cc", "Cn", "Co", "Cs") if strict else ("Cc",)
    bad = sum(1 for ch in text if (unicodedata.category(ch) in bad_categories
                                    and ch not in "\t\n\r\f\v") or ch == "\ufffd")
    return bad <= len(text) * 0.02


def _as_text(sample: bytes) -> str | None:
    """The sample decoded as text, or None when it looks binary."""
    bom = bom_encoding(sample)
    enc = bom[0] if bom else unicode_encoding(sample)
    if enc:
        text = sample[bom[1] if bom else 0:].decode(enc, errors="ignore")  # may be cut mid-character
    elif b"\x00" in sample:
        return None
    else:
        try:
            text = sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            # a multi-byte sequence cut by the sample boundary is fine; anything else: try cp1252
            text = sample[:exc.start].decode("utf-8") if exc.start >= len(sample) - 3 else \
                sample.decode("cp1252", errors="replace")
    return text if looks_like_text(text) else None


def _detect_text(text: str, ext: str) -> str:
    if _looks_like_rfc822(text):
        return "eml"
    head = text[:2048].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")) or (head.startswith("<?xml") and "<html" in head):
        return "html"
    if ext in ("csv", "tsv", "eml", "html", "htm"):
        return {"htm": "html"}.get(ext, ext)
    return "txt"


def _looks_like_rfc822(text: str) -> bool:
    """True when the text starts with an RFC 822 header block naming typical mail headers."""
    lines = text.lstrip("\r\n").splitlines()
    if lines and lines[0].startswith("From "):  # mbox separator line
        lines = lines[1:]
    names: list[str] = []
    for line in lines[:200]:
        if not line.strip():
            break
        if line[:1] in (" ", "\t"):
            if not names:
                return False
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            return False
        names.append(m.group(1).lower())
    known = sum(1 for n in names if n in _MAIL_HEADERS)
    return known >= 2 or (known >= 1 and len(names) >= 3)
