"""Mail: Outlook .msg (extract-msg) and RFC 822 .eml (Python's email package).

Both give a header unit (From/To/Cc/Bcc/Date/Subject, RFC 2047 decoded), the text/plain body and the
text/html body converted to text (the HTML one only when it adds words the plain one lacks), and
every attachment, embedded message or inline image as an :class:`Attachment` for recursive
extraction. Outlook non-mail items (appointments, tasks ...) give their subject, body and item
fields. PGP/MIME and S/MIME encrypted messages are ``encrypted``. 8-bit .msg strings are decoded
with the message's internet code page (PR_INTERNET_CPID) when it disagrees with PR_MESSAGE_CODEPAGE.
"""
from __future__ import annotations

import codecs
import email
import email.policy
import email.utils
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header

from lakedoc.ingest.extractors.base import (
    Attachment,
    CorruptError,
    EncryptedError,
    Extraction,
    Limits,
    Unit,
    text_tokens,
)
from lakedoc.ingest.extractors.decoding import decode_text
from lakedoc.ingest.extractors.html import decode_html_bytes, html_to_text

_PGP_MESSAGE = b"-----BEGIN PGP MESSAGE-----"
_SIGNATURE_MIME = ("application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature")

if logging.getLogger("extract_msg").level == logging.NOTSET:
    logging.getLogger("extract_msg").setLevel(logging.ERROR)  # it warns on every odd property


def extract(data: bytes, fmt: str, limits: Limits) -> Extraction:
    mail = _read_msg(data) if fmt == "msg" else _read_eml(data)
    return mail.extraction()


@dataclass
class _Mail:
    """Format-independent view of one message."""

    headers: list[tuple[str, str]] = field(default_factory=list)  # ("From", "..."), in display order
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)  # already converted to text
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def extraction(self) -> Extraction:
        header = "\n".join(f"{name}: {value}" for name, value in self.headers if value)
        units = [Unit("header", 1, "header", header)]
        for i, (label, text) in enumerate(self._bodies(), 1):
            units.append(Unit("body", i, "body" if label == "plain" else f"body ({label})", text))
        return Extraction(units=units, metadata=self.metadata, attachments=self.attachments)

    def _bodies(self) -> list[tuple[str, str]]:
        """Plain bodies, then each HTML body that holds words the plain ones do not."""
        bodies = [("plain", t) for t in self.plain if t.strip()]
        known = set().union(*(text_tokens(t) for _, t in bodies)) if bodies else set()
        for text in self.html:
            tokens = text_tokens(text)
            if text.strip() and not tokens <= known:
                bodies.append(("html", text))
                known |= tokens
        return bodies


def _address_metadata(headers: dict[str, str]) -> dict[str, str]:
    keys = {"From": "sender", "To": "recipients", "Cc": "cc", "Bcc": "bcc", "Subject": "subject",
            "Date": "sent_date"}
    return {keys[k]: v for k, v in headers.items() if k in keys and v}


# ---------------------------------------------------------------------------------------------- eml


def _read_eml(data: bytes) -> _Mail:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    if _eml_is_encrypted(msg):
        raise EncryptedError(f"encrypted message ({msg.get_content_type()})")
    mail = _Mail()
    values = {name: _eml_header(msg, name) for name in ("From", "To", "Cc", "Bcc", "Date", "Subject")}
    values["Date"] = _iso_date(values["Date"])
    mail.headers = list(values.items())
    mail.metadata = _address_metadata(values)
    if msg.get("Message-ID"):
        mail.metadata["message_id"] = str(msg.get("Message-ID")).strip()
    _walk_eml(msg, mail)
    if not mail.plain and not mail.html and _only_pgp(mail.attachments):
        raise EncryptedError("encrypted message (PGP armored body)")
    return mail


def _eml_is_encrypted(msg) -> bool:
    ctype = msg.get_content_type()
    if ctype == "multipart/encrypted":
        return True
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        return (msg.get_param("smime-type") or "enveloped-data").lower() in ("enveloped-data",
                                                                           "authenveloped-data")
    if ctype == "text/plain" and not msg.is_multipart():
        payload = msg.get_payload(decode=True) or b""
        return payload.lstrip().startswith(_PGP_MESSAGE)
    return False


def _eml_header(msg, name: str) -> str:
    """A header decoded (RFC 2047), or "" when absent; tolerant of malformed values."""
    try:
        value = msg.get(name)
        return " ".join(str(value).split()) if value is not None else ""
    except Exception:  # noqa: BLE001 - malformed header: decode the raw value by hand
        raw = msg.get_all(name, failobj=[""])[0]
        try:
            return " ".join(str(make_header(decode_header(str(raw)))).split())
        except Exception:  # noqa: BLE001
            return " ".join(str(raw).split())


def _iso_date(value: str) -> str:
    try:
        return email.utils.parsedate_to_datetime(value).isoformat() if value else ""
    except (TypeError, ValueError, IndexError):
        return value


def _walk_eml(part, mail: _Mail) -> None:
    """Collect bodies and attachments; embedded messages (message/rfc822) stay whole attachments."""
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        mail.attachments.append(_embedded_eml(part))
        return
    if part.is_multipart():
        for sub in part.get_payload():
            _walk_eml(sub, mail)
        return
    if ctype in _SIGNATURE_MIME:
        return  # detached signatures carry no content
    filename = _safe(part.get_filename)
    disposition = _safe(part.get_content_disposition)
    if ctype in ("text/plain", "text/html") and not filename and disposition != "attachment":
        text = _eml_text(part)
        if ctype == "text/html":
            mail.html.append(html_to_text(text))
        else:
            mail.plain.append(text)
        return
    payload = _safe(lambda: part.get_payload(decode=True)) or b""
    if payload:
        name = filename or f"part{len(mail.attachments) + 1}{mimetypes.guess_extension(ctype) or '.bin'}"
        mail.attachments.append(Attachment(name, payload))


def _embedded_eml(part) -> Attachment:
    inner = part.get_payload(0) if isinstance(part.get_payload(), list) else part.get_payload()
    try:
        data = inner.as_bytes()
    except Exception:  # noqa: BLE001 - fall back to the string form
        data = str(inner).encode("utf-8", "replace")
    subject = _eml_header(inner, "Subject") if hasattr(inner, "get") else ""
    name = _safe(part.get_filename) or f"{subject or 'message'}.eml"
    return Attachment(name, data)


def _eml_text(part) -> str:
    """Decoded text of a text/* part, surviving unknown or malformed charsets."""
    try:
        return part.get_content()
    except Exception:  # noqa: BLE001 - LookupError, decoding errors, defects ...
        payload = part.get_payload(decode=True) or b""
        charset = _safe(part.get_content_charset)
        m = re.match(r"[\w.:-]+", charset) if charset else None
        charset = m.group(0) if m else None
        if charset:
            try:
                return payload.decode(charset)
            except (LookupError, UnicodeDecodeError):
                pass
        return decode_text(payload)


def _safe(fn):
    """``fn()``, or None when it raises (malformed MIME headers, broken MSG properties)."""
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


def _get(obj, name: str):
    """An attribute of an extract-msg object, or None when it is missing or cannot be decoded."""
    return _safe(lambda: getattr(obj, name, None))


def _only_pgp(attachments: list[Attachment]) -> bool:
    return bool(attachments) and any(a.data.lstrip().startswith(_PGP_MESSAGE) for a in attachments)


# ---------------------------------------------------------------------------------------------- msg


def _read_msg(data: bytes) -> _Mail:
    msg = _open_msg(data)
    try:
        return _msg_mail(msg)
    finally:
        _safe(msg.close)


def _open_msg(data: bytes):
    import extract_msg
    from extract_msg.enums import ErrorBehavior

    options = {"strict": False, "errorBehavior": ErrorBehavior.SUPPRESS_ALL}
    try:
        msg = extract_msg.openMsg(data, **options)
    except Exception as exc:  # noqa: BLE001 - olefile/extract-msg errors on damaged files
        raise CorruptError(f"cannot open Outlook message: {type(exc).__name__}: {exc}") from exc
    # 8-bit strings: PR_MESSAGE_CODEPAGE is often absent or wrong (e.g. cp1252 for Big5 mail) while
    # PR_INTERNET_CPID names the real code page.
    encoding = None if _safe(lambda: msg.areStringsUnicode) else _internet_encoding(msg)
    if encoding and encoding != _safe(lambda: msg.stringEncoding):
        msg.close()
        msg = extract_msg.openMsg(data, overrideEncoding=encoding, **options)
    return msg


def _internet_encoding(msg) -> str | None:
    """Python codec of the message's PR_INTERNET_CPID, or None."""
    from extract_msg.encoding import lookupCodePage

    try:
        cpid = msg.getPropertyVal("3FDE0003")
        return lookupCodePage(cpid) if cpid else None
    except Exception:  # noqa: BLE001 - unknown code page
        return None


# Outlook item fields worth keeping as text (attribute name on the extract-msg class, label).
_ITEM_FIELDS = (("location", "Location"), ("appointmentStartWhole", "Start"), ("appointmentEndWhole", "End"),
                ("taskStartDate", "Start"), ("taskDueDate", "Due"), ("requiredAttendees", "Attendees"))


def _msg_mail(msg) -> _Mail:
    def get(name):
        return _get(msg, name)

    message_class = get("classType") or ""
    mail = _Mail()
    values = {"From": get("sender"), "To": get("to"), "Cc": get("cc"), "Bcc": get("bcc"),
              "Date": get("date"), "Subject": get("subject")}
    values = {k: _as_text(v) for k, v in values.items()}
    mail.headers = list(values.items())
    for attr_name, label in _ITEM_FIELDS:
        value = _as_text(get(attr_name))
        if value and label not in dict(mail.headers):
            mail.headers.append((label, value))
    mail.metadata = _address_metadata(values)
    mail.metadata["message_class"] = message_class
    body = _as_text(get("body"))
    if body:
        mail.plain.append(body)
    html = _msg_html(msg)
    if html:
        mail.html.append(html_to_text(html))
    if not body and not html:
        rtf_text = _msg_rtf_text(msg)
        if rtf_text:
            mail.plain.append(rtf_text)
    mail.attachments = _msg_attachments(msg)
    if _msg_is_encrypted(message_class, mail):
        raise EncryptedError(f"encrypted message ({message_class or 'PGP attachment'})")
    return mail


def _as_text(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return decode_text(value)
    return str(value).strip()


def _msg_html(msg) -> str | None:
    """The PR_HTML body (read from its stream: the htmlBody property may run a fragile RTF path)."""
    raw = _safe(lambda: msg.getStream("__substg1.0_10130102"))
    if raw:  # binary: encoded in the internet code page, whatever the string encoding is
        return decode_html_bytes(raw, _internet_encoding(msg))
    text = _safe(lambda: msg.getStringStream("__substg1.0_1013"))
    return text or None


def _msg_rtf_text(msg) -> str:
    """Text of the compressed RTF body, used only when there is no plain or HTML body."""
    deencapsulated = _safe(lambda: msg.deencapsulatedRtf)
    if deencapsulated is not None:
        content = _safe(lambda: deencapsulated.content)
        if content:
            if deencapsulated.content_type == "html":
                return html_to_text(content)
            return content if isinstance(content, str) else decode_text(content)
    rtf = _safe(lambda: msg.rtfBody)
    return rtf_to_text(rtf) if rtf else ""


def _msg_attachments(msg) -> list[Attachment]:
    out = []
    for i, att in enumerate(_get(msg, "attachments") or [], 1):
        data = _get(att, "data")
        name = (_get(att, "longFilename") or _get(att, "shortFilename") or _get(att, "displayName")
                or f"attachment{i}")
        if isinstance(data, bytes) and data:
            out.append(Attachment(name, data))
        elif hasattr(data, "exportBytes"):  # embedded Outlook item
            exported = _safe(data.exportBytes)
            if exported:
                out.append(Attachment(name if name.lower().endswith(".msg") else f"{name}.msg", exported))
    return out


def _msg_is_encrypted(message_class: str, mail: _Mail) -> bool:
    cls = message_class.upper()
    if cls.startswith("IPM.NOTE.SMIME") and "MULTIPARTSIGNED" not in cls:
        return True
    has_body = any(t.strip() for t in mail.plain + mail.html)
    return not has_body and _only_pgp(mail.attachments)


# ---------------------------------------------------------------------------------------------- rtf

_RTF_TOKEN = re.compile(rb"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}]+)", re.S)
_RTF_SKIP_DESTINATIONS = {b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object",
                          b"header", b"footer", b"themedata", b"datastore", b"latentstyles", b"listtable",
                          b"listoverridetable", b"rsidtbl", b"generator", b"xmlnstbl", b"mmathPr"}
_RTF_BREAKS = {b"par": "\n", b"line": "\n", b"row": "\n", b"tab": "\t", b"cell": "\t"}
_RTF_SYMBOLS = {b"{": "{", b"}": "}", b"\\": "\\", b"~": "\u00a0", b"\n": "\n", b"\r": "\n", b"-": "",
                b"_": "-"}


def rtf_to_text(rtf: bytes) -> str:
    """Crude RTF to text (fallback for bodies stored only as RTF): skips non-text destinations,
    decodes \\'hh escapes with the document code page and \\uN escapes."""
    m = re.search(rb"\\ansicpg(\d+)", rtf[:4096])
    codepage = f"cp{int(m.group(1))}" if m else "cp1252"
    try:
        codecs.lookup(codepage)
    except LookupError:
        codepage = "cp1252"
    out: list[str] = []
    pending = bytearray()  # 8-bit bytes decoded together (multi-byte code pages)
    stack: list[bool] = []
    skip = False
    skip_after_unicode = 0

    def emit(text: str) -> None:
        if pending:
            out.append(pending.decode(codepage, errors="replace"))
            pending.clear()
        out.append(text)

    for word, arg, hexbyte, symbol, brace, text in _RTF_TOKEN.findall(rtf):
        if brace:
            if brace == b"{":
                stack.append(skip)
            else:
                skip = stack.pop() if stack else False
        elif skip:
            continue
        elif word:
            if word in _RTF_SKIP_DESTINATIONS:
                skip = True
            elif word in _RTF_BREAKS:
                emit(_RTF_BREAKS[word])
            elif word == b"u" and arg:
                emit(chr(int(arg) % 65536))
                skip_after_unicode = 1  # the ANSI fallback character that follows (\\uc1)
        elif hexbyte:
            if skip_after_unicode:
                skip_after_unicode = 0
            else:
                pending.append(int(hexbyte, 16))
        elif symbol:
            if symbol == b"*":
                skip = True
            else:
                emit(_RTF_SYMBOLS.get(symbol, ""))
        elif text:
            chunk = text.replace(b"\r", b"").replace(b"\n", b"")
            if skip_after_unicode and chunk:
                chunk, skip_after_unicode = chunk[1:], 0
            emit(chunk.decode(codepage, errors="replace"))
    emit("")
    return "".join(out)
