"""Legacy (97-2003, binary) Office files: Word ``.doc``, Excel ``.xls``, PowerPoint ``.ppt``.

Detected by content (an OLE compound file with a ``WordDocument`` / ``Workbook`` / ``PowerPoint
Document`` stream, :mod:`lakedoc.ingest.detect`), read in-process by pure-Python parsers:

* ``xls``: xlrd (BIFF5-8); one unit per sheet (``sheet 'Name'``), cells tab-separated per row, dates
  as ISO dates. Encrypted workbooks are ``encrypted``.
* ``doc``: the Word 97+ binary format ([MS-DOC]) read with olefile: the FIB names the table stream and
  the piece table (CLX), whose pieces hold the text as cp1252 bytes or UTF-16. Units: the main text
  (``body``) and the rest of the document's text (footnotes, headers, comments, text boxes: ``other``).
  Field instructions (``HYPERLINK ...``) are dropped, their results kept. Word 6/95 files (nFib < 101)
  are ``unsupported``; encrypted (``fEncrypted``) are ``encrypted``.
* ``ppt``: the ``PowerPoint Document`` stream ([MS-PPT]) walked record by record; the text atoms
  (``TextCharsAtom`` UTF-16, ``TextBytesAtom`` 8-bit) of each slide become a unit ``slide N``, notes
  pages ``slide N notes``; text kept only in the outline (``SlideListWithText``) is used when the
  slides themselves hold none. Masters are skipped. Encrypted (``CryptSession10Container``) are
  ``encrypted``.

Why these parsers and not Apache Tika or LibreOffice: docs/architecture.md ("Legacy Office").
"""
from __future__ import annotations

import datetime as _dt
import io
import re
import struct

from lakedoc.ingest.extractors.base import (
    CorruptError,
    EncryptedError,
    Extraction,
    Limits,
    Unit,
    UnsupportedError,
    error_message,
)


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    if fmt == "xls":
        return _xls(data)
    if fmt == "doc":
        return _doc(_streams(data, "WordDocument"))
    if fmt == "ppt":
        return _ppt(_streams(data, "PowerPoint Document"))
    raise UnsupportedError(f"{fmt} is not a legacy Office format")


def _streams(data: bytes, main: str) -> dict[str, bytes]:
    """The top-level streams of a compound file (``main`` must be among them)."""
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:  # noqa: BLE001 - damaged header/FAT/directory
        raise CorruptError(f"cannot open the OLE compound file: {error_message(exc)}") from exc
    try:
        out = {}
        for entry in ole.listdir(streams=True, storages=False):
            if len(entry) == 1:
                try:
                    out[entry[0]] = ole.openstream(entry).read()
                except Exception as exc:  # noqa: BLE001
                    if entry[0] == main:
                        raise CorruptError(f"cannot read the {main} stream: {error_message(exc)}") from exc
        if main not in out:
            raise CorruptError(f"the compound file has no readable {main} stream")
        return out
    finally:
        ole.close()


# ---------------------------------------------------------------------------------------------- xls


def _xls(data: bytes) -> Extraction:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, logfile=io.StringIO())
    except xlrd.XLRDError as exc:
        if "encrypt" in str(exc).lower():
            raise EncryptedError("password required (encrypted Excel 97-2003 workbook)") from exc
        raise CorruptError(f"cannot read the workbook: {error_message(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - struct.error, AssertionError, IndexError on damaged files
        raise CorruptError(f"cannot read the workbook: {error_message(exc)}") from exc
    units = []
    try:
        for index, name in enumerate(book.sheet_names(), 1):
            sheet = book.sheet_by_index(index - 1)
            lines = []
            for r in range(sheet.nrows):
                cells = [_xls_cell(c, book.datemode) for c in sheet.row(r)]
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    lines.append("\t".join(cells))
            units.append(Unit("sheet", index, f"sheet '{name}'", "\n".join(lines)))
            book.unload_sheet(index - 1)
        metadata = {"sheet_count": str(book.nsheets), "biff_version": str(book.biff_version)}
        if book.user_name:
            metadata["last_saved_by"] = book.user_name
    except Exception as exc:  # noqa: BLE001 - a damaged sheet (xlrd asserts, struct errors, short records)
        raise CorruptError(f"cannot read sheet {len(units) + 1} of the workbook: {error_message(exc)}") from exc
    finally:
        book.release_resources()
    return Extraction(units=units, metadata=metadata)


def _xls_cell(cell, datemode: int) -> str:
    import xlrd

    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return ""
    if cell.ctype == xlrd.XL_CELL_NUMBER:
        value = float(cell.value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            when = xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except Exception:  # noqa: BLE001 - out-of-range date: the serial number
            return str(cell.value)
        return when.date().isoformat() if when.time() == _dt.time(0) else when.isoformat(sep=" ")
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if cell.value else "FALSE"
    return str(cell.value).replace("\t", " ").replace("\n", " ").strip()


# ---------------------------------------------------------------------------------------------- doc

_FIELD = re.compile(r"\x13[^\x13\x14\x15]*(?:\x14([^\x13\x14\x15]*))?\x15")
_DOC_SPECIAL = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x07": "\t", "\x1e": "-", "\x1f": "",
                              "\x01": "", "\x08": "", "\x02": "", "\x05": "", "\xa0": " "})


def _doc(streams: dict[str, bytes]) -> Extraction:
    word = streams["WordDocument"]
    if len(word) < 0x1AA:
        raise CorruptError("the WordDocument stream is shorter than a Word 97 FIB")
    ident, nfib = struct.unpack_from("<HH", word, 0)
    if ident != 0xA5EC:
        raise CorruptError(f"not a Word document (FIB magic {ident:#06x})")
    if nfib < 101:
        raise UnsupportedError(f"Word 6/95 documents (nFib {nfib}) are not supported; only Word 97-2003")
    (flags,) = struct.unpack_from("<H", word, 0x0A)
    if flags & 0x0100:
        raise EncryptedError("password required (encrypted Word 97-2003 document)")
    table = streams.get("1Table" if flags & 0x0200 else "0Table")
    if table is None:
        raise CorruptError("the document's table stream is missing")
    counts = struct.unpack_from("<7i", word, 0x4C)  # ccpText, ccpFtn, ccpHdd, ccpMcr, ccpAtn, ccpEdn, ccpTxbx
    ccp_text = max(counts[0], 0)
    ccp_rest = sum(max(c, 0) for c in counts[1:]) + max(struct.unpack_from("<i", word, 0x68)[0], 0)
    fc_clx, lcb_clx = struct.unpack_from("<II", word, 0x01A2)
    if fc_clx + lcb_clx > len(table) or lcb_clx == 0:
        raise CorruptError("the document's piece table lies outside its table stream")
    text = _doc_text(word, table[fc_clx:fc_clx + lcb_clx], ccp_text + ccp_rest)
    body, rest = _doc_clean(text[:ccp_text]), _doc_clean(text[ccp_text:])
    units = [Unit("body", 1, "body", body)]
    if rest.strip():
        units.append(Unit("other", 1, "footnotes, headers, comments, text boxes", rest))
    incomplete = []
    if len(text) < ccp_text:
        incomplete.append(f"the piece table holds {len(text)} of the {ccp_text} characters of the main text")
    return Extraction(units=units, metadata={"nfib": str(nfib)}, incomplete=incomplete)


def _doc_text(word: bytes, clx: bytes, limit: int) -> str:
    """The document's characters from the piece table ([MS-DOC] 2.9.38 Clx), at most ``limit``."""
    pos = 0
    while pos < len(clx) and clx[pos] == 0x01:  # Prc: skip property modifiers
        (cb,) = struct.unpack_from("<H", clx, pos + 1)
        pos += 3 + cb
    if pos + 5 > len(clx) or clx[pos] != 0x02:
        raise CorruptError("the document's piece table (Pcdt) is missing")
    (lcb,) = struct.unpack_from("<I", clx, pos + 1)
    plc = clx[pos + 5:pos + 5 + lcb]
    n = (len(plc) - 4) // 12
    if n <= 0:
        raise CorruptError("the document's piece table is empty")
    cps = struct.unpack_from(f"<{n + 1}I", plc, 0)
    out: list[str] = []
    total = 0
    for i in range(n):
        if total >= limit:
            break
        (fc_raw,) = struct.unpack_from("<I", plc, 4 * (n + 1) + 8 * i + 2)
        count = max(min(cps[i + 1] - cps[i], limit - total), 0)
        if fc_raw & 0x40000000:  # compressed: one cp1252 byte per character at fc / 2
            start = (fc_raw & 0x3FFFFFFF) // 2
            piece = word[start:start + count].decode("cp1252", errors="replace")
        else:
            start = fc_raw & 0x3FFFFFFF
            piece = word[start:start + 2 * count].decode("utf-16-le", errors="replace")
        out.append(piece)
        total += len(piece)
    return "".join(out)


def _doc_clean(text: str) -> str:
    for _ in range(8):  # nested fields: innermost first
        new = _FIELD.sub(lambda m: m.group(1) or "", text)
        if new == text:
            break
        text = new
    text = re.sub(r"[\x13\x14\x15]", "", text)
    return text.translate(_DOC_SPECIAL)


# ---------------------------------------------------------------------------------------------- ppt

_CONTAINER_VERSION = 0xF
_SLIDE, _NOTES, _MAIN_MASTER, _SLWT = 0x03EE, 0x03F0, 0x03F8, 0x0FF0
_SLIDE_PERSIST, _TEXT_CHARS, _TEXT_BYTES, _CRYPT = 0x03F3, 0x0FA0, 0x0FA8, 0x2F14
_ENVIRONMENT, _DRAWING_GROUP = 0x03F2, 0x040B


def _records(data: bytes, start: int, end: int):
    """(type, instance, version, body start, body end) of the records in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        ver_inst, rtype, length = struct.unpack_from("<HHI", data, pos)
        body = pos + 8
        stop = min(body + length, end)
        yield rtype, ver_inst >> 4, ver_inst & 0xF, body, stop
        if body + length > end:
            return
        pos = body + length


def _atoms_text(data: bytes, start: int, end: int, depth: int = 0) -> list[str]:
    """Text of every text atom inside data[start:end] (recursively), in order."""
    out: list[str] = []
    for rtype, _inst, ver, body, stop in _records(data, start, end):
        if rtype == _TEXT_CHARS:
            out.append(data[body:stop].decode("utf-16-le", errors="replace"))
        elif rtype == _TEXT_BYTES:
            out.append(data[body:stop].decode("latin-1"))
        elif ver == _CONTAINER_VERSION and depth < 32:
            out.extend(_atoms_text(data, body, stop, depth + 1))
    return out


def _ppt_lines(texts: list[str]) -> str:
    """Distinct text runs, in order; ``*`` alone (the slide-number placeholder's text) is dropped."""
    lines: list[str] = []
    for text in texts:
        text = text.replace("\r", "\n").replace("\x0b", "\n")
        if text.strip() and text.strip() != "*" and text not in lines:
            lines.append(text)
    return "\n".join(lines)


def _notes_slide_id(data: bytes, body: int, stop: int) -> int | None:
    """The slideIdRef of a NotesContainer's NotesAtom (0: the notes master)."""
    for rtype, _inst, _ver, abody, astop in _records(data, body, stop):
        if rtype == 0x03F1 and astop - abody >= 4:
            return int(struct.unpack_from("<I", data, abody)[0])
    return None


def _ppt(streams: dict[str, bytes]) -> Extraction:
    data = streams["PowerPoint Document"]
    if "EncryptedSummary" in streams:
        raise EncryptedError("password required (encrypted PowerPoint 97-2003 presentation)")
    slides: list[str] = []
    notes: list[tuple[int | None, str]] = []  # (slide id the notes belong to, text)
    outline: dict[int, list[list[str]]] = {}
    slide_ids: list[int] = []  # slide ids in presentation order (the outline's SlidePersistAtoms)
    for rtype, _inst, ver, body, stop in _records(data, 0, len(data)):
        if rtype == _CRYPT:
            raise EncryptedError("password required (encrypted PowerPoint 97-2003 presentation)")
        if ver != _CONTAINER_VERSION:
            continue
        if rtype == _SLIDE:
            slides.append(_ppt_lines(_atoms_text(data, body, stop)))
        elif rtype == _NOTES:
            slide_id = _notes_slide_id(data, body, stop)
            if slide_id != 0:  # 0: the notes master
                notes.append((slide_id, _ppt_lines(_atoms_text(data, body, stop))))
        elif rtype == 0x03E8:  # DocumentContainer: the outline text of slides (instance 0) and notes (2)
            for sub_type, sub_inst, sub_ver, sub_body, sub_stop in _records(data, body, stop):
                if sub_type != _SLWT or sub_ver != _CONTAINER_VERSION:
                    continue
                groups: list[list[str]] = []
                for atype, _ai, _av, abody, astop in _records(data, sub_body, sub_stop):
                    if atype == _SLIDE_PERSIST:
                        groups.append([])
                        if sub_inst == 0 and astop - abody >= 16:
                            slide_ids.append(int(struct.unpack_from("<I", data, abody + 12)[0]))
                    elif atype in (_TEXT_CHARS, _TEXT_BYTES) and groups:
                        groups[-1].append(data[abody:astop].decode(
                            "utf-16-le" if atype == _TEXT_CHARS else "latin-1", errors="replace"))
                outline.setdefault(sub_inst, groups)
    if not any(s.strip() for s in slides) and outline.get(0):
        slides = [_ppt_lines(g) for g in outline[0]]
    if not slides and not notes and not outline:
        raise CorruptError("no slide records found in the PowerPoint Document stream")
    units = [Unit("slide", i, f"slide {i}", t) for i, t in enumerate(slides, 1)]
    position = {slide_id: i for i, slide_id in enumerate(slide_ids, 1)}
    for k, (slide_id, text) in enumerate(notes, 1):
        number = position.get(slide_id) if slide_id is not None else None
        units.append(Unit("notes", number or k, f"slide {number} notes" if number else f"notes page {k}", text))
    return Extraction(units=units, metadata={"slide_count": str(len(slides))})
