"""The OOXML package layer shared by the docx, xlsx and pptx extractors: zip access with the zip-bomb
guard, relationships, core properties, charts, SmartArt and embedded objects."""
from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from dataclasses import dataclass

from lxml import etree

from lakedoc.ingest.extractors.base import Attachment, CorruptError, EncryptedError, Limits, ZipBombError
from lakedoc.ingest.extractors.ole import unwrap_ole_object
from lakedoc.ingest.extractors.xmltree import drawingml_paragraphs, local, parse_xml, parse_xml_checked


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
        # parts whose XML was malformed and had to be recovered -> the first error (text may be partial)
        self.recovered: dict[str, str] = {}
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
            root = None
            if data:
                root, error = parse_xml_checked(data)
                if error:
                    self.recovered.setdefault(name, error)
            self._xml_cache[name] = root
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

    def incomplete(self) -> list[str]:
        """Why the package's text may be partial: the parts whose XML needed recovery."""
        return [f"malformed XML in {name} was recovered ({error})" for name, error in sorted(self.recovered.items())]

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
