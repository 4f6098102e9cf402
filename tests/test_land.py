"""``lakedoc land``: the real azure-storage-file-datalake SDK against a local fake ADLS Gen2 dfs endpoint
(tests/adls_server.py) — uploads, skips, resume after a failure, and injected faults (503, timeouts,
connections cut mid-upload, a rename whose answer is lost): nothing lost, nothing uploaded twice."""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import os

import pytest
from adls_server import FakeDataLake, Fault

from lakedoc.cli import main
from lakedoc.lake.land import land
from lakedoc.lake.storage import AdlsFS, LakeSettings

FS = "raw"
DEST_PATH = "landing/batch1"


@pytest.fixture()
def lake(monkeypatch):
    with FakeDataLake() as fake:
        monkeypatch.setenv("LAKEDOC_LAKE_ACCOUNT_KEY", fake.account_key)
        monkeypatch.delenv("LAKEDOC_LAKE_SAS_TOKEN", raising=False)
        fake.create_filesystem(FS)
        yield fake


def _settings(lake, **kw) -> LakeSettings:
    base = {"endpoint": lake.endpoint, "backoff_s": 0.01, "timeout_s": 1.0, "chunk_mb": 0.001, "max_retries": 3,
            "file_retries": 2, "parallel_files": 3, "chunk_concurrency": 2}
    return LakeSettings(**{**base, **kw})


def _dest(lake) -> str:
    return f"abfss://{FS}@{lake.account}.dfs.core.windows.net/{DEST_PATH}"


def _make_tree(root) -> dict[str, bytes]:
    files = {
        "a.txt": b"hello landing zone\n",
        "reports/q1.pdf": os.urandom(5000),          # 5 chunks of 1 KiB
        "reports/deep/x y [1].docx": os.urandom(2500),
        "empty.csv": b"",
        "mail/2026/msg.eml": b"Subject: hi\r\n\r\nbody\r\n" * 100,
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def _landed(lake) -> dict[str, bytes]:
    prefix = DEST_PATH + "/"
    return {p[len(prefix):]: d for p, d in lake.files(FS).items() if p.startswith(prefix)}


def _final_flushes(lake) -> dict[str, int]:
    """Committed flushes per landed file (to its staging name, which carries the relative path)."""
    out: dict[str, int] = {}
    for key, n in lake.state.flushes.items():
        path = key.split("/", 1)[1]
        if path.startswith(".lakedoc-staging/"):
            rel = path[len(".lakedoc-staging/" + DEST_PATH + "/"):].rsplit(".", 2)[0]
            out[rel] = out.get(rel, 0) + n
    return out


def test_land_uploads_keeps_paths_md5_and_skips_unchanged(lake, tmp_path):
    src = tmp_path / "inbox"
    files = _make_tree(src)
    s = land(str(src), _dest(lake), _settings(lake), progress=False)
    assert not s.failed and sorted(s.uploaded) == sorted(files) and not s.skipped
    assert s.bytes_uploaded == sum(len(d) for d in files.values())
    assert _landed(lake) == files  # relative paths kept, content exact, nothing else under the destination
    for rel, data in files.items():
        node = lake.node(FS, f"{DEST_PATH}/{rel}")
        assert node.content_md5 == base64.b64encode(hashlib.md5(data).digest()).decode()
    # staging is cleaned up; every file was renamed into place exactly once
    assert not [p for p in lake.files(FS) if p.startswith(".lakedoc-staging")]
    assert all(lake.state.renames[f"{FS}/{DEST_PATH}/{rel}"] == 1 for rel in files)
    assert lake.state.requests["append"] >= 5 + 3 + 2  # chunked: 1 KiB appends

    flushes = sum(lake.state.flushes.values())
    again = land(str(src), _dest(lake), _settings(lake), progress=False)
    assert sorted(again.skipped) == sorted(files) and not again.uploaded
    assert sum(lake.state.flushes.values()) == flushes  # nothing sent again

    (src / "reports/q1.pdf").write_bytes(b"changed, same dir")
    (src / "a.txt").write_bytes(b"HELLO landing zone\n")  # same size, other content: the MD5 tells
    third = land(str(src), _dest(lake), _settings(lake), progress=False)
    assert sorted(third.uploaded) == ["a.txt", "reports/q1.pdf"] and len(third.skipped) == 3
    assert _landed(lake)["reports/q1.pdf"] == b"changed, same dir"
    assert _landed(lake)["a.txt"] == b"HELLO landing zone\n"


def test_land_survives_503_timeouts_and_cut_connections(lake, tmp_path):
    src = tmp_path / "inbox"
    files = _make_tree(src)
    # the first rename meets a destination folder that does not exist yet (404, nothing applied): its
    # injected lost answer makes the SDK send it again, then the folder is created and the rename retried
    lake.inject(Fault(op="append", status=503), Fault(op="append", cut=True),
                Fault(op="append", delay_s=1.5), Fault(op="flush", status=503),
                Fault(op="create", status=500, code="InternalError"), Fault(op="append", cut_after_apply=True),
                Fault(op="rename", cut_after_apply=True), Fault(op="list", status=503))
    s = land(str(src), _dest(lake), _settings(lake), progress=False)
    assert not s.failed, s.failed
    assert lake.pending_faults() == 0  # every fault was met
    assert _landed(lake) == files  # nothing lost, nothing corrupted
    assert lake.state.statuses[503] >= 3
    assert all(n == 1 for n in _final_flushes(lake).values())  # each file committed once
    assert set(_final_flushes(lake)) == set(files)

    # folders exist now: a rename applied with its answer lost (the SDK's second try finds no source);
    # the destination's MD5 tells it landed (its properties read through a 503)
    (src / "reports/q1.pdf").write_bytes(b"second version")
    lake.inject(Fault(op="rename", cut_after_apply=True), Fault(op="properties", status=503))
    s = land(str(src), _dest(lake), _settings(lake, parallel_files=1), progress=False)
    assert not s.failed and s.uploaded == ["reports/q1.pdf"], s.failed
    assert lake.pending_faults() == 0
    assert _landed(lake) == {**files, "reports/q1.pdf": b"second version"}
    assert _final_flushes(lake)["reports/q1.pdf"] == 2  # one per version: the lost answer sent nothing twice


def test_land_creates_missing_folders_and_keeps_existing_ones(lake, tmp_path):
    """A hierarchical-namespace rename creates no parent folder (the service answers 404
    RenameDestinationParentPathNotFound): land creates the missing ones, never over an existing one."""
    src = tmp_path / "inbox"
    files = _make_tree(src)
    lake.put_file(FS, f"{DEST_PATH}/reports/older.pdf", b"landed by an earlier batch")
    reports = lake.node(FS, f"{DEST_PATH}/reports")
    etag, modified = reports.etag, reports.modified
    s = land(str(src), _dest(lake), _settings(lake), progress=False)
    assert not s.failed and sorted(s.uploaded) == sorted(files), s.failed
    assert _landed(lake) == {**files, "reports/older.pdf": b"landed by an earlier batch"}
    for folder in ("reports/deep", "mail", "mail/2026"):
        node = lake.node(FS, f"{DEST_PATH}/{folder}")
        assert node is not None and node.is_dir
    reports = lake.node(FS, f"{DEST_PATH}/reports")
    assert (reports.etag, reports.modified) == (etag, modified)  # the existing folder was not re-created
    # two writers racing for one new folder: the second finds it there and leaves it as it is
    fs = AdlsFS(_settings(lake))
    fs.make_dirs(f"{_dest(lake)}/reports")
    fs.make_dirs(f"{_dest(lake)}/new/a/b")
    assert lake.node(FS, f"{DEST_PATH}/reports").etag == etag
    assert lake.node(FS, f"{DEST_PATH}/new/a").is_dir and lake.node(FS, f"{DEST_PATH}/new/a/b").is_dir
    assert _landed(lake) == {**files, "reports/older.pdf": b"landed by an earlier batch"}


def test_land_resumes_after_an_interrupted_run(lake, tmp_path):
    src = tmp_path / "inbox"
    files = _make_tree(src)
    # one file's appends keep failing past every retry: the run ends with it failed, the rest landed
    lake.inject(*[Fault(op="append", status=503, path_contains="q1.pdf") for _ in range(40)])
    first = land(str(src), _dest(lake), _settings(lake, file_retries=1), progress=False)
    assert list(first.failed) == ["reports/q1.pdf"] and len(first.uploaded) == 4
    assert "reports/q1.pdf" not in _landed(lake)  # never a half file under its final name
    assert [p for p in lake.files(FS) if p.startswith(".lakedoc-staging")]  # its staging leftover
    with lake.state.lock:
        lake.state.faults.clear()

    second = land(str(src), _dest(lake), _settings(lake), progress=False)
    assert second.uploaded == ["reports/q1.pdf"] and len(second.skipped) == 4 and not second.failed
    assert _landed(lake) == files
    assert all(n == 1 for n in _final_flushes(lake).values())  # no file committed twice over both runs
    assert not [p for p in lake.files(FS) if p.startswith(".lakedoc-staging")]


def test_dry_run_writes_nothing(lake, tmp_path):
    src = tmp_path / "inbox"
    files = _make_tree(src)
    s = land(str(src), _dest(lake), _settings(lake), dry_run=True, progress=False)
    assert sorted(s.uploaded) == sorted(files) and s.dry_run
    assert lake.files(FS) == {} and lake.state.requests["append"] == 0 and lake.state.requests["create"] == 0


def test_land_with_a_sas_token_and_the_cli(lake, tmp_path, monkeypatch, capsys, caplog):
    src = tmp_path / "inbox"
    files = _make_tree(src)
    sas = "sv=2025-01-05&ss=b&srt=co&sp=rwdlac&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
    monkeypatch.delenv("LAKEDOC_LAKE_ACCOUNT_KEY")
    monkeypatch.setenv("LAKEDOC_LAKE_SAS_TOKEN", sas)
    caplog.set_level(logging.DEBUG)
    rc = main(["land", str(src), _dest(lake), "--endpoint", lake.endpoint, "--no-progress",
               "--set", "lake.backoff_s=0.01", "--set", "lake.chunk_mb=0.001"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "5 file(s): uploaded 5" in out.out and "skipped 0 unchanged, failed 0" in out.out
    assert _landed(lake) == files
    assert "sig=" not in caplog.text and "c2VjcmV0" not in caplog.text and "c2VjcmV0" not in out.err + out.out
    assert "SAS token" in caplog.text  # which kind of credential, never its value

    rc = main(["land", str(src), _dest(lake), "--endpoint", lake.endpoint, "--dry-run", "--no-progress"])
    assert rc == 0 and "would upload 0" in capsys.readouterr().out


def test_land_into_a_local_folder(tmp_path):
    src, dest = tmp_path / "inbox", tmp_path / "lake" / "landing"
    files = _make_tree(src)
    s = land(str(src), str(dest), LakeSettings(), progress=False)
    assert sorted(s.uploaded) == sorted(files)
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == files
    assert not [p for p in (tmp_path / "lake").rglob("*") if p.is_file() and ".lakedoc-staging" in p.parts]
    assert land(str(src), str(dest), LakeSettings(), progress=False).skipped.__len__() == 5


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("env", "flag", "bar"), [
    ({"CI": "false"}, True, True),             # CI=false / CI=0 is not CI: the bar is drawn on a terminal
    ({"CI": "0"}, True, True),
    ({"CI": "true"}, True, False),
    ({"LAKEDOC_PROGRESS": "0"}, True, False),  # the project-wide switch
    ({}, False, False),                        # --no-progress
])
def test_land_progress_follows_the_project_rule(tmp_path, monkeypatch, env, flag, bar):
    src, dest = tmp_path / "inbox", tmp_path / "lake" / "landing"
    _make_tree(src)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("LAKEDOC_PROGRESS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    s = land(str(src), str(dest), LakeSettings(), progress=flag)
    assert len(s.uploaded) == 5 and not s.failed
    drawn = tty.getvalue()
    if bar:
        assert "land" in drawn and "9.39k/9.39k" in drawn, drawn  # 9619 bytes, shown in KiB
    else:
        assert drawn == ""
