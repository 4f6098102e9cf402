"""Retrieval quality of the built index: recall@k, MRR and nDCG@10 per search mode.

    lakedoc make-search-queries --corpus train.jsonl --stories DIR --out Q.jsonl [--n 300] [--seed 0]
    lakedoc evaluate-search --queries Q.jsonl [--modes dense,fulltext,hybrid] [--k 1,5,10] [--out M.json]

The metrics (JSON) always go to ``search-metrics.json`` beside the run reports
(:func:`lakedoc.report.search_metrics_path`), where ``lakedoc run``, the ``report`` task and ``lakedoc
report`` find the latest; ``--out`` writes a copy too.

A query set is JSONL, one query a line: ``{"id": ..., "query": "...", "relevant": ["<doc id or file name>", ...]}``.
``make-search-queries`` builds one from a labelled corpus such as Reuters-21578 (``doc_id``, ``text``): a
story's headline (its first line) is the query, and the story *without* its headline is written as
``DIR/reuters_<id>.txt`` for the pipeline to ingest and index — the query text is held out from what
is indexed. Run the job on ``DIR``, then ``evaluate-search``.

Modes: ``dense`` (vector search, :func:`lakedoc.index.query.search` ``mode="vector"``), ``hybrid``
(``mode="hybrid"``: vector + full text, fused by the backend) and ``fulltext`` (the LanceDB full-text
index alone; LanceDB backend only). Hits are chunks; a document's rank is that of its best chunk.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("dense", "fulltext", "hybrid")
DEFAULT_KS = (1, 5, 10)
CHUNK_DEPTH = 100  # chunks fetched per query, deduplicated to documents


@dataclass
class Query:
    id: str
    query: str
    relevant: list[str]


def load_queries(path: str | Path) -> list[Query]:
    out = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        rel = r.get("relevant") or []
        if isinstance(rel, str):
            rel = [rel]
        if not r.get("query") or not rel:
            raise ValueError(f"{path}:{i}: a query needs 'query' and 'relevant'")
        out.append(Query(str(r.get("id", i)), str(r["query"]), [str(x) for x in rel]))
    return out


# -- metrics -------------------------------------------------------------------------------------

def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    return next((1.0 / i for i, d in enumerate(ranked, 1) if d in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Binary-gain nDCG@k."""
    dcg = sum(1.0 / math.log2(i + 1) for i, d in enumerate(ranked[:k], 1) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


def score_rankings(rankings: Sequence[tuple[Sequence[str], set[str]]], ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Mean recall@k, MRR and nDCG@10 over (ranked document keys, relevant keys) pairs."""
    n = len(rankings)
    out: dict[str, float] = {"queries": float(n)}
    if not n:
        return out
    for k in ks:
        out[f"recall@{k}"] = sum(recall_at(r, rel, k) for r, rel in rankings) / n
    out["mrr"] = sum(reciprocal_rank(r, rel) for r, rel in rankings) / n
    out["ndcg@10"] = sum(ndcg_at(r, rel, 10) for r, rel in rankings) / n
    return out


def _doc_ranking(hits: Sequence[tuple[str | None, str | None]], relevant: set[str]) -> list[str]:
    """Chunk hits (doc id, file name) -> documents in order of their best chunk, each named by the key
    the query set uses (its doc id, or its file name when the set names files)."""
    seen: list[str] = []
    for doc_id, file_name in hits:
        key = file_name if (file_name in relevant and doc_id not in relevant) else doc_id
        key = key or file_name or ""
        if key and key not in seen:
            seen.append(key)
    return seen


# -- the modes -----------------------------------------------------------------------------------

def _fulltext(backend, text: str, depth: int) -> list[tuple[str | None, str | None]]:
    table = getattr(backend, "table", None)
    if table is None:
        raise RuntimeError("full-text mode needs the LanceDB backend (index.backend: lancedb)")
    rows = (table.search(text, query_type="fts").select(["chunk_id", "doc_id", "file_name"]).limit(depth)
            .to_arrow().to_pylist())
    return [(r.get("doc_id"), r.get("file_name")) for r in rows]


def evaluate(queries: Sequence[Query], cfg, modes: Sequence[str] = MODES, ks: Sequence[int] = DEFAULT_KS,
             depth: int = CHUNK_DEPTH, encoder=None, backend=None, progress=None) -> dict:
    """``{"modes": {mode: metrics}, "skipped": {mode: why}, ...}`` for ``queries`` against the index."""
    from lakedoc.index.query import search

    own = backend is None
    if own:
        from lakedoc.index.backends import open_backend

        backend = open_backend(cfg)
    if encoder is None:
        from lakedoc.encoder import get_encoder

        encoder = get_encoder(cfg)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    try:
        for mode in modes:
            if mode not in MODES:
                raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
            rankings = []
            t0 = time.perf_counter()
            try:
                for q in (progress(queries, mode) if progress else queries):
                    if mode == "fulltext":
                        hits = _fulltext(backend, q.query, depth)
                    else:
                        found = search(q.query, cfg=cfg, k=depth, mode="vector" if mode == "dense" else "hybrid",
                                       encoder=encoder, backend=backend)
                        hits = [(h.doc_id, h.file_name) for h in found]
                    rel = set(q.relevant)
                    rankings.append((_doc_ranking(hits, rel), rel))
            except (RuntimeError, ValueError) as exc:
                skipped[mode] = str(exc)
                continue
            metrics = score_rankings(rankings, ks)
            metrics["seconds_per_query"] = (time.perf_counter() - t0) / max(1, len(queries))
            results[mode] = metrics
    finally:
        if own:
            backend.close()
    out: dict = {"modes": results, "skipped": skipped, "queries": len(queries), "depth_chunks": depth,
                 "index_backend": cfg.index.backend}
    if "hybrid" in results and "dense" in results:
        out["hybrid_minus_dense"] = {m: results["hybrid"][m] - results["dense"][m]
                                     for m in results["dense"] if m.startswith(("recall", "mrr", "ndcg"))}
    return out


def save_metrics(result: dict, cfg, out: str | Path | None = None,
                 queries_file: str | Path | None = None) -> list[Path]:
    """Write ``result`` (of :func:`evaluate`), dated, to :func:`lakedoc.report.search_metrics_path` — the
    latest metrics the run report shows — and to ``out`` when given; returns the paths written.

    A report folder that cannot be written is logged (the metrics are measured: ``out`` still gets them)."""
    from lakedoc.report import search_metrics_path

    doc = {"evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "queries_file": str(queries_file) if queries_file else None, **result}
    text = json.dumps(doc, indent=2) + "\n"
    written = []
    for path, required in [(search_metrics_path(cfg), False)] + ([(Path(out), True)] if out else []):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")  # one write: volumes (FUSE) may not rename
        except OSError as exc:
            if required:
                raise
            log.warning("cannot leave the metrics for the run report at %s: %s", path, exc)
            continue
        written.append(path)
    return written


# -- the query-set generator ---------------------------------------------------------------------

def make_queries(corpus: str | Path, stories: str | Path, n: int = 300, seed: int = 0,
                 min_title_words: int = 3, min_body_chars: int = 300) -> list[Query]:
    """Headline -> story queries from a labelled JSONL corpus (``doc_id``, ``text``; first line = headline).

    Writes each chosen story without its headline to ``stories/reuters_<doc_id>.txt`` and returns the
    queries (relevant: that file name). Deterministic for a seed; distinct headlines only.
    """
    records = []
    for line in Path(corpus).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        title, _, body = (r.get("text") or "").strip().partition("\n")
        title = " ".join(title.split())
        body = body.strip()
        if len(title.split()) >= min_title_words and len(body) >= min_body_chars:
            records.append((str(r["doc_id"]), title, body))
    counts: dict[str, int] = {}
    for _, t, _ in records:
        counts[t.lower()] = counts.get(t.lower(), 0) + 1
    records = [r for r in records if counts[r[1].lower()] == 1]  # a headline shared by stories is ambiguous
    random.Random(seed).shuffle(records)
    chosen = sorted(records[:n], key=lambda r: r[0])
    out_dir = Path(stories)
    out_dir.mkdir(parents=True, exist_ok=True)
    queries = []
    for doc_id, title, body in chosen:
        name = f"reuters_{doc_id}.txt"
        (out_dir / name).write_text(body + "\n", encoding="utf-8")
        queries.append(Query(doc_id, title.lower(), [name]))
    return queries


def write_queries(queries: Sequence[Query], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps({"id": q.id, "query": q.query, "relevant": q.relevant}) + "\n"
                                  for q in queries), encoding="utf-8")


# -- command line --------------------------------------------------------------------------------

def format_table(result: dict) -> str:
    modes = result["modes"]
    if not modes:
        return "no mode could be evaluated"
    cols = [c for c in next(iter(modes.values())) if c != "queries"]
    lines = [f"{'mode':<10}" + "".join(f"{c:>18}" for c in cols)]
    for mode, m in modes.items():
        lines.append(f"{mode:<10}" + "".join(f"{m.get(c, float('nan')):>18.4f}" for c in cols))
    return "\n".join(lines)


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate-search", help="recall@k, MRR and nDCG@10 of the built index on a query set")
    p.add_argument("--queries", required=True, help="JSONL: query, relevant (doc ids or file names)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: dense, fulltext, hybrid")
    p.add_argument("--k", default=",".join(map(str, DEFAULT_KS)), help="recall cut-offs (default 1,5,10)")
    p.add_argument("--depth", type=int, default=CHUNK_DEPTH, help="chunks fetched per query (default 100)")
    p.add_argument("--target", default="local")
    p.add_argument("--warehouse", help="folder of the local tables (and the default LanceDB index)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="also write the metrics (JSON) here; they always go to search-metrics.json beside "
                                 "the run reports, where the report finds the latest")
    p.set_defaults(func=cmd_evaluate_search)

    g = sub.add_parser("make-search-queries",
                       help="a query set from a labelled corpus: headlines as queries, stories to index")
    g.add_argument("--corpus", required=True, help="JSONL with doc_id and text (first line: the headline)")
    g.add_argument("--stories", required=True, help="folder to write the stories (without headlines) to")
    g.add_argument("--out", required=True, help="query set JSONL to write")
    g.add_argument("--n", type=int, default=300)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_make_queries)


def cmd_make_queries(args: argparse.Namespace) -> int:
    queries = make_queries(args.corpus, args.stories, n=args.n, seed=args.seed)
    write_queries(queries, args.out)
    print(f"{len(queries)} queries in {args.out}; {len(queries)} stories in {args.stories}")
    return 0


def cmd_evaluate_search(args: argparse.Namespace) -> int:
    from lakedoc.config import load_config
    from lakedoc.report.progress import Progress

    sets = list(args.set)
    if args.warehouse:
        sets.append(f"tables.warehouse={Path(args.warehouse).resolve()}")
    cfg = load_config(args.target, sets=sets)
    queries = load_queries(args.queries)
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    def progress(items, mode):
        return Progress(len(items), mode, unit="query").iterate(items)

    result = evaluate(queries, cfg, modes, ks, depth=args.depth, progress=progress)
    for mode, why in result["skipped"].items():
        print(f"skipped {mode}: {why}", file=sys.stderr)
    print(format_table(result))
    if not result["modes"]:  # nothing measured: the latest metrics beside the reports stay as they are
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 1
    for path in save_metrics(result, cfg, args.out, Path(args.queries).resolve()):
        print(f"metrics: {path}", file=sys.stderr)
    return 0
