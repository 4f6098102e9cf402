"""Token-aware chunking with unit references, on the real tokenizer of the local model."""
from __future__ import annotations

import pytest

from lakedoc.chunking import ChunkSettings, chunk_document, chunk_rows
from lakedoc.encoder import EncoderSettings, get_encoder


@pytest.fixture(scope="module")
def enc():
    return get_encoder(EncoderSettings())


def _ntok(enc, text):
    return len(enc.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_long_unit_becomes_overlapping_windows_within_budget(enc):
    words = [f"word{i}" for i in range(400)]
    text = " ".join(words)
    st = ChunkSettings(max_tokens=64, overlap_tokens=16, merge_units=True)
    chunks = chunk_document(text, [{"kind": "page", "index": 1, "ref": "page 1", "text": text}], enc.tokenizer, st)
    assert len(chunks) > 3
    for c in chunks:
        assert c.token_count <= 64
        assert _ntok(enc, c.text) <= 64 + 2  # re-tokenizing the exact characters stays within budget
        assert c.text in text and c.unit_ref == "page 1"
    # consecutive windows overlap: the start of window k+1 is inside window k
    assert chunks[1].text.split()[0] in chunks[0].text
    # the whole text is covered: first and last words present
    assert chunks[0].text.startswith("word0") and chunks[-1].text.endswith("word399")
    assert [c.seq for c in chunks] == list(range(len(chunks)))


def test_small_units_are_packed_and_keep_every_reference(enc):
    units = [{"kind": "slide", "index": i, "ref": f"slide {i}", "text": f"Slide {i} about copper mining output."}
             for i in range(1, 7)]
    st = ChunkSettings(max_tokens=40, overlap_tokens=8, merge_units=True)
    chunks = chunk_document(None, units, enc.tokenizer, st)
    assert 1 < len(chunks) < 6
    assert chunks[0].unit_refs[:2] == ["slide 1", "slide 2"]
    assert chunks[0].unit_ref == f"slide 1 .. {chunks[0].unit_refs[-1]}"
    refs = [r for c in chunks for r in c.unit_refs]
    assert refs == [u["ref"] for u in units]
    # without merging: one chunk per unit
    solo = chunk_document(None, units, enc.tokenizer, ChunkSettings(40, 8, merge_units=False))
    assert [c.unit_ref for c in solo] == [u["ref"] for u in units]


def test_text_without_units_and_empty_documents(enc):
    st = ChunkSettings(256, 32, True)
    chunks = chunk_document("Just a plain body of text.", None, enc.tokenizer, st)
    assert len(chunks) == 1 and chunks[0].unit_ref is None and chunks[0].unit_kind is None
    assert chunk_document("", [], enc.tokenizer, st) == []
    assert chunk_document("   ", [{"kind": "page", "ref": "page 1", "text": "  "}], enc.tokenizer, st) == []


def test_budget_is_capped_by_the_model(enc):
    fitted = ChunkSettings(max_tokens=10_000, overlap_tokens=9_000).fitted(enc)
    assert fitted.max_tokens <= enc.max_seq_length - enc.special_tokens
    assert fitted.overlap_tokens <= fitted.max_tokens // 2


def test_rows_have_stable_ids_and_hashes(enc):
    rows = chunk_rows("doc1", "Alpha beta gamma.", None, enc.tokenizer, ChunkSettings(), "sig", "run1")
    again = chunk_rows("doc1", "Alpha beta gamma.", None, enc.tokenizer, ChunkSettings(), "sig", "run2")
    assert rows[0]["chunk_id"] == "doc1-00000" == again[0]["chunk_id"]
    assert rows[0]["text_hash"] == again[0]["text_hash"]
    assert rows[0]["token_count"] == _ntok(enc, "Alpha beta gamma.")
