"""OLE (compound file) embedded objects: the file inside an Ole10Native package, an OOXML "Package"
stream or a PDF "CONTENTS" stream."""
from __future__ import annotations

import struct

from lakedoc.ingest.detect import OLE_MAGIC, detect_format
from lakedoc.ingest.extractors.base import Attachment


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
