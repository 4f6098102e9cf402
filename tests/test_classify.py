"""Zero-shot scoring, taxonomies, thresholds and the harness method (no Spark)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, shared_path
from lakedoc.classify.taxonomy import TaxonomyError, load_taxonomy, parse_taxonomy
from lakedoc.classify.thresholds import load_threshold_set
from lakedoc.classify.zero_shot import ScoringSettings, ZeroShotMethod, ZeroShotScorer, aggregate, sigmoid_score
from lakedoc.config import load_config


def test_reuters_taxonomy_covers_the_90_modapte_categories():
    tax = load_taxonomy(ROOT / "conf" / "taxonomy" / "reuters.yml")
    assert len(tax.labels) == 90
    assert all(len(lab.descriptions) >= 1 and len(lab.descriptions[0].split()) >= 2 for lab in tax.labels)
    assert tax.get("wheat").parent == "grain" and tax.get("earn").parent is None
    names = shared_path("datasets", "reuters21578", "labels_modapte90.txt").read_text().split()
    assert sorted(names) == sorted(tax.names)


def test_tos_taxonomy_matches_the_dataset_labels():
    tax = load_taxonomy(ROOT / "conf" / "taxonomy" / "tos_unfair.yml")
    labels = set()
    with open(shared_path("datasets", "tos_unfair_clauses", "docs.jsonl")) as fh:
        for line in fh:
            labels.update(json.loads(line)["labels"])
    assert labels == set(tax.names)


@pytest.mark.parametrize("data, needle", [
    ({"labels": [{"name": "a"}, {"name": "a"}]}, "defined twice"),
    ({"labels": [{"name": "a", "parent": "zz"}]}, "unknown parent"),
    ({"labels": [{"description": "x"}]}, "has no name"),
    ({"nolabels": 1}, "'labels' list"),
])
def test_taxonomy_errors_are_named(data, needle):
    with pytest.raises(TaxonomyError, match=needle):
        parse_taxonomy(data, "t.yml")


def test_taxonomy_hash_and_restriction():
    t = parse_taxonomy({"labels": [{"name": "a", "description": "alpha"}, {"name": "b", "parent": "a"}]})
    assert t.get("b").descriptions == ("b",)
    t2 = parse_taxonomy({"labels": [{"name": "a", "description": "alpha!"}, {"name": "b", "parent": "a"}]})
    assert t.hash() != t2.hash()
    r = t.restricted(["b", "new-label"])
    assert r.names == ["b", "new-label"] and r.get("b").parent is None  # parent outside the set dropped
    assert r.get("new-label").descriptions == ("new label",)


def test_aggregations_and_sigmoid():
    sims = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4]])
    assert np.allclose(aggregate(sims, "max"), [0.5, 0.9])
    assert np.allclose(aggregate(sims, "mean"), [0.3, 0.5])
    assert np.allclose(aggregate(sims, "topk_mean", 2), [0.4, 0.65])
    assert np.allclose(aggregate(sims, "topk_mean", 10), aggregate(sims, "mean"))
    assert aggregate(np.zeros((0, 3)), "max").shape == (3,)
    s = sigmoid_score(np.array([0.3, 0.5]), 20, 0.3)
    assert s[0] == pytest.approx(0.5) and 0.98 < s[1] < 1


class _FakeEncoder:
    """Deterministic vectors: one axis per keyword (tests the scoring maths, not the model)."""

    model_id, prefix_scheme, dimension, max_seq_length, special_tokens = "fake", "none", 3, 64, 2
    tokenizer = None

    def prefix_tokens(self, kind):
        return 0

    def encode(self, texts, kind="passage", **kw):
        axes = ["wheat", "grain", "profit"]
        v = np.array([[1.0 if a in t else 0.0 for a in axes] for t in texts]) + 1e-3
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_parent_propagation_and_description_pooling():
    tax = parse_taxonomy({"labels": [
        {"name": "grain", "descriptions": ["grain"]},
        {"name": "wheat", "parent": "grain", "descriptions": ["wheat", "profit"]},
    ]})
    chunk = _FakeEncoder().encode(["wheat"])
    on = ZeroShotScorer(_FakeEncoder(), tax, ScoringSettings(description_pooling="max", propagate_to_parent=True))
    off = ZeroShotScorer(_FakeEncoder(), tax, ScoringSettings(description_pooling="max", propagate_to_parent=False))
    assert on.doc_similarity(chunk)[0] == pytest.approx(1.0, abs=1e-2)  # grain inherits wheat's match
    assert off.doc_similarity(chunk)[0] < 0.1
    mean = ZeroShotScorer(_FakeEncoder(), tax, ScoringSettings(description_pooling="mean"))
    assert mean.doc_similarity(chunk)[1] < on.doc_similarity(chunk)[1]  # mean of 'wheat' and 'profit'
    assert np.all(on.doc_scores(np.zeros((0, 3))) == 0)


def test_threshold_file_is_ignored_when_tuned_for_another_model(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"tuned_for": {"model": "m1", "prefix_scheme": "p"}, "global_threshold": 0.7,
                             "thresholds": {"a": 0.9}, "at_least_one": True}))
    ok = load_threshold_set(str(f), {"model": "m1", "prefix_scheme": "p"}, 0.5, False)
    assert ok.for_labels(["a", "b"]).tolist() == [0.9, 0.7] and ok.at_least_one
    other = load_threshold_set(str(f), {"model": "m2", "prefix_scheme": "p"}, 0.5, False)
    assert other.for_labels(["a"]).tolist() == [0.5] and other.source is None
    assert load_threshold_set(str(tmp_path / "missing.json"), {}, 0.4, False).global_threshold == 0.4
    pred, th = ok.apply(np.array([[0.95, 0.1]]), ["a", "b"])
    assert pred.tolist() == [[1, 0]] and th.tolist() == [0.9, 0.7]


def test_shipped_threshold_file_matches_the_local_configuration():
    """conf/thresholds/reuters_minilm.json must be tuned for the local defaults, or the stage ignores it."""
    from lakedoc.classify.stage import Plan

    cfg = load_config("local", environ={})
    plan = Plan(cfg, "r")
    assert plan.thresholds.source is not None, "thresholds file ignored: re-run lakedoc tune-thresholds"
    assert len(plan.thresholds.per_label) == 90


def _records():
    return [
        {"doc_id": "1", "text": "The company reported quarterly net profit of 5 mln dlrs and declared a dividend.",
         "labels": ["earn"]},
        {"doc_id": "2", "text": "Wheat and corn exports fell as the grain harvest was hit by drought this year.",
         "labels": ["grain", "wheat"]},
        {"doc_id": "3", "text": "The company agreed to acquire its rival in a takeover worth 300 mln dlrs.",
         "labels": ["acq"]},
        {"doc_id": "4", "text": "Crude oil prices rose after OPEC agreed to cut production by 1 mln barrels a day.",
         "labels": ["crude"]},
    ]


def test_zero_shot_method_ranks_the_right_label_first():
    cfg = load_config("local", environ={})
    m = ZeroShotMethod()
    names = ["earn", "acq", "grain", "wheat", "crude"]
    m.fit([], [], names, cfg)
    scores = m.predict_scores([r["text"] for r in _records()] + [""])
    assert scores.shape == (5, 5) and np.all((scores >= 0) & (scores <= 1))
    top = [names[i] for i in scores[:4].argmax(1)]
    assert top[0] == "earn" and top[2] == "acq" and top[3] == "crude" and top[1] in ("grain", "wheat")
    assert scores[1, names.index("grain")] >= scores[1, names.index("wheat")]  # parent propagation
    assert np.all(scores[4] == 0)  # empty text: no chunk, zero scores


def test_zero_shot_is_registered_in_the_harness():
    from lakedoc.methods import load_method

    assert isinstance(load_method("zero_shot"), ZeroShotMethod)


def test_tune_thresholds_cli_writes_a_file_the_stage_accepts(tmp_path):
    from lakedoc.cli import main

    val = tmp_path / "val.jsonl"
    val.write_text("\n".join(json.dumps(r) for r in _records()))
    out = tmp_path / "th.json"
    assert main(["tune-thresholds", "--validation", str(val), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["thresholds"]) >= {"earn", "acq", "grain", "wheat", "crude"}
    assert data["tuned_for"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["validation"]["n_docs"] == 4
    from lakedoc.classify.stage import Plan

    cfg = load_config("local", environ={}, sets=[f"classify.thresholds_file={out}"])
    assert Plan(cfg, "r").thresholds.source == str(out)
