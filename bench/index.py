"""Benchmark of the vector index (a script, not a test). Prints ratios against a baseline run side by side.

1. LanceDB ANN vs exact search on N random-normal 384-d vectors (default 100,000): recall@10 of the ANN
   index (IVF_PQ + refine, and optionally IVF_HNSW_SQ) against the exact (flat) result for the same
   queries, and the median / p95 query latency of both.
2. Upload throughput to the local fake Azure AI Search service (tests/azure_search_server.py) through
   the real SDK: batched (index.batch_size documents per request) against one document per request,
   and the driver's parallel requests (1 vs 4).

    .venv/bin/python bench/index.py [--rows 100000] [--queries 200] [--upload-docs 1000]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_lancedb(rows: int, n_queries: int, dim: int, configs: list[tuple[str, int, int]]) -> None:
    from lakedoc.index.backends.lancedb_backend import LanceDBBackend

    rng = np.random.default_rng(42)
    vecs = _unit(rng.standard_normal((rows, dim)))
    queries = _unit(rng.standard_normal((n_queries, dim)))
    print(f"\n== LanceDB: {rows:,} random-normal {dim}-d vectors, {n_queries} random queries, k=10 ==")
    by_type: dict[str, list[tuple[int, int]]] = {}
    for index_type, nprobes, refine, ef in configs:
        by_type.setdefault(index_type, []).append((nprobes, refine, ef))
    for index_type, settings in by_type.items():
        with tempfile.TemporaryDirectory() as d:
            b = LanceDBBackend(d, "bench", index_type=index_type, ann_min_rows=min(rows, 10000), fts=False)
            b.ensure_index(dim)
            t0 = time.perf_counter()
            for i in range(0, rows, 20000):
                b.upsert([{"chunk_id": f"c{j}", "doc_id": f"d{j // 10}", "text": "", "vector": vecs[j],
                           "labels": [], "label_scores": []} for j in range(i, min(rows, i + 20000))])
            t_load = time.perf_counter() - t0
            t0 = time.perf_counter()
            b.finalize()
            t_index = time.perf_counter() - t0
            print(f"{index_type}: loaded in {t_load:.1f}s, ANN index built in {t_index:.1f}s")
            exact_ids, exact_lat = [], []
            for q in queries:
                t = time.perf_counter()
                e = b.search(q, None, k=10, exact=True)
                exact_lat.append(time.perf_counter() - t)
                exact_ids.append({h.chunk_id for h in e})
            # the exact path itself checked against numpy brute force on a few queries
            for q, es in list(zip(queries, exact_ids, strict=True))[:5]:
                top = np.argsort(-(vecs @ q))[:10]
                assert {f"c{j}" for j in top} == es, "LanceDB exact search disagrees with numpy"
            for nprobes, refine, ef in settings:
                b.nprobes, b.refine_factor, b.ef = nprobes, refine, ef
                ann_lat, recalls = [], []
                for q, es in zip(queries, exact_ids, strict=True):
                    t = time.perf_counter()
                    a = b.search(q, None, k=10)
                    ann_lat.append(time.perf_counter() - t)
                    recalls.append(len(es & {h.chunk_id for h in a}) / len(es))
                probe = range(0, rows, max(1, rows // 50))
                self_hits = sum(b.search(vecs[j], None, k=1)[0].chunk_id == f"c{j}" for j in probe)
                print(f"  nprobes={nprobes:<4} refine={refine:<3} ef={ef:<4} "
                      f"recall@10 {statistics.mean(recalls):.3f} | "
                      f"latency median ann {1000 * statistics.median(ann_lat):6.1f} ms, exact "
                      f"{1000 * statistics.median(exact_lat):6.1f} ms "
                      f"(exact/ann x{statistics.median(exact_lat) / statistics.median(ann_lat):.1f}); "
                      f"p95 ann {1000 * _pct(ann_lat, 95):6.1f} ms, exact {1000 * _pct(exact_lat, 95):6.1f} ms | "
                      f"self-match top-1 {self_hits}/{len(probe)}")


def bench_upload(n_docs: int, dim: int) -> None:
    from azure.core.credentials import AzureKeyCredential
    from azure_search_server import FakeSearchService

    from lakedoc.index.backends.azure_search import AzureSearchBackend

    rng = np.random.default_rng(7)
    vecs = _unit(rng.standard_normal((n_docs, dim)))
    docs = [{"chunk_id": f"c{i}", "doc_id": f"d{i // 10}", "seq": i % 10, "text": "lorem ipsum " * 80,
             "vector": vecs[i].tolist(), "labels": ["grain"], "label_scores": [{"label": "grain", "score": 0.9,
                                                                                "method": "zero_shot"}],
             "format": "pdf", "file_name": "x.pdf", "source_path": "/in/x.pdf", "unit_ref": "page 1"}
            for i in range(n_docs)]
    print(f"\n== Upload to the local fake Azure AI Search: {n_docs} documents of {dim}-d vectors + ~1 KB text ==")
    results = {}
    for label, batch, parallel in (("1 doc/request", 1, 1), ("batch 500", 500, 1), ("batch 100, 4 in flight", 100, 4),
                                   ("batch 100, 1 in flight", 100, 1)):
        with FakeSearchService() as svc:
            b = AzureSearchBackend(svc.endpoint, "bench", AzureKeyCredential(svc.api_key), batch_size=batch,
                                   parallel_requests=parallel)
            b.ensure_index(dim)
            t = time.perf_counter()
            r = b.upsert(docs)
            dt = time.perf_counter() - t
            assert len(r.succeeded) == n_docs and not r.failed and len(svc.documents("bench")) == n_docs
            results[label] = n_docs / dt
            print(f"{label:<24} {r.requests:>5} requests {dt:7.2f}s  {n_docs / dt:9.0f} docs/s")
            b.close()
    batching = results["batch 500"] / results["1 doc/request"]
    in_flight = results["batch 100, 4 in flight"] / results["batch 100, 1 in flight"]
    print(f"batching (500/request) vs one document per request: x{batching:.1f}")
    print(f"4 requests in flight vs 1 (batch 100): x{in_flight:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--upload-docs", type=int, default=1000)
    ap.add_argument("--skip-lancedb", action="store_true")
    ap.add_argument("--skip-upload", action="store_true")
    ap.add_argument("--configs", default="IVF_HNSW_SQ:20:10:100,IVF_HNSW_SQ:20:10:300,IVF_HNSW_SQ:20:10:600,"
                                         "IVF_PQ:20:10:0,IVF_PQ:100:10:0",
                    help="index_type:nprobes:refine_factor:ef, comma-separated")
    args = ap.parse_args()
    import os

    print(f"lakedoc bench/index.py — {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    if not args.skip_lancedb:
        configs = [(c.split(":")[0], *(int(x) for x in c.split(":")[1:4])) for c in args.configs.split(",")]
        bench_lancedb(args.rows, args.queries, args.dim, configs)
    if not args.skip_upload:
        bench_upload(args.upload_docs, args.dim)


if __name__ == "__main__":
    main()
