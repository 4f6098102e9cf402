"""Delimited text (csv, tsv).

The encoding is detected (BOM; UTF-16/32 without a BOM; UTF-8; then a legacy code page, see
:func:`lakedoc.ingest.extractors.decoding.decode_text_with_encoding`) and recorded as metadata
``encoding``. The delimiter is sniffed on a sample (with a per-extension fallback); quoted multi-line
fields and very long lines are handled by the csv module; each record becomes one line with its cells
separated by tabs. Records are grouped into units of at most ``ROWS_PER_UNIT`` rows ("rows 1-1000")
so that chunks can cite where they came from.
"""
from __future__ import annotations

import csv
import io
import sys

from lakedoc.ingest.extractors.base import Extraction, Limits, Unit
from lakedoc.ingest.extractors.decoding import decode_text_with_encoding

ROWS_PER_UNIT = 1000
_SAMPLE_CHARS = 64 * 1024
_DELIMITERS = ",;\t|"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # very long fields (the default is 128 KiB)


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    text, encoding = decode_text_with_encoding(data)
    extraction = _delimited(text.replace("\x00", ""), fmt)
    extraction.metadata["encoding"] = encoding
    return extraction


def sniff_dialect(text: str, fmt: str):
    """The csv dialect of ``text``: sniffed on whole lines of a sample, else the format's default."""
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
        if dialect.delimiter in _DELIMITERS:
            return dialect
    except csv.Error:
        pass
    return csv.excel_tab if fmt == "tsv" else csv.excel


def _delimited(text: str, fmt: str) -> Extraction:
    dialect = sniff_dialect(text, fmt)
    try:
        rows = [_row_line(r) for r in csv.reader(io.StringIO(text, newline=""), dialect)]
    except csv.Error:  # malformed quoting: keep the raw lines rather than nothing
        rows = [line.replace(dialect.delimiter, "\t") for line in text.splitlines()]
    non_empty = [r for r in rows if r]
    units = []
    for start in range(0, len(non_empty), ROWS_PER_UNIT):
        chunk = non_empty[start:start + ROWS_PER_UNIT]
        end = start + len(chunk)
        units.append(Unit("rows", start // ROWS_PER_UNIT + 1, f"rows {start + 1}-{end}", "\n".join(chunk)))
    delimiter = {"\t": "tab"}.get(dialect.delimiter, dialect.delimiter)
    return Extraction(units=units, metadata={"delimiter": delimiter, "row_count": str(len(non_empty))})


def _row_line(cells: list[str]) -> str:
    """One record as one line: cells tab-separated, line breaks inside cells folded to spaces."""
    return "\t".join(" ".join(cell.split()) for cell in cells).strip()
