"""``abfss://`` input in a local run: the ingestion tasks list an ADLS Gen2 folder and read its files through
the real azure-storage-file-datalake SDK (lakedoc.ingest.sources.AdlsSource) against the local fake dfs
endpoint (tests/adls_server.py, 127.0.0.1 only): one row per file keyed by its abfss:// path, unchanged
files skipped, changed ones re-extracted, deleted ones soft-deleted, unreadable ones an error row."""
from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path

import pytest
from adls_server import FakeDataLake, Fault
from conftest import ROOT

from lakedoc.ingest.sources import AdlsSource, LakeCredentialError, LocalFolderSource, open_source
from lakedoc.ingest.stage import doc_id_for
from lakedoc.lake.land import land
from lakedoc.lake.storage import LakeSettings
from lakedoc.tables import LocalDeltaStore

FS = "raw"
LANDING = "landing/2026"
SAS = "sv=2025-01-05&ss=b&srt=co&sp=rl&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


@pytest.fixture()
def lake(monkeypatch):
    with FakeDataLake() as fake:
        monkeypatch.setenv("LAKEDOC_LAKE_ACCOUNT_KEY", fake.account_key)
        monkeypatch.delenv("LAKEDOC_LAKE_SAS_TOKEN", raising=False)
        fake.create_filesystem(FS)
        yield fake


def _root(lake) -> str:
    return f"abfss://{FS}@{lake.account}.dfs.core.windows.net/{LANDING}"


def _settings(lake, **kw) -> LakeSettings:
    return LakeSettings(**{"endpoint": lake.endpoint, "backoff_s": 0.01, "timeout_s": 5.0, "max_retries": 1, **kw})


def _docx(path: Path, body: str) -> None:
    import docx

    d = docx.Document()
    d.add_paragraph(body)
    d.save(path)


def _inputs(d: Path) -> dict[str, Path]:
    """Names Spark's binaryFile would skip or glob: a leading ``_`` / ``.``, brackets, braces, 0 bytes."""
    files = {"memo.docx": d / "memo.docx", "broken.docx": d / "sub" / "broken.docx",
             "_notes [1] {x}.txt": d / "_notes [1] {x}.txt", ".table.csv": d / "sub" / "deep" / ".table.csv",
             "empty.txt": d / "empty.txt", "locked.csv": d / "locked.csv"}
    for p in files.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    _docx(files["memo.docx"], "The merger was approved by the board.")
    files["broken.docx"].write_bytes(b"PK\x03\x04 truncated zip")
    files["_notes [1] {x}.txt"].write_text("Barley exports rose in the second quarter.\n")
    files[".table.csv"].write_text("name,city\nAlpha,Oslo\nBeta,Lima\n")
    files["empty.txt"].write_bytes(b"")
    files["locked.csv"].write_text("a,b\n1,2\n")
    return files


def _rel(d: Path, p: Path) -> str:
    return p.relative_to(d).as_posix()


# ------------------------------------------------------------------------------------------ no Spark


def test_adls_source_lists_every_file_and_reads_by_path_with_a_sas_token(lake, tmp_path, monkeypatch, caplog):
    src = tmp_path / "inbox"
    files = _inputs(src)
    assert not land(str(src), _root(lake), _settings(lake), progress=False).failed
    monkeypatch.delenv("LAKEDOC_LAKE_ACCOUNT_KEY")
    monkeypatch.setenv("LAKEDOC_LAKE_SAS_TOKEN", SAS)
    caplog.set_level(logging.DEBUG)

    source = open_source(_root(lake) + "/", _settings(lake))
    assert isinstance(source, AdlsSource) and source.root == _root(lake)
    listing = source.list()
    assert listing.source is source and not listing.local
    expected = {f"{_root(lake)}/{_rel(src, p)}": p for p in files.values()}
    assert sorted(listing.files.path) == sorted(expected)
    rows = listing.files.set_index("path")
    for path, local in expected.items():
        assert rows.loc[path, "length"] == local.stat().st_size
        assert rows.loc[path, "mtime_us"] % 1_000_000 == 0  # Last-Modified: whole seconds
        # read as a Spark task would: from a pickled copy (the credential resolved on the driver)
        task_copy = pickle.loads(pickle.dumps(source))
        assert task_copy.read(path, rows.loc[path, "fs_path"], int(rows.loc[path, "length"]), 1 << 20) \
            == local.read_bytes()
    # a size cap: at most max_bytes + 1 bytes are downloaded
    memo = f"{_root(lake)}/memo.docx"
    assert len(source.read(memo, None, files["memo.docx"].stat().st_size, 10)) == 11
    with pytest.raises(FileNotFoundError, match="gone from the lake"):
        source.read(f"{_root(lake)}/missing.docx", None, 5, 100)
    lake.inject(Fault(op="read", status=403, code="AuthorizationPermissionMismatch"))
    with pytest.raises(OSError, match="AuthorizationPermissionMismatch|HttpResponseError") as err:
        source.read(memo, None, 5, 100)
    assert "c2VjcmV0" not in str(err.value)
    # lakedoc's own log lines (the CLI keeps urllib3/azure, which log request URLs, at WARNING)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("lakedoc"))
    assert "SAS token" in ours and "c2VjcmV0" not in ours and "sig=" not in ours
    assert "c2VjcmV0" not in repr(source._cred) and "c2VjcmV0" not in repr(source)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        AdlsSource(f"{_root(lake)}/nothing-here", _settings(lake)).list()
    assert isinstance(open_source(str(tmp_path)), LocalFolderSource)
    assert open_source("dbfs:/mnt/x") is None


def test_missing_credentials_are_a_clear_error(lake, monkeypatch):
    monkeypatch.delenv("LAKEDOC_LAKE_ACCOUNT_KEY")
    for auth, names in (("account_key", "LAKEDOC_LAKE_ACCOUNT_KEY"), ("sas", "LAKEDOC_LAKE_SAS_TOKEN")):
        with pytest.raises(LakeCredentialError, match=f"no credential for the input .*{names}.*az login"):
            AdlsSource(_root(lake), _settings(lake, auth=auth)).list()

    import azure.identity

    class NoChain:
        def get_token(self, *scopes, **kw):
            from azure.identity import CredentialUnavailableError

            raise CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token")

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", NoChain)
    with pytest.raises(LakeCredentialError, match="default credential chain found none.*LAKEDOC_LAKE_ACCOUNT_KEY"):
        AdlsSource(_root(lake), _settings(lake)).list()  # auth: auto, neither key nor SAS set


def test_abfss_reader_setting_picks_the_sdk_off_databricks(monkeypatch):
    uri = "abfss://raw@account.dfs.core.windows.net/landing"
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert isinstance(open_source(uri, {}), AdlsSource)
    assert open_source(uri, {"input": {"abfss_reader": "spark"}}) is None  # Spark's binaryFile reader
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")  # a cluster: its own Unity Catalog access
    assert open_source(uri, {}) is None
    assert isinstance(open_source(uri, {"input": {"abfss_reader": "sdk"}}), AdlsSource)


# ------------------------------------------------------------------------------------------ the tasks


def _run(root: str, warehouse: Path, lake, only: str, run_id: str):
    from lakedoc.runner import load_bundle, run_dag, select, substitution_context, task_specs

    bundle = load_bundle(ROOT)
    ctx = substitution_context(bundle, "local", "lakedoc", run_id=run_id, input_path=root)
    specs = select(task_specs(bundle, "lakedoc", ctx), only)
    extra = []
    for s in (f"tables.warehouse={warehouse}", f"lake.endpoint={lake.endpoint}", "lake.backoff_s=0.01",
              "lake.max_retries=1", "lake.timeout_s=5"):
        extra += ["--set", s]
    out = {o.key: o for o in run_dag(specs, extra)}
    assert {o.status for o in out.values()} == {"succeeded"}, out
    return out


def _roots(warehouse: Path):
    df = LocalDeltaStore(warehouse).read_arrow("documents").to_pandas()
    assert df.doc_id.is_unique
    return df[df.depth == 0].set_index("source_path")


@pytest.mark.spark
def test_ingest_tasks_read_an_abfss_input(spark, lake, tmp_path, caplog):
    from lakedoc.lake.archive import archive

    src, wh = tmp_path / "inbox", tmp_path / "wh"
    files = _inputs(src)
    root = _root(lake)
    assert not land(str(src), root, _settings(lake), progress=False).failed
    path = {name: f"{root}/{_rel(src, p)}" for name, p in files.items()}
    lake.inject(Fault(op="read", status=403, code="AuthorizationPermissionMismatch", path_contains="locked.csv",
                      sticky=True))
    only = "ingest_docx,ingest_mail_text"
    caplog.set_level(logging.INFO)

    _run(root, wh, lake, only, "run-1")
    lake.clear_faults()
    roots = _roots(wh)
    assert sorted(roots.index) == sorted(path.values())  # one row per file, keyed by its abfss:// path
    assert roots.loc[path["memo.docx"], "doc_id"] == doc_id_for(path["memo.docx"])
    assert roots.loc[path["memo.docx"], "status"] == "ok"
    assert "merger was approved" in roots.loc[path["memo.docx"], "text"]
    assert roots.loc[path["broken.docx"], "status"] == "corrupt"
    assert "Barley exports" in roots.loc[path["_notes [1] {x}.txt"], "text"]
    assert "Oslo" in roots.loc[path[".table.csv"], "text"]
    assert roots.loc[path["empty.txt"], "status"] == "empty"
    locked = roots.loc[path["locked.csv"]]
    assert locked["status"] == "error" and "AuthorizationPermissionMismatch" in locked["error"]
    assert not roots.is_deleted.any()
    assert lake.account_key not in caplog.text

    # the lake changes: one file rewritten (same name, new content), one deleted, the rest unchanged
    lake.put_file(FS, f"{LANDING}/_notes [1] {{x}}.txt", b"Oat prices fell sharply this year.\n")
    node = lake.node(FS, f"{LANDING}/_notes [1] {{x}}.txt")
    assert node is not None
    node.modified = time.time() + 5  # a later Last-Modified second, as a later upload would have
    lake.put_file(FS, f"{LANDING}/locked.csv", b"a,b\n3,4\n")  # readable now, and changed
    with lake.state.lock:
        del lake.state.filesystems[FS][f"{LANDING}/sub/broken.docx"]
    reads_before = lake.state.requests["read"]

    _run(root, wh, lake, only, "run-2")
    roots = _roots(wh)
    assert sorted(roots.index) == sorted(path.values())  # nothing dropped
    notes = roots.loc[path["_notes [1] {x}.txt"]]
    assert "Oat prices" in notes["text"] and notes["run_id"] == "run-2" and not notes["is_deleted"]
    assert roots.loc[path["locked.csv"], "status"] == "ok" and roots.loc[path["locked.csv"], "run_id"] == "run-2"
    gone = roots.loc[path["broken.docx"]]
    assert gone["is_deleted"] and gone["deleted_at"] is not None
    for name in ("memo.docx", ".table.csv", "empty.txt"):  # unchanged: skipped, not read again
        assert roots.loc[path[name], "run_id"] == "run-1" and not roots.loc[path[name], "is_deleted"]
    assert lake.state.requests["read"] - reads_before == 2

    # lakedoc archive moves the processed files out of the abfss landing folder; a re-run keeps their rows
    summary = archive(_settings(lake), LocalDeltaStore(wh), root, "archive-1")
    assert not summary.failed
    left = {p for p in lake.files(FS) if p.startswith(LANDING + "/")}
    assert f"{LANDING}/memo.docx" not in left and any(p.endswith("/memo.docx") for p in lake.files(FS))
    # the same through the command line: lakedoc run --input abfss://...
    from lakedoc.cli import main

    rc = main(["run", "--input", root, "--warehouse", str(wh), "--only", only, "--root", str(ROOT),
               "--set", f"lake.endpoint={lake.endpoint}", "--set", "lake.backoff_s=0.01"])
    assert rc == 0
    roots = _roots(wh)
    assert not roots.loc[path["memo.docx"], "is_deleted"] and roots.loc[path["memo.docx"], "run_id"] == "run-1"
    assert lake.account_key not in caplog.text
