"""Text extraction from office files, mail and PDFs: the public API of the ingest stage.

:func:`extract_file` turns the bytes of one file into a list of :class:`Part` rows: the file itself
first, then every attachment / embedded file found inside it (recursively). It never raises: every
problem becomes a row status (see :data:`STATUSES`) with a readable ``error``.

The real format is detected from content (:mod:`lakedoc.ingest.detect`); the file's family or
extension only says what the content should be, and a mismatch gives ``unsupported``.

Which formats exist, which family and extractor module each has, and which extensions a family claims:
:data:`lakedoc.ingest.formats.FORMATS`. Every input file has exactly one owning family
(:func:`owner_family`): the family that lists its extension in :data:`FAMILIES`, else
:data:`CATCH_ALL_FAMILY` (``mail_text``). A file no family lists is
extracted with ``family=None``: its content alone decides (a ``.log`` holding text is extracted as
text, a ``.bin`` holding a PDF as a PDF, a ``.doc`` holding a Word 97+ binary as legacy Word).
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

from lakedoc.ingest.detect import detect_format, extension
from lakedoc.ingest.extractors.base import (
    Attachment,
    CorruptError,
    EncryptedError,
    Extraction,
    ExtractionError,
    ExtractionTimeout,
    Limits,
    TooLargeError,
    Unit,
    UnsupportedError,
    clean_text,
    error_message,
    unique_name,
)
from lakedoc.ingest.formats import (
    CATCH_ALL_FAMILY,
    EXTENSION_OWNER,
    EXTRACTOR_MODULES,
    FAMILIES,
    FAMILY_OF_FORMAT,
    IMAGE_FORMATS,
    OOXML_FAMILIES,
    UNSUPPORTED_REASONS,
)

__all__ = ["EXTRACTOR_VERSION", "FAMILIES", "CATCH_ALL_FAMILY", "STATUSES", "OK_STATUSES", "Limits", "Unit",
           "Part", "extract_file", "detect_format", "owner_family", "file_extension"]

# bump when extraction output changes. 2: files no family lists are ingested (content decides), text
# in UTF-16/32 without a BOM is decoded, text parts record their encoding. 3: status ``partial``
# (truncated PDFs, OOXML parts that needed XML recovery). 4: OCR of image files and of PDF pages
# without a text layer; legacy Office (.doc/.xls/.ppt) extracted.
EXTRACTOR_VERSION = "4"


def file_extension(file_name: str) -> str:
    """Lower-case extension of a file name (text after the last dot; "" without one)."""
    return file_name.rpartition(".")[2].lower() if "." in file_name else ""


def owner_family(file_name: str) -> str:
    """The one family that ingests an input file of this name (see the module docstring)."""
    return EXTENSION_OWNER.get(file_extension(file_name), CATCH_ALL_FAMILY)


def claimed_family(file_name: str) -> str | None:
    """The family whose extensions include this file's, None for a leftover (content decides)."""
    return EXTENSION_OWNER.get(file_extension(file_name))


# ``partial``: text was extracted, but the file was damaged in a way that may have lost some of it
# (a PDF whose cross-reference table had to be rebuilt or whose page tree is short; an OOXML part
# whose XML needed recovery); ``error`` says why. Downstream stages treat it like ``ok``.
STATUSES = ("ok", "partial", "empty", "encrypted", "corrupt", "image_only", "unsupported", "too_large",
            "timeout", "error")

# Statuses whose text the later stages (redaction, classification, baselines, index) use.
OK_STATUSES = ("ok", "partial")


@dataclass
class Part:
    """One output row: the file itself, or an attachment found inside it (recursively)."""

    attachment_path: str  # "" for the file itself; "report.pdf"; "inner.msg/report.pdf" when nested
    file_name: str
    format: str  # detected real format: docx/xlsx/pptx/pdf/msg/eml/csv/... or "unknown"
    status: str  # one of STATUSES
    error: str | None  # message for non-ok statuses; None when ok
    text: str  # units joined with "\n\n"
    units: list[Unit] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    depth: int = 0  # 0 for the file, 1 for its attachments, ...


def extract_file(data: bytes, file_name: str, family: str | None = None,
                 limits: Limits | None = None) -> list[Part]:
    """Extract a file and, recursively, its attachments. Never raises.

    Returns the file's own Part first, then attachment Parts (each with ``attachment_path`` set).
    ``family`` (a key of :data:`FAMILIES`) or, without it, the file extension says what the content
    should be; content of another kind gives status ``unsupported``.
    """
    limits = limits or Limits()
    if limits.max_memory_bytes > 0 and memory_cap_available():
        return _extract_capped(data, file_name, family, limits)
    return _extract_here(data, file_name, family, limits)


def _extract_here(data: bytes, file_name: str, family: str | None, limits: Limits) -> list[Part]:
    """:func:`extract_file` in this process (deadline by SIGALRM, no memory cap)."""
    try:
        with _deadline(limits.timeout_s):
            return _extract_tree(bytes(data or b""), file_name, family, limits, "", 0)
    except ExtractionTimeout as exc:
        return [_failed_part(data, file_name, "", 0, "timeout", error_message(exc))]
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return [_failed_part(data, file_name, "", 0, "error", error_message(exc))]


# ---------------------------------------------------------------------------------------------- memory cap

# The child gets this long after its own deadline (SIGALRM) before the parent kills it: the deadline
# cannot interrupt a long call inside a C library, the kill can.
_KILL_GRACE_S = 10.0


def memory_cap_available() -> bool:
    """Whether extractions can run under a hard memory cap here: Linux (fork, and an address-space
    limit the kernel enforces; macOS accepts RLIMIT_AS but does not enforce it)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _address_space_bytes() -> int:
    """This process's current virtual size (the cap is added to it: a Spark worker with pyarrow and
    lxml loaded already maps far more address space than it uses)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _cap_message(limits: Limits) -> str:
    return (f"over the memory cap of {limits.max_memory_bytes / 2**20:,.0f} MB per extraction "
            f"(ingest.max_memory_mb)")


_MEMORY_ERRORS = ("MemoryError", "malloc", "out of memory", "insufficient memory", "cannot allocate memory",
                  "std::bad_alloc")


def _over_cap(part: Part, limits: Limits) -> Part:
    """A part whose extraction failed for lack of memory (under the cap) -> ``too_large``, naming the cap."""
    if part.status in ("error", "corrupt") and part.error and any(
            m.lower() in part.error.lower() for m in _MEMORY_ERRORS):
        part.status, part.error = "too_large", f"{_cap_message(limits)}: {part.error}"
    return part


def _extract_capped(data: bytes, file_name: str, family: str | None, limits: Limits) -> list[Part]:
    """:func:`extract_file` in a forked child whose address space is capped (``RLIMIT_AS`` = the
    parent's size + ``limits.max_memory_bytes``): whatever a file makes a library allocate, the worker
    itself never grows. The child sends its parts back pickled through a pipe; the parent kills it
    ``_KILL_GRACE_S`` after its deadline. A child that runs out of memory gives ``too_large``, one that
    dies gives ``error``; both errors name the cap."""
    import pickle
    import resource
    import select

    cap = _address_space_bytes() + limits.max_memory_bytes
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns on fork() in a process with threads (a Spark worker has some); the child
        # only extracts, writes to its pipe and leaves with os._exit, taking no lock another thread holds
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_fd)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            try:
                parts = [_over_cap(p, limits) for p in _extract_here(data, file_name, family, limits)]
                payload = pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL)
            except MemoryError as exc:
                payload = pickle.dumps(("too_large", f"{_cap_message(limits)}: {error_message(exc)}"))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as the row's error
                payload = pickle.dumps(("error", error_message(exc)))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + limits.timeout_s + _KILL_GRACE_S
    killed = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready = select.select([read_fd], [], [], remaining)[0] if remaining > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        try:
            _, wait_status = os.waitpid(pid, 0)
        except ChildProcessError:  # SIGCHLD ignored by the host process: the child was reaped already
            wait_status = 0
    if killed:
        return [_failed_part(data, file_name, "", 0, "timeout",
                             f"ExtractionTimeout: extraction took longer than {limits.timeout_s:g}s "
                             f"(the extraction process was killed)")]
    try:
        result = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - no (complete) answer: the child died
        signum = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
        how = (f"signal {signal.Signals(signum).name}" if signum
               else f"exit status {os.waitstatus_to_exitcode(wait_status)}")
        return [_failed_part(data, file_name, "", 0, "error",
                             f"ExtractionProcessDied: the extraction process ended by {how} without a result "
                             f"(memory cap {limits.max_memory_bytes / 2**20:,.0f} MB, ingest.max_memory_mb)")]
    if isinstance(result, tuple):
        status, error = result
        return [_failed_part(data, file_name, "", 0, status, error)]
    _preload({p.format for p in result})
    return result


def _preload(formats: set[str]) -> None:
    """Import the extractor modules of these formats here, in the parent: the next children inherit them
    instead of importing them again (PyMuPDF, lxml, extract_msg: tens to hundreds of ms each)."""
    for fmt in formats:
        if fmt in EXTRACTOR_MODULES:
            try:
                importlib.import_module(f"lakedoc.ingest.extractors.{EXTRACTOR_MODULES[fmt]}")
            except Exception:  # noqa: BLE001 - only a warm-up: the child reports real import errors
                pass


# ---------------------------------------------------------------------------------------------- tree


def _extract_tree(data: bytes, file_name: str, family: str | None, limits: Limits, path: str,
                  depth: int) -> list[Part]:
    part, attachments = _extract_one(data, file_name, family, limits, path, depth)
    parts = [part]
    taken: set[str] = set()
    for att in attachments:
        name = unique_name(att.name, taken)
        att_path = f"{path}/{name}" if path else name
        if depth + 1 > limits.max_attachment_depth:
            parts.append(_failed_part(att.data, name, att_path, depth + 1, "unsupported",
                                      f"DepthLimitError: attachment nested deeper than "
                                      f"max_attachment_depth={limits.max_attachment_depth}"))
            continue
        parts.extend(_extract_tree(att.data, name, None, limits, att_path, depth + 1))
    return parts


def _extract_one(data: bytes, file_name: str, family: str | None, limits: Limits, path: str,
                 depth: int) -> tuple[Part, list[Attachment]]:
    """Extract one file (no recursion); every failure except a timeout becomes the Part status."""
    fmt = "unknown"
    try:
        if len(data) > limits.max_bytes:
            fmt = _safe_detect(data, file_name)
            raise TooLargeError(f"{len(data):,} bytes is over the limit of {limits.max_bytes:,}")
        if not data[:4096].strip() and not data.strip():
            ext = extension(file_name)
            fmt = ext if ext in FAMILY_OF_FORMAT else "unknown"
            return _part(path, file_name, fmt, depth, Extraction()), []
        fmt = detect_format(data, file_name)
        _check_family(fmt, file_name, family)
        extraction, fmt = _run_extractor(fmt, data, file_name, limits)
        return _part(path, file_name, fmt, depth, extraction), extraction.attachments
    except ExtractionTimeout:
        raise
    except ExtractionError as exc:
        part = Part(path, file_name, fmt, exc.status, error_message(exc), "", [], {}, depth)
        return part, exc.attachments
    except Exception as exc:  # noqa: BLE001 - status "error" with the exception class and message
        return Part(path, file_name, fmt, "error", error_message(exc), "", [], {}, depth), []


def _run_extractor(fmt: str, data: bytes, file_name: str, limits: Limits) -> tuple[Extraction, str]:
    """Run the extractor for ``fmt``; returns the extraction and the (possibly refined) format."""
    if fmt in EXTRACTOR_MODULES:
        module = importlib.import_module(f"lakedoc.ingest.extractors.{EXTRACTOR_MODULES[fmt]}")
        return module.extract(data, fmt, limits), fmt
    if fmt in IMAGE_FORMATS:
        return Extraction(has_images=True, metadata={"image_format": fmt}), fmt
    if fmt == "ooxml_encrypted":
        return _extract_encrypted_ooxml(data, file_name, limits)
    if fmt == "zip":
        from lakedoc.ingest.extractors.ooxml import open_zip

        open_zip(data, limits)  # raises CorruptError when the archive is unreadable (e.g. truncated)
        raise UnsupportedError("zip archive without an Office document inside ([Content_Types].xml "
                               "and main part missing)")
    if fmt == "applesingle":
        _raise_applesingle(data)
    raise UnsupportedError(UNSUPPORTED_REASONS.get(fmt, f"{fmt} files are not supported"))


def _extract_encrypted_ooxml(data: bytes, file_name: str, limits: Limits) -> tuple[Extraction, str]:
    """Encrypted OOXML: readable only when protected by Excel's default password."""
    from lakedoc.ingest.extractors.crypto import decrypt_office_default

    decrypted = decrypt_office_default(data)
    if decrypted is None:
        raise EncryptedError("password required (encrypted Office package: EncryptionInfo + "
                             "EncryptedPackage)")
    inner = detect_format(decrypted, file_name)
    if inner not in EXTRACTOR_MODULES or FAMILY_OF_FORMAT.get(inner) not in OOXML_FAMILIES:
        raise CorruptError(f"decrypted package is not an Office document ({inner})")
    extraction, _ = _run_extractor(inner, decrypted, file_name, limits)
    extraction.metadata["decrypted_with_default_password"] = "true"
    return extraction, inner


def _raise_applesingle(data: bytes) -> None:
    """AppleSingle/AppleDouble container: unsupported, but its data fork becomes an attachment."""
    import struct

    attachments, name = [], "data_fork"
    try:
        (count,) = struct.unpack_from(">H", data, 24)
        entries = [struct.unpack_from(">III", data, 26 + 12 * i) for i in range(count)]
        for entry_id, offset, length in entries:
            if entry_id == 3:  # real name
                name = data[offset:offset + length].decode("latin-1") or name
        for entry_id, offset, length in entries:
            if entry_id == 1 and length:  # data fork
                attachments.append(Attachment(name, data[offset:offset + length]))
    except struct.error:
        pass
    raise UnsupportedError("AppleSingle/AppleDouble container (its data fork is extracted as an "
                           "attachment)", attachments)


def _check_family(fmt: str, file_name: str, family: str | None) -> None:
    """Raise UnsupportedError when the content is not what the family (or extension) says."""
    if fmt in ("zip", "applesingle"):
        return  # decided by their own handlers (corrupt vs unsupported)
    expected, said_by = (family, "family") if family in FAMILIES else (None, "")
    if expected is None:
        ext = extension(file_name)
        expected = next((fam for fam, exts in FAMILIES.items() if ext in exts), None)
        said_by = f"extension .{ext}"
    if expected is None:
        return
    if fmt == "ooxml_encrypted" and expected in OOXML_FAMILIES:
        return
    actual = FAMILY_OF_FORMAT.get(fmt)
    if actual != expected:
        raise UnsupportedError(f"content is {fmt}, but the {said_by} says {expected}")


# ---------------------------------------------------------------------------------------------- parts


def _part(path: str, file_name: str, fmt: str, depth: int, extraction: Extraction) -> Part:
    units = []
    for unit in extraction.units:
        text = clean_text(unit.text)
        if text:
            units.append(Unit(unit.kind, int(unit.index), unit.ref, text))
    text = "\n\n".join(u.text for u in units)
    metadata = {str(k): str(v) for k, v in extraction.metadata.items() if v is not None and str(v) != ""}
    if text and extraction.incomplete:
        status, error = "partial", "text may be incomplete: " + "; ".join(dict.fromkeys(extraction.incomplete))
    elif text:
        status, error = "ok", None
    elif extraction.has_images:
        status, error = "image_only", "no text layer: images only, and OCR is off or read no text (ingest.ocr)"
    else:
        status, error = "empty", "no text found"
    return Part(path, file_name, fmt, status, error, text, units, metadata, depth)


def _failed_part(data: bytes, file_name: str, path: str, depth: int, status: str, error: str) -> Part:
    return Part(path, file_name, _safe_detect(data, file_name), status, error, "", [], {}, depth)


def _safe_detect(data: bytes, file_name: str) -> str:
    try:
        return detect_format(bytes(data or b""), file_name)
    except Exception:  # noqa: BLE001
        return "unknown"


# ---------------------------------------------------------------------------------------------- timeout


@contextmanager
def _deadline(seconds: float | None):
    """Raise ExtractionTimeout in the body after ``seconds`` (SIGALRM; main thread only).

    Elsewhere (worker threads, platforms without setitimer) the body runs without a deadline. A timer
    that was already armed (e.g. by a test runner) is re-armed with its remaining time afterwards.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable or seconds is None:
        yield
        return
    state = {"active": True}

    def on_alarm(signum, frame):
        if state["active"]:
            raise ExtractionTimeout(f"extraction took longer than {seconds:g}s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        state["active"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            remaining = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)
