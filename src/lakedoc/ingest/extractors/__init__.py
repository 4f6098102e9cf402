"""Shared building blocks for the format extractors.

Each extractor module exposes ``extract(data, fmt, limits) -> Extraction``. An extractor either returns
an :class:`Extraction` (units of text, metadata, embedded files to recurse into) or raises one of the
:class:`ExtractionError` subclasses below, whose ``status`` becomes the output row's status.

This module also holds the helpers several extractors share: namespace-agnostic XML reading, the
OOXML package layer (zip-bomb guard, relationships, core properties, embedded objects, charts), OLE
embedded-object unwrapping, text decoding and HTML-to-text conversion.
"""
from __future__ import annotations

import io
import posixpath
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from lakedoc.ingest.detect import OLE_MAGIC, bom_encoding, detect_format, unicode_encoding

# ----------------------------------------------------------------------------------------------
# Core types
# ----------------------------------------------------------------------------------------------


@dataclass
class Limits:
    """Resource limits applied to one top-level file (and each attachment inside it)."""

    max_bytes: int = 200 * 1024 * 1024  # file (or attachment) larger -> too_large
    timeout_s: float = 120.0  # per top-level file, wall clock -> timeout
    max_uncompressed_bytes: int = 1024**3  # zip bomb guard: sum of uncompressed member sizes
    max_compression_ratio: float = 200.0  # zip bomb guard: uncompressed/compressed
    max_attachment_depth: int = 3
    max_pdf_pages: int = 5000


@dataclass
class Unit:
    """A page / slide / sheet / section, so later chunking can cite where text came from."""

    kind: str  # "page" | "slide" | "notes" | "sheet" | "body" | "header" | "footer" | "rows" ...
    index: int  # 1-based position within its kind
    ref: str  # human-readable: "page 3", "slide 2 notes", "sheet 'Sales'", "header (default)"
    text: str


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


# ----------------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------------

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


def text_tokens(text: str) -> set[str]:
    """Word tokens (case-folded, NFKC) used to compare two renderings of the same content."""
    return set(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold()))


_BLOCK_TAGS = frozenset({
    "p", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "section", "article", "header", "footer", "dt", "dd", "dl", "hr", "address", "caption", "title",
    "form", "fieldset", "nav", "aside", "figure", "figcaption", "main", "thead", "tbody", "tfoot"})
_WS = re.compile(r"[ \t\r\n\f\v]+")


def html_to_text(html: str | bytes) -> str:
    """Readable text of an HTML document: HTML whitespace collapsed, one line per block element,
    table rows on one line with cells separated by tabs."""
    from bs4 import BeautifulSoup, NavigableString

    if isinstance(html, bytes):
        html = decode_html_bytes(html)
    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    for node in list(soup.find_all(string=True)):
        if type(node) is NavigableString and node.find_parent("pre") is None:
            node.replace_with(_WS.sub(" ", str(node)))
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all(True):
        if tag.name in ("td", "th"):
            tag.append("\t")
        elif tag.name in _BLOCK_TAGS and tag.name != "tr" and tag.find_parent(["td", "th"]) is not None:
            tag.append(" ")  # paragraphs inside a cell keep the row on one line
        elif tag.name in _BLOCK_TAGS:
            tag.insert_before("\n")
            tag.append("\n")
    lines = ("\t".join(" ".join(cell.split()) for cell in line.split("\t")).strip()
             for line in soup.get_text().split("\n"))
    return clean_text("\n".join(line for line in lines if line))


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.I)


def decode_html_bytes(data: bytes, fallback: str | None = None) -> str:
    """Decode HTML bytes using its <meta charset>, then ``fallback``, then :func:`decode_text`."""
    m = _META_CHARSET.search(data[:4096])
    for enc in filter(None, (m.group(1).decode("ascii", "ignore") if m else None, fallback)):
        try:
            return data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    return decode_text(data)


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


# ----------------------------------------------------------------------------------------------
# XML helpers (namespace-agnostic: transitional and ISO Strict OOXML use different namespaces)
# ----------------------------------------------------------------------------------------------

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=True,
                          remove_comments=True, remove_pis=True)


def parse_xml(data: bytes) -> etree._Element:
    """Parse XML safely (no entity expansion, no network); raise CorruptError when unreadable."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise CorruptError(f"unreadable XML: {exc}") from exc
    if root is None:
        raise CorruptError("empty or unreadable XML part")
    return root


def local(el) -> str:
    """Local name of an element ("p" for "{ns}p"); "" for comments and processing instructions."""
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def children(el, name: str) -> list:
    """Direct children with the given local name."""
    return [c for c in el if local(c) == name]


def child(el, name: str):
    """First direct child with the given local name, or None."""
    for c in el:
        if local(c) == name:
            return c
    return None


def descendants(el, name: str) -> Iterator:
    """All descendants with the given local name, in document order."""
    return el.iter("{*}" + name)


def attr(el, name: str, default: str | None = None) -> str | None:
    """Attribute by local name, whatever its namespace (w:val, r:id, plain val ...)."""
    for key, value in el.attrib.items():
        if key.rpartition("}")[2] == name:
            return value
    return default


def rel_id(el) -> str | None:
    """The r:id / r:embed / r:dm style relationship attribute of an element."""
    for key, value in el.attrib.items():
        if key.startswith("{") and key[1:].partition("}")[0].endswith("relationships"):
            return value
    return None


def drawingml_paragraphs(container) -> list[str]:
    """Text of DrawingML paragraphs (a:p) under ``container``: runs, fields, line breaks."""
    out = []
    for p in descendants(container, "p"):
        if "drawingml" not in p.tag:  # a:p (transitional or strict), not w:p
            continue
        if next(p.iterancestors("{*}Fallback"), None) is not None:
            continue  # mc:Fallback repeats the mc:Choice content
        pieces = []
        for el in p.iter():
            name = local(el)
            if name == "t" and el.text:
                pieces.append(el.text)
            elif name == "br":
                pieces.append("\n")
            elif name == "tab":
                pieces.append("\t")
        text = "".join(pieces).strip()
        if text:
            out.append(text)
    return out


# ----------------------------------------------------------------------------------------------
# OOXML package layer
# ----------------------------------------------------------------------------------------------


@dataclass
class Rel:
    id: str
    type: str  # last segment of the relationship type URI: "officeDocument", "header", "slide" ...
    target: str  # resolved part name inside the zip (no leading slash), or the raw external URL
    external: bool


class Package:
    """Read-only access to the parts of an OOXML zip, with the zip-bomb guard applied on open."""

    def __init__(self, data: bytes, limits: Limits):
        self.zip = open_zip(data, limits)
        self.names = {info.filename for info in self.zip.infolist()}
        self._lower = {n.lower(): n for n in self.names}
        self._xml_cache: dict[str, etree._Element | None] = {}
        self._rels_cache: dict[str, list[Rel]] = {}

    def find(self, name: str) -> str | None:
        """The stored name of a part, matched case-insensitively (zips from some writers vary)."""
        name = name.lstrip("/")
        return name if name in self.names else self._lower.get(name.lower())

    def read(self, name: str) -> bytes | None:
        stored = self.find(name)
        if stored is None:
            return None
        try:
            return self.zip.read(stored)
        except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
            if "encrypted" in str(exc):
                raise EncryptedError(f"zip member {stored} is password-protected") from exc
            raise CorruptError(f"cannot read part {stored}: {exc}") from exc
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error) as exc:
            raise CorruptError(f"cannot read part {stored}: {exc}") from exc

    def xml(self, name: str):
        """Parsed XML root of a part (cached), or None when the part is missing."""
        if name not in self._xml_cache:
            data = self.read(name)
            self._xml_cache[name] = parse_xml(data) if data else None
        return self._xml_cache[name]

    def optional_xml(self, name: str | None):
        """Like :meth:`xml` for secondary parts (headers, notes, charts ...): None when the part is
        missing or unreadable, so that a damaged side part does not lose the main text."""
        if not name:
            return None
        try:
            return self.xml(name)
        except CorruptError:
            self._xml_cache[name] = None
            return None

    def rels(self, part: str) -> list[Rel]:
        """Relationships of a part ("" for the package), with targets resolved to part names."""
        if part in self._rels_cache:
            return self._rels_cache[part]
        folder, _, base = part.rpartition("/")
        rels_name = f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"
        out: list[Rel] = []
        data = self.read(rels_name)
        if data:
            try:
                root = parse_xml(data)
            except CorruptError:
                root = None
            for r in (root if root is not None else []):
                if local(r) != "Relationship":
                    continue
                target = r.get("Target") or ""
                external = (r.get("TargetMode") or "").lower() == "external"
                if not external:
                    target = resolve_target(folder, target)
                out.append(Rel(r.get("Id") or "", (r.get("Type") or "").rstrip("/").rpartition("/")[2],
                               target, external))
        self._rels_cache[part] = out
        return out

    def rel_targets(self, part: str, rel_type: str) -> list[str]:
        return [r.target for r in self.rels(part) if r.type == rel_type and not r.external]

    def rel_by_id(self, part: str, rid: str | None) -> str | None:
        for r in self.rels(part):
            if r.id == rid and not r.external:
                return r.target
        return None

    def main_part(self, fallback: str) -> str:
        targets = self.rel_targets("", "officeDocument")
        for t in targets:
            part = self.find(t)
            if part:
                return part
        found = self.find(fallback)
        if not found:
            raise CorruptError(f"not a valid OOXML package: main part {fallback} is missing")
        return found

    def has_media(self) -> bool:
        return any("/media/" in n for n in self.names)


def resolve_target(folder: str, target: str) -> str:
    """Resolve a relationship target against the folder of its source part."""
    target = target.split("#", 1)[0]
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(folder, target)) if folder else posixpath.normpath(target)


_ZIP_RATIO_FLOOR = 1024 * 1024  # ratios are only judged on members/archives above 1 MiB uncompressed


def check_zip_bomb(zf: zipfile.ZipFile, limits: Limits) -> None:
    """Refuse archives whose declared sizes exceed the limits (before decompressing anything)."""
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > limits.max_uncompressed_bytes:
        raise ZipBombError(f"zip declares {total:,} uncompressed bytes, over the limit of "
                           f"{limits.max_uncompressed_bytes:,}", "too_large")
    for info in infos:
        if info.file_size > _ZIP_RATIO_FLOOR:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise ZipBombError(f"member {info.filename} has compression ratio {ratio:.0f}, over the "
                                   f"limit of {limits.max_compression_ratio:.0f} (zip bomb?)", "corrupt")
    if total > _ZIP_RATIO_FLOOR and total / max(packed, 1) > limits.max_compression_ratio:
        raise ZipBombError(f"zip compression ratio {total / max(packed, 1):.0f} is over the limit of "
                           f"{limits.max_compression_ratio:.0f} (zip bomb?)", "corrupt")


def open_zip(data: bytes, limits: Limits) -> zipfile.ZipFile:
    """Open a zip from bytes, applying the zip-bomb guard; CorruptError when it is not readable."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CorruptError(f"not a readable zip archive: {exc}") from exc
    check_zip_bomb(zf, limits)
    return zf


def core_properties(pkg: Package) -> dict[str, str]:
    """title/author/subject/keywords/created/modified from docProps/core.xml."""
    targets = pkg.rel_targets("", "core-properties") or pkg.rel_targets("", "metadata/core-properties")
    root = next((r for r in map(pkg.optional_xml, targets + ["docProps/core.xml"]) if r is not None), None)
    if root is None:
        return {}
    mapping = {"title": "title", "creator": "author", "subject": "subject", "keywords": "keywords",
               "description": "description", "lastModifiedBy": "last_modified_by", "created": "created",
               "modified": "modified", "category": "category"}
    out = {}
    for el in root:
        key = mapping.get(local(el))
        if key and el.text and el.text.strip():
            out[key] = el.text.strip()
    return out


def chart_text(pkg: Package, chart_part: str | None) -> list[str]:
    """Titles and other rich text of a chart part (a:t runs), e.g. "SLIDE3ChartTitle"."""
    root = pkg.optional_xml(chart_part)
    return drawingml_paragraphs(root) if root is not None else []


def diagram_text(pkg: Package, data_part: str | None) -> list[str]:
    """Node text of a SmartArt diagram data part."""
    root = pkg.optional_xml(data_part)
    return drawingml_paragraphs(root) if root is not None else []


def embedded_attachments(pkg: Package) -> list[Attachment]:
    """Embedded objects of an OOXML package (``*/embeddings/*``), OLE wrappers unwrapped."""
    out: list[Attachment] = []
    for name in sorted(pkg.names):
        if "/embeddings/" not in name or name.endswith("/"):
            continue
        data = pkg.read(name)
        if data:
            out.extend(unwrap_ole_object(posixpath.basename(name), data))
    return out


# ----------------------------------------------------------------------------------------------
# OLE (compound file) helpers
# ----------------------------------------------------------------------------------------------

def parse_ole10native(stream: bytes) -> tuple[str, bytes] | None:
    """(file name, payload) of an ``\\x01Ole10Native`` stream (OLE "Package" object), or None."""
    try:
        pos = 4  # total size
        (flags,) = struct.unpack_from("<H", stream, pos)
        pos += 2
        if flags != 2:  # no label/path header: the payload follows the size
            return "", stream[4:]
        label_end = stream.index(b"\x00", pos)
        label = stream[pos:label_end].decode("latin-1")
        path_end = stream.index(b"\x00", label_end + 1)
        path = stream[label_end + 1:path_end].decode("latin-1")
        pos = path_end + 1 + 4  # reserved (0x00030000)
        (temp_len,) = struct.unpack_from("<I", stream, pos)
        pos += 4 + temp_len
        (size,) = struct.unpack_from("<I", stream, pos)
        pos += 4
        payload = stream[pos:pos + size]
        if len(payload) != size:
            return None
        name = label or path.replace("\\", "/").rpartition("/")[2]
        return name, payload
    except (struct.error, ValueError):
        return None


def unwrap_ole_object(name: str, data: bytes) -> list[Attachment]:
    """The file inside an embedded OLE object (Ole10Native package, OOXML "Package" stream, PDF
    "CONTENTS"), the object itself when it is an Office 97 document, nothing for other objects."""
    if not data.startswith(OLE_MAGIC):
        return [Attachment(name, data)]
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except Exception:  # noqa: BLE001 - a broken object is simply not extracted
        return []
    try:
        streams = {"/".join(s) for s in ole.listdir()}
        if "\x01Ole10Native" in streams:
            parsed = parse_ole10native(ole.openstream("\x01Ole10Native").read())
            return [Attachment(parsed[0] or name, parsed[1])] if parsed and parsed[1] else []
        if "Package" in streams:  # an OOXML document embedded as an OLE object
            payload = ole.openstream("Package").read()
            return [Attachment(_with_real_extension(name, payload), payload)]
        if "CONTENTS" in streams:
            payload = ole.openstream("CONTENTS").read()
            return [Attachment(name, payload)] if payload[:1024].find(b"%PDF") >= 0 else []
    finally:
        ole.close()
    return [Attachment(name, data)] if detect_format(data, name) not in ("ole", "unknown") else []


def _with_real_extension(name: str, data: bytes) -> str:
    """"oleObject1.bin" -> "oleObject1.xlsx" once the payload's format is known."""
    stem, dot, ext = name.rpartition(".")
    fmt = detect_format(data, name)
    return f"{stem}.{fmt}" if dot and ext.lower() == "bin" and fmt not in ("unknown", "zip", "ole") else name


def decrypt_office_default(data: bytes) -> bytes | None:
    """Decrypt an encrypted OOXML package protected only by Excel's default password
    ("VelvetSweatshop", used for write-protected workbooks). None when a real password is needed."""
    try:
        import msoffcrypto

        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        office.load_key(password="VelvetSweatshop", verify_password=True)
        out = io.BytesIO()
        office.decrypt(out)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - any failure means "needs a password"
        return None
