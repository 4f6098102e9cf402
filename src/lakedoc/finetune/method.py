"""The harness method ``finetuned`` (``lakedoc evaluate --method finetuned``): the LoRA dual encoder.

``fit`` splits the training part once more, seeded (``finetune.seed``, ``finetune.validation_fraction``,
grouped by content hash like every split of the harness), fine-tunes with
:func:`lakedoc.finetune.train.fit` (early stopping on that validation part) and keeps the best model;
label descriptions come from the configured taxonomy (:func:`lakedoc.classify.taxonomy.taxonomy_for`,
as ``zero_shot`` reads them). ``predict_scores`` is :meth:`DualEncoder.predict_scores`. The harness then
tunes thresholds on *its* validation split and measures on test, as for every method.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lakedoc.config_schema import EncoderSettings, FinetuneSettings

if TYPE_CHECKING:
    from lakedoc.evaluation import Thresholds
    from lakedoc.finetune.model import DualEncoder
    from lakedoc.finetune.train import FinetuneResult

log = logging.getLogger(__name__)


def label_descriptions(cfg: Any, label_names: Sequence[str]) -> dict[str, list[str]]:
    """label -> its descriptions in the configured taxonomy (a label it lacks: its own name)."""
    from lakedoc.classify.taxonomy import taxonomy_for

    taxonomy = taxonomy_for(cfg, label_names).restricted(list(label_names))
    return {lab.name: list(lab.descriptions) for lab in taxonomy.labels}


def validation_split(records: Sequence[dict], settings: FinetuneSettings) -> tuple[list[dict], list[dict]]:
    """Seeded train/validation split of ``records`` (by content hash; no validation when the fraction is 0
    or there are fewer than 10 records)."""
    from lakedoc.evaluation import split_records

    if settings.validation_fraction <= 0 or len(records) < 10:
        return list(records), []
    fr = {"train": 1.0 - settings.validation_fraction, "validation": settings.validation_fraction}
    parts = split_records(records, fr, settings.seed)
    by_id = {str(r["doc_id"]): r for r in records}
    return [by_id[i] for i in parts["train"]], [by_id[i] for i in parts["validation"]]


class FinetunedMethod:
    """Harness method ``finetuned``: LoRA fine-tuning of the encoder on the training part."""

    name = "finetuned"

    def __init__(self) -> None:
        self.model: DualEncoder | None = None
        self.result: FinetuneResult | None = None
        self.thresholds: Thresholds | None = None  # set by the evaluation harness
        self._n_labels = 0

    def fit(self, train_texts: list[str], train_labels: list[list[str]], label_names: list[str], cfg: Any) -> None:
        from lakedoc.finetune.train import fit, progress_line

        settings = FinetuneSettings.from_config(cfg)
        records = [{"doc_id": str(i), "text": t, "labels": list(labs)}
                   for i, (t, labs) in enumerate(zip(train_texts, train_labels, strict=True))]
        train, validation = validation_split(records, settings)
        names = list(label_names)
        self._n_labels = len(names)
        for extra in settings.holdout_labels:  # scored zero-shot even when the harness dropped them
            if extra not in names:
                names.append(extra)
        self.result = fit(train, validation, names, label_descriptions(cfg, names), settings,
                          encoder=EncoderSettings.from_config(cfg), report=lambda row: log.info(progress_line(row)))
        self.model = self.result.model
        log.info("finetuned: %s after %.0f s, best %s", self.result.stopped, self.result.seconds, self.result.best)

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of the harness's labels (held-out labels appended by ``fit`` are left out)."""
        if self.model is None:
            raise RuntimeError("FinetunedMethod.fit must be called first")
        return self.model.predict_scores(list(texts))[:, :self._n_labels]


__all__ = ["FinetunedMethod", "label_descriptions", "validation_split"]
