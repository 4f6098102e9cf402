"""Supervised fine-tuning of the :class:`~lakedoc.finetune.model.DualEncoder` (section ``finetune``).

:func:`fit` trains the LoRA adapters (and the learnable scale and bias) on labelled records
``{"doc_id", "text", "labels": [...]}``:

* **Targets**: the labels of ``label_names`` except ``finetune.holdout_labels`` — held-out labels are
  neither targets nor are their descriptions embedded during training; the returned model still scores
  them (zero-shot, from their descriptions). :func:`holdout_report` measures their F1 before (base
  model) and after.
* **Loss** (:func:`losses`): BCE-with-logits on ``scale * cos + bias`` with a per-label ``pos_weight``
  (negatives/positives of the training set, capped at ``finetune.pos_weight_cap``), plus
  ``finetune.contrastive_weight`` x an in-batch InfoNCE term: each document against all label vectors
  (its positive labels are the positives), and each label present in the batch against the batch's
  documents (the documents carrying it are the positives).
* **Every step** re-embeds the label descriptions with the same encoder (the gradient flows into the
  shared adapters from both sides).
* **Batches** are length-sorted buckets (documents of similar token length together, little padding), the
  bucket order shuffled each epoch (seeded).
* **Optimiser**: AdamW (``learning_rate``, ``weight_decay``; scale and bias in their own group without
  decay and a larger rate), linear warm-up over ``warmup_ratio`` of the steps, then cosine decay.
* **Evaluation** on ``validation`` once per epoch (or every ``eval_every`` steps): thresholds tuned with
  :func:`lakedoc.evaluation.tune_thresholds`, metrics by :func:`lakedoc.evaluation.multilabel_metrics`;
  the best state by validation macro-F1 is kept, training stops after ``patience`` evaluations without
  improvement (``early_stop``), after ``epochs`` (``epochs``) or when ``max_train_minutes`` is spent
  (``time_budget``). The returned model is the best state, with thresholds tuned on validation for all
  its labels (held-out ones included).
* **Frozen lower layers** (``finetune.lora.layers``): before the first step :func:`keep_frozen_outputs`
  runs the layers without adapters once over every text read (documents, validation, all label
  descriptions) and keeps their outputs, so that steps and evaluations run only the adapted layers.
* Seeded (``finetune.seed``); on CPU torch uses every core (training is one process, not a Spark worker).

``report`` is called with each history row (Ray Tune's reporter plugs in here); ``checkpoint_dir``
receives the current model at every evaluation (``DualEncoder.save``).
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lakedoc.config_schema import EncoderSettings, FinetuneSettings
from lakedoc.evaluation import Thresholds, binarize, multilabel_metrics, tune_thresholds
from lakedoc.finetune.model import DualEncoder, FinetuneError

log = logging.getLogger(__name__)

SCALE_LR = 1e-2  # learning rate of scale and bias (plain numbers: the adapters' rate would barely move them)


@dataclass
class FinetuneResult:
    model: DualEncoder
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    seconds: float = 0.0
    stopped: str = "epochs"  # early_stop | epochs | time_budget
    frozen: dict = field(default_factory=dict)  # the frozen layers and their kept outputs (keep_frozen_outputs)


def losses(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None,
           contrastive_weight: float, doc_emb: torch.Tensor | None = None,
           label_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``{"bce", "contrastive", "total"}`` for one batch (``logits``/``targets``: ``[n, L]``).

    The contrastive term uses the logits (``scale * cos``; the bias cancels in a softmax): rows with at
    least one positive label contribute ``-log(sum_pos exp / sum_all exp)`` over labels, and columns with at
    least one positive document the same over the batch's documents. ``doc_emb``/``label_emb`` are accepted
    for callers that pass raw embeddings without logits (then ``logits`` may be None-like cosines)."""
    targets = targets.to(logits.dtype)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    zero = logits.new_zeros(())
    contrastive = zero
    if contrastive_weight > 0:
        sims = logits
        if doc_emb is not None and label_emb is not None and sims.shape != targets.shape:  # pragma: no cover
            sims = doc_emb @ label_emb.T
        pos = targets > 0
        terms = []
        rows = pos.any(dim=1)
        if rows.any():
            lse_all = torch.logsumexp(sims[rows], dim=1)
            lse_pos = torch.logsumexp(sims[rows].masked_fill(~pos[rows], float("-inf")), dim=1)
            terms.append((lse_all - lse_pos).mean())
        cols = pos.any(dim=0) & (pos.shape[0] > 1)
        if cols.any():
            s_t, p_t = sims.T[cols], pos.T[cols]
            lse_all = torch.logsumexp(s_t, dim=1)
            lse_pos = torch.logsumexp(s_t.masked_fill(~p_t, float("-inf")), dim=1)
            terms.append((lse_all - lse_pos).mean())
        if terms:
            contrastive = torch.stack(terms).mean()
    total = bce + contrastive_weight * contrastive
    return {"bce": bce, "contrastive": contrastive, "total": total}


def pos_weights(y: np.ndarray, cap: float) -> np.ndarray:
    """Per label ``min(negatives / positives, cap)`` (1 for a label without positives)."""
    pos = y.sum(axis=0).astype(float)
    neg = y.shape[0] - pos
    return np.where(pos > 0, np.minimum(neg / np.maximum(pos, 1.0), cap), 1.0).clip(min=1.0)


def length_buckets(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of indices of similar length (ties broken at random), in a shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def lr_lambda(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(round(total_steps * warmup_ratio))

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _metrics(model: DualEncoder, records: Sequence[dict], names: list[str], batch_size: int,
             adapter: bool = True, at_least_one: bool | str = "auto") -> tuple[dict, Thresholds, np.ndarray]:
    """Validation metrics with thresholds tuned on the same records (model selection, as the harness)."""
    scores = model.predict_scores([r["text"] for r in records], batch_size=batch_size, adapter=adapter,
                                  label_names=names)
    y = binarize([r["labels"] for r in records], names)
    th = tune_thresholds(y, scores, None, at_least_one, 10, names)
    return multilabel_metrics(y, th.apply(scores), names), th, scores


def _init_bias(model: DualEncoder, train: Sequence[dict], y: np.ndarray, names: list[str], batch_size: int,
               rng: random.Random) -> None:
    """Start the bias where positives and negatives separate: -scale x the midpoint of their mean cosines."""
    idx = rng.sample(range(len(train)), min(len(train), 256))
    with torch.no_grad():
        lab = model.label_embeddings(label_names=names)
        doc = model.embed([train[i]["text"] for i in idx], batch_size=batch_size)
        cos = (doc @ lab.T).float().cpu().numpy()
    yy = y[idx].astype(bool)
    if yy.any() and (~yy).any():
        mid = 0.5 * (float(cos[yy].mean()) + float(cos[~yy].mean()))
        model.bias.data.fill_(-float(model.scale.detach()) * mid)
        model.base_bias = float(model.bias.detach())


def keep_frozen_outputs(model: DualEncoder, train: Sequence[dict], validation: Sequence[dict],
                        label_names: Sequence[str], train_lengths: Sequence[int],
                        settings: FinetuneSettings) -> dict:
    """Compute once the frozen layers' outputs of every text the training reads (training and validation
    documents, label descriptions) and keep them on the model (``finetune.lora.layers``).

    Kept only when they fit ``finetune.frozen_cache_gb`` (estimated from the training documents' token
    counts); otherwise each step recomputes them without autograd. Checks first that the split forward
    equals the full one (:meth:`DualEncoder.split_matches`). Returns what was done, for the log and
    metrics: ``{"frozen_layers"}`` when every layer is adapted, else ``{"frozen_layers", "kept",
    "estimated_mb"}`` and, when kept, ``"texts", "mb", "seconds"``."""
    k = model.frozen_layers
    if not k:
        return {"frozen_layers": 0}
    t0 = time.perf_counter()
    docs = [r["text"] for r in train] + [r["text"] for r in validation]
    sample = [t for t in docs[:8] if t.strip()] or ["lakedoc"]
    if not model.split_matches(sample):
        raise FinetuneError(f"{model.base_model}: running its frozen layers apart from the adapted ones does not "
                            "give its full forward's output; set finetune.lora.layers to null")
    labels = [d for n in label_names for d in model.label_descriptions[n]]
    hidden = int(getattr(model.backbone.get_base_model().config, "hidden_size", 0)) or 1
    mean_len = float(np.mean(train_lengths)) if len(train_lengths) else float(settings.max_seq_length)
    estimate = (sum(train_lengths) + mean_len * (len(validation) + len(labels))) * hidden * 4
    out: dict[str, Any] = {"frozen_layers": k, "kept": False, "estimated_mb": round(estimate / 2 ** 20, 1)}
    if estimate > settings.frozen_cache_gb * 2 ** 30:
        log.info("finetune: %d frozen layers; their outputs (~%.0f MB) exceed finetune.frozen_cache_gb=%s: "
                 "recomputed every step", k, estimate / 2 ** 20, settings.frozen_cache_gb)
        return out
    log.info("finetune: computing the outputs of the %d frozen layers for %d texts once (~%.0f MB)",
             k, len(docs) + len(labels), estimate / 2 ** 20)
    added = model.cache_frozen(labels, "query", settings.eval_batch_size)
    added += model.cache_frozen(docs, "passage", settings.eval_batch_size)
    out.update(kept=True, texts=len(model.frozen_cache or {}), mb=round(added / 2 ** 20, 1),
               seconds=round(time.perf_counter() - t0, 1))
    log.info("finetune: kept %d frozen-layer outputs (%.0f MB) in %.0f s", out["texts"], out["mb"], out["seconds"])
    return out


def _state(model: DualEncoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def fit(train: list[dict], validation: list[dict], label_names: list[str], descriptions: dict[str, list[str]],
        settings: FinetuneSettings, *, model: DualEncoder | None = None,
        report: Callable[[dict], None] | None = None, checkpoint_dir: str | None = None,
        encoder: EncoderSettings | None = None) -> FinetuneResult:
    """Fine-tune (see the module docstring); returns the best model by validation macro-F1."""
    t_start = time.perf_counter()
    s = settings
    enc = encoder or EncoderSettings()
    random.seed(s.seed)
    np.random.seed(s.seed % (2 ** 32))
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    holdout = set(s.holdout_labels)
    targets = [n for n in label_names if n not in holdout]
    if not targets:
        raise FinetuneError("no label left to train on (all are finetune.holdout_labels)")
    if model is None:
        device = s.device or enc.device
        model = DualEncoder.from_base(s.base_model or enc.model, s.lora, s.max_seq_length, device, encoder=enc,
                                      cosine_scale=s.cosine_scale, learn_scale=s.learn_scale,
                                      precision=s.precision or enc.precision, seed=s.seed)
        fresh = True
    else:
        fresh = False
    model.set_labels(label_names, descriptions)
    model.settings = s.model_dump(mode="json")
    if model.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)  # one training process: every core
    y_train = binarize([r["labels"] for r in train], targets)
    keep = [i for i, r in enumerate(train) if (r.get("text") or "").strip()]
    train = [train[i] for i in keep]
    y_train = y_train[keep]
    if not train:
        raise FinetuneError("no training document")
    val = [{**r, "labels": [lab for lab in r["labels"] if lab not in holdout]} for r in validation]
    pw = torch.tensor(pos_weights(y_train, s.pos_weight_cap), dtype=torch.float32, device=model.device)
    lengths = [len(ids) for ids in model.tokenizer([r["text"] for r in train], truncation=True,
                                                   max_length=s.max_seq_length, add_special_tokens=True,
                                                   return_attention_mask=False)["input_ids"]]
    frozen = keep_frozen_outputs(model, train, val, label_names, lengths, s)
    if fresh:
        _init_bias(model, train, y_train, targets, s.eval_batch_size, rng)
    steps_per_epoch = math.ceil(len(train) / s.batch_size)
    total_steps = steps_per_epoch * s.epochs
    adapters = [p for n, p in model.named_parameters() if p.requires_grad and n not in ("scale", "bias")]
    scalars = [p for n, p in model.named_parameters() if p.requires_grad and n in ("scale", "bias")]
    groups: list[dict[str, Any]] = [{"params": adapters, "weight_decay": s.weight_decay, "lr": s.learning_rate}]
    if scalars:
        groups.append({"params": scalars, "weight_decay": 0.0, "lr": max(SCALE_LR, s.learning_rate)})
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total_steps, s.warmup_ratio))
    scaler = torch.amp.GradScaler("cuda", enabled=model.use_amp)
    eval_every = s.eval_every or steps_per_epoch
    budget_s = s.max_train_minutes * 60.0
    history: list[dict] = []
    best: dict = {}
    best_state: dict[str, torch.Tensor] | None = None
    best_th: Thresholds | None = None  # thresholds of the best evaluation (all labels when none is held out)
    latest_th: Thresholds | None = None
    bad = 0
    stopped = "epochs"
    step = 0
    running: list[float] = []

    def evaluate(epoch: float) -> bool:
        """One evaluation; True when training should stop early."""
        nonlocal best, best_state, best_th, latest_th, bad, running
        row: dict[str, Any] = {"step": step, "epoch": round(epoch, 3),
                               "train_loss": float(np.mean(running)) if running else float("nan"),
                               "lr": float(opt.param_groups[0]["lr"]),
                               "scale": float(model.scale.detach()), "bias": float(model.bias.detach()),
                               "seconds": round(time.perf_counter() - t_start, 1)}
        running = []
        if val:
            m, latest_th, _ = _metrics(model, val, targets, s.eval_batch_size)
            row.update(val_micro_f1=float(m["micro_f1"]), val_macro_f1=float(m["macro_f1"]))
        model.train()
        history.append(row)
        if report is not None:
            report(dict(row))
        if checkpoint_dir:
            model.save(checkpoint_dir)
        if not val:
            best, best_state = dict(row), None
            return False
        if not best or row["val_macro_f1"] > best["val_macro_f1"] + 1e-9:
            best, best_state, best_th, bad = dict(row), _state(model), latest_th, 0
            return False
        bad += 1
        return bad >= s.patience

    model.train()
    done = False
    last_eval_step = -1
    for _epoch in range(s.epochs):
        for batch in length_buckets(lengths, s.batch_size, rng):
            if time.perf_counter() - t_start >= budget_s:
                stopped, done = "time_budget", True
                break
            texts = [train[i]["text"] for i in batch]
            yb = torch.tensor(y_train[batch], dtype=torch.float32, device=model.device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=model.use_amp):
                lab = model.label_embeddings(grad=True, label_names=targets)
                doc = model.embed(texts, batch_size=len(texts), grad=True)
                logits = model.logits(doc.float(), lab.float())
            out = losses(logits.float(), yb, pw, s.contrastive_weight, doc, lab)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out["total"]).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            with torch.no_grad():
                model.scale.clamp_(min=1.0, max=100.0)
            step += 1
            running.append(float(out["total"].detach()))
            if step % eval_every == 0:
                last_eval_step = step
                if evaluate(step / steps_per_epoch):
                    stopped, done = "early_stop", True
                    break
        if done:
            break
    if last_eval_step != step or not history:
        evaluate(step / steps_per_epoch)
    if best_state is not None:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for k, v in best_state.items():
                params[k].copy_(v)
    model.eval()
    if validation:
        if best_th is not None and targets == list(label_names):
            model.thresholds = best_th  # nothing held out: the best evaluation's thresholds cover every label
        else:
            _, model.thresholds, _ = _metrics(model, validation, list(label_names), s.eval_batch_size)
    model.frozen_cache = None
    seconds = time.perf_counter() - t_start
    log.info("finetune: %s after %d steps, %.0f s; best %s", stopped, step, seconds, best)
    return FinetuneResult(model, history, best, seconds, stopped, frozen)


def progress_line(row: dict) -> str:
    """One evaluation's history row as a progress line (epoch, loss, validation F1)."""
    parts = [f"step {row['step']}", f"epoch {row['epoch']:.2f}", f"loss {row['train_loss']:.4f}"]
    if "val_micro_f1" in row:
        parts += [f"val micro-F1 {row['val_micro_f1']:.4f}", f"val macro-F1 {row['val_macro_f1']:.4f}"]
    parts.append(f"{row.get('seconds', 0):.0f}s")
    return "finetune: " + ", ".join(parts)


def holdout_report(model: DualEncoder, validation: Sequence[dict], test: Sequence[dict],
                   holdout_labels: Sequence[str], batch_size: int = 64) -> dict:
    """Zero-shot F1 of the held-out labels on ``test``, before (base model) and after (fine-tuned).

    For each model the held-out labels' thresholds are tuned on ``validation`` (as the harness does for
    zero-shot), then applied to ``test``. ``{"labels", "before": {micro_f1, macro_f1}, "after": ...,
    "delta_micro_f1"}``; empty labels: ``{}``."""
    names = [n for n in holdout_labels if n in model.label_names]
    if not names or not test:
        return {}
    out: dict[str, Any] = {"labels": names, "test_support": {}}
    y_test = binarize([r["labels"] for r in test], names)
    out["test_support"] = {n: int(y_test[:, j].sum()) for j, n in enumerate(names)}
    for key, adapter in (("before", False), ("after", True)):
        if validation:
            _, th, _ = _metrics(model, validation, names, batch_size, adapter=adapter, at_least_one=False)
        else:
            th = Thresholds(names, [0.5] * len(names), False, 0.5)
        scores = model.predict_scores([r["text"] for r in test], batch_size=batch_size, adapter=adapter,
                                      label_names=names)
        m = multilabel_metrics(y_test, th.apply(scores), names)
        out[key] = {"micro_f1": float(m["micro_f1"]), "macro_f1": float(m["macro_f1"])}
    out["delta_micro_f1"] = out["after"]["micro_f1"] - out["before"]["micro_f1"]
    return out


__all__ = ["FinetuneResult", "fit", "losses", "holdout_report", "progress_line", "pos_weights", "length_buckets",
           "lr_lambda"]
