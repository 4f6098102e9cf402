"""Namespace-agnostic XML reading (transitional and ISO Strict OOXML use different namespaces).

:func:`parse_xml` never resolves entities nor reaches the network, and recovers what it can from
malformed XML; a part that needed recovery is reported through :func:`parse_xml_checked`, so the
extractor can flag its text as possibly ``partial``.
"""
from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from lakedoc.ingest.extractors.base import CorruptError

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=True,
                          remove_comments=True, remove_pis=True)


def parse_xml(data: bytes) -> etree._Element:
    """Parse XML safely (no entity expansion, no network); raise CorruptError when unreadable."""
    return parse_xml_checked(data)[0]


def parse_xml_checked(data: bytes) -> tuple[etree._Element, str | None]:
    """:func:`parse_xml`, plus the first error the parser recovered from (None: the XML was well formed).

    A recovered error means the parser skipped or closed something it could not read: the text of the
    part may be incomplete."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise CorruptError(f"unreadable XML: {exc}") from exc
    if root is None:
        raise CorruptError("empty or unreadable XML part")
    return root, recovered_error(_PARSER.error_log)


def recovered_error(error_log) -> str | None:
    """The first error (not warning) of an lxml error log, as "line N: message", or None."""
    for entry in error_log:
        if entry.level >= etree.ErrorLevels.ERROR:
            return f"line {entry.line}: {entry.message}"
    return None


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
