"""The MLflow registry of the fine-tuned encoder: log, register, alias, resolve, load (section ``finetune.registry``).

**One MLflow model per fine-tuned encoder.** :func:`log_model` logs a folder saved by
:meth:`lakedoc.finetune.model.DualEncoder.save` (``adapter/``, ``tokenizer/``, ``meta.json`` with label
names, descriptions, scale, bias and thresholds, ``label_embeddings.npy``: the label-embedding cache)
as a pyfunc model whose one artifact is that folder, plus ``merged/``: the base model with the LoRA
adapter merged into its weights (peft ``merge_and_unload``), saved as a plain sentence-transformers
folder so that the pipeline's encoder (:mod:`lakedoc.encoder`) loads it like any other model. The
pyfunc scores a DataFrame with a ``text`` column (one column per label: the model's sigmoid scores); the
signature says so, which Unity Catalog requires. Training metrics and settings go to the run; the model
version is tagged with the lakedoc run id and the test/validation metrics it was registered with.

**Stores.** Locally an embedded SQLite tracking *and* registry store ``<warehouse>/_mlflow/mlflow.db``
with artifacts in ``<warehouse>/_mlflow/artifacts`` (the one the baselines' tracking uses; mlflow-skinny
needs SQLAlchemy + alembic for it, pinned in requirements.txt); on Databricks tracking ``databricks`` and
the Unity Catalog registry ``databricks-uc``, where a model name without dots is qualified as
``<tables.catalog>.<tables.schema>.<name>``. ``finetune.registry.tracking_uri`` / ``registry_uri``
override both.

**Aliases.** ``finetune.registry.alias`` (``champion``) names the deployed version: :func:`promote`
moves it, :func:`get_alias` reads it, :func:`load_champion` loads that version as a
:class:`~lakedoc.finetune.model.DualEncoder`.

**Use in the DAG** (``encoder.model_uri``: ``models:/lakedoc_encoder@champion``, ``models:/NAME/VERSION``
or a local saved folder): :func:`resolve` runs on the *driver* only — it asks the registry which version
the alias names and downloads that version once into ``finetune.registry.cache_dir`` (default
``<warehouse>/_models/registry``; on Databricks a folder of the models volume, which every worker
mounts), ``<name>/v<version>``; a version already there is not downloaded again. The classify and
embed plans then carry only that folder's path (a string): each Python worker loads the merged encoder
and the label cache from it once (:func:`lakedoc.encoder.get_encoder`, :func:`scorer`) — never
broadcast, no registry call on a worker, Spark Connect safe. The model id recorded in the
``embeddings``, ``predictions`` and ``classify_state`` rows is ``models:/<name>/<version>`` (from the
marker file ``lakedoc_model.json`` of the downloaded ``merged/`` folder, read by
:func:`lakedoc.encoder.resolve_model`), so a promotion re-classifies and re-embeds every document.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakedoc.config_schema import RegistrySettings

if TYPE_CHECKING:
    from lakedoc.finetune.model import DualEncoder

log = logging.getLogger(__name__)

MERGED = "merged"               # inside it: base + adapter merged, a sentence-transformers folder
MARKER = "lakedoc_model.json"   # inside merged/ after resolve: the model id the pipeline records
COMPLETE = ".complete"          # a fully downloaded version folder
METHOD = "finetuned"            # the predictions method of the classify task with a registered model


class RegistryError(RuntimeError):
    """The registry cannot be reached, or has no such model, version or alias."""


@dataclass(frozen=True)
class Store:
    """Where the registered model lives (from ``finetune.registry`` and the environment)."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None
    model_name: str
    alias: str
    experiment: str


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str | None
    source: str | None = None

    @property
    def model_id(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Resolved:
    """A registered (or local) fine-tuned model on the local file system."""

    model_id: str            # models:/<name>/<version>, or the folder for a plain folder
    name: str | None
    version: str | None
    folder: Path | None      # the DualEncoder folder (None with download=False)

    @property
    def merged(self) -> Path:
        if self.folder is None:
            raise RegistryError(f"{self.model_id} was resolved without download")
        return self.folder / MERGED


# ---------------------------------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------------------------------

def _warehouse(cfg: Any) -> Path:
    return Path(cfg.resolve_path(cfg.tables.warehouse))


def store(cfg: Any) -> Store:
    """The tracking/registry URIs, the qualified model name and the alias for ``cfg``."""
    from lakedoc.spark import on_databricks

    reg = RegistrySettings.from_config(cfg)
    artifacts = None
    if reg.tracking_uri:
        tracking = reg.tracking_uri
    elif on_databricks():
        tracking = "databricks"
    else:
        root = _warehouse(cfg) / "_mlflow"
        root.mkdir(parents=True, exist_ok=True)
        tracking = f"sqlite:///{root / 'mlflow.db'}"
        artifacts = (root / "artifacts").as_uri()
    registry = reg.registry_uri or ("databricks-uc" if tracking == "databricks" else tracking)
    return Store(tracking, registry, artifacts, qualified_name(cfg, reg.model_name, registry), reg.alias,
                 reg.experiment)


def qualified_name(cfg: Any, name: str, registry_uri: str) -> str:
    """Unity Catalog needs ``catalog.schema.model``: a bare name gets ``tables.catalog``/``tables.schema``."""
    if registry_uri.startswith("databricks-uc") and "." not in name:
        catalog, schema = cfg.tables.catalog, cfg.tables.schema
        if not catalog or not schema:
            raise RegistryError(f"registry {registry_uri} needs <catalog>.<schema>.{name}: set tables.catalog "
                                f"and tables.schema, or a qualified finetune.registry.model_name")
        return f"{catalog}.{schema}.{name}"
    return name


def client(st: Store):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(st.tracking_uri)
    mlflow.set_registry_uri(st.registry_uri)
    return MlflowClient(tracking_uri=st.tracking_uri, registry_uri=st.registry_uri)


def experiment_id(st: Store, name: str | None = None) -> str:
    c = client(st)
    name = name or st.experiment
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp else c.create_experiment(name, artifact_location=st.artifact_location)


# ---------------------------------------------------------------------------------------------------
# Logging and registering
# ---------------------------------------------------------------------------------------------------

def merge_for_encoder(model: DualEncoder, out: str | Path, cache_dir: str | None = None) -> Path:
    """Save ``model``'s base with the adapter merged in as a sentence-transformers folder at ``out``.

    The base model's own sentence-transformers modules (pooling, normalisation) are kept — they are
    the pooling the DualEncoder uses — and ``max_seq_length`` is the fine-tuning's, so chunks are cut
    to the length the model was trained on."""
    from sentence_transformers import SentenceTransformer

    from lakedoc.encoder import local_path, resolve_model

    load_from, _ = resolve_model(model.base_model)
    st = SentenceTransformer(load_from, device="cpu",
                             cache_folder=local_path(cache_dir) if cache_dir else None)
    backbone: Any = model.clone().backbone  # a peft model
    merged = backbone.merge_and_unload().float().cpu()
    # copy the weights in (sentence-transformers 6 exposes auto_model as a read-only property)
    target: Any = st[0].auto_model
    missing, unexpected = target.load_state_dict(merged.state_dict(), strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise RegistryError(f"the merged weights do not fit {load_from}: missing {missing[:5]}, "
                            f"unexpected {unexpected[:5]}")
    st.max_seq_length = int(model.max_seq_length)
    out = Path(out)
    st.save(str(out))
    return out


def _signature(label_names: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                          outputs=Schema([ColSpec("double", n) for n in label_names]))


def _flat(prefix: str, d: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(key + ".", v))
        else:
            out[key] = v
    return out


def log_model(cfg: Any, folder: str | Path, *, metrics: dict[str, float] | None = None,
              params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
              run_name: str | None = None, register: bool = True) -> ModelVersion:
    """Log the saved model ``folder`` (+ its merged encoder) as one MLflow model; register it unless
    ``register`` is false. ``metrics`` default to the ``test``/``best`` figures of ``folder/metrics.json``."""
    import mlflow

    from lakedoc.finetune.model import META, DualEncoder
    from lakedoc.finetune.pyfunc import ARTIFACT, EncoderPyfunc

    folder = Path(folder)
    if not (folder / META).is_file():
        raise RegistryError(f"{folder} is not a saved fine-tuned model (no {META})")
    st = store(cfg)
    c = client(st)
    exp = experiment_id(st)
    meta = json.loads((folder / META).read_text())
    summary = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    if metrics is None:
        metrics = {f"test_{k}": v for k, v in (summary.get("test") or {}).items() if isinstance(v, (int, float))}
        metrics.update({k: v for k, v in (summary.get("best") or {}).items()
                        if k.startswith("val_") and isinstance(v, (int, float))})
    with tempfile.TemporaryDirectory(prefix="lakedoc-register-") as tmp:
        staged = Path(tmp) / ARTIFACT
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(MERGED, "checkpoint*"))
        model = DualEncoder.load(folder, device="cpu")
        merge_for_encoder(model, staged / MERGED, cfg.encoder.cache_dir)
        with mlflow.start_run(experiment_id=exp, run_name=run_name or f"register-{folder.name}") as run:
            flat = {"base_model": meta["base_model"], "labels": len(meta["label_names"]),
                    **_flat("lora.", meta.get("lora") or {}),
                    **{k: v for k, v in (meta.get("settings") or {}).items() if not isinstance(v, (dict, list))},
                    **(params or {})}
            mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
            if metrics:
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            for k, v in (tags or {}).items():
                mlflow.set_tag(k, v)
            info = mlflow.pyfunc.log_model(
                name="encoder", python_model=EncoderPyfunc(), artifacts={ARTIFACT: str(staged)},
                signature=_signature(list(meta["label_names"])),
                pip_requirements=["lakedoc", "peft", "torch", "transformers", "sentence-transformers"])
            run_id = run.info.run_id
    if not register:
        return ModelVersion(st.model_name, "", run_id, info.model_uri)
    try:
        c.get_registered_model(st.model_name)
    except Exception:  # noqa: BLE001 - not found (the error type differs per store): create it
        c.create_registered_model(st.model_name, description="lakedoc fine-tuned dual encoder (LoRA, "
                                                             "label embeddings, thresholds)")
    # mlflow.register_model: the one call that registers a logged model in the workspace store, SQLite
    # and Unity Catalog alike (UC copies the artifacts into its own storage)
    mv = mlflow.register_model(info.model_uri, st.model_name,
                               tags={**{k: str(v) for k, v in (tags or {}).items()},
                                     **{k: f"{float(v):.6f}" for k, v in (metrics or {}).items()}})
    log.info("registered %s version %s (run %s)", st.model_name, mv.version, run_id)
    return ModelVersion(st.model_name, str(mv.version), run_id, info.model_uri)


# ---------------------------------------------------------------------------------------------------
# Aliases
# ---------------------------------------------------------------------------------------------------

def get_alias(cfg: Any, alias: str | None = None) -> str | None:
    """The version the alias (default ``finetune.registry.alias``) names, or None."""
    st = store(cfg)
    c = client(st)
    try:
        return str(c.get_model_version_by_alias(st.model_name, alias or st.alias).version)
    except Exception:  # noqa: BLE001 - no such model or alias (the error type differs per store)
        return None


def set_alias(cfg: Any, version: str | int, alias: str | None = None) -> None:
    st = store(cfg)
    client(st).set_registered_model_alias(st.model_name, alias or st.alias, str(version))


def promote(cfg: Any, version: str | int) -> str | None:
    """Point the alias (``champion``) at ``version``; returns the version it named before (or None)."""
    before = get_alias(cfg)
    set_alias(cfg, version)
    st = store(cfg)
    client(st).set_model_version_tag(st.model_name, str(version), "promoted_from", before or "")
    log.info("%s@%s: version %s -> %s", st.model_name, st.alias, before, version)
    _RESOLVED.clear()
    return before


def version_tags(cfg: Any, version: str | int) -> dict[str, str]:
    st = store(cfg)
    return dict(client(st).get_model_version(st.model_name, str(version)).tags or {})


# ---------------------------------------------------------------------------------------------------
# Resolving and loading
# ---------------------------------------------------------------------------------------------------

_URI = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?$")
_RESOLVED: dict[tuple, Resolved] = {}
_LOCK = threading.Lock()


def default_uri(cfg: Any) -> str:
    reg = RegistrySettings.from_config(cfg)
    return f"models:/{reg.model_name}@{reg.alias}"


def cache_root(cfg: Any) -> Path:
    reg = RegistrySettings.from_config(cfg)
    if reg.cache_dir:
        from lakedoc.encoder import local_path

        return Path(local_path(cfg.resolve_path(reg.cache_dir)))
    return _warehouse(cfg) / "_models" / "registry"


def merged_encoder_folder(cfg: Any, uri: str) -> Path:
    """The local folder of the merged sentence-transformers encoder of ``uri`` (what
    :data:`lakedoc.encoder.MODEL_URI_RESOLVER` names for ``encoder.model_uri``)."""
    return resolve(cfg, uri).merged


def resolve(cfg: Any, uri: str | None = None, *, download: bool = True) -> Resolved:
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` (default: the configured model and alias) or a
    saved model folder -> a :class:`Resolved` with a local folder (driver side; cached per process)."""
    uri = uri or default_uri(cfg)
    m = _URI.match(uri)
    if m is None:
        folder = Path(cfg.resolve_path(uri))
        if not (folder / "meta.json").is_file():
            raise RegistryError(f"encoder.model_uri {uri!r} is neither models:/NAME@ALIAS, models:/NAME/VERSION "
                                f"nor a saved fine-tuned model folder")
        if download and not (folder / MERGED).is_dir():
            raise RegistryError(f"{folder} has no {MERGED}/ folder: register it (lakedoc.finetune.registry."
                                f"log_model) or use its models:/ URI")
        if download:
            _mark(folder / MERGED, str(folder))
        return Resolved(str(folder), None, None, folder)
    st = store(cfg)
    name = qualified_name(cfg, m.group("name"), st.registry_uri)
    key = (st.registry_uri, name, m.group("alias"), m.group("version"), download)
    with _LOCK:
        hit = _RESOLVED.get(key)
        if hit is not None:
            return hit
        c = client(st)
        try:
            if m.group("alias"):
                version = str(c.get_model_version_by_alias(name, m.group("alias")).version)
            else:
                version = str(c.get_model_version(name, m.group("version") or "1").version)
        except Exception as exc:  # noqa: BLE001 - say which model and alias are missing, keep the cause
            raise RegistryError(f"cannot resolve {uri} in registry {st.registry_uri}: {exc}") from exc
        mv = ModelVersion(name, version, None)
        local = _download(cfg, mv) if download else None
        res = _RESOLVED[key] = Resolved(mv.model_id, name, version, local)
        log.info("%s -> %s%s", uri, mv.model_id, f" ({local})" if local else "")
        return res


def _mark(merged: Path, model_id: str) -> None:
    marker = merged / MARKER
    want = {"model_id": model_id}
    if not marker.is_file() or json.loads(marker.read_text()) != want:
        marker.write_text(json.dumps(want))


def _download(cfg: Any, mv: ModelVersion) -> Path:
    """The version's DualEncoder folder under :func:`cache_root` (downloaded once, atomically)."""
    import mlflow.artifacts

    target = cache_root(cfg) / re.sub(r"[^A-Za-z0-9_.-]", "_", mv.name) / f"v{mv.version}"
    if (target / COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{mv.version}-", dir=target.parent))
    try:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{mv.name}/{mv.version}",
                                                       dst_path=str(tmp)))
        metas = sorted(got.rglob("meta.json"), key=lambda p: len(p.parts))
        if not metas:
            raise RegistryError(f"{mv.model_id} holds no fine-tuned model folder (no meta.json)")
        folder = metas[0].parent
        _mark(folder / MERGED, mv.model_id)
        (folder / COMPLETE).write_text(mv.model_id)
        if target.exists():  # an incomplete earlier download
            shutil.rmtree(target)
        os.replace(folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load(cfg: Any, uri: str | None = None, device: str = "cpu") -> DualEncoder:
    from lakedoc.finetune.model import DualEncoder

    res = resolve(cfg, uri)
    assert res.folder is not None
    return DualEncoder.load(res.folder, device=device, cache_dir=cfg.encoder.cache_dir)


def load_champion(cfg: Any, device: str = "cpu") -> DualEncoder:
    """The version ``finetune.registry.alias`` names, as a DualEncoder."""
    return load(cfg, default_uri(cfg), device)


# ---------------------------------------------------------------------------------------------------
# Scoring in the classify task
# ---------------------------------------------------------------------------------------------------

class RegisteredScorer:
    """Scores chunk vectors of the merged encoder against the registered model's cached label vectors:
    per label ``sigmoid(scale * aggregate_chunks(cos) + bias)`` (a one-chunk document gets the
    DualEncoder's own score), the model's tuned thresholds."""

    def __init__(self, folder: str | Path, aggregation: str = "max", top_k: int = 2):
        from lakedoc.classify.thresholds import ThresholdSet

        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        self.label_names: list[str] = list(meta["label_names"])
        self.vectors = np.load(folder / "label_embeddings.npy").astype(np.float32)
        if self.vectors.shape[0] != len(self.label_names):
            raise RegistryError(f"{folder}: label_embeddings.npy has {self.vectors.shape[0]} rows for "
                                f"{len(self.label_names)} labels")
        self.scale, self.bias = float(meta["scale"]), float(meta["bias"])
        self.aggregation, self.top_k = aggregation, top_k
        th = meta.get("thresholds") or {}
        values = dict(zip(th.get("label_names") or [], th.get("values") or [], strict=True))
        self.thresholds = ThresholdSet(float(th.get("global_threshold", 0.5)), values,
                                       bool(th.get("at_least_one", False)), f"{folder}/meta.json")

    def doc_scores(self, chunk_vecs: np.ndarray) -> np.ndarray:
        from lakedoc.classify.zero_shot import aggregate

        if chunk_vecs.shape[0] == 0:
            return np.zeros(len(self.label_names))
        cos = aggregate(chunk_vecs @ self.vectors.T, self.aggregation, self.top_k)
        return 1.0 / (1.0 + np.exp(-(self.scale * np.asarray(cos, dtype=np.float64) + self.bias)))


_SCORERS: dict[tuple, RegisteredScorer] = {}


def scorer(folder: str, aggregation: str, top_k: int) -> RegisteredScorer:
    """The per-process scorer of a resolved model folder (workers call this)."""
    key = (folder, aggregation, top_k)
    if key not in _SCORERS:
        _SCORERS[key] = RegisteredScorer(folder, aggregation, top_k)
    return _SCORERS[key]


__all__ = ["MERGED", "METHOD", "ModelVersion", "RegisteredScorer", "RegistryError", "Resolved", "Store",
           "default_uri", "get_alias", "load", "load_champion", "log_model", "merge_for_encoder", "promote",
           "resolve", "scorer", "set_alias", "store", "version_tags"]
