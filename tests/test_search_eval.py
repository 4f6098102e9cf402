"""``lakedoc evaluate-search``: the retrieval metrics, the headline -> story query-set generator, and an
evaluation of every mode against a real LanceDB index built by the ``index`` task, whose metrics the
run report then shows (``chart-retrieval``) without being told where they are."""
from __future__ import annotations

import json
import math
import re

import pytest
from conftest import shared_path
from index_fixtures import Corpus, VectorEncoder

from lakedoc.index.evaluate_search import (
    Query,
    _doc_ranking,
    evaluate,
    load_queries,
    make_queries,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    save_metrics,
    score_rankings,
    write_queries,
)


def test_metrics_by_hand():
    ranked = ["a", "b", "c", "d"]
    assert recall_at(ranked, {"c"}, 1) == 0 and recall_at(ranked, {"c"}, 3) == 1
    assert recall_at(ranked, {"a", "z"}, 10) == 0.5
    assert reciprocal_rank(ranked, {"c"}) == pytest.approx(1 / 3) and reciprocal_rank(ranked, {"z"}) == 0
    assert ndcg_at(ranked, {"a"}) == 1.0
    assert ndcg_at(ranked, {"b"}) == pytest.approx(1 / math.log2(3))
    # two relevant at ranks 2 and 4: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    assert ndcg_at(ranked, {"b", "d"}) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    m = score_rankings([(ranked, {"a"}), (ranked, {"c"})], ks=(1, 5))
    assert m["recall@1"] == 0.5 and m["recall@5"] == 1.0 and m["mrr"] == pytest.approx((1 + 1 / 3) / 2)


def test_chunks_rank_documents_by_their_best_chunk():
    hits = [("d1", "x.txt"), ("d2", "y.txt"), ("d1", "x.txt"), ("d3", "z.txt")]
    assert _doc_ranking(hits, {"d3"}) == ["d1", "d2", "d3"]
    assert _doc_ranking(hits, {"z.txt"}) == ["d1", "d2", "z.txt"]  # a query set may name files


def test_headline_queries_hold_the_headline_out_of_the_story(tmp_path):
    corpus = shared_path("datasets", "reuters21578", "train.jsonl")
    qs = make_queries(corpus, tmp_path / "stories", n=25, seed=3)
    assert len(qs) == 25 and len({q.query for q in qs}) == 25
    assert make_queries(corpus, tmp_path / "again", n=25, seed=3) == qs  # deterministic
    by_id = {}
    for line in corpus.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        by_id[str(r["doc_id"])] = r["text"]
    for q in qs:
        (name,) = q.relevant
        story = (tmp_path / "stories" / name).read_text(encoding="utf-8")
        headline = by_id[q.id].strip().split("\n", 1)[0]
        assert q.query == " ".join(headline.split()).lower()
        assert not story.startswith(headline) and story.strip() in by_id[q.id]
    write_queries(qs, tmp_path / "q.jsonl")
    assert load_queries(tmp_path / "q.jsonl") == qs


@pytest.mark.spark
def test_every_mode_against_an_index_built_by_the_index_task(tmp_path, spark):
    from lakedoc.config import load_config
    from lakedoc.index.backends import open_backend
    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    cfg = load_config("local", sets=[f"tables.warehouse={tmp_path / 'wh'}"], environ={})
    store = LocalDeltaStore(tmp_path / "wh", spark)
    corpus = Corpus(n_docs=6, chunks_per_doc=3)
    corpus.write(store, cfg)
    run = run_task("index", cfg, spark=spark, tables=store)
    assert run.status == "succeeded", run.error

    # queries 0-4 carry their document's vector and a word only its chunk has; query 5 the vector of
    # document 0 and a word no chunk has: dense and full text miss it at rank 1
    queries, mapping = [], {}
    for d in range(6):
        text = f"token{d}x1" if d < 5 else "nowhere"
        mapping[text] = corpus.vector(f"doc{(d if d < 5 else 0):03d}-1")
        queries.append(Query(str(d), text, [f"doc{d:03d}"]))
    enc = VectorEncoder(mapping, corpus.dim)
    backend = open_backend(cfg)
    try:
        result = evaluate(queries, cfg, encoder=enc, backend=backend, depth=20)
    finally:
        backend.close()
    assert not result["skipped"], result["skipped"]
    dense, full, hybrid = (result["modes"][m] for m in ("dense", "fulltext", "hybrid"))
    assert dense["queries"] == 6 and dense["recall@1"] == pytest.approx(5 / 6)
    assert dense["recall@10"] == 1.0  # all 6 documents come back for a vector query
    assert 5 / 6 < dense["mrr"] < 1.0 and dense["ndcg@10"] < 1.0
    assert full["recall@1"] == pytest.approx(5 / 6) and full["recall@10"] == pytest.approx(5 / 6)
    assert hybrid["recall@1"] >= 5 / 6 - 1e-9
    assert set(result["hybrid_minus_dense"]) >= {"recall@1", "mrr", "ndcg@10"}

    # saved as evaluate-search does: the latest metrics beside the run reports, plus --out
    write_queries(queries, tmp_path / "q.jsonl")
    paths = save_metrics(result, cfg, tmp_path / "m.json", tmp_path / "q.jsonl")
    assert paths == [tmp_path / "wh" / "_reports" / "search-metrics.json", tmp_path / "m.json"]
    saved = json.loads(paths[0].read_text())
    assert saved == json.loads(paths[1].read_text()) and saved["modes"] == json.loads(json.dumps(result["modes"]))
    # the run report finds them (latest_search_metrics, what lakedoc run, the report task and lakedoc report
    # pass) and shows them, dated; its tables: the index task's pipeline_runs rows alone (the Corpus
    # fixture's documents table is no real one)
    from datetime import datetime

    from lakedoc import schema
    from lakedoc.report import latest_search_metrics, write_report

    assert latest_search_metrics(cfg) == saved
    runs = LocalDeltaStore(tmp_path / "runs")
    runs.merge(schema.PIPELINE_RUNS, store.read_arrow("pipeline_runs"))
    page = write_report(runs, tmp_path / "report.html", retrieval=latest_search_metrics(cfg))
    html = page.read_text(encoding="utf-8")
    chart = re.search(r'<svg id="chart-retrieval".*?</svg>', html, re.S)
    assert chart, "no retrieval chart"
    for mode, m in (("dense", dense), ("fulltext", full), ("hybrid", hybrid)):
        for name in ("recall@1", "recall@10", "mrr", "ndcg@10"):
            assert f"{mode} {name}: {m[name]:.3f}" in chart.group(0), (mode, name)
            assert f'<tr><td>{mode}</td><td>{name}</td><td class="n">{m[name]:,.3f}</td></tr>' in html
    when = datetime.fromisoformat(saved["evaluated_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"From lakedoc evaluate-search, {when} (6 queries; query set q.jsonl; index backend lancedb)" in html
