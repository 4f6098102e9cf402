"""Reviewer feedback on predicted labels: the ``feedback`` Delta table and ``lakedoc feedback add|import``.

A feedback row says what one reviewer thinks of one label of one document, as a **score** 1..5
(1: the label is wrong, 5: it is right) or a **verdict** ``accept`` / ``reject`` — exactly one of the two.
:func:`feedback_value` turns it into the reward signal of the GRPO-style update
(:mod:`lakedoc.finetune.grpo`): ``(score - 3) / 2`` in [-1, 1], ``accept`` +1, ``reject`` -1.

* **Reviewers are pseudonymous.** The reviewer id is stored only as ``reviewer_hash``, an HMAC-SHA256
  keyed with the secret ``finetune.feedback.reviewer_hash_secret`` (``{env: LAKEDOC_REVIEWER_KEY}`` or a
  Databricks secret scope, :mod:`lakedoc.secrets`); without a key nothing is written
  (:class:`FeedbackError` says which variable or scope to set). The raw id is never written anywhere.
* **Idempotent.** ``feedback_id`` (the table key, :data:`lakedoc.schema.FEEDBACK`) hashes ``doc_id``,
  ``label``, ``reviewer_hash`` and ``model_version``; rows go through the table store's MERGE on it, so
  importing the same file twice adds nothing, and a reviewer's new score for the same document, label
  and model version updates the row.
* **Validated.** A label outside the taxonomy (``classify.taxonomy``, or ``--taxonomy``), a score
  outside 1..5 or not an integer, neither or both of score/verdict, a missing doc id or reviewer, a line
  that is not JSON: the row is rejected with its line number and the reason; the valid rows are
  written; the command prints ``added / updated / unchanged / rejected`` and exits 1 when a row was
  rejected (2 when the file cannot be read at all).

Import files are CSV (header ``doc_id,label,score,verdict,reviewer[,model_version][,created_at]``) or
JSONL (one object per line, the same keys); ``reviewer_id`` is accepted for ``reviewer``.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import io
import json
import logging
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakedoc.schema import FEEDBACK

log = logging.getLogger(__name__)

VERDICTS = ("accept", "reject")
SOURCES = ("cli", "import")
SCORE_MIN, SCORE_MAX = 1, 5
MAX_REASONS_PRINTED = 20


class FeedbackError(ValueError):
    """Feedback that cannot be recorded (a bad row, a bad file, no reviewer key): the message says why."""


# --- reviewer hash, key and value ---------------------------------------------------------------------

def reviewer_key(cfg: Any) -> bytes:
    """The HMAC key reviewers are hashed with: ``finetune.feedback.reviewer_hash_secret`` resolved
    through :func:`lakedoc.secrets.resolve_secret`. Raises :class:`FeedbackError` when none is configured."""
    from lakedoc.config_schema import FeedbackSettings
    from lakedoc.secrets import SecretNotFound, describe, resolve_secret

    ref = FeedbackSettings.from_config(cfg).reviewer_hash_secret
    if not ref:
        raise FeedbackError("finetune.feedback.reviewer_hash_secret is not configured: reviewer ids are stored "
                            "only as a keyed hash, so a key is required (e.g. {env: LAKEDOC_REVIEWER_KEY})")
    try:
        value = resolve_secret(ref, required=True)
    except SecretNotFound as exc:
        raise FeedbackError(f"no key to hash reviewer ids with (finetune.feedback.reviewer_hash_secret: "
                            f"{describe(ref)}): {exc}") from None
    return value.encode("utf-8")


def hash_reviewer(reviewer: str, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the reviewer id (surrounding spaces ignored) keyed with ``key``."""
    if not key:
        raise FeedbackError("the reviewer hash key is empty")
    return hmac.new(key, reviewer.strip().encode("utf-8"), hashlib.sha256).hexdigest()


def feedback_id(doc_id: str, label: str, reviewer_hash: str, model_version: str | None) -> str:
    """The stable key of a feedback row: SHA-256 (32 hex) of doc id, label, reviewer hash, model version."""
    payload = json.dumps([doc_id, label, reviewer_hash, model_version or ""], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def feedback_value(score: int | None, verdict: str | None) -> float:
    """The reward sign and strength of one feedback: ``(score - 3) / 2``; accept +1, reject -1."""
    if score is not None:
        return (float(score) - 3.0) / 2.0
    if verdict == "accept":
        return 1.0
    if verdict == "reject":
        return -1.0
    raise FeedbackError("feedback without score and verdict")


# --- validation --------------------------------------------------------------------------------------

def _text(raw: Mapping[str, Any], *names: str) -> str | None:
    for n in names:
        v = raw.get(n)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return None


def _score(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise FeedbackError(f"score must be an integer {SCORE_MIN}..{SCORE_MAX}, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise FeedbackError(f"score must be an integer {SCORE_MIN}..{SCORE_MAX}, got {value!r}") from None
    if f != int(f):
        raise FeedbackError(f"score must be an integer {SCORE_MIN}..{SCORE_MAX}, got {value!r}")
    if not SCORE_MIN <= f <= SCORE_MAX:
        raise FeedbackError(f"score {int(f)} is out of range {SCORE_MIN}..{SCORE_MAX}")
    return int(f)


def _created_at(value: Any, now: datetime) -> datetime:
    if value is None or (isinstance(value, str) and not value.strip()):
        return now
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise FeedbackError(f"created_at {value!r} is not an ISO date-time") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def make_row(raw: Mapping[str, Any], *, key: bytes, labels: Collection[str] | None, source: str,
             run_id: str | None, now: datetime | None = None) -> dict[str, Any]:
    """One validated ``feedback`` row from raw fields (``doc_id``, ``label``, ``score`` | ``verdict``,
    ``reviewer``, optional ``model_version``, ``created_at``). Raises :class:`FeedbackError` with the reason."""
    if source not in SOURCES:
        raise FeedbackError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    doc_id = _text(raw, "doc_id")
    if doc_id is None:
        raise FeedbackError("doc_id is missing")
    label = _text(raw, "label")
    if label is None:
        raise FeedbackError("label is missing")
    if labels is not None and label not in labels:
        raise FeedbackError(f"unknown label {label!r}: not in the taxonomy ({len(labels)} labels)")
    score = _score(raw.get("score"))
    verdict = _text(raw, "verdict")
    if verdict is not None:
        verdict = verdict.lower()
        if verdict not in VERDICTS:
            raise FeedbackError(f"verdict must be accept or reject, got {verdict!r}")
    if score is None and verdict is None:
        raise FeedbackError(f"give a score ({SCORE_MIN}..{SCORE_MAX}) or a verdict (accept/reject)")
    if score is not None and verdict is not None:
        raise FeedbackError("give a score or a verdict, not both")
    reviewer = _text(raw, "reviewer", "reviewer_id")
    if reviewer is None:
        raise FeedbackError("reviewer is missing")
    reviewer_hash = hash_reviewer(reviewer, key)
    model_version = _text(raw, "model_version") or ""
    stamp = datetime.now(timezone.utc) if now is None else now
    return {
        "feedback_id": feedback_id(doc_id, label, reviewer_hash, model_version),
        "doc_id": doc_id, "label": label, "score": score, "verdict": verdict,
        "reviewer_hash": reviewer_hash, "model_version": model_version, "source": source,
        "created_at": _created_at(raw.get("created_at"), stamp), "run_id": run_id,
    }


# --- import files -------------------------------------------------------------------------------------

def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | FeedbackError]]:
    """``(line number, raw row)`` of a CSV or JSONL file; a line that cannot be parsed gives
    ``(line, FeedbackError)``. Raises :class:`FeedbackError` for a file that cannot be read at all."""
    p = Path(path)
    if not p.is_file():
        raise FeedbackError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise FeedbackError(f"{p}: expected a .csv or .jsonl file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedbackError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("doc_id", "label") if c not in header]
        if not header or missing or not ({"reviewer", "reviewer_id"} & set(header)):
            raise FeedbackError(f"{p}:1: the CSV header must name doc_id, label, score and/or verdict, reviewer "
                                f"(found: {', '.join(header) or 'nothing'})")
        reader.fieldnames = header
        for row in reader:
            if None in row:  # more fields than the header has
                yield reader.line_num, FeedbackError(f"{len(row[None]) + len(header)} fields, the header "
                                                     f"has {len(header)}")
                continue
            if not any((v or "").strip() for v in row.values()):
                continue
            yield reader.line_num, dict(row)
        return
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield i, FeedbackError(f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            yield i, FeedbackError(f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield i, obj


# --- writing ------------------------------------------------------------------------------------------

@dataclass
class ImportSummary:
    """What an add/import did: rows added/updated/unchanged, and the rejected lines with their reasons."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    version: int | None = None

    def format(self) -> str:
        lines = [f"feedback: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                 f"{len(self.rejected)} rejected"]
        for line, reason in self.rejected[:MAX_REASONS_PRINTED]:
            lines.append(f"  rejected line {line}: {reason}")
        if len(self.rejected) > MAX_REASONS_PRINTED:
            lines.append(f"  ... and {len(self.rejected) - MAX_REASONS_PRINTED} more")
        return "\n".join(lines)


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=FEEDBACK.schema)


def record(store: Any, raw_rows: Iterable[tuple[int, Mapping[str, Any] | FeedbackError]], *, key: bytes,
           labels: Collection[str] | None, source: str, run_id: str | None) -> ImportSummary:
    """Validate ``(line, raw row)`` pairs and MERGE the valid rows into the ``feedback`` table of ``store``
    (a :class:`lakedoc.tables.TableStore`). Within one batch the last row of a key wins."""
    summary = ImportSummary()
    now = datetime.now(timezone.utc)
    by_key: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, raw in raw_rows:
        if isinstance(raw, FeedbackError):
            summary.rejected.append((line, str(raw)))
            continue
        try:
            row = make_row(raw, key=key, labels=labels, source=source, run_id=run_id, now=now)
        except FeedbackError as exc:
            summary.rejected.append((line, str(exc)))
            continue
        earlier = by_key.get(row["feedback_id"])
        if earlier is not None:
            summary.rejected.append((earlier[0], f"superseded by line {line} (same document, label, reviewer "
                                                 f"and model version)"))
        by_key[row["feedback_id"]] = (line, row)
    summary.rejected.sort()
    rows = [r for _, r in sorted(by_key.values(), key=lambda lr: lr[0])]
    if rows:
        result = store.merge(FEEDBACK, to_table(rows))
        summary.added, summary.updated, summary.unchanged = result.inserted, result.updated, result.unchanged
        summary.version = result.version
    return summary


def load_feedback(store: Any) -> list[dict[str, Any]]:
    """Every row of the ``feedback`` table (empty when the table does not exist yet)."""
    if not store.exists(FEEDBACK):
        return []
    return store.read_arrow(FEEDBACK).to_pylist()


def targets(rows: Iterable[Mapping[str, Any]], label_names: Collection[str] | None = None,
            model_version: str | None = None) -> dict[str, dict[str, float]]:
    """``doc_id -> label -> value in [-1, 1]``: the mean :func:`feedback_value` of the reviewers of each
    (document, label); rows of other labels than ``label_names`` (when given) and, with ``model_version``,
    of other model versions are left out. Values of 0 (score 3) are kept: they carry no reward."""
    acc: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if label_names is not None and r["label"] not in label_names:
            continue
        if model_version is not None and (r.get("model_version") or "") != model_version:
            continue
        acc.setdefault((r["doc_id"], r["label"]), []).append(feedback_value(r.get("score"), r.get("verdict")))
    out: dict[str, dict[str, float]] = {}
    for (doc, lab), vs in sorted(acc.items()):
        out.setdefault(doc, {})[lab] = sum(vs) / len(vs)
    return out


# --- command line -------------------------------------------------------------------------------------

def _context(args) -> tuple[Any, Any, list[str] | None]:
    """``(config, table store, taxonomy label names)`` of a ``lakedoc feedback`` command."""
    from lakedoc.config import load_config
    from lakedoc.tables import open_store

    sets = list(args.set)
    if args.warehouse:
        sets.append(f"tables.warehouse={Path(args.warehouse).resolve()}")
    cfg = load_config(args.target, user_file=args.config, sets=sets)
    labels = None
    if not args.any_label:
        from lakedoc.classify.taxonomy import load_taxonomy

        tax = args.taxonomy or cfg.resolve_path(cfg.classify.taxonomy)
        labels = load_taxonomy(tax).names
    return cfg, open_store(cfg), labels


def cmd_add(args) -> int:
    from lakedoc.tasks import new_run_id

    try:
        cfg, store, labels = _context(args)
        key = reviewer_key(cfg)
    except FeedbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verdict = "accept" if args.accept else "reject" if args.reject else None
    raw = {"doc_id": args.doc_id, "label": args.label, "score": args.score, "verdict": verdict,
           "reviewer": args.reviewer, "model_version": args.model_version}
    summary = record(store, [(1, raw)], key=key, labels=labels, source="cli", run_id=new_run_id())
    if summary.rejected:
        print(f"error: {summary.rejected[0][1]}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0


def cmd_import(args) -> int:
    from lakedoc.cli import cli_path
    from lakedoc.tasks import new_run_id

    try:
        cfg, store, labels = _context(args)
        key = reviewer_key(cfg)
        summary = record(store, read_rows(cli_path(args.file)), key=key, labels=labels, source="import",
                         run_id=new_run_id())
    except FeedbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.format())
    return 1 if summary.rejected else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warehouse", help="folder of the local Delta tables (default: tables.warehouse)")
    p.add_argument("--taxonomy", help="taxonomy YAML the labels must belong to (default: classify.taxonomy)")
    p.add_argument("--any-label", action="store_true", help="do not check labels against a taxonomy")
    p.add_argument("--target", default="local", help="configuration target (default: local)")
    p.add_argument("--config", help="extra YAML merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")


def add_parser(sub) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "feedback", help="record reviewer feedback on labels (the feedback table; lakedoc finetune --from-feedback)")
    fsub = p.add_subparsers(dest="feedback_command", required=True)

    a = fsub.add_parser("add", help="record one reviewer's feedback on one label of one document")
    a.add_argument("--doc-id", required=True, help="the document (documents_redacted.doc_id)")
    a.add_argument("--label", required=True, help="a label of the taxonomy")
    how = a.add_mutually_exclusive_group(required=True)
    how.add_argument("--score", type=int, help=f"{SCORE_MIN} (wrong) .. {SCORE_MAX} (right)")
    how.add_argument("--accept", action="store_true", help="the label is right")
    how.add_argument("--reject", action="store_true", help="the label is wrong")
    a.add_argument("--reviewer", required=True, help="reviewer id (stored only as a keyed hash)")
    a.add_argument("--model-version", default=None, help="the model whose prediction was reviewed")
    _common(a)
    a.set_defaults(func=cmd_add)

    i = fsub.add_parser("import", help="import feedback rows from a CSV or JSONL file (idempotent)")
    i.add_argument("file", help="FILE.csv or FILE.jsonl: doc_id, label, score | verdict, reviewer[, model_version]")
    _common(i)
    i.set_defaults(func=cmd_import)


__all__ = ["FeedbackError", "ImportSummary", "VERDICTS", "add_parser", "feedback_id", "feedback_value",
           "hash_reviewer", "load_feedback", "make_row", "read_rows", "record", "reviewer_key", "targets"]
