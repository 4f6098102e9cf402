"""The feedback table and ``lakedoc feedback add|import`` (lakedoc.finetune.feedback).

Real files, real Delta tables (delta-rs under a temporary folder), the real CLI entry point and the
repository's Reuters taxonomy.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from conftest import all_strings

from lakedoc.finetune.feedback import (
    FeedbackError,
    feedback_id,
    feedback_value,
    hash_reviewer,
    load_feedback,
    read_rows,
    record,
    reviewer_key,
    targets,
)
from lakedoc.schema import FEEDBACK, TABLES
from lakedoc.tables import LocalDeltaStore

KEY = b"test-reviewer-key-0123456789"
pytestmark = pytest.mark.usefixtures("no_leftover_log_handlers")  # lakedoc.cli.main adds one
LABELS = ["earn", "acq", "grain", "crude"]
REVIEWERS = ["alice.smith@example.com", "bob-7731"]


@pytest.fixture
def store(tmp_path):
    # delta-rs only: the MERGE of both backends on a spec's keys is tested in test_tables.py; what is
    # the feedback module's own (stable keys, compared columns) does not depend on the backend
    return LocalDeltaStore(tmp_path / "warehouse")


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_CSV = [
    "doc_id,label,score,verdict,reviewer,model_version",
    f"d1,earn,5,,{REVIEWERS[0]},v1",
    f"d1,acq,,reject,{REVIEWERS[0]},v1",
    f"d2,grain,2,,{REVIEWERS[1]},v1",
    f"d2,grain,,accept,{REVIEWERS[0]},v1",
]


def test_the_table_is_registered_and_documented():
    assert TABLES["feedback"] is FEEDBACK
    assert FEEDBACK.keys == ("feedback_id",)
    assert all(f.nullable for f in FEEDBACK.schema)
    assert "reviewer" not in FEEDBACK.column_names  # only the keyed hash has a column
    from lakedoc.schema import ARCHITECTURE_MD, documented_tables, tables_doc

    assert documented_tables(ARCHITECTURE_MD.read_text(encoding="utf-8")) == tables_doc()


def test_reimport_is_idempotent_and_a_new_score_updates(store, tmp_path):
    f = write_csv(tmp_path / "fb.csv", GOOD_CSV)
    first = record(store, read_rows(f), key=KEY, labels=LABELS, source="import", run_id="r1")
    assert (first.added, first.updated, first.unchanged, first.rejected) == (4, 0, 0, [])
    version = store.version(FEEDBACK)
    again = record(store, read_rows(f), key=KEY, labels=LABELS, source="import", run_id="r2")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)
    assert store.version(FEEDBACK) == version  # nothing written: no new Delta version
    rows = load_feedback(store)
    assert len(rows) == 4 and len({r["feedback_id"] for r in rows}) == 4
    assert {r["run_id"] for r in rows} == {"r1"}

    # the same feedback as JSONL is the same rows; one reviewer changes a score: one update
    jl = tmp_path / "fb.jsonl"
    jl.write_text("\n".join(json.dumps(o) for o in [
        {"doc_id": "d1", "label": "earn", "score": 5, "reviewer": REVIEWERS[0], "model_version": "v1"},
        {"doc_id": "d2", "label": "grain", "score": 4, "reviewer": REVIEWERS[1], "model_version": "v1"},
        {"doc_id": "d3", "label": "crude", "verdict": "ACCEPT", "reviewer": REVIEWERS[1]},
    ]) + "\n", encoding="utf-8")
    third = record(store, read_rows(jl), key=KEY, labels=LABELS, source="import", run_id="r3")
    assert (third.added, third.updated, third.unchanged) == (1, 1, 1)
    rows = {(r["doc_id"], r["label"], r["reviewer_hash"]): r for r in load_feedback(store)}
    assert len(rows) == 5
    assert rows[("d2", "grain", hash_reviewer(REVIEWERS[1], KEY))]["score"] == 4
    assert rows[("d3", "crude", hash_reviewer(REVIEWERS[1], KEY))]["verdict"] == "accept"
    assert rows[("d3", "crude", hash_reviewer(REVIEWERS[1], KEY))]["model_version"] == ""


def test_the_reviewer_id_is_never_stored(tmp_path):
    store = LocalDeltaStore(tmp_path / "warehouse")
    summary = record(store, read_rows(write_csv(tmp_path / "fb.csv", GOOD_CSV)), key=KEY, labels=LABELS,
                     source="import", run_id="r1")
    assert summary.added == 4
    rows = load_feedback(store)
    strings = all_strings(rows)
    for reviewer in REVIEWERS:
        assert not any(reviewer in s for s in strings)
        expected = hmac.new(KEY, reviewer.encode(), hashlib.sha256).hexdigest()
        assert expected in {r["reviewer_hash"] for r in rows}
        # not in any file of the table either (data files, Delta log with its statistics)
        for p in Path(store.location(FEEDBACK)).rglob("*"):
            if p.is_file():
                assert reviewer.encode() not in p.read_bytes(), p
    # a keyed hash: another key gives another pseudonym, and the key id is part of the row key
    assert hash_reviewer(REVIEWERS[0], b"other key") != hash_reviewer(REVIEWERS[0], KEY)
    assert feedback_id("d1", "earn", hash_reviewer(REVIEWERS[0], KEY), "v1") in {r["feedback_id"] for r in rows}


def test_rows_are_validated_with_their_line_numbers(tmp_path):
    store = LocalDeltaStore(tmp_path / "warehouse")
    f = write_csv(tmp_path / "bad.csv", [
        "doc_id,label,score,verdict,reviewer",
        "d1,earn,5,,r1",          # line 2: fine
        "d1,corn-flakes,5,,r1",   # 3: unknown label
        "d1,acq,7,,r1",           # 4: out of range
        "d1,acq,4.5,,r1",         # 5: not an integer
        "d1,acq,4,accept,r1",     # 6: both
        "d1,acq,,,r1",            # 7: neither
        "d1,acq,,maybe,r1",       # 8: bad verdict
        ",acq,3,,r1",             # 9: no doc id
        "d1,acq,3,,",             # 10: no reviewer
        "d2,grain,1,,r2",         # 11: fine
        "d2,grain,2,,r2",         # 12: same key as 11: the later line wins
    ])
    s = record(store, read_rows(f), key=KEY, labels=LABELS, source="import", run_id="r1")
    reasons = dict(s.rejected)
    assert "unknown label 'corn-flakes'" in reasons[3]
    assert "out of range 1..5" in reasons[4]
    assert "must be an integer" in reasons[5]
    assert "not both" in reasons[6]
    assert "give a score" in reasons[7]
    assert "accept or reject" in reasons[8]
    assert "doc_id is missing" in reasons[9]
    assert "reviewer is missing" in reasons[10]
    assert "superseded by line 12" in reasons[11]
    assert s.added == 2
    assert sorted((r["doc_id"], r["label"], r["score"]) for r in load_feedback(store)) == \
        [("d1", "earn", 5), ("d2", "grain", 2)]
    text = s.format()
    assert "2 added" in text and "9 rejected" in text and "rejected line 3: unknown label" in text

    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"doc_id": "d1", "label": "earn", "score": 4, "reviewer": "r1"}\n'
                  '{"doc_id": "d1", "label": \n'
                  '\n'
                  '["not", "an", "object"]\n', encoding="utf-8")
    parsed = list(read_rows(jl))
    assert [line for line, _ in parsed] == [1, 2, 4]
    assert isinstance(parsed[1][1], FeedbackError) and "not valid JSON" in str(parsed[1][1])
    assert isinstance(parsed[2][1], FeedbackError) and "JSON object" in str(parsed[2][1])

    with pytest.raises(FeedbackError, match="header"):
        list(read_rows(write_csv(tmp_path / "nohead.csv", ["d1,earn,5,,r1"])))
    with pytest.raises(FeedbackError, match=r"\.csv or \.jsonl"):
        list(read_rows(write_csv(tmp_path / "fb.txt", GOOD_CSV)))


def test_feedback_values_and_targets():
    assert [feedback_value(s, None) for s in range(1, 6)] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert feedback_value(None, "accept") == 1.0 and feedback_value(None, "reject") == -1.0
    rows = [{"doc_id": "d1", "label": "earn", "score": 5, "verdict": None, "model_version": "v1"},
            {"doc_id": "d1", "label": "earn", "score": 2, "verdict": None, "model_version": "v1"},
            {"doc_id": "d1", "label": "acq", "score": None, "verdict": "reject", "model_version": "v2"},
            {"doc_id": "d2", "label": "nope", "score": 5, "verdict": None, "model_version": "v1"}]
    assert targets(rows, set(LABELS)) == {"d1": {"earn": 0.25, "acq": -1.0}}
    assert targets(rows, set(LABELS), model_version="v2") == {"d1": {"acq": -1.0}}


def test_cli_add_import_and_a_missing_key(tmp_path, monkeypatch, capsys):
    from lakedoc.cli import main

    wh = tmp_path / "warehouse"
    monkeypatch.delenv("LAKEDOC_REVIEWER_KEY", raising=False)
    rc = main(["feedback", "add", "--doc-id", "d1", "--label", "earn", "--accept", "--reviewer", "alice",
               "--warehouse", str(wh)])
    err = capsys.readouterr().err
    assert rc == 2 and "LAKEDOC_REVIEWER_KEY" in err and "reviewer" in err
    assert not (wh / "feedback").exists()

    monkeypatch.setenv("LAKEDOC_REVIEWER_KEY", KEY.decode())
    from lakedoc.config import load_config

    assert reviewer_key(load_config("local")) == KEY
    rc = main(["feedback", "add", "--doc-id", "d1", "--label", "earn", "--score", "4", "--reviewer", "alice",
               "--model-version", "v1", "--warehouse", str(wh)])
    assert rc == 0 and "1 added" in capsys.readouterr().out
    rc = main(["feedback", "add", "--doc-id", "d1", "--label", "not-a-label", "--reject", "--reviewer", "alice",
               "--warehouse", str(wh)])
    assert rc == 1 and "unknown label 'not-a-label'" in capsys.readouterr().err
    rc = main(["feedback", "add", "--doc-id", "d1", "--label", "earn", "--score", "9", "--reviewer", "alice",
               "--warehouse", str(wh)])
    assert rc == 1 and "out of range" in capsys.readouterr().err

    f = write_csv(tmp_path / "fb.csv", [*GOOD_CSV, "d9,wheat,1,,carol,v1", "d9,bogus,1,,carol,v1"])
    rc = main(["feedback", "import", str(f), "--warehouse", str(wh)])
    out = capsys.readouterr().out
    assert rc == 1 and "5 added, 0 updated, 0 unchanged, 1 rejected" in out and "line 7: unknown label" in out
    rc = main(["feedback", "import", str(f), "--warehouse", str(wh)])
    assert "0 added, 0 updated, 5 unchanged, 1 rejected" in capsys.readouterr().out
    rows = load_feedback(LocalDeltaStore(wh))
    assert len(rows) == 6 and {r["source"] for r in rows} == {"cli", "import"}
    assert not any("alice" in s or "carol" in s for s in all_strings(rows))

    rc = main(["feedback", "import", str(tmp_path / "missing.jsonl"), "--warehouse", str(wh)])
    assert rc == 2 and "no such file" in capsys.readouterr().err
