"""Population-based training of the LoRA dual encoder with Ray Tune (``lakedoc finetune --pbt``, section
``finetune.pbt``).

**What is searched, and how.** A population of ``finetune.pbt.num_samples`` trials fine-tunes the encoder
(:func:`lakedoc.finetune.train.fit`, each trial with its own copy of the settings,
``settings.model_copy(update=...)``). Ray Tune's ``PopulationBasedTraining`` perturbs the *continuous*
hyperparameters — ``learning_rate``, ``weight_decay``, ``warmup_ratio``, ``cosine_scale`` and
``contrastive_weight`` (``hyperparam_mutations``) — every ``finetune.pbt.perturbation_interval`` epochs:
a trial in the lower quantile copies the checkpoint of one in the upper quantile (*exploit*) and
continues with that trial's hyperparameters multiplied by 0.8 or 1.2 or resampled (*explore*).

**The LoRA rank is structural, not a hyperparameter PBT may perturb.** An adapter of rank 8 is a pair
of 8-column matrices per layer: its checkpoint cannot continue as rank 16. So the rank
(``finetune.pbt.ranks``) is searched in the *initial population only* — ``tune.grid_search`` over the
ranks, trials cycled over them — and is deliberately **not** in ``hyperparam_mutations``: explore never
changes it. When PBT's exploit replaces a weak trial with a copy of a stronger one, the copy takes the
stronger trial's weights *and its rank together* (Tune clones the whole configuration with the
checkpoint); a checkpoint never continues under another rank. Every trial checks it: the rank of the
adapter it restored must equal its configuration's ``lora_r``, and every reported row carries both.

**Selection.** The best trial is the one with the highest ``finetune.pbt.metric`` (validation macro-F1 by
default; never the loss) over all its reported evaluations; its best checkpoint is loaded, thresholds are
tuned on the validation set and the model is saved like ``lakedoc finetune`` saves one.

**Tracking.** One MLflow parent run per search (``finetune.registry.experiment``), one nested run per
trial (initial configuration as parameters, every evaluation as metrics with the hyperparameters in force
as ``hp_*`` metrics, so the perturbations are visible). The runs are written from the driver after the
search — the trials themselves need no MLflow credentials (on Ray on Spark they run on the workers).

**Where Ray runs.** On Databricks, Ray on Spark: ``ray.util.spark.setup_ray_cluster`` starts Ray on the
job cluster's workers (one GPU each, ``finetune.pbt.gpus_per_trial`` 1: one trial per GPU) and shuts it
down afterwards. Locally ``ray.init(num_cpus=2)`` with small trials (CPU). Ray is the ``train`` extra
(``pip install 'lakedoc[train]'``; the Databricks ML runtime ships ray 2.37): without it :func:`run_pbt`
stops with a message that says so.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakedoc.config_schema import EncoderSettings, FinetuneSettings

if TYPE_CHECKING:
    from lakedoc.finetune.model import DualEncoder

log = logging.getLogger(__name__)

# perturbed by PBT (explore), with the range a resample draws from; the LoRA rank is NOT here (structural)
CONTINUOUS = ("learning_rate", "weight_decay", "warmup_ratio", "cosine_scale", "contrastive_weight")
RANK_KEY = "lora_r"


class PbtUnavailable(RuntimeError):
    """Ray Tune is not installed."""


def require_ray():
    try:
        import ray
        from ray import tune  # noqa: F401 - the extra must bring Tune
    except ImportError as exc:
        raise PbtUnavailable("population-based training needs Ray Tune: pip install 'lakedoc[train]' "
                             "(ray[tune]; the Databricks ML runtime ships it)") from exc
    return ray


def mutations(settings: FinetuneSettings) -> dict[str, Any]:
    """``hyperparam_mutations``: the continuous hyperparameters only (never the LoRA rank)."""
    from ray import tune

    lr = settings.learning_rate
    return {
        "learning_rate": tune.loguniform(lr / 10, lr * 10),
        "weight_decay": tune.uniform(0.0, max(0.1, 2 * settings.weight_decay)),
        "warmup_ratio": tune.uniform(0.0, 0.3),
        "cosine_scale": tune.uniform(max(1.0, settings.cosine_scale / 2), settings.cosine_scale * 2),
        "contrastive_weight": tune.uniform(0.0, max(0.5, 2 * settings.contrastive_weight)),
    }


def param_space(settings: FinetuneSettings) -> dict[str, Any]:
    """The initial population: every continuous value drawn from its range, the rank a grid (structural)."""
    from ray import tune

    space: dict[str, Any] = dict(mutations(settings))
    space[RANK_KEY] = tune.grid_search(list(settings.pbt.ranks) or [settings.lora.r])
    return space


def trial_settings(settings: FinetuneSettings, config: dict, epochs: int) -> FinetuneSettings:
    """The settings of one trial: the base settings with the trial's hyperparameters, rank and epochs."""
    update: dict[str, Any] = {k: float(config[k]) for k in CONTINUOUS if k in config}
    update["epochs"] = max(1, int(epochs))
    update["lora"] = settings.lora.model_copy(update={"r": int(config[RANK_KEY])})
    return settings.model_copy(update=update)


def adapter_rank(model: DualEncoder) -> int:
    """The rank of the LoRA adapter actually in ``model`` (peft's config)."""
    cfgs = getattr(model.backbone, "peft_config", {}) or {}
    return int(next(iter(cfgs.values())).r) if cfgs else int(model.lora.r)


def _trainable(config: dict, *, train: list[dict], validation: list[dict], label_names: list[str],
               descriptions: dict[str, list[str]], settings_json: dict, encoder_json: dict) -> None:
    """One PBT trial (runs in a Ray worker): resume from the checkpoint Tune hands over (its own, or the
    exploited trial's), fine-tune the remaining epochs, report every evaluation with a checkpoint."""
    import random

    import numpy as np
    import torch
    from ray import tune

    from lakedoc.evaluation import binarize
    from lakedoc.finetune.model import DualEncoder
    from lakedoc.finetune.train import fit

    settings = FinetuneSettings(**settings_json)
    enc = EncoderSettings(**encoder_json)
    device = settings.device or enc.device
    if device == "auto" and torch.cuda.is_available():
        device = "cuda"
    trial_id = tune.get_context().get_trial_id()
    rank = int(config[RANK_KEY])
    done, origin = 0.0, trial_id
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = json.loads((Path(d) / "state.json").read_text())
            model = DualEncoder.load(Path(d) / "model", device=device, cache_dir=enc.cache_dir)
        done, origin = float(state["epoch"]), state["trial_id"]
        if adapter_rank(model) != rank:  # cannot happen with Tune's exploit (rank cloned with weights)
            raise RuntimeError(f"trial {trial_id}: checkpoint of rank {adapter_rank(model)} cannot continue as "
                               f"rank {rank}: the LoRA rank is structural")
        # explore multiplied/resampled cosine_scale: apply the same factor to the learned scale
        if state.get("cosine_scale") and config.get("cosine_scale"):
            with torch.no_grad():
                model.scale.mul_(float(config["cosine_scale"]) / float(state["cosine_scale"]))
        model.train()
    else:
        s0 = trial_settings(settings, config, settings.epochs)
        model = DualEncoder.from_base(s0.base_model or enc.model, s0.lora, s0.max_seq_length, device, encoder=enc,
                                      cosine_scale=s0.cosine_scale, learn_scale=s0.learn_scale,
                                      precision=s0.precision or enc.precision, seed=s0.seed)
        model.set_labels(label_names, dict(descriptions.items()))
        init_bias = getattr(__import__("lakedoc.finetune.train", fromlist=["_init_bias"]), "_init_bias", None)
        if init_bias is not None:  # where positives and negatives separate, as fit does for a fresh model
            holdout = set(s0.holdout_labels)
            targets = [n for n in label_names if n not in holdout]
            y = binarize([r["labels"] for r in train], targets)
            init_bias(model, train, y, targets, s0.eval_batch_size, random.Random(s0.seed))
    remaining = settings.epochs - int(round(done))
    if remaining <= 0:
        return
    s = trial_settings(settings, config, remaining).model_copy(update={"seed": settings.seed + int(round(done))})

    def report(row: dict) -> None:
        epoch = done + float(row["epoch"])
        metrics = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not np.isnan(v)}
        metrics.update(epoch=epoch, lora_r=float(rank), adapter_rank=float(adapter_rank(model)),
                       **{f"hp_{k}": float(config[k]) for k in CONTINUOUS if k in config})
        with tempfile.TemporaryDirectory(prefix="lakedoc-pbt-") as d:
            was_training = model.training
            model.eval()
            model.save(Path(d) / "model")
            model.train(was_training)
            (Path(d) / "state.json").write_text(json.dumps({
                "epoch": epoch, "trial_id": trial_id, "origin": origin, "lora_r": rank,
                "cosine_scale": float(config.get("cosine_scale") or 0.0)}))
            tune.report({**metrics, "origin": origin}, checkpoint=tune.Checkpoint.from_directory(d))

    fit(train, validation, label_names, descriptions, s, model=model, report=report, encoder=enc)


@dataclass
class PbtResult:
    model: DualEncoder
    best_trial: str
    best_config: dict
    best: dict
    trials: dict[str, list[dict]] = field(default_factory=dict)   # trial id -> its reported rows
    initial: dict[str, dict] = field(default_factory=dict)        # trial id -> its initial configuration
    perturbations: int = 0
    seconds: float = 0.0
    mlflow_run_id: str | None = None


def _collector():
    """A Tune callback (driver side) that keeps each trial's initial configuration, its storage path and
    every result it reports, in order."""
    from ray.tune import Callback

    class Collector(Callback):
        def __init__(self) -> None:
            self.rows: dict[str, list[dict]] = {}
            self.initial: dict[str, dict] = {}
            self.paths: dict[str, str] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.initial.setdefault(trial.trial_id, dict(trial.config))
            self.paths.setdefault(trial.trial_id, str(trial.path))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.paths.setdefault(trial.trial_id, str(trial.path))
            self.rows.setdefault(trial.trial_id, []).append(
                {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))})

    return Collector()


def _start_ray(settings: FinetuneSettings, local_cpus: int | None) -> tuple[Any, bool]:
    """(ray, started_on_spark). Ray on Spark on Databricks, a local Ray otherwise; an existing one is kept."""
    ray = require_ray()
    from lakedoc.spark import on_databricks

    if ray.is_initialized():
        return ray, False
    if on_databricks():
        from ray.util.spark import MAX_NUM_WORKER_NODES, setup_ray_cluster

        gpus = settings.pbt.gpus_per_trial
        setup_ray_cluster(max_worker_nodes=MAX_NUM_WORKER_NODES, num_gpus_worker_node=1 if gpus != 0 else 0)
        ray.init(ignore_reinit_error=True)
        return ray, True
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local instance, no token files
    ray.init(num_cpus=local_cpus or min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True)
    return ray, False


def search(train: list[dict], validation: list[dict], label_names: list[str], descriptions: dict[str, list[str]],
           settings: FinetuneSettings, *, encoder: EncoderSettings | None = None, storage_path: str | Path,
           name: str = "lakedoc-pbt", local_cpus: int | None = None, cfg: Any = None) -> PbtResult:
    """Run the PBT search (see the module docstring); ``cfg`` given: the trials are logged to MLflow."""
    import torch

    require_ray()
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    from lakedoc.evaluation import binarize, tune_thresholds
    from lakedoc.finetune.model import DualEncoder

    if not validation:
        raise ValueError("population-based training selects by a validation metric: give validation records")
    t0 = time.perf_counter()
    enc = encoder or EncoderSettings()
    pbt_cfg = settings.pbt
    metric = pbt_cfg.metric
    gpus = pbt_cfg.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if torch.cuda.is_available() else 0.0
    ray_mod, on_spark = _start_ray(settings, local_cpus)
    try:
        ranks = list(pbt_cfg.ranks) or [settings.lora.r]
        per_rank = max(1, -(-pbt_cfg.num_samples // len(ranks)))  # grid over ranks x samples per rank
        scheduler = PopulationBasedTraining(
            time_attr="epoch", perturbation_interval=pbt_cfg.perturbation_interval,
            hyperparam_mutations=mutations(settings), quantile_fraction=0.5 if pbt_cfg.num_samples <= 4 else 0.25,
            synch=True)
        trainable = tune.with_parameters(
            _trainable, train=train, validation=validation, label_names=list(label_names),
            descriptions=dict(descriptions), settings_json=settings.model_dump(mode="json"),
            encoder_json=enc.model_dump(mode="json"))
        trainable = tune.with_resources(trainable, {"cpu": 1, "gpu": float(gpus)})
        collector = _collector()
        tuner = tune.Tuner(
            trainable, param_space=param_space(settings),
            tune_config=tune.TuneConfig(scheduler=scheduler, metric=metric, mode="max", num_samples=per_rank,
                                        max_concurrent_trials=pbt_cfg.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=str(Path(storage_path).resolve()), verbose=0,
                                      callbacks=[collector],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=None)))
        results: Any = tuner.fit()  # a ResultGrid: iterable, typed loosely across Ray versions
        errors = [str(r.error) for r in results if r.error]
        if errors and len(errors) == len(results):
            raise RuntimeError(f"every PBT trial failed; first error: {errors[0]}")
        # what every trial reported, in order, as the Tune controller saw it (not the trial's log files: an
        # exploited trial's files mix in the state it copied)
        trials: dict[str, list[dict]] = collector.rows
        initial: dict[str, dict] = {tid: {**{k: c[k] for k in CONTINUOUS if k in c}, RANK_KEY: c[RANK_KEY]}
                                    for tid, c in collector.initial.items()}
        scored = [(tid, row) for tid, rows in trials.items() for row in rows if metric in row]
        if not scored:
            raise RuntimeError(f"no PBT trial reported {metric}")
        best_id, best_row = max(scored, key=lambda t: t[1][metric])
        ckpt_dir = Path(collector.paths[best_id]) / str(best_row["checkpoint_dir_name"]) / "model"
        model = DualEncoder.load(ckpt_dir, device="cpu", cache_dir=enc.cache_dir)
        best_config = {**{k: best_row[f"hp_{k}"] for k in CONTINUOUS}, RANK_KEY: int(best_row["lora_r"])}
    finally:
        if on_spark:
            from ray.util.spark import shutdown_ray_cluster

            shutdown_ray_cluster()
        ray_mod.shutdown()
    # thresholds of the selected model, tuned on validation (as fit does for its returned model)
    names = list(label_names)
    scores = model.predict_scores([r["text"] for r in validation], batch_size=settings.eval_batch_size)
    model.thresholds = tune_thresholds(binarize([r["labels"] for r in validation], names), scores, None, "auto",
                                       10, names)
    model.settings = trial_settings(settings, best_config, settings.epochs).model_dump(mode="json")
    perturbations = sum(1 for rows in trials.values() for a, b in zip(rows, rows[1:], strict=False)
                        if any(a.get(f"hp_{k}") != b.get(f"hp_{k}") for k in CONTINUOUS))
    out = PbtResult(model, best_id, best_config, dict(best_row), trials, initial, perturbations,
                    time.perf_counter() - t0)
    if cfg is not None:
        out.mlflow_run_id = log_trials(cfg, out, metric)
    log.info("PBT: best trial %s (%s %.4f, rank %s) of %d, %d perturbation(s), %.0f s", best_id, metric,
             best_row[metric], best_config[RANK_KEY], len(trials), perturbations, out.seconds)
    return out


def log_trials(cfg: Any, result: PbtResult, metric: str) -> str | None:
    """One MLflow parent run for the search, one nested run per trial; returns the parent's run id."""
    try:
        import mlflow

        from lakedoc.finetune.registry import client, experiment_id, store

        st = store(cfg)
        client(st)
        exp = experiment_id(st)
        with mlflow.start_run(experiment_id=exp, run_name="pbt") as parent:
            mlflow.log_params({"trials": len(result.trials), "metric": metric, "best_trial": result.best_trial,
                               **{f"best.{k}": v for k, v in result.best_config.items()}})
            mlflow.log_metrics({f"best_{metric}": float(result.best[metric]), "perturbations": result.perturbations,
                                "seconds": result.seconds})
            for tid, rows in result.trials.items():
                with mlflow.start_run(experiment_id=exp, run_name=tid, nested=True):
                    mlflow.log_params({k: v for k, v in result.initial.get(tid, {}).items()})
                    mlflow.set_tag("best", str(tid == result.best_trial))
                    for i, row in enumerate(rows):
                        vals = {k: float(v) for k, v in row.items()
                                if k.startswith(("val_", "train_", "hp_", "lora_", "adapter_", "epoch", "scale",
                                                 "bias")) and isinstance(v, (int, float))}
                        mlflow.log_metrics(vals, step=i)
            return parent.info.run_id
    except Exception as exc:  # noqa: BLE001 - tracking must not lose the search's result
        log.warning("PBT: could not log the trials to MLflow: %s", exc)
        return None


def run_pbt(cfg: Any, args: Any) -> int:
    """``lakedoc finetune --pbt --train FILE [--test FILE] [--out DIR] [--split-file F]``."""
    try:
        require_ray()
    except PbtUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from lakedoc import methods
    from lakedoc.evaluation import binarize, load_jsonl, multilabel_metrics, prepare, three_way_split
    from lakedoc.finetune.method import label_descriptions

    if not getattr(args, "train", None):
        print("error: --train is required", file=sys.stderr)
        return 2
    settings = FinetuneSettings.from_config(cfg)
    st = methods.eval_settings(cfg)
    records = load_jsonl(args.train)
    test_records = load_jsonl(args.test) if getattr(args, "test", None) else None
    train, val, te = three_way_split(records, st, test_records, getattr(args, "split_file", None))
    prep = prepare(train, st["min_label_docs"], st["min_words"])
    names = list(prep.label_names) + [n for n in settings.holdout_labels if n not in prep.label_names]
    out_dir = Path(getattr(args, "out", None) or settings.output_dir and cfg.resolve_path(settings.output_dir)
                   or Path(cfg.resolve_path(cfg.tables.warehouse)) / "_models" / "finetune")
    res = search(prep.train, val, names, label_descriptions(cfg, names), settings,
                 encoder=EncoderSettings.from_config(cfg), storage_path=out_dir.parent / f"{out_dir.name}-ray",
                 cfg=cfg)
    saved = res.model.save(out_dir)
    trained = [n for n in names if n not in set(settings.holdout_labels)]
    scores = res.model.predict_scores([r["text"] for r in te], batch_size=settings.eval_batch_size)
    assert res.model.thresholds is not None
    cols = [names.index(n) for n in trained]
    m = multilabel_metrics(binarize([r["labels"] for r in te], trained), res.model.thresholds.apply(scores)[:, cols],
                           trained)
    summary = {"model_dir": str(saved), "pbt": {"best_trial": res.best_trial, "best_config": res.best_config,
                                                "best": res.best, "perturbations": res.perturbations,
                                                "trials": res.trials, "mlflow_run_id": res.mlflow_run_id},
               "train_seconds": res.seconds, "best": res.best, "settings": settings.model_dump(mode="json"),
               "sizes": {"train": len(prep.train), "validation": len(val), "test": len(te), "labels": len(names)},
               "test": {k: v for k, v in m.items() if not isinstance(v, (dict, list))}}
    (saved / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"pbt: best trial {res.best_trial} (rank {res.best_config.get(RANK_KEY)}, {settings.pbt.metric} "
          f"{res.best[settings.pbt.metric]:.4f}); test micro-F1 {m['micro_f1']:.4f}, macro-F1 {m['macro_f1']:.4f}; "
          f"{len(res.trials)} trials, {res.perturbations} perturbation(s), {res.seconds:.0f} s; model {saved}")
    return 0


__all__ = ["CONTINUOUS", "RANK_KEY", "PbtResult", "PbtUnavailable", "adapter_rank", "log_trials", "mutations",
           "param_space", "require_ray", "run_pbt", "search", "trial_settings"]
