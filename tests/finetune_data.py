"""Tiny fine-tuning inputs shared by the fine-tuning tests: the seeded synthetic corpus of the local DAG
(lakedoc.baselines.synthetic, 8 Reuters-style topics; tests/test_registry.py, tests/test_pbt.py), its
labels with the descriptions of the Reuters taxonomy, settings small enough for 2 CPU cores (24 tokens
per text, rank-4 adapters, one or two epochs), and single-label Reuters stories out of ../shared
(tests/test_finetune.py, tests/test_grpo.py)."""
from __future__ import annotations

import json
from pathlib import Path

from lakedoc.baselines.synthetic import generate
from lakedoc.config_schema import FinetuneSettings, LoraSettings


def records(n: int = 48, seed: int = 3) -> tuple[list[dict], list[dict]]:
    """(train, validation): two thirds / one third of ``n`` synthetic documents."""
    recs = generate(n, seed=seed)
    cut = (2 * n) // 3
    return recs[:cut], recs[cut:]


def labels(recs: list[dict]) -> list[str]:
    return sorted({lab for r in recs for lab in r["labels"]})


def descriptions(cfg, names: list[str]) -> dict[str, list[str]]:
    from lakedoc.finetune.method import label_descriptions

    return label_descriptions(cfg, names)


def settings(**kw) -> FinetuneSettings:
    base = dict(max_seq_length=24, batch_size=8, eval_batch_size=32, epochs=1, learning_rate=3e-3,
                warmup_ratio=0.0, patience=3, max_train_minutes=5, seed=5, device="cpu",
                lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    base.update(kw)
    return FinetuneSettings(**base)


def reuters_single_label(path: Path, labels: list[str], per_label: int) -> dict[str, list[dict]]:
    """label -> the first ``per_label`` stories of the Reuters JSONL at ``path`` that carry exactly one of
    ``labels`` (the others dropped) and at least 30 words, in file order (deterministic)."""
    out: dict[str, list[dict]] = {lab: [] for lab in labels}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            labs = [lab for lab in r["labels"] if lab in labels]
            if len(labs) == 1 and len(r["text"].split()) >= 30 and len(out[labs[0]]) < per_label:
                out[labs[0]].append({"doc_id": r["doc_id"], "text": r["text"], "labels": labs})
    return out
