"""Feedback-driven policy update of the dual encoder (GRPO-style) and the promotion gate.

``lakedoc finetune --from-feedback`` (:func:`run_from_feedback`) improves the current model from the
``feedback`` table (:mod:`lakedoc.finetune.feedback`) without new labelled data:

* **Reference and policy.** The current (SFT + LoRA) :class:`~lakedoc.finetune.model.DualEncoder` is the
  frozen reference; the policy is ``reference.clone()`` whose LoRA parameters alone are trained (the base
  weights, the cosine scale and the bias stay as they are).
* **Actions.** For a document the policy's outputs are independent Bernoulli variables, one per label,
  ``p = sigmoid(logits)``. Each step draws ``G = finetune.feedback.group_size`` label sets per document.
* **Rewards.** Feedback gives each reviewed (document, label) a value ``v`` in [-1, 1] (score 1..5 ->
  ``(s - 3) / 2``, accept +1, reject -1; several reviewers: their mean). A sampled label set earns, for
  each reviewed label, ``+|v|`` when its decision agrees with the feedback (label drawn and ``v > 0``, or
  not drawn and ``v < 0``) and ``-|v|`` when not — i.e. ``v * (2 s - 1)`` — averaged over the reviewed
  labels of the document.
* **Group-relative advantages** ``A = (R - mean_G R) / (std_G R + eps)`` within each document's group.
* **Objective.** The clipped surrogate of PPO with the ratio of Bernoulli probabilities of each reviewed
  label's decision (labels play the part GRPO gives to tokens; the unreviewed labels do not change the
  reward, so their decisions are marginalised out exactly), minus ``finetune.feedback.kl_weight`` x the
  Bernoulli KL(policy || reference) over *every* label of the batch — the penalty that keeps what the
  feedback does not speak about where the reference had it. Samples are drawn from the policy as it is
  every ``updates_per_sample`` steps (the "old" policy of the ratio). ``finetune.feedback.steps`` AdamW
  steps at ``finetune.feedback.learning_rate``; dropout is off (the ratio compares the same function).
* **Anchors.** The KL term is also taken on a batch of documents *without* feedback every step (``--train``
  or ``documents_redacted`` documents other than the reviewed and the validation ones), so feedback on
  one slice does not move the scores of every other document.
* **Gate.** :func:`gate` scores labelled validation documents with the current model and the candidate,
  tunes thresholds for each the same way (the harness's :func:`lakedoc.evaluation.tune_thresholds`, on
  ``tune`` documents when given, else on the validation documents themselves) and promotes the candidate
  only when neither validation micro-F1 nor macro-F1 drops. :func:`run_from_feedback` saves the candidate
  in a new folder in every case, never over the current model, registers it and moves the registry
  alias only when it was promoted (and came from the registry), and exits 0 when it was promoted, 3 when
  the gate rejected it.

Texts are the redacted ones (``documents_redacted.redacted_text``) — never bronze text — or those of a
labelled JSONL (``--train``).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakedoc.finetune.feedback import FeedbackError, load_feedback, targets

if TYPE_CHECKING:
    import torch

    from lakedoc.config_schema import FeedbackSettings
    from lakedoc.evaluation import Thresholds
    from lakedoc.finetune.model import DualEncoder

log = logging.getLogger(__name__)

EXIT_PROMOTED, EXIT_REJECTED = 0, 3
ADV_EPS = 1e-6
ANCHORS_PER_DOC, MAX_ANCHORS = 2, 512
"""KL anchors of ``--from-feedback``: documents without feedback, twice as many as with, at most 512."""


class GrpoError(FeedbackError):
    """The feedback update cannot run (no feedback, no texts, labels the model lacks, no validation data)."""


# --- the update ---------------------------------------------------------------------------------------

@dataclass
class GrpoResult:
    """The candidate policy and one history row per step (loss, surrogate, KL, mean reward, clip fraction)."""

    model: DualEncoder
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    n_docs: int = 0
    n_feedback: int = 0


def _trainable(policy: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The policy's LoRA parameters (made trainable); every other parameter is frozen."""
    lora = [(n, p) for n, p in policy.named_parameters() if "lora_" in n]
    keep = {id(p) for _, p in lora}
    for _, p in policy.named_parameters():
        p.requires_grad_(id(p) in keep)
    if not lora:
        raise GrpoError("the model has no LoRA parameters to update (is it a DualEncoder with adapters?)")
    return [p for _, p in lora]


def _logits(model: DualEncoder, texts: list[str], grad: bool) -> torch.Tensor:
    return model.logits(model.embed(texts, grad=grad), model.label_embeddings(grad=grad))


def _bernoulli_logp(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log P(actions) of independent Bernoullis with these logits (elementwise, numerically stable)."""
    import torch.nn.functional as F

    return -F.binary_cross_entropy_with_logits(logits, actions, reduction="none")


def _bernoulli_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(Bern(sigmoid(logits_p)) || Bern(sigmoid(logits_q))), elementwise."""
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(logits_p)
    lp, l1p = F.logsigmoid(logits_p), F.logsigmoid(-logits_p)
    lq, l1q = F.logsigmoid(logits_q), F.logsigmoid(-logits_q)
    return p * (lp - lq) + (1 - p) * (l1p - l1q)


def rewards(actions: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[b, G]`` rewards of ``actions`` ``[b, G, L]`` (0/1) against feedback ``values`` ``[b, L]`` in
    [-1, 1] on the reviewed cells ``mask`` ``[b, L]``: mean over reviewed labels of ``v * (2a - 1)``."""
    m = mask.unsqueeze(1).to(actions.dtype)
    agree = values.unsqueeze(1) * (2 * actions - 1) * m
    return agree.sum(-1) / m.sum(-1).clamp_min(1.0)


def advantages(r: torch.Tensor, eps: float = ADV_EPS) -> torch.Tensor:
    """Group-relative advantages ``(R - mean) / (std + eps)`` over the last axis (the group)."""
    return (r - r.mean(-1, keepdim=True)) / (r.std(-1, unbiased=False, keepdim=True) + eps)


def _cycler(n: int, gen: torch.Generator) -> Callable[[int], list[int]]:
    """``take(k)``: the next ``k`` indexes of seeded shuffles of ``range(n)``, reshuffled when used up."""
    import torch

    order: list[int] = []

    def take(k: int) -> list[int]:
        out: list[int] = []
        while len(out) < min(k, n):
            if not order:
                order.extend(torch.randperm(n, generator=gen).tolist())
            out.append(order.pop(0))
        return out

    return take


def grpo_update(reference: DualEncoder, docs: Sequence[Mapping[str, Any]], feedback: Mapping[str, Mapping[str, float]],
                settings: FeedbackSettings | None = None, *, anchors: Sequence[str] = (), batch_size: int = 16,
                updates_per_sample: int = 2, seed: int = 13,
                report: Callable[[dict], None] | None = None) -> GrpoResult:
    """One offline GRPO-style update (see the module docstring).

    ``docs``: ``{"doc_id", "text"}`` of the documents with feedback; ``feedback``: ``doc_id -> label ->
    value in [-1, 1]`` (:func:`lakedoc.finetune.feedback.targets`). Labels the model does not have are
    ignored (with a warning). ``anchors``: texts of documents *without* feedback on which only the KL
    penalty applies (a batch of them every step), so that feedback on one slice does not move the
    scores of every other document. Returns the candidate (the policy) and the per-step history;
    ``reference`` is not changed."""
    import torch

    from lakedoc.config_schema import FeedbackSettings

    st = settings or FeedbackSettings()
    t0 = time.perf_counter()
    names = list(reference.label_names)
    index = {n: j for j, n in enumerate(names)}
    unknown = sorted({lab for fb in feedback.values() for lab in fb if lab not in index})
    if unknown:
        log.warning("feedback on %d label(s) the model does not have ignored: %s", len(unknown),
                    ", ".join(unknown[:10]))
    rows = []
    for d in docs:
        fb = {lab: v for lab, v in feedback.get(str(d["doc_id"]), {}).items() if lab in index}
        if fb and any(v != 0 for v in fb.values()):
            rows.append((str(d["doc_id"]), str(d["text"]), fb))
    if not rows:
        raise GrpoError("no document has feedback (other than score 3) on a label of the model, with text")
    n, n_labels = len(rows), len(names)
    values = torch.zeros(n, n_labels)
    mask = torch.zeros(n, n_labels, dtype=torch.bool)
    for i, (_, _, fb) in enumerate(rows):
        for lab, v in fb.items():
            if v != 0:  # a neutral score (3) rewards no decision: the label counts as unreviewed
                values[i, index[lab]] = float(v)
                mask[i, index[lab]] = True
    texts = [t for _, t, _ in rows]
    anchor_texts = [str(t) for t in anchors]
    device = torch.device(str(getattr(reference, "device", "cpu")))
    values, mask = values.to(device), mask.to(device)

    gen = torch.Generator().manual_seed(seed)  # sampling on the CPU: the same draws on every device
    torch.manual_seed(seed)
    was_training = reference.training
    reference.eval()
    with torch.no_grad():
        every = texts + anchor_texts
        ref_all = torch.cat([_logits(reference, every[i:i + batch_size], grad=False)
                             for i in range(0, len(every), batch_size)]).float()
    reference.train(was_training)
    ref_logits, ref_anchor = ref_all[:n], ref_all[n:]

    policy = reference.clone()
    policy.eval()  # no dropout: old and new probabilities of the ratio come from the same function
    params = _trainable(policy)
    opt = torch.optim.AdamW(params, lr=st.learning_rate, weight_decay=0.0)
    G, eps_clip = st.group_size, st.clip_eps
    history: list[dict] = []
    next_docs = _cycler(n, gen)
    next_anchors = _cycler(len(anchor_texts), gen) if anchor_texts else None
    batch: list[int] = []
    anchor_batch: list[int] = []
    actions = logp_old = adv = None
    mean_reward = 0.0
    for step in range(1, st.steps + 1):
        if (step - 1) % max(1, updates_per_sample) == 0:
            batch = next_docs(batch_size)
            anchor_batch = next_anchors(batch_size) if next_anchors is not None else []
            with torch.no_grad():
                old = _logits(policy, [texts[i] for i in batch], grad=False).float()
                probs = torch.sigmoid(old).unsqueeze(1).expand(len(batch), G, n_labels)
                actions = torch.bernoulli(probs.cpu(), generator=gen).to(device)
                logp_old = _bernoulli_logp(old.unsqueeze(1).expand_as(actions), actions)
                r = rewards(actions, values[batch], mask[batch])
                adv = advantages(r)
            mean_reward = float(r.mean())
        assert actions is not None and logp_old is not None and adv is not None
        both = _logits(policy, [texts[i] for i in batch] + [anchor_texts[i] for i in anchor_batch],
                       grad=True).float()
        new = both[:len(batch)]
        logp_new = _bernoulli_logp(new.unsqueeze(1).expand_as(actions), actions)
        ratio = torch.exp(logp_new - logp_old)
        a = adv.unsqueeze(-1)
        surrogate = torch.minimum(ratio * a, torch.clamp(ratio, 1 - eps_clip, 1 + eps_clip) * a)
        m = mask[batch].unsqueeze(1).expand_as(actions).float()
        pg_loss = -(surrogate * m).sum() / m.sum().clamp_min(1.0)
        ref = torch.cat([ref_logits[batch], ref_anchor[anchor_batch]]) if anchor_batch else ref_logits[batch]
        kl = _bernoulli_kl(both, ref).mean()
        loss = pg_loss + st.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            clipped = (((ratio - 1).abs() > eps_clip).float() * m).sum() / m.sum().clamp_min(1.0)
            vb, mb = values[batch], mask[batch]
            reviewed = mb & (vb != 0)
            agree = ((torch.sigmoid(new) >= 0.5) == (vb > 0)) & reviewed
            agreement = float(agree.sum()) / max(1, int(reviewed.sum()))
        row = {"step": step, "loss": loss.item(), "pg_loss": pg_loss.item(), "kl": kl.item(),
               "mean_reward": mean_reward, "clip_fraction": float(clipped), "agreement": agreement}
        history.append(row)
        if report is not None:
            report(row)
    for p in policy.parameters():
        p.requires_grad_(False)
    n_fb = int(mask.sum())
    log.info("feedback update: %d document(s), %d reviewed label(s), %d anchor(s), %d step(s) in %.1fs; "
             "mean reward %.3f -> %.3f", n, n_fb, len(anchor_texts), st.steps, time.perf_counter() - t0,
             history[0]["mean_reward"], history[-1]["mean_reward"])
    return GrpoResult(policy, history, time.perf_counter() - t0, n, n_fb)


# --- the promotion gate -------------------------------------------------------------------------------

@dataclass
class GateDecision:
    """Whether the candidate replaces the current model, why, and the validation metrics of both."""

    promote: bool
    reasons: list[str]
    metrics_before: dict
    metrics_after: dict
    thresholds_before: Thresholds | None = None
    thresholds_after: Thresholds | None = None

    def to_dict(self) -> dict:
        return {"promote": self.promote, "reasons": self.reasons, "metrics_before": self.metrics_before,
                "metrics_after": self.metrics_after}

    def format(self) -> str:
        b, a = self.metrics_before, self.metrics_after
        head = "PROMOTED" if self.promote else "REJECTED by the gate"
        lines = [f"candidate {head}",
                 f"  validation micro-F1 {b['micro_f1']:.4f} -> {a['micro_f1']:.4f}, "
                 f"macro-F1 {b['macro_f1']:.4f} -> {a['macro_f1']:.4f}  ({b['n_docs']} documents)"]
        lines += [f"  {r}" for r in self.reasons]
        return "\n".join(lines)


def validation_metrics(model: DualEncoder, validation: Sequence[Mapping[str, Any]],
                       tune: Sequence[Mapping[str, Any]] | None = None, cfg: Any = None) -> tuple[dict, Thresholds]:
    """Micro/macro-F1 of ``model`` on labelled ``validation`` documents, with thresholds tuned by the
    harness (:func:`lakedoc.evaluation.tune_thresholds`, ``baselines`` settings) on ``tune`` (default:
    the validation documents)."""
    from lakedoc.evaluation import binarize, multilabel_metrics, tune_thresholds
    from lakedoc.methods import eval_settings

    st = eval_settings(cfg)
    names = list(model.label_names)
    tune = validation if tune is None else tune
    val_scores = np.asarray(model.predict_scores([str(r["text"]) for r in validation]), dtype=float)
    tune_scores = val_scores if tune is validation else \
        np.asarray(model.predict_scores([str(r["text"]) for r in tune]), dtype=float)
    th = tune_thresholds(binarize([r["labels"] for r in tune], names), tune_scores, st["grid"],
                         st["at_least_one"], st["min_positives"], names)
    m = multilabel_metrics(binarize([r["labels"] for r in validation], names), th.apply(val_scores), names)
    metrics = {"micro_f1": float(m["micro_f1"]), "macro_f1": float(m["macro_f1"]),
               "micro_precision": float(m["micro_precision"]), "micro_recall": float(m["micro_recall"]),
               "n_docs": len(validation),
               "per_label_f1": {k: round(v["f1"], 4) for k, v in m["per_label"].items()}}
    return metrics, th


def gate(candidate: DualEncoder, current: DualEncoder, validation: Sequence[Mapping[str, Any]], *,
         tune: Sequence[Mapping[str, Any]] | None = None, tolerance: float = 0.0, cfg: Any = None) -> GateDecision:
    """Promote ``candidate`` only if neither validation micro-F1 nor macro-F1 drops below ``current``'s
    (by more than ``tolerance``). Thresholds are tuned for each model the same way
    (:func:`validation_metrics`); the candidate's are stored on it."""
    if list(candidate.label_names) != list(current.label_names):
        raise GrpoError("the candidate and the current model have different labels")
    if not validation:
        raise GrpoError("the gate needs labelled validation documents")
    before, th_before = validation_metrics(current, validation, tune, cfg)
    after, th_after = validation_metrics(candidate, validation, tune, cfg)
    reasons = []
    promote = True
    for k in ("micro_f1", "macro_f1"):
        d = after[k] - before[k]
        if d < -tolerance - 1e-12:
            promote = False
            reasons.append(f"validation {k.replace('_f1', '-F1')} drops by {-d:.4f} "
                           f"({before[k]:.4f} -> {after[k]:.4f})")
        else:
            reasons.append(f"validation {k.replace('_f1', '-F1')} {'+' if d >= 0 else ''}{d:.4f} "
                           f"({before[k]:.4f} -> {after[k]:.4f})")
    candidate.thresholds = th_after  # saved with the candidate, promoted or not
    return GateDecision(promote, reasons, before, after, th_before, th_after)


# --- lakedoc finetune --from-feedback -----------------------------------------------------------------

def _load_current(cfg: Any, args: Any) -> tuple[DualEncoder, str, bool]:
    """``(current model, where it came from, from the registry?)``: ``--model PATH``, else the registry's
    champion (:func:`lakedoc.finetune.registry.load_champion`)."""
    from lakedoc.config_schema import FinetuneSettings
    from lakedoc.finetune.model import DualEncoder

    device = FinetuneSettings.from_config(cfg).device or "auto"
    path = getattr(args, "model", None)
    if path:
        return DualEncoder.load(path, device=device), str(path), False
    try:
        from lakedoc.finetune import registry
    except ImportError as exc:
        raise GrpoError(f"no --model given and the model registry cannot be used ({exc}): give --model PATH") \
            from None
    try:
        model = registry.load_champion(cfg, device=device)
    except Exception as exc:  # noqa: BLE001 - no registry, no model or no alias yet: say what to give instead
        raise GrpoError(f"no --model given and the registry has no champion to start from "
                        f"({type(exc).__name__}: {exc}): give --model PATH") from None
    return model, registry.default_uri(cfg), True


def _texts(store: Any, data: str | None) -> dict[str, str]:
    """``doc_id -> text`` of every document: a labelled JSONL (``--train``) or, without one, the
    redacted text of the ``ok`` rows of ``documents_redacted`` (never bronze text)."""
    if data:
        from lakedoc.evaluation import load_jsonl

        return {r["doc_id"]: r["text"] for r in load_jsonl(data)}
    from lakedoc.schema import DOCUMENTS_REDACTED

    if not store.exists(DOCUMENTS_REDACTED):
        raise GrpoError("table documents_redacted does not exist: run the pipeline first, or give --train FILE.jsonl")
    tbl = store.read_arrow(DOCUMENTS_REDACTED, ["doc_id", "redacted_text", "status"]).to_pylist()
    return {r["doc_id"]: r["redacted_text"] for r in tbl if r["status"] == "ok" and r["redacted_text"]}


def anchor_texts(texts: Mapping[str, str], exclude: set[str], n: int, seed: int) -> list[str]:
    """Up to ``n`` texts (seeded choice, sorted ids first) of documents outside ``exclude`` (those with
    feedback and the validation documents): the KL anchors of :func:`grpo_update`."""
    ids = sorted(i for i in texts if i not in exclude)
    pick = sorted(int(i) for i in np.random.default_rng(seed).permutation(len(ids))[:n])
    return [texts[ids[i]] for i in pick]


def _data_file(args: Any) -> str | None:
    """The labelled JSONL the texts may come from: ``--data``, else ``--train``."""
    return getattr(args, "data", None) or getattr(args, "train", None)


def _validation(cfg: Any, args: Any, exclude: set[str]) -> list[dict]:
    """Labelled validation documents of the gate: ``--validation`` (else ``--test``), else the seeded
    validation split (``finetune.validation_fraction``) of ``--data``/``--train`` without the documents
    that have feedback."""
    from lakedoc.config_schema import FinetuneSettings
    from lakedoc.evaluation import load_jsonl, split_records

    explicit = getattr(args, "validation", None) or getattr(args, "test", None)
    if explicit:
        return load_jsonl(explicit)
    data = _data_file(args)
    if data:
        ft = FinetuneSettings.from_config(cfg)
        recs = [r for r in load_jsonl(data) if r["doc_id"] not in exclude]
        frac = ft.validation_fraction or 0.15
        parts = split_records(recs, {"train": 1 - frac, "validation": frac}, ft.seed)
        keep = set(parts["validation"])
        return [r for r in recs if r["doc_id"] in keep]
    raise GrpoError("the promotion gate needs labelled validation documents: give --test FILE.jsonl "
                    "(or --train FILE.jsonl, whose seeded validation split is used)")


def run_from_feedback(cfg: Any, args: Any) -> int:
    """``lakedoc finetune --from-feedback``: update the current model from the feedback table, gate the
    candidate on validation, save it in a new folder; exit 0 when promoted, 3 when rejected (2: cannot run).

    ``args`` (``lakedoc finetune --from-feedback``, :mod:`lakedoc.finetune.cli`): ``model`` (the current
    model folder; else the registry champion), ``train`` (labelled JSONL: texts of the documents with
    feedback, and a seeded validation split; else texts from ``documents_redacted``), ``test`` (labelled
    JSONL validation documents of the gate), ``out`` (the candidate's folder; default
    ``<finetune output dir>/feedback-<run id>``), ``model_version`` (only feedback on this version).
    A promoted candidate of a registry champion is registered and the alias moved to it
    (:func:`lakedoc.finetune.registry.log_model`, :func:`~lakedoc.finetune.registry.promote`); one of a
    ``--model`` folder is the new folder. ``feedback_decision.json`` beside the candidate holds the
    decision, both models' validation metrics and the update's history."""
    from lakedoc.config_schema import FinetuneSettings
    from lakedoc.tables import open_store
    from lakedoc.tasks import new_run_id

    ft = FinetuneSettings.from_config(cfg)
    run_id = new_run_id()
    out = getattr(args, "out", None)
    # the default of lakedoc finetune (lakedoc.finetune.cli.default_output_dir; not imported: it imports us)
    root = cfg.resolve_path(ft.output_dir) if ft.output_dir else \
        str(Path(cfg.resolve_path(cfg.tables.warehouse)) / "_models" / "finetune")
    folder = Path(out).expanduser().resolve() if out else Path(root) / f"feedback-{run_id}"
    try:
        current, source, registered = _load_current(cfg, args)
        if Path(source).exists() and Path(source).resolve() == folder.resolve():
            raise GrpoError(f"--out {folder} is the current model: the candidate goes to a new folder")
        if (folder / "meta.json").exists():
            raise GrpoError(f"--out {folder} already holds a model: the candidate goes to a new folder")
        store = open_store(cfg)
        fb = targets(load_feedback(store), set(current.label_names), getattr(args, "model_version", None))
        if not fb:
            raise GrpoError("the feedback table has no feedback on a label of the model "
                            "(record some with `lakedoc feedback add|import`)")
        texts = _texts(store, _data_file(args))
        missing = sorted(set(fb) - set(texts))
        if missing:
            log.warning("%d document(s) with feedback have no text and are skipped, e.g. %s",
                        len(missing), ", ".join(missing[:5]))
        validation = _validation(cfg, args, set(fb))
        docs = [{"doc_id": d, "text": texts[d]} for d in fb if d in texts]
        anchors = anchor_texts(texts, set(fb) | {str(r["doc_id"]) for r in validation},
                               min(MAX_ANCHORS, ANCHORS_PER_DOC * len(docs)), ft.seed)
        result = grpo_update(current, docs, fb, ft.feedback, anchors=anchors, batch_size=ft.batch_size,
                             seed=ft.seed)
        decision = gate(result.model, current, validation, cfg=cfg)
    except FeedbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.model.save(folder)
    (folder / "feedback_decision.json").write_text(json.dumps(
        {**decision.to_dict(), "current": source, "run_id": run_id, "documents": result.n_docs,
         "reviewed_labels": result.n_feedback, "seconds": round(result.seconds, 1),
         "history": result.history}, indent=1, default=str), encoding="utf-8")
    print(decision.format())
    print(f"  feedback: {result.n_docs} document(s), {result.n_feedback} reviewed label(s); mean reward "
          f"{result.history[0]['mean_reward']:.3f} -> {result.history[-1]['mean_reward']:.3f} in "
          f"{len(result.history)} step(s)")
    print(f"  candidate saved to {folder}" + ("" if decision.promote else " (the current model is unchanged)"))
    if decision.promote:
        _promote(cfg, folder, decision, registered)
    return EXIT_PROMOTED if decision.promote else EXIT_REJECTED


def _promote(cfg: Any, folder: Path, decision: GateDecision, registered: bool) -> None:
    """A current model from the registry: register the candidate and move the alias to it. A current
    model given as a folder: the candidate's folder is the new model (the old folder stays as it was)."""
    if not registered:
        print(f"  the promoted model is {folder} (use it with --model, or register it)")
        return
    from lakedoc.finetune import registry

    metrics = {f"val_{k}": float(v) for k, v in decision.metrics_after.items() if k in ("micro_f1", "macro_f1")}
    metrics.update({f"val_{k}_before": float(v) for k, v in decision.metrics_before.items()
                    if k in ("micro_f1", "macro_f1")})
    mv = registry.log_model(cfg, folder, metrics=metrics, tags={"source": "feedback"},
                            run_name=f"feedback-{folder.name}")
    before = registry.promote(cfg, mv.version)
    print(f"  registered {mv.name} version {mv.version}; alias moved from version {before} to it")


__all__ = ["EXIT_PROMOTED", "EXIT_REJECTED", "GateDecision", "GrpoError", "GrpoResult", "advantages", "gate",
           "grpo_update", "rewards", "run_from_feedback", "validation_metrics"]
