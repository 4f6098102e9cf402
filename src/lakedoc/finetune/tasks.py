"""The tasks of job ``lakedoc_train`` (jobs/train.job.yml): ``finetune`` -> ``evaluate`` -> ``register`` ->
``promote_if_better``, each a :data:`lakedoc.tasks.REGISTRY` entry run through ``pipelines/task.py`` like
every task of the pipeline (and by ``lakedoc run --job lakedoc_train`` locally).

The tasks of one job run share a *run folder*, ``<finetune.output_dir>/runs/<run id>`` (default
``<tables.warehouse>/_models/finetune/runs/<run id>``; on Databricks the models volume):

* ``finetune`` — the labelled documents the ``baselines`` task learns from
  (:func:`lakedoc.baselines.stage.load_labelled`: ``baselines.labels_table`` joined to the redacted text,
  else ``baselines.train_path``, else locally the synthetic corpus) are written to ``train.jsonl``, split
  like the harness (seeded, ``split.json``) and fine-tuned (:func:`lakedoc.finetune.cli.run_finetune`),
  or searched with population-based training when ``finetune.pbt.enabled`` (job parameter ``pbt``;
  :func:`lakedoc.finetune.pbt.run_pbt`). The model and its ``metrics.json`` go to ``model/``.
* ``evaluate`` — the candidate and the current champion (``finetune.registry.alias``), each with its own
  tuned thresholds, on the *same* test split, over the labels both know (the candidate's trained
  labels): ``evaluation.json``.
* ``register`` — the candidate logged and registered as a new version (:mod:`lakedoc.finetune.registry`),
  tagged with the run id and its test metrics: ``registered.json``.
* ``promote_if_better`` — the alias moves to the new version only when its test micro-F1 *and* macro-F1
  are at least the champion's (no champion yet: promoted); otherwise the version stays registered, tagged
  ``promotion=rejected`` with the reason. ``promotion.json``.

A task whose input is missing (an earlier task failed) fails with a message naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lakedoc.config_schema import FinetuneSettings
from lakedoc.tasks import TaskContext, TaskResult

MODEL = "model"


def run_dir(cfg: Any, run_id: str) -> Path:
    from lakedoc.encoder import local_path
    from lakedoc.finetune.cli import default_output_dir

    return Path(local_path(default_output_dir(cfg))) / "runs" / run_id


def _read(folder: Path, name: str, task: str) -> dict:
    p = folder / name
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing: task {task} of this run has not succeeded")
    return json.loads(p.read_text())


def _write(folder: Path, name: str, data: dict) -> None:
    (folder / name).write_text(json.dumps(data, indent=1, default=str))


def run_finetune_task(ctx: TaskContext) -> TaskResult:
    from lakedoc.baselines.stage import load_labelled
    from lakedoc.finetune.cli import run_finetune

    cfg = ctx.cfg
    folder = run_dir(cfg, ctx.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    records, source = load_labelled(ctx)
    if not records:
        raise ValueError("no labelled data: set baselines.labels_table or baselines.train_path")
    train_file = folder / "train.jsonl"
    with open(train_file, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"doc_id": r["doc_id"], "text": r["text"], "labels": list(r["labels"])}) + "\n")
    settings = FinetuneSettings.from_config(cfg)
    if settings.pbt.enabled:
        from lakedoc.finetune.pbt import run_pbt

        args = SimpleNamespace(train=str(train_file), test=None, out=str(folder / MODEL),
                               split_file=str(folder / "split.json"))
        if run_pbt(cfg, args) != 0:
            raise RuntimeError("population-based training failed (see the log)")
        summary = json.loads((folder / MODEL / "metrics.json").read_text())
    else:
        summary = run_finetune(cfg, str(train_file), None, str(folder / MODEL), split_file=str(folder / "split.json"))
    sizes = summary.get("sizes") or {}
    return TaskResult(len(records), int(sizes.get("train", 0)), {
        "data_source": source, "run_folder": str(folder), "search": "pbt" if settings.pbt.enabled else "fit",
        "test": summary.get("test"), "best": summary.get("best"), "train_seconds": summary.get("train_seconds"),
        "stopped": summary.get("stopped")})


def _test_records(cfg: Any, folder: Path) -> list[dict]:
    from lakedoc import methods
    from lakedoc.evaluation import load_jsonl, three_way_split

    records = load_jsonl(str(folder / "train.jsonl"))
    _, _, test = three_way_split(records, methods.eval_settings(cfg), None, str(folder / "split.json"))
    return test


def _metrics(model: Any, test: list[dict], names: list[str], batch_size: int) -> dict:
    """Test metrics of ``model`` over ``names`` with its own thresholds (global for labels it lacks)."""
    import numpy as np

    from lakedoc.evaluation import apply_thresholds, binarize, multilabel_metrics

    scores = model.predict_scores([r["text"] for r in test], batch_size=batch_size, label_names=names)
    th = model.thresholds
    per = dict(zip(th.label_names, th.values, strict=True)) if th is not None else {}
    glob = th.global_threshold if th is not None else 0.5
    values = np.asarray([per.get(n, glob) for n in names], dtype=float)
    pred = apply_thresholds(scores, values, bool(th.at_least_one) if th is not None else False)
    m = multilabel_metrics(binarize([r["labels"] for r in test], names), pred, names)
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}


def run_evaluate_task(ctx: TaskContext) -> TaskResult:
    from lakedoc.finetune import registry
    from lakedoc.finetune.model import DualEncoder

    cfg = ctx.cfg
    folder = run_dir(cfg, ctx.run_id)
    _read(folder / MODEL, "metrics.json", "finetune")
    settings = FinetuneSettings.from_config(cfg)
    candidate = DualEncoder.load(folder / MODEL, device=settings.device or "cpu", cache_dir=cfg.encoder.cache_dir)
    test = _test_records(cfg, folder)
    holdout = set(settings.holdout_labels)
    trained = [n for n in candidate.label_names if n not in holdout]
    champion_version = registry.get_alias(cfg)
    champion = None
    names = trained
    if champion_version is not None:
        champion = registry.load(cfg, f"models:/{registry.store(cfg).model_name}/{champion_version}",
                                 device=settings.device or "cpu")
        names = [n for n in trained if n in set(champion.label_names)]
    if not names:
        raise ValueError("the candidate and the champion share no label: they cannot be compared")
    out = {"test_docs": len(test), "labels": names, "champion_version": champion_version,
           "candidate": _metrics(candidate, test, names, settings.eval_batch_size),
           "champion": _metrics(champion, test, names, settings.eval_batch_size) if champion is not None else None}
    _write(folder, "evaluation.json", out)
    return TaskResult(len(test), 1, {k: out[k] for k in ("test_docs", "champion_version", "candidate", "champion")})


def run_register_task(ctx: TaskContext) -> TaskResult:
    from lakedoc.finetune import registry

    cfg = ctx.cfg
    folder = run_dir(cfg, ctx.run_id)
    ev = _read(folder, "evaluation.json", "evaluate")
    metrics = {f"test_{k}": v for k, v in ev["candidate"].items() if k in ("micro_f1", "macro_f1", "weighted_f1")}
    best = json.loads((folder / MODEL / "metrics.json").read_text()).get("best") or {}
    metrics.update({k: float(v) for k, v in best.items() if k.startswith("val_") and isinstance(v, (int, float))})
    mv = registry.log_model(cfg, folder / MODEL, metrics=metrics, run_name=f"lakedoc_train-{ctx.run_id}",
                            tags={"lakedoc_run_id": ctx.run_id, "lakedoc_job": "lakedoc_train"})
    out = {"name": mv.name, "version": mv.version, "model_id": mv.model_id, "mlflow_run_id": mv.run_id}
    _write(folder, "registered.json", out)
    return TaskResult(1, 1, out)


def promotion_decision(candidate: dict, champion: dict | None) -> tuple[bool, str]:
    """(promote?, reason): never worse on test micro-F1 and macro-F1 than the champion."""
    if champion is None:
        return True, "no champion yet"
    drops = [f"{k} {candidate[k]:.4f} < {champion[k]:.4f}" for k in ("micro_f1", "macro_f1")
             if candidate[k] < champion[k] - 1e-12]
    if drops:
        return False, "worse than the champion: " + ", ".join(drops)
    return True, (f"micro-F1 {candidate['micro_f1']:.4f} >= {champion['micro_f1']:.4f}, macro-F1 "
                  f"{candidate['macro_f1']:.4f} >= {champion['macro_f1']:.4f}")


def run_promote_task(ctx: TaskContext) -> TaskResult:
    from lakedoc.finetune import registry

    cfg = ctx.cfg
    folder = run_dir(cfg, ctx.run_id)
    ev = _read(folder, "evaluation.json", "evaluate")
    reg = _read(folder, "registered.json", "register")
    current = registry.get_alias(cfg)
    if current is not None and current != ev["champion_version"]:
        raise RuntimeError(f"the alias moved during this run (evaluated against version {ev['champion_version']}, "
                           f"now {current}): run the job again")
    promote, reason = promotion_decision(ev["candidate"], ev["champion"])
    st = registry.store(cfg)
    c = registry.client(st)
    if promote:
        registry.promote(cfg, reg["version"])
        c.set_model_version_tag(st.model_name, reg["version"], "promotion", "promoted")
    else:
        c.set_model_version_tag(st.model_name, reg["version"], "promotion", f"rejected: {reason}"[:250])
    out = {"promoted": promote, "reason": reason, "version": reg["version"], "previous_champion": current,
           "champion": reg["version"] if promote else current}
    _write(folder, "promotion.json", out)
    ctx.log.info("%s version %s %s: %s", st.model_name, reg["version"], "promoted" if promote else "not promoted",
                 reason)
    return TaskResult(1, int(promote), out)


__all__ = ["promotion_decision", "run_dir", "run_evaluate_task", "run_finetune_task", "run_promote_task",
           "run_register_task"]
