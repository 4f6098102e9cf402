"""``lakedoc finetune``: LoRA fine-tuning of the dual encoder on labelled JSONL (doc_id, text, labels).

Splits ``--train`` like ``lakedoc evaluate`` does (:func:`lakedoc.evaluation.three_way_split` with the
harness settings of section ``baselines``; ``--test`` replaces the test part), fine-tunes on the train part
with early stopping on the validation part (:func:`lakedoc.finetune.train.fit`), saves the model to
``--out`` (default ``finetune.output_dir``, else ``<tables.warehouse>/_models/finetune``) with
``metrics.json`` beside it: the training history, the test metrics with the thresholds tuned on
validation, and the held-out labels' zero-shot F1 before/after (``finetune.holdout_labels``). One line
per evaluation (epoch, loss, validation F1) is logged at INFO; on a terminal a progress bar counts the
evaluations (:class:`lakedoc.report.progress.Progress`: none off a terminal or in CI).

``--pbt`` runs population-based training instead (:func:`lakedoc.finetune.pbt.run_pbt`), and
``--from-feedback`` the feedback-driven policy update (:func:`lakedoc.finetune.grpo.run_from_feedback`);
both receive the configuration and these arguments, and are imported only when asked for.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune the encoder (LoRA) on labelled JSONL; --pbt, --from-feedback",
        description="Fine-tune the dual encoder with LoRA adapters on --train (split like `lakedoc evaluate`), "
                    "early stopping on validation macro-F1; saves the model and metrics.json to --out.")
    p.add_argument("--train", help="labelled JSONL: doc_id, text, labels")
    p.add_argument("--test", help="labelled JSONL for the test set (default: a seeded split of --train)")
    p.add_argument("--out", help="model folder (default: finetune.output_dir, else "
                                 "<tables.warehouse>/_models/finetune)")
    p.add_argument("--model", help="a saved fine-tuned model to continue from (--from-feedback: the current "
                                   "model)")
    p.add_argument("--split-file", help="save/reuse the seeded split here (JSON)")
    p.add_argument("--target", default="local")
    p.add_argument("--config", help="extra YAML merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--pbt", action="store_true",
                      help="population-based training with Ray Tune (finetune.pbt.*)")
    mode.add_argument("--from-feedback", action="store_true",
                      help="GRPO-style update of --model from the feedback table, promoted only if better")
    p.set_defaults(func=cmd_finetune)


def default_output_dir(cfg: Any) -> str:
    from lakedoc.config_schema import FinetuneSettings

    s = FinetuneSettings.from_config(cfg)
    if s.output_dir:
        return str(cfg.resolve_path(s.output_dir))
    return str(Path(cfg.resolve_path(cfg.tables.warehouse)) / "_models" / "finetune")


def cmd_finetune(args) -> int:
    from lakedoc.config import load_config

    cfg = load_config(args.target, user_file=args.config, sets=args.set)
    if args.pbt:
        from lakedoc.finetune import pbt

        return int(pbt.run_pbt(cfg, args) or 0)
    if args.from_feedback:
        from lakedoc.finetune import grpo

        return int(grpo.run_from_feedback(cfg, args) or 0)
    if not args.train:
        print("error: --train is required", file=sys.stderr)
        return 2
    summary = run_finetune(cfg, args.train, args.test, args.out or default_output_dir(cfg),
                           split_file=args.split_file, start_from=args.model)
    test = summary["test"]
    print(f"finetuned: test micro-F1 {test['micro_f1']:.4f}, macro-F1 {test['macro_f1']:.4f} "
          f"({summary['stopped']} after {summary['train_seconds']:.0f} s); model {summary['model_dir']}")
    hold = summary.get("holdout")
    if hold:
        print(f"held-out labels ({len(hold['labels'])}): zero-shot micro-F1 before {hold['before']['micro_f1']:.4f}, "
              f"after {hold['after']['micro_f1']:.4f} (delta {hold['delta_micro_f1']:+.4f}); macro-F1 before "
              f"{hold['before']['macro_f1']:.4f}, after {hold['after']['macro_f1']:.4f}")
    return 0


def run_finetune(cfg: Any, train_file: str, test_file: str | None, out_dir: str, *, split_file: str | None = None,
                 start_from: str | None = None) -> dict:
    """Split, fine-tune, save the model and ``metrics.json`` to ``out_dir``; returns the metrics."""
    from lakedoc import methods
    from lakedoc.config_schema import EncoderSettings, FinetuneSettings
    from lakedoc.evaluation import binarize, load_jsonl, multilabel_metrics, prepare, three_way_split
    from lakedoc.finetune.method import label_descriptions
    from lakedoc.finetune.model import DualEncoder
    from lakedoc.finetune.train import fit, holdout_report, progress_line

    settings = FinetuneSettings.from_config(cfg)
    st = methods.eval_settings(cfg)
    records = load_jsonl(train_file)
    test_records = load_jsonl(test_file) if test_file else None
    train, val, te = three_way_split(records, st, test_records, split_file)
    prep = prepare(train, st["min_label_docs"], st["min_words"])
    names = list(prep.label_names)
    names += [n for n in settings.holdout_labels if n not in names]
    log.info("finetune: train %d, validation %d, test %d documents, %d labels (%d held out)", len(prep.train),
             len(val), len(te), len(names), len(settings.holdout_labels))
    model = DualEncoder.load(start_from, device=settings.device or "auto") if start_from else None
    from lakedoc.report.progress import Progress

    # a bar on a terminal only (not in CI); the log lines go above it
    with Progress(None, "finetune", unit="eval", logs=True) as progress:
        def on_evaluation(row: dict) -> None:
            log.info("%s", progress_line(row))
            f1 = f", val macro-F1 {row['val_macro_f1']:.4f}" if "val_macro_f1" in row else ""
            progress.update(postfix=f"epoch {row['epoch']:.2f}, loss {row['train_loss']:.4f}{f1}")

        result = fit(prep.train, val, names, label_descriptions(cfg, names), settings, model=model,
                     report=on_evaluation, encoder=EncoderSettings.from_config(cfg))
    out = result.model.save(out_dir)
    trained = [n for n in names if n not in set(settings.holdout_labels)]
    scores = result.model.predict_scores([r["text"] for r in te], batch_size=settings.eval_batch_size)
    assert result.model.thresholds is not None or not val
    preds = result.model.thresholds.apply(scores) if result.model.thresholds is not None else scores >= 0.5
    cols = [names.index(n) for n in trained]
    y = binarize([r["labels"] for r in te], trained)
    test_metrics = multilabel_metrics(y, preds[:, cols], trained)
    summary = {
        "train_file": train_file, "test_file": test_file, "model_dir": str(out), "base_model": result.model.base_model,
        "sizes": {"train": len(prep.train), "validation": len(val), "test": len(te), "labels": len(names),
                  "trained_labels": len(trained)},
        "settings": settings.model_dump(mode="json"), "stopped": result.stopped, "train_seconds": result.seconds,
        "best": result.best, "history": result.history, "frozen": result.frozen,
        "test": {k: v for k, v in test_metrics.items() if not isinstance(v, (dict, list))},
        "test_per_label": test_metrics.get("per_label"),
        "holdout": holdout_report(result.model, val, te, settings.holdout_labels, settings.eval_batch_size),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


__all__ = ["add_parser", "cmd_finetune", "run_finetune", "default_output_dir"]
