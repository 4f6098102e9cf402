"""HTML: the extractor of ``html`` files, and HTML-to-text conversion for the other extractors (mail
bodies, altChunk parts of Word documents)."""
from __future__ import annotations

import re

from lakedoc.ingest.extractors.base import Extraction, Limits, Unit, clean_text
from lakedoc.ingest.extractors.decoding import decode_text, decode_text_with_encoding


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    """One ``body`` unit; the encoding (a <meta charset> is not trusted over the bytes) is recorded."""
    text, encoding = decode_text_with_encoding(data)
    extraction = Extraction(units=[Unit("body", 1, "body", html_to_text(text.replace("\x00", "")))])
    extraction.metadata["encoding"] = encoding
    return extraction


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

