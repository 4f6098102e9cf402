"""Small synthetic input tables for the index tests (written with the real table layer)."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from lakedoc.index.documents import model_identity
from lakedoc.schema import CHUNKS, DOCUMENTS, DOCUMENTS_REDACTED, EMBEDDINGS, PREDICTIONS

LABELS = ["grain", "crude", "earn"]
FORMATS = ["docx", "pdf", "pptx"]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class Corpus:
    """n_docs documents x chunks_per_doc chunks with random unit vectors, one label per doc."""

    def __init__(self, n_docs: int = 6, chunks_per_doc: int = 3, dim: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.docs = []
        self.chunks = []
        for d in range(n_docs):
            doc_id = f"doc{d:03d}"
            self.docs.append({"doc_id": doc_id, "source_path": f"/in/file{d}.{FORMATS[d % 3]}",
                              "file_name": f"file{d}.{FORMATS[d % 3]}", "format": FORMATS[d % 3],
                              "label": LABELS[d % 3]})
            for s in range(chunks_per_doc):
                text = f"chunk {s} of document {d} about {LABELS[d % 3]} markets token{d}x{s}"
                self.chunks.append({"chunk_id": f"{doc_id}-{s}", "doc_id": doc_id, "seq": s,
                                    "unit_ref": f"page {s + 1}", "text": text, "text_hash": f"h-{text}",
                                    "vector": unit(rng.standard_normal(dim)).astype(np.float32)})
        self.deleted: set[str] = set()

    def vector(self, chunk_id: str) -> np.ndarray:
        return next(c["vector"] for c in self.chunks if c["chunk_id"] == chunk_id)

    def write(self, store, cfg, run_id: str = "r1") -> None:
        model, scheme = model_identity(cfg)
        now = datetime(2026, 11, 1, tzinfo=timezone.utc)
        store.merge(DOCUMENTS, pa.Table.from_pylist([
            {"doc_id": d["doc_id"], "source_path": d["source_path"], "file_name": d["file_name"],
             "format": d["format"], "modified_at": now, "is_deleted": d["doc_id"] in self.deleted,
             "source_task": d["format"], "run_id": run_id} for d in self.docs]))
        store.merge(DOCUMENTS_REDACTED, pa.Table.from_pylist([
            {"doc_id": d["doc_id"], "source_path": d["source_path"], "file_name": d["file_name"],
             "format": d["format"], "status": "ok", "run_id": run_id} for d in self.docs]))
        chunk_rows = [{k: c[k] for k in ("chunk_id", "doc_id", "seq", "unit_ref", "text", "text_hash")}
                      | {"token_count": 12, "run_id": run_id} for c in self.chunks]
        store.merge(CHUNKS, pa.Table.from_pylist(chunk_rows), replace_within=CHUNKS.replace_within)
        emb = pa.Table.from_pydict({
            "chunk_id": [c["chunk_id"] for c in self.chunks], "doc_id": [c["doc_id"] for c in self.chunks],
            "vector": pa.array([c["vector"].tolist() for c in self.chunks], pa.list_(pa.float32())),
            "model": [model] * len(self.chunks), "dimension": pa.array([self.dim] * len(self.chunks), pa.int32()),
            "prefix_scheme": [scheme] * len(self.chunks), "text_hash": [c["text_hash"] for c in self.chunks],
            "run_id": [run_id] * len(self.chunks)})
        store.merge(EMBEDDINGS, emb, scope=EMBEDDINGS.scope_of(model),
                    compare=[*(EMBEDDINGS.compare or ()), "vector"])
        preds = []
        for d in self.docs:
            for lab in LABELS:
                preds.append({"doc_id": d["doc_id"], "label": lab, "score": 0.9 if lab == d["label"] else 0.1,
                              "predicted": lab == d["label"], "threshold": 0.5, "method": "zero_shot",
                              "model": "m", "run_id": run_id})
        store.merge(PREDICTIONS, pa.Table.from_pylist(preds))


class VectorEncoder:
    """A stand-in for lakedoc.encoder.Encoder: a query string maps to a chosen vector."""

    def __init__(self, mapping: dict[str, np.ndarray], dim: int):
        self.mapping, self.dimension = mapping, dim
        self.model_id, self.prefix_scheme = "test", "test"
        self.calls: list[tuple[list[str], str]] = []

    def encode(self, texts, kind="passage"):
        self.calls.append((list(texts), kind))
        return np.stack([self.mapping[t] for t in texts]).astype(np.float32)
