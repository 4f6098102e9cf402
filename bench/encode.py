"""Encoding throughput: the Spark encode stage against a single process, and sorted vs unsorted batches.

    python bench/encode.py [--texts 600] [--device cpu|cuda] [--master local[2]] [--repeat 1]

Two comparisons, each side by side in the same run on the same model and texts, printed as ratios:

1. **stage vs single process** — the ``embed`` stage's ``mapInArrow`` encoder (model once per Python
   worker, one torch thread per worker on CPU, token-budget batches sorted by length; fp16 on CUDA)
   at ``--master`` against the best plain ``SentenceTransformer.encode`` in this process (all cores;
   batch sizes 16/32/64 tried, the fastest kept; fp32 as loaded). Goal on CPU: >= 1.1x.
2. **sorted vs unsorted batches** — :meth:`lakedoc.encoder.Encoder.encode` with the same token budget on
   a mix of short (one sentence) and long (a whole news story) texts, length-sorted against arrival order.

Texts: chunks of Reuters-21578 stories and ToS sentences from ../shared (the benchmark stops with a
message when the folder is absent). Tokens/s counts real (unpadded) tokens incl. special tokens.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAKEDOC_SHARED", ROOT.parent / "shared"))


def load_texts(n: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """(Reuters stories, ToS sentences) from ../shared."""
    reuters = SHARED / "datasets" / "reuters21578" / "train.jsonl"
    tos = SHARED / "datasets" / "tos_unfair_clauses" / "docs.jsonl"
    if not reuters.is_file() or not tos.is_file():
        sys.exit(f"the shared data folder is absent ({SHARED}): nothing to benchmark")
    rng = random.Random(seed)
    stories = [json.loads(x)["text"] for x in reuters.open()]
    sentences = [json.loads(x)["text"] for x in tos.open()]
    sentences = [s for s in sentences if len(s.split()) >= 5]
    return rng.sample(stories, min(n, len(stories))), rng.sample(sentences, min(n, len(sentences)))


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=600, help="Reuters stories to chunk and encode (default 600)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions; the best time is kept")
    ap.add_argument("--skip-spark", action="store_true", help="only the sorted/unsorted comparison")
    args = ap.parse_args()

    import numpy as np
    import pyarrow as pa
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from lakedoc.chunking import ChunkSettings, chunk_document
    from lakedoc.config import load_config
    from lakedoc.encoder import EncoderSettings, get_encoder, padded_tokens, plan_batches, text_hash

    cfg = load_config("local", environ={}, sets=[f"encoder.device={args.device}", f"spark.master={args.master}"])
    settings = EncoderSettings.from_config(cfg)
    enc = get_encoder(settings)
    stories, sentences = load_texts(args.texts)
    cs = ChunkSettings.from_config(cfg, enc)
    chunks = [c for s in stories for c in chunk_document(s, None, enc.tokenizer, cs)]
    texts = [c.text for c in chunks]
    counts = [c.token_count for c in chunks]
    real_tokens = sum(counts) + enc.special_tokens * len(counts)
    print(f"model {enc.model_id} on {enc.device} ({enc.precision}); {len(texts)} chunks of {len(stories)} stories, "
          f"{real_tokens} tokens; torch threads {torch.get_num_threads()}, cores {os.cpu_count()}")
    results: dict = {"model": enc.model_id, "device": args.device, "chunks": len(texts), "tokens": real_tokens}

    # -- 1. Spark stage vs single-process SentenceTransformer.encode --------------------------------------
    if not args.skip_spark:
        from sentence_transformers import SentenceTransformer

        from lakedoc.classify.stage import Plan, _encode_chunks_fn
        from lakedoc.encoder import resolve_model
        from lakedoc.schema import EMBEDDINGS
        from lakedoc.spark import get_spark, task_slots

        raw = SentenceTransformer(resolve_model(settings.model)[0], device=args.device)
        raw.max_seq_length = enc.max_seq_length
        best_bs, best_t = None, float("inf")
        for bs in (16, 32, 64):
            raw.encode(texts[:64], batch_size=bs)  # warm-up
            t, _ = timed(lambda: raw.encode(texts, batch_size=bs, normalize_embeddings=True), args.repeat)
            print(f"  single process, batch_size {bs}: {t:.2f}s ({real_tokens / t:.0f} tokens/s)")
            if t < best_t:
                best_bs, best_t = bs, t
        spark = get_spark(cfg)
        slots = task_slots(spark)
        plan = Plan(cfg, "bench", classify=False)
        tbl = pa.table({"chunk_id": [f"c{i}" for i in range(len(texts))], "doc_id": ["d"] * len(texts),
                        "text": texts, "token_count": pa.array(counts, pa.int32()),
                        "text_hash": [text_hash(t) for t in texts]})
        df = spark.createDataFrame(tbl).repartition(slots * 2).cache()
        df.count()
        # the stage sorts within each Arrow batch: give it whole partitions as batches
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(max(1, len(texts) // (slots * 2) + 1)))
        ddl = EMBEDDINGS.ddl

        def stage():
            return df.mapInArrow(_encode_chunks_fn(plan), ddl).select("dimension").count()

        df.limit(slots * 4).mapInArrow(_encode_chunks_fn(plan), ddl).count()  # load the model in the workers
        stage()  # warm every worker
        t_stage, n = timed(stage, args.repeat)
        assert n == len(texts)
        ratio = best_t / t_stage
        print(f"  Spark stage at {args.master} ({slots} slots): {t_stage:.2f}s ({real_tokens / t_stage:.0f} tokens/s)")
        print(f"stage vs best single process (batch_size {best_bs}): {ratio:.2f}x")
        results.update({"single_process_s": best_t, "single_process_batch_size": best_bs, "stage_s": t_stage,
                        "stage_tokens_per_s": real_tokens / t_stage, "single_tokens_per_s": real_tokens / best_t,
                        "stage_vs_single": ratio, "master": args.master})

    # -- 2. length-sorted vs unsorted token-budget batches, short + long texts mixed ---------------------
    mixed = [t for pair in zip(sentences[: len(stories)], stories) for t in pair]
    mixed_counts = enc.count_tokens(mixed, truncate=True)
    budget = settings.batch_tokens
    pad_sorted = padded_tokens(mixed_counts, plan_batches(mixed_counts, budget, settings.max_batch_size, True))
    pad_unsorted = padded_tokens(mixed_counts, plan_batches(mixed_counts, budget, settings.max_batch_size, False))
    torch.set_num_threads(os.cpu_count() or 1)
    enc.encode(mixed[:32], "passage")
    t_sorted, a = timed(lambda: enc.encode(mixed, "passage", token_counts=None, sort_by_length=True), args.repeat)
    t_unsorted, b = timed(lambda: enc.encode(mixed, "passage", token_counts=None, sort_by_length=False), args.repeat)
    assert np.allclose(a, b, atol=2e-3 if enc.precision != "fp32" else 1e-4)
    mixed_tokens = sum(mixed_counts)
    print(f"mixed short/long texts: {len(mixed)} texts, {mixed_tokens} tokens; padded tokens sorted {pad_sorted}, "
          f"unsorted {pad_unsorted}")
    print(f"  sorted {t_sorted:.2f}s ({mixed_tokens / t_sorted:.0f} tokens/s), unsorted {t_unsorted:.2f}s "
          f"({mixed_tokens / t_unsorted:.0f} tokens/s)")
    print(f"sorted vs unsorted batches: {t_unsorted / t_sorted:.2f}x")
    results.update({"mixed_texts": len(mixed), "mixed_tokens": mixed_tokens, "sorted_s": t_sorted,
                    "unsorted_s": t_unsorted, "sorted_vs_unsorted": t_unsorted / t_sorted,
                    "padded_sorted": pad_sorted, "padded_unsorted": pad_unsorted, "batch_tokens": budget})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
