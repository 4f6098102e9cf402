"""Tiny fine-tuning inputs shared by tests/test_registry.py and tests/test_pbt.py: the seeded synthetic
corpus of the local DAG (lakedoc.baselines.synthetic, 8 Reuters-style topics), its labels with the
descriptions of the Reuters taxonomy, and settings small enough for 2 CPU cores (24 tokens per text,
rank-4 adapters, one or two epochs)."""
from __future__ import annotations

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
