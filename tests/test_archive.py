"""``lakedoc archive`` / task ``archive_inputs``: committed bronze rows decide which landing files move to
archive/YYYY/MM/DD or quarantine/YYYY/MM/DD (+ JSON sidecar); local folders (os.rename) and ADLS Gen2
(the real DataLake SDK against tests/adls_server.py, hierarchical-namespace rename)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from adls_server import FakeDataLake, Fault

from lakedoc.ingest.stage import doc_id_for
from lakedoc.lake.archive import archive, run
from lakedoc.lake.storage import AdlsFS, LakeSettings
from lakedoc.schema import DOCUMENTS, FILE_MOVES
from lakedoc.tables import LocalDeltaStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
FILES = {"good.docx": ("ok", None), "sub/blank.pdf": ("empty", None), "bad.xlsx": ("corrupt", "BadZipFile: x"),
         "locked.docx": ("encrypted", "password required"), "photo.pdf": ("image_only", None),
         "odd.bin": ("weird_status", None)}


def _bronze_rows(entries: dict[str, tuple[int, datetime]], statuses: dict, run_id="ingest-run-1",
                 ingested_at=NOW - timedelta(hours=1)) -> list[dict]:
    rows = []
    for path, (size, mtime) in sorted(entries.items()):
        status, error = statuses[path]
        doc_id = doc_id_for(path)
        rows.append({"doc_id": doc_id, "root_doc_id": doc_id, "depth": 0, "source_task": "docx",
                     "source_path": path, "file_name": os.path.basename(path), "size_bytes": size,
                     "modified_at": mtime, "status": status, "error": error,
                     "text": "secret document text" if status == "ok" else None, "is_deleted": False,
                     "run_id": run_id, "ingested_at": ingested_at})
    return rows


def _commit(store, rows: list[dict]) -> None:
    cols = {f.name for f in DOCUMENTS.schema}
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k in cols} for r in rows],
                                 schema=DOCUMENTS.schema)
    store.merge(DOCUMENTS, table, scope=DOCUMENTS.scope_of("docx"))


def _local_landing(tmp_path):
    landing = tmp_path / "lake" / "landing"
    entries = {}
    for rel in FILES:
        p = landing / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"content of {rel}".encode())
        st = p.stat()
        # milliseconds, as the ingestion stores modified_at
        mtime = datetime.fromtimestamp(st.st_mtime_ns // 1_000_000 / 1000, tz=timezone.utc)
        entries[str(p.resolve())] = (st.st_size, mtime)
    return landing, entries


@pytest.fixture()
def store(tmp_path):
    return LocalDeltaStore(tmp_path / "wh")


def test_archive_local_moves_only_committed_rows_and_is_idempotent(tmp_path, store):
    landing, entries = _local_landing(tmp_path)
    (landing / "new.pptx").write_bytes(b"arrived after the run")  # no bronze row: stays
    statuses = {p: FILES[os.path.relpath(p, landing.resolve())] for p in entries}
    _commit(store, _bronze_rows(entries, statuses))

    s = archive(LakeSettings(), store, str(landing), "archive-run-1", now=NOW)
    assert not s.failed
    day = tmp_path / "lake" / "archive" / "2026" / "11" / "29"
    qday = tmp_path / "lake" / "quarantine" / "2026" / "11" / "29"
    assert (day / "good.docx").read_bytes() == b"content of good.docx"
    assert (day / "sub" / "blank.pdf").is_file()
    for rel, (status, error) in [("bad.xlsx", FILES["bad.xlsx"]), ("locked.docx", FILES["locked.docx"]),
                                 ("photo.pdf", FILES["photo.pdf"])]:
        assert (qday / rel).is_file()
        side = json.loads((qday / (rel + ".lakedoc.json")).read_text())
        assert side["status"] == status and side["error"] == error
        assert side["ingest_run_id"] == "ingest-run-1" and side["archive_run_id"] == "archive-run-1"
        assert "secret document text" not in json.dumps(side)
    remaining = sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file())
    assert remaining == ["new.pptx", "odd.bin"]
    assert s.left == {"not_ingested": 1, "status_weird_status": 1}

    moves = {r["source_path"]: r for r in store.read_arrow(FILE_MOVES).to_pylist()}
    assert len(moves) == 5 and all(r["state"] == "done" for r in moves.values())
    good = moves[str((landing / "good.docx").resolve())]
    assert good["destination"] == str(day / "good.docx") and good["kind"] == "archive"
    assert good["doc_id"] and good["run_id"] == "archive-run-1"

    again = archive(LakeSettings(), store, str(landing), "archive-run-2", now=NOW)
    assert not again.archived and not again.quarantined and again.listed == 2
    assert len(store.read_arrow(FILE_MOVES)) == 5


def test_archive_leaves_changed_and_uncommitted_files(tmp_path, store):
    landing, entries = _local_landing(tmp_path)
    statuses = {p: FILES[os.path.relpath(p, landing.resolve())] for p in entries}
    good = str((landing / "good.docx").resolve())
    rows = [r for r in _bronze_rows(entries, statuses) if not r["source_path"].endswith("bad.xlsx")]
    _commit(store, rows)
    (landing / "good.docx").write_bytes(b"replaced after ingestion, longer")  # another version now
    s = archive(LakeSettings(), store, str(landing), "r", now=NOW)
    assert os.path.exists(good) and (landing / "bad.xlsx").exists()
    assert s.left["changed_since_ingestion"] == 1 and s.left["not_ingested"] == 1


def test_a_file_back_in_landing_is_processed_again_first(tmp_path, store):
    landing, entries = _local_landing(tmp_path)
    statuses = {p: FILES[os.path.relpath(p, landing.resolve())] for p in entries}
    _commit(store, _bronze_rows(entries, statuses))
    archive(LakeSettings(), store, str(landing), "r1", now=NOW)
    # the file comes back unchanged (same size and mtime): its bronze row predates the move
    day = tmp_path / "lake" / "archive" / "2026" / "11" / "29"
    os.rename(day / "good.docx", landing / "good.docx")
    s = archive(LakeSettings(), store, str(landing), "r2", now=NOW + timedelta(minutes=5))
    assert s.left.get("awaiting_reprocessing") == 1 and (landing / "good.docx").exists()
    # a soft-deleted row (as ingestion wrote before it consulted file_moves) counts as not ingested; the
    # re-extracted, newer row -> moved again, without overwriting the first copy
    good = str((landing / "good.docx").resolve())
    gone = _bronze_rows({good: entries[good]}, {good: ("ok", None)}, run_id="ingest-run-2",
                        ingested_at=NOW + timedelta(minutes=6))
    gone[0]["is_deleted"] = True
    _commit(store, gone)
    s = archive(LakeSettings(), store, str(landing), "r2b", now=NOW + timedelta(minutes=7))
    assert s.left.get("not_ingested") == 1 and (landing / "good.docx").exists()
    _commit(store, _bronze_rows({good: entries[good]}, {good: ("ok", None)}, run_id="ingest-run-3",
                                ingested_at=NOW + timedelta(minutes=10)))
    s = archive(LakeSettings(), store, str(landing), "r3", now=NOW + timedelta(minutes=20))
    assert s.archived == [good] and not (landing / "good.docx").exists()
    assert (day / "good.docx").read_bytes() == b"content of good.docx"
    done = [r for r in store.read_arrow(FILE_MOVES).to_pylist() if r["source_path"] == good]
    assert sorted(r["run_id"] for r in done if r["state"] == "done") == ["r1", "r3"]  # both moves recorded
    # an existing destination is never overwritten: a file with the same name gets a suffix
    (landing / "again").mkdir()
    (day / "again").mkdir()
    (day / "again" / "x.txt").write_bytes(b"older")
    (landing / "again" / "x.txt").write_bytes(b"newer")
    x = str((landing / "again" / "x.txt").resolve())
    st = os.stat(x)
    _commit(store, _bronze_rows({x: (st.st_size, datetime.fromtimestamp(st.st_mtime_ns // 1_000_000 / 1000,
                                                                          tz=timezone.utc))},
                                {x: ("ok", None)}, ingested_at=NOW + timedelta(minutes=30)))
    s = archive(LakeSettings(), store, str(landing), "r4", now=NOW + timedelta(minutes=40))
    assert s.archived == [x] and (day / "again" / "x.txt").read_bytes() == b"older"
    assert [p.read_bytes() for p in (day / "again").glob("x~*.txt")] == [b"newer"]


def test_an_interrupted_archive_run_is_completed(tmp_path, store):
    landing, entries = _local_landing(tmp_path)
    statuses = {p: FILES[os.path.relpath(p, landing.resolve())] for p in entries}
    _commit(store, _bronze_rows(entries, statuses))

    class Killed(BaseException):  # the process dies: nothing after the rename runs
        pass

    from lakedoc.lake.storage import LocalFS

    class DiesAfterTwo(LocalFS):
        n = 0

        def rename(self, src, dst):
            if self.n == 2:
                raise Killed()
            self.n += 1
            super().rename(src, dst)

    with pytest.raises(Killed):
        archive(LakeSettings(), store, str(landing), "r1", now=NOW, fs=DiesAfterTwo())
    assert [r["state"] for r in store.read_arrow(FILE_MOVES).to_pylist()] == ["pending"] * 5
    s2 = archive(LakeSettings(), store, str(landing), "r2", now=NOW)
    assert s2.repaired == 2 and len(s2.archived) + len(s2.quarantined) == 3 and not s2.failed
    states = [r["state"] for r in store.read_arrow(FILE_MOVES).to_pylist()]
    assert states.count("done") == 5 and states.count("failed") == 3  # r1's unfinished rows, redone by r2
    assert not [p for p in landing.rglob("*") if p.is_file() and p.name != "odd.bin"]
    assert archive(LakeSettings(), store, str(landing), "r3", now=NOW).repaired == 0


def test_archive_on_adls_with_faults(tmp_path, store, monkeypatch):
    with FakeDataLake() as lake:
        monkeypatch.setenv("LAKEDOC_LAKE_ACCOUNT_KEY", lake.account_key)
        settings = LakeSettings(endpoint=lake.endpoint, backoff_s=0.01, timeout_s=1.0, max_retries=3)
        root = f"abfss://raw@{lake.account}.dfs.core.windows.net/landing"
        for rel in FILES:
            lake.put_file("raw", f"landing/{rel}", f"content of {rel}".encode())
        fs = AdlsFS(settings)
        entries = {fs.join(root, e.rel): (e.size, e.mtime) for e in fs.list_files(root)}
        statuses = {p: FILES[p[len(root) + 1:]] for p in entries}
        _commit(store, _bronze_rows(entries, statuses))
        lake.inject(Fault(op="rename", status=503), Fault(op="rename", cut_after_apply=True),
                    Fault(op="create", status=503), Fault(op="list", status=503))
        s = archive(settings, store, root, "arch-1", now=NOW)
        assert not s.failed and len(s.archived) == 2 and len(s.quarantined) == 3
        files = lake.files("raw")
        assert sorted(files) == sorted([
            "archive/2026/11/29/good.docx", "archive/2026/11/29/sub/blank.pdf",
            "quarantine/2026/11/29/bad.xlsx", "quarantine/2026/11/29/bad.xlsx.lakedoc.json",
            "quarantine/2026/11/29/locked.docx", "quarantine/2026/11/29/locked.docx.lakedoc.json",
            "quarantine/2026/11/29/photo.pdf", "quarantine/2026/11/29/photo.pdf.lakedoc.json",
            "landing/odd.bin"])
        assert files["archive/2026/11/29/good.docx"] == b"content of good.docx"
        side = json.loads(files["quarantine/2026/11/29/bad.xlsx.lakedoc.json"])
        assert side["status"] == "corrupt" and side["original_path"] == f"{root}/bad.xlsx"
        assert lake.pending_faults() == 0
        # a rename creates no folder on the service: archive/2026/11/29/sub was created for the move
        assert all(lake.node("raw", d).is_dir for d in ("archive", "archive/2026/11/29", "archive/2026/11/29/sub"))
        again = archive(settings, store, root, "arch-2", now=NOW)
        assert again.listed == 1 and not again.archived and not again.quarantined


def test_archive_on_adls_into_an_existing_day_folder(tmp_path, store, monkeypatch):
    """The day's folder exists (an earlier run today): kept as it is, its missing sub-folders created."""
    with FakeDataLake() as lake:
        monkeypatch.setenv("LAKEDOC_LAKE_ACCOUNT_KEY", lake.account_key)
        settings = LakeSettings(endpoint=lake.endpoint, backoff_s=0.01, timeout_s=1.0, max_retries=3)
        root = f"abfss://raw@{lake.account}.dfs.core.windows.net/landing"
        for rel in ("good.docx", "sub/blank.pdf", "sub/deeper/more.pdf"):
            lake.put_file("raw", f"landing/{rel}", f"content of {rel}".encode())
        lake.put_file("raw", "archive/2026/11/29/earlier.docx", b"archived this morning")
        day = lake.node("raw", "archive/2026/11/29")
        etag = day.etag
        fs = AdlsFS(settings)
        entries = {fs.join(root, e.rel): (e.size, e.mtime) for e in fs.list_files(root)}
        _commit(store, _bronze_rows(entries, {p: ("ok", None) for p in entries}))
        lake.inject(Fault(op="create", status=503))  # the folder's creation is retried by the SDK
        s = archive(settings, store, root, "arch-1", now=NOW)
        assert not s.failed and len(s.archived) == 3, s.failed
        assert lake.files("raw") == {
            "archive/2026/11/29/earlier.docx": b"archived this morning",
            "archive/2026/11/29/good.docx": b"content of good.docx",
            "archive/2026/11/29/sub/blank.pdf": b"content of sub/blank.pdf",
            "archive/2026/11/29/sub/deeper/more.pdf": b"content of sub/deeper/more.pdf"}
        assert lake.node("raw", "archive/2026/11/29").etag == etag  # not re-created
        assert lake.pending_faults() == 0


def test_task_is_off_unless_enabled(tmp_path, store):
    from lakedoc.config import load_config
    from lakedoc.tasks import TaskContext

    landing, entries = _local_landing(tmp_path)
    statuses = {p: FILES[os.path.relpath(p, landing.resolve())] for p in entries}
    _commit(store, _bronze_rows(entries, statuses))
    cfg = load_config("local", environ={}, sets={"tables": {"warehouse": str(tmp_path / "wh")}})
    ctx = TaskContext("archive_inputs", "run-x", cfg, None, store, str(landing))
    assert run(ctx).details == {"enabled": False} and (landing / "good.docx").exists()
    cfg = cfg.with_overrides({"lake": {"archive": {"enabled": True}}})
    ctx = TaskContext("archive_inputs", "run-x", cfg, None, store, str(landing))
    res = run(ctx)
    assert res.details["archived"] == 2 and res.details["quarantined"] == 3 and res.rows_out == 5
    assert not (landing / "good.docx").exists()


def test_end_to_end_local_ingest_then_archive(tmp_path, spark):
    """The real ingest_docx task writes bronze rows; archive then moves by those committed rows."""
    import docx

    from lakedoc.config import load_config
    from lakedoc.tasks import run_task

    landing = tmp_path / "landing"
    (landing / "team").mkdir(parents=True)
    d = docx.Document()
    d.add_paragraph("Quarterly grain exports rose sharply in the northern ports this year.")
    d.save(str(landing / "team" / "report.docx"))
    (landing / "broken.docx").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    store = LocalDeltaStore(tmp_path / "wh", spark)
    cfg = load_config("local", environ={}, sets={"tables": {"warehouse": str(tmp_path / "wh")},
                                                 "lake": {"archive": {"enabled": True}}})
    ingest = run_task("ingest_docx", cfg, input_path=str(landing), spark=spark, tables=store)
    assert ingest.status == "succeeded", ingest.error
    statuses = {r["file_name"]: r["status"] for r in store.read_arrow(DOCUMENTS).to_pylist() if r["depth"] == 0}
    assert statuses["report.docx"] == "ok" and statuses["broken.docx"] in ("corrupt", "unsupported")

    before = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    res = run_task("archive_inputs", cfg, input_path=str(landing), spark=spark, tables=store)
    assert res.status == "succeeded", res.error
    assert res.result.details["archived"] == 1 and res.result.details["quarantined"] == 1
    day = before if (tmp_path / "archive" / before).is_dir() else datetime.now(timezone.utc).strftime("%Y/%m/%d")
    assert (tmp_path / "archive" / day / "team" / "report.docx").is_file()
    side = json.loads((tmp_path / "quarantine" / day / "broken.docx.lakedoc.json").read_text())
    assert side["status"] == statuses["broken.docx"] and side["ingest_run_id"] == ingest.run_id
    assert not [p for p in landing.rglob("*") if p.is_file()]
    moves = store.read_arrow(FILE_MOVES).to_pylist()
    assert {r["source_path"] for r in moves} == {str((landing / "team" / "report.docx").resolve()),
                                                 str((landing / "broken.docx").resolve())}


def test_archived_files_keep_their_rows_and_a_returned_file_is_ingested_again(tmp_path, spark):
    """Real ingest_docx + archive_inputs + redact_pii: the next ingestion run keeps the rows of files lakedoc
    moved away (bronze and silver), re-extracts a file put back into landing (one row per file still) and
    still soft-deletes a file a user deleted."""
    import docx

    from lakedoc.config import load_config
    from lakedoc.schema import DOCUMENTS_REDACTED
    from lakedoc.tasks import run_task

    def write_docx(path, text):
        d = docx.Document()
        d.add_paragraph(text)
        d.save(str(path))

    landing = tmp_path / "landing"
    (landing / "team").mkdir(parents=True)
    write_docx(landing / "team" / "report.docx", "Quarterly grain exports rose sharply in the northern ports.")
    (landing / "broken.docx").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    store = LocalDeltaStore(tmp_path / "wh", spark)
    cfg = load_config("local", environ={}, sets={"tables": {"warehouse": str(tmp_path / "wh")},
                                                 "lake": {"archive": {"enabled": True}}})
    report = str((landing / "team" / "report.docx").resolve())
    broken = str((landing / "broken.docx").resolve())
    later = str((landing / "later.docx").resolve())

    def step(task):
        res = run_task(task, cfg, input_path=str(landing), spark=spark, tables=store)
        assert res.status == "succeeded", res.error
        return res

    def bronze():
        rows = store.read_arrow(DOCUMENTS).to_pylist()
        assert len({r["doc_id"] for r in rows}) == len(rows)  # one row per file
        return {r["source_path"]: r for r in rows if r["depth"] == 0}

    def silver():
        return {r["doc_id"] for r in store.read_arrow(DOCUMENTS_REDACTED).to_pylist()}

    first = step("ingest_docx")
    step("redact_pii")
    assert silver() == {doc_id_for(report)}
    archived = step("archive_inputs")
    assert archived.result.details["archived"] == 1 and archived.result.details["quarantined"] == 1
    assert not [p for p in landing.rglob("*") if p.is_file()]

    # 1. the next run: landing holds only a new file; the archived and quarantined files keep their rows
    write_docx(landing / "later.docx", "Barley harvest estimates for the coming season were revised.")
    second = step("ingest_docx")
    assert second.result.details["soft_deleted"] == 0
    rows = bronze()
    assert not rows[report]["is_deleted"] and not rows[broken]["is_deleted"]
    assert rows[report]["run_id"] == first.run_id and rows[broken]["run_id"] == first.run_id  # untouched
    assert not rows[later]["is_deleted"] and rows[later]["run_id"] == second.run_id
    step("redact_pii")
    assert silver() == {doc_id_for(report), doc_id_for(later)}

    # 2. the archived file comes back unchanged (same size and modification time); a user deletes later.docx
    moved = [r for r in store.read_arrow(FILE_MOVES).to_pylist() if r["source_path"] == report]
    st_before = os.stat(moved[0]["destination"])
    os.rename(moved[0]["destination"], report)
    assert os.stat(report).st_mtime_ns == st_before.st_mtime_ns
    os.unlink(later)
    third = step("ingest_docx")
    assert third.result.details["files_extracted"] == 1 and third.result.details["files_back_after_move"] == 1
    rows = bronze()
    assert rows[report]["run_id"] == third.run_id and not rows[report]["is_deleted"]  # processed again
    assert rows[report]["ingested_at"] > moved[0]["moved_at"]
    assert "grain exports" in rows[report]["text"]
    assert rows[later]["is_deleted"] and rows[later]["deleted_at"] is not None  # deleted by a user
    assert not rows[broken]["is_deleted"]  # still in quarantine: kept
    step("redact_pii")
    assert silver() == {doc_id_for(report)}

    # 3. re-running ingestion changes nothing; the re-processed file is archived again
    again = step("ingest_docx")
    assert again.result.details["files_extracted"] == 0 and again.result.rows_out == 0
    res = step("archive_inputs")
    assert res.result.details["archived"] == 1 and not (landing / "team" / "report.docx").exists()
    done = [r for r in store.read_arrow(FILE_MOVES).to_pylist() if r["source_path"] == report and r["state"] == "done"]
    assert len(done) == 2 and all(os.path.isfile(r["destination"]) for r in done)
    fourth = step("ingest_docx")
    assert fourth.result.details["soft_deleted"] == 0 and fourth.result.details["files_extracted"] == 0
    assert not bronze()[report]["is_deleted"]
    step("redact_pii")
    assert silver() == {doc_id_for(report)}
