"""Token-aware chunks of a redacted document, with the page/slide/sheet reference of each chunk.

A document's ``redacted_units`` (pages, slides, sheets, mail header/body...) are cut with the encoder's
own tokenizer so that every chunk fits the model (``chunking.max_tokens``, capped by the model's
``max_seq_length`` minus its special tokens and the longest input prefix):

* a unit longer than the budget becomes several windows of ``max_tokens`` tokens that share
  ``overlap_tokens`` tokens with the previous window; chunk text is the unit's own characters between
  the window's first and last token (offsets), so nothing is re-spelled by the tokenizer;
* with ``merge_units`` consecutive short units are packed into one chunk (joined by a blank line) while
  they fit, and the chunk keeps every unit's reference (``unit_refs``; ``unit_ref`` is the first one,
  or ``first .. last`` for a range);
* a document without units is chunked from its ``redacted_text`` (reference ``None``).

The ``chunks`` table (:data:`lakedoc.schema.CHUNKS`) is written by ``classify`` and reused by ``embed`` and
the vector index; chunk ids are ``<doc_id>-<seq>``, stable while a document's chunking is unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lakedoc.config_schema import ChunkingSettings
from lakedoc.encoder import text_hash

_DEFAULTS = ChunkingSettings()

SEPARATOR = "\n\n"


@dataclass
class Chunk:
    seq: int
    text: str
    token_count: int
    unit_kind: str | None = None
    unit_refs: list[str | None] = field(default_factory=list)

    @property
    def unit_ref(self) -> str | None:
        refs = [r for r in self.unit_refs if r]
        if not refs:
            return None
        return refs[0] if len(refs) == 1 else f"{refs[0]} .. {refs[-1]}"

    def row(self, doc_id: str, chunker: str, run_id: str) -> dict:
        return {"chunk_id": chunk_id(doc_id, self.seq), "doc_id": doc_id, "seq": self.seq,
                "unit_kind": self.unit_kind, "unit_ref": self.unit_ref,
                "unit_refs": [r for r in self.unit_refs if r], "text": self.text,
                "token_count": self.token_count, "text_hash": text_hash(self.text), "chunker": chunker,
                "run_id": run_id}


def chunk_id(doc_id: str, seq: int) -> str:
    return f"{doc_id}-{seq:05d}"


@dataclass(frozen=True)
class ChunkSettings:
    """The chunker's settings: the ``chunking`` section (:class:`~lakedoc.config_schema.ChunkingSettings`,
    whose defaults these are), possibly :meth:`fitted` to a model."""

    max_tokens: int = _DEFAULTS.max_tokens
    overlap_tokens: int = _DEFAULTS.overlap_tokens
    merge_units: bool = _DEFAULTS.merge_units

    @classmethod
    def from_config(cls, cfg: Any, encoder=None) -> ChunkSettings:
        sec = ChunkingSettings.from_config(cfg)
        s = cls(sec.max_tokens, sec.overlap_tokens, sec.merge_units)
        return s.fitted(encoder) if encoder is not None else s

    def fitted(self, encoder) -> ChunkSettings:
        """Cap ``max_tokens`` so that prefix + chunk + special tokens fit the model's max_seq_length."""
        room = encoder.max_seq_length - encoder.special_tokens - max(encoder.prefix_tokens("passage"),
                                                                    encoder.prefix_tokens("query"))
        mt = max(8, min(self.max_tokens, room))
        return ChunkSettings(mt, min(self.overlap_tokens, mt // 2), self.merge_units)

    def signature(self, encoder) -> str:
        """Identifies the chunker (tokenizer + settings): chunks made otherwise are recomputed."""
        return f"{encoder.model_id}|{self.max_tokens}|{self.overlap_tokens}|{int(self.merge_units)}"


def _units_of(text: str | None, units: Iterable[Mapping] | None) -> list[tuple[str | None, str | None, str]]:
    out = []
    for u in units or []:
        if u is None:
            continue
        t = (u.get("text") if isinstance(u, Mapping) else getattr(u, "text", None)) or ""
        if t.strip():
            kind = u.get("kind") if isinstance(u, Mapping) else getattr(u, "kind", None)
            ref = u.get("ref") if isinstance(u, Mapping) else getattr(u, "ref", None)
            out.append((kind, ref, t))
    if not out and (text or "").strip():
        out.append((None, None, text))
    return out


def chunk_document(text: str | None, units: Iterable[Mapping] | None, tokenizer,
                   settings: ChunkSettings) -> list[Chunk]:
    """Chunks of one document (see the module docstring). ``tokenizer`` is a Hugging Face fast tokenizer."""
    parts = _units_of(text, units)
    if not parts:
        return []
    enc = tokenizer([p[2] for p in parts], add_special_tokens=False, return_offsets_mapping=True,
                    return_attention_mask=False, return_token_type_ids=False, verbose=False)
    size = settings.max_tokens
    stride = max(1, size - min(settings.overlap_tokens, size - 1))
    pieces: list[tuple[str | None, str | None, str, int]] = []  # kind, ref, text, tokens
    for (kind, ref, utext), offsets in zip(parts, enc["offset_mapping"], strict=True):
        n = len(offsets)
        if n == 0:
            continue
        if n <= size:
            pieces.append((kind, ref, utext.strip(), n))
            continue
        start = 0
        while start < n:
            end = min(start + size, n)
            piece = utext[offsets[start][0]:offsets[end - 1][1]]
            pieces.append((kind, ref, piece, end - start))
            if end == n:
                break
            start += stride
    chunks: list[Chunk] = []
    cur: Chunk | None = None
    for kind, ref, ptext, ntok in pieces:
        if (settings.merge_units and cur is not None and ntok < size
                and cur.token_count + ntok + 1 <= size):
            cur.text = cur.text + SEPARATOR + ptext
            cur.token_count += ntok
            if ref not in cur.unit_refs:
                cur.unit_refs.append(ref)
            if cur.unit_kind != kind:
                cur.unit_kind = "mixed"
            continue
        cur = Chunk(len(chunks), ptext, ntok, kind, [ref])
        chunks.append(cur)
    return chunks


def chunk_rows(doc_id: str, text: str | None, units, tokenizer, settings: ChunkSettings, chunker: str,
               run_id: str) -> list[dict]:
    return [c.row(doc_id, chunker, run_id) for c in chunk_document(text, units, tokenizer, settings)]


def word_count(text: str | None) -> int:
    return len((text or "").split())


__all__ = ["Chunk", "ChunkSettings", "chunk_document", "chunk_rows", "chunk_id", "word_count"]


def _demo(texts: Sequence[str]) -> None:  # pragma: no cover
    from lakedoc.encoder import EncoderSettings, get_encoder

    enc = get_encoder(EncoderSettings())
    for c in chunk_document(None, [{"kind": "page", "ref": f"page {i+1}", "text": t} for i, t in enumerate(texts)],
                            enc.tokenizer, ChunkSettings(16, 4).fitted(enc)):
        print(c)
