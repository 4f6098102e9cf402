"""What redaction returns: :class:`Finding` (one detected span) and :class:`Redaction` (one
document's outcome), and :func:`redact_documents`, which redacts a batch of documents and their units
with an engine's analysis and operators.

A document either is redacted completely (text, every unit) or fails with status ``redaction_error``,
an error message that never quotes the document (:func:`safe_error`) and **no text at all**: nothing
is ever passed on unredacted.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

STATUS_OK = "ok"
STATUS_ERROR = "redaction_error"


@dataclass(frozen=True)
class Finding:
    """One detected span of ``text[start:end]`` (offsets in the analysed text)."""

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str


@dataclass(frozen=True)
class Redaction:
    """One document's redaction: ``status`` ``ok`` with the redacted text, units and the text's
    findings, or ``redaction_error`` with an ``error`` message and no text, units nor findings."""

    status: str
    redacted_text: str | None
    units: tuple[dict[str, Any], ...] | None
    findings: tuple[Finding, ...]
    error: str | None = None

    @classmethod
    def done(cls, redacted_text: str, units: Sequence[dict[str, Any]], findings: Sequence[Finding]) -> Redaction:
        return cls(STATUS_OK, redacted_text, tuple(units), tuple(findings))

    @classmethod
    def failed(cls, error: str) -> Redaction:
        return cls(STATUS_ERROR, None, None, (), error)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


def safe_error(exc: BaseException, text: str, limit: int = 300) -> str:
    """``Type: message`` for the table — withheld when the message quotes the document's text."""
    msg = " ".join(str(exc).split())[:limit]
    if text and len(msg) >= 8 and any(msg[i:i + 8] in text for i in range(len(msg) - 7)):
        msg = "(message withheld: it quotes the document)"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class Analyzer(Protocol):
    """What :func:`redact_documents` needs of an engine (:class:`lakedoc.pii.engine.PiiEngine`)."""

    def analyze_many(self, texts: Sequence[str], language: str | None = None
                     ) -> list[list[Finding] | Exception]: ...

    def anonymize(self, text: str, findings: Sequence[Finding]) -> str: ...


def redact_documents(engine: Analyzer, docs: Sequence[Mapping], max_chars: int | None = None) -> list[Redaction]:
    """Redact a batch of ``{"text": str, "units": [{..., "text": str}] | None}``: one :class:`Redaction`
    per document, in order. A text over ``max_chars`` fails without being analysed. A unit whose text is
    a verbatim part of its document's text takes the text's findings (one analysis); any other unit is
    analysed on its own (all of them in one extra batch)."""
    results: dict[int, Redaction] = {}
    texts = [d.get("text") or "" for d in docs]
    todo = []
    for i, text in enumerate(texts):
        if max_chars and len(text) > max_chars:
            results[i] = Redaction.failed(f"text has {len(text)} characters, over pii.max_doc_chars ({max_chars})")
        else:
            todo.append(i)
    analysed = engine.analyze_many([texts[i] for i in todo])
    # per document: (unit, "span", offset in the text) or (unit, "extra", index in extra_texts)
    plans: dict[int, tuple[list[Finding], list[tuple[Mapping, str, int]]]] = {}
    extra_texts: list[str] = []
    for i, found in zip(todo, analysed, strict=True):
        if isinstance(found, Exception):
            results[i] = Redaction.failed(safe_error(found, texts[i]))
            continue
        text = texts[i]
        plan, cursor = [], 0
        for u in docs[i].get("units") or []:
            ut = (u.get("text") if isinstance(u, Mapping) else None) or ""
            pos = text.find(ut, cursor) if ut else 0
            if ut and pos < 0:
                pos = text.find(ut)
            if pos >= 0:
                plan.append((u, "span", pos))
                cursor = pos + len(ut) if ut else cursor
            else:
                plan.append((u, "extra", len(extra_texts)))
                extra_texts.append(ut)
        plans[i] = (found, plan)
    extra = engine.analyze_many(extra_texts) if extra_texts else []
    for i, (found, plan) in plans.items():
        text = texts[i]
        try:
            units = []
            for u, how, where in plan:
                ut = u.get("text") or ""
                uf: list[Finding] | Exception
                if how == "span":
                    uf = [Finding(f.entity_type, max(f.start, where) - where, min(f.end, where + len(ut)) - where,
                                  f.score, f.recognizer)
                          for f in found if f.start < where + len(ut) and f.end > where]
                else:
                    uf = extra[where]
                    if isinstance(uf, Exception):
                        raise uf
                units.append({**u, "text": engine.anonymize(ut, uf) if ut else ut})
            results[i] = Redaction.done(engine.anonymize(text, found), units, found)
        except Exception as exc:  # noqa: BLE001 - never passed on unredacted
            results[i] = Redaction.failed(safe_error(exc, text))
    return [results[i] for i in range(len(docs))]
