"""The evaluation arithmetic and the harness (lakedoc.methods) on hand-made arrays and records with known
answers (no Spark)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lakedoc import evaluation as ev, methods as hm


def test_metrics_known_values():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 0]])
    m = ev.multilabel_metrics(y, p, ["a", "b", "c"])
    # cells: TP = 3 (a,a,b), FP = 1 (c in doc 2), FN = 2 (c in doc 1, b in doc 3)
    assert m["micro_precision"] == pytest.approx(3 / 4)
    assert m["micro_recall"] == pytest.approx(3 / 5)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    # per label: a P=1 R=1 F=1; b P=1 R=.5 F=2/3; c P=0 R=0 F=0
    assert m["per_label"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2}
    assert m["per_label"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["per_label"]["c"]["f1"] == 0.0 and m["per_label"]["c"]["support"] == 1
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 1 + 2 * 2 / 3 + 1 * 0) / 5)
    assert m["macro_precision"] == pytest.approx((1 + 1 + 0) / 3)
    # exact label set right: docs 0? no (c missed); 1? no; 2? no; 3 yes -> 1/4
    assert m["subset_accuracy"] == pytest.approx(0.25)


def test_macro_ignores_labels_without_support():
    y = np.array([[1, 0], [1, 0]])
    p = np.array([[1, 0], [1, 0]])
    m = ev.multilabel_metrics(y, p)
    assert m["macro_f1"] == 1.0 and m["n_labels_with_support"] == 1
    assert m["macro_f1_all"] == 0.5


def test_apply_thresholds_at_least_one():
    s = np.array([[0.2, 0.4], [0.9, 0.1], [0.0, 0.0]])
    assert ev.apply_thresholds(s, [0.5, 0.5]).tolist() == [[0, 0], [1, 0], [0, 0]]
    assert ev.apply_thresholds(s, [0.5, 0.5], at_least_one=True).tolist() == [[0, 1], [1, 0], [1, 0]]
    assert ev.apply_thresholds(s, [0.1, 0.5]).tolist() == [[1, 0], [1, 0], [0, 0]]


def test_tune_thresholds_finds_the_separating_value_per_label():
    rng = np.random.default_rng(0)
    n = 200
    y = np.zeros((n, 2), dtype=int)
    y[:80, 0] = 1
    y[50:120, 1] = 1
    s = np.where(y == 1, 0.0, 0.0)
    # label 0 separates at 0.3, label 1 at 0.7 (positives above, negatives below)
    s[:, 0] = np.where(y[:, 0] == 1, rng.uniform(0.31, 1.0, n), rng.uniform(0.0, 0.29, n))
    s[:, 1] = np.where(y[:, 1] == 1, rng.uniform(0.71, 1.0, n), rng.uniform(0.0, 0.69, n))
    grid = [round(x, 2) for x in np.arange(0.05, 1.0, 0.05)]
    th = ev.tune_thresholds(y, s, grid, at_least_one=False)
    assert th.values[0] == pytest.approx(0.3)
    assert th.values[1] == pytest.approx(0.7)
    assert th.validation_micro_f1 == pytest.approx(1.0)
    assert th.tuned_labels == 2
    m = ev.multilabel_metrics(y, th.apply(s))
    assert m["micro_f1"] == 1.0


def test_tune_thresholds_rare_label_keeps_global_and_auto_at_least_one():
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.05], [0.3, 0.35]])
    th = ev.tune_thresholds(y, s, [0.2, 0.5, 0.85], at_least_one="auto", min_positives=2)
    # label 1 has one positive: global threshold (best micro-F1 over all cells) is kept
    assert th.values[1] == th.global_threshold
    assert th.tuned_labels == 1
    # doc 2 has no label: at_least_one would add a false positive, so auto keeps it off only if better
    f_on = ev.multilabel_metrics(y, ev.apply_thresholds(s, th.values, True))["micro_f1"]
    f_off = ev.multilabel_metrics(y, ev.apply_thresholds(s, th.values, False))["micro_f1"]
    assert th.at_least_one == (f_on > f_off)
    assert ev.Thresholds.from_dict(json.loads(json.dumps(th.to_dict()))) == th


def test_threshold_sweep_monotone_recall():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.2], [0.4, 0.6], [0.7, 0.3]])
    sw = ev.threshold_sweep(y, s, [0.1, 0.5, 0.95])
    assert [r["threshold"] for r in sw] == [0.1, 0.5, 0.95]
    assert sw[0]["micro_recall"] == 1.0 and sw[-1]["micro_recall"] == 0.0
    assert sw[1]["micro_f1"] == pytest.approx(ev.multilabel_metrics(y, s >= 0.5)["micro_f1"])


def _recs(n, dup_every=0):
    out = []
    for i in range(n):
        text = f"document number {i} about topic {i % 3} " * 3
        out.append({"doc_id": f"d{i}", "text": text, "labels": [f"t{i % 3}"]})
    return out


def test_split_is_seeded_saved_and_groups_duplicates(tmp_path):
    recs = _recs(100)
    # three exact duplicates (different ids, whitespace/case variants) must land in one split
    for k in range(3):
        recs.append({"doc_id": f"dup{k}", "text": "  The SAME text\n again  " if k else "the same text again",
                     "labels": ["t0"]})
    fr = {"train": 0.7, "validation": 0.1, "test": 0.2}
    f = tmp_path / "split.json"
    a = ev.split_records(recs, fr, seed=5, path=f)
    assert f.is_file() and json.loads(f.read_text())["seed"] == 5
    b = ev.split_records(recs, fr, seed=5, path=tmp_path / "other.json")
    c = ev.split_records(recs, fr, seed=6)
    assert a == b and a != c
    assert sorted(x for v in a.values() for x in v) == sorted(r["doc_id"] for r in recs)
    assert abs(len(a["test"]) - 21) <= 3 and abs(len(a["validation"]) - 10) <= 3
    where = {i: k for k, v in a.items() for i in v}
    assert len({where[f"dup{k}"] for k in range(3)}) == 1
    by_id = {r["doc_id"]: r["text"] for r in recs}
    assert ev.check_leakage({k: [by_id[i] for i in v] for k, v in a.items()}) == {}
    # reusing the saved file gives the same split
    assert ev.split_records(recs, fr, seed=5, path=f) == a


def test_check_leakage_by_content_not_index():
    leaks = ev.check_leakage({"train": ["Alpha beta", "gamma"], "test": ["alpha   BETA", "delta"]})
    assert leaks == {"train/test": 1}


def test_prepare_excludes_short_docs_rare_labels_and_reports_conflicts(caplog):
    long = "word " * 12
    train = [
        {"doc_id": "1", "text": long + "a", "labels": ["x"]},
        {"doc_id": "2", "text": long + "b", "labels": ["x", "rare"]},
        {"doc_id": "3", "text": "too short", "labels": ["x"]},
        {"doc_id": "4", "text": long + "c", "labels": ["y"]},
        {"doc_id": "5", "text": long + "c", "labels": ["x"]},  # duplicate of 4 with other labels
        {"doc_id": "6", "text": long + "d", "labels": ["y"]},
    ]
    with caplog.at_level("WARNING"):
        prep = ev.prepare(train, min_label_docs=2, min_words=10)
    assert prep.short_docs == 1
    assert prep.label_names == ["x", "y"]
    assert prep.excluded_labels == {"rare": 1}
    assert "rare (1)" in caplog.text
    assert len(prep.conflicting_duplicates) == 1
    assert sorted(prep.conflicting_duplicates[0]["doc_ids"]) == ["4", "5"]
    assert all("rare" not in r["labels"] for r in prep.train)


def test_load_jsonl_and_binarize(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"doc_id": 1, "text": "hello", "labels": ["b", "a"]}\n\n{"text": "x", "labels": "c"}\n'
                 '{"doc_id": 3, "text": ""}\n')
    recs = ev.load_jsonl(p)
    assert [r["doc_id"] for r in recs] == ["1", "2"]
    assert recs[0]["labels"] == ["a", "b"] and recs[1]["labels"] == ["c"]
    assert ev.binarize([r["labels"] for r in recs], ["a", "c", "z"]).tolist() == [[1, 0, 0], [0, 1, 0]]


class _KeywordMethod(hm.Method):
    """A transparent method: score = 1 when the label name occurs in the text."""

    name = "keyword"

    def fit(self, train_texts, train_labels, label_names, cfg):
        self.labels = label_names

    def predict_scores(self, texts):
        return np.array([[1.0 if lab in t else 0.0 for lab in self.labels] for t in texts])


def test_evaluate_method_end_to_end_and_leakage_guard():
    recs = []
    for i in range(60):
        lab = ["apple", "pear", "plum"][i % 3]
        recs.append({"doc_id": str(i), "text": f"a long enough sentence number {i} that mentions {lab} today ok",
                     "labels": [lab]})
    st = {**hm.eval_settings(None), "seed": 1}
    tr, va, te = ev.three_way_split(recs, st)
    res = hm.evaluate_method(_KeywordMethod(), tr, va, te, None, st)
    assert res.metrics["micro_f1"] == 1.0 and res.metrics["macro_f1"] == 1.0
    assert res.sizes["labels"] == 3 and res.sizes["test"] == len(te)
    assert res.sweep and {"threshold", "micro_f1"} <= set(res.sweep[0])
    with pytest.raises(ValueError, match="leakage"):
        hm.evaluate_method(_KeywordMethod(), tr, va, te + [dict(tr[0], doc_id="copy")], None, st)


def test_registry_skips_unimportable(monkeypatch):
    monkeypatch.setitem(hm.METHODS, "ghost", "lakedoc.no_such_module:Ghost")
    with pytest.raises(hm.MethodUnavailable, match="ghost"):
        hm.load_method("ghost")
    with pytest.raises(KeyError):
        hm.load_method("nope")


def test_cli_evaluate_all_skips_missing_method(tmp_path, monkeypatch, capsys):
    from lakedoc.cli import main

    p = tmp_path / "train.jsonl"
    with open(p, "w") as fh:
        for i in range(90):
            lab = ["apple", "pear", "plum"][i % 3]
            fh.write(json.dumps({"doc_id": i, "text": f"a long sentence {i} with enough words about {lab} here",
                                 "labels": [lab]}) + "\n")
    monkeypatch.setattr(hm, "METHODS", {"keyword": "tests_helpers_missing:X"})
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--train", str(p), "--method", "all", "--out", str(out), "--no-mlflow"])
    assert rc == 1  # nothing could run
    assert "skipping keyword" in capsys.readouterr().err
    monkeypatch.setattr(hm, "METHODS", {"keyword": f"{__name__}:_KeywordMethod"})
    rc = main(["evaluate", "--train", str(p), "--method", "all", "--out", str(out), "--no-mlflow"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["results"]["keyword"]["metrics"]["micro_f1"] == 1.0
    assert "keyword" in capsys.readouterr().out
