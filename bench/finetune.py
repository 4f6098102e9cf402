"""Benchmark of a fine-tuning step: LoRA on the top layers from kept frozen outputs vs LoRA on every layer.

    .venv/bin/python bench/finetune.py [--docs 512] [--layers 2] [--quick] [--json PATH]

Needs ../shared (Reuters-21578). Each variant is :func:`lakedoc.finetune.train.fit` on the same first
``--docs`` Reuters training stories for one epoch (batch 32, 128 tokens, CPU, every core, no validation),
with the Reuters taxonomy's descriptions of every label with at least 2 stories re-embedded each step,
one after another in this process (a one-step warm-up fit first):

* **all layers** — ``finetune.lora.layers: null``: adapters on every layer, the whole model runs forward
  and backward each step (the baseline: the only way before).
* **top N, recomputed** — ``finetune.lora.layers: N`` with ``finetune.frozen_cache_gb: 0``: the frozen
  layers run each step, without autograd.
* **top N, kept** — the default: the frozen layers run once per text before the first step.

Reported: seconds per step (the fit's time less the one-time keeping, over its steps), the one-time
keeping, and the ratios ``all layers s/step ÷ variant s/step`` (``ratio`` in the JSON: the kept variant's)
and, one-time cost included, ``all layers fit s ÷ variant fit s`` for this one epoch. ``--quick``: 256
stories (8 steps). The quality of the recipe is measured by the harness (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
from pathlib import Path

from machine import machine  # bench/machine.py (this folder is first on sys.path)

ROOT = Path(__file__).resolve().parents[1]
REUTERS = ROOT.parent / "shared" / "datasets" / "reuters21578" / "train.jsonl"
BATCH = 32


def _records(n: int) -> tuple[list[dict], list[str]]:
    from lakedoc.evaluation import load_jsonl

    rows = load_jsonl(REUTERS)
    counts = collections.Counter(lab for r in rows for lab in r["labels"])
    names = sorted(lab for lab, c in counts.items() if c >= 2)
    docs = [r for r in rows if len((r.get("text") or "").split()) >= 10][:n]
    return [{"doc_id": str(r["doc_id"]), "text": r["text"], "labels": list(r["labels"])} for r in docs], names


def _fit(records, names, descriptions, layers, cache_gb) -> dict:
    from lakedoc.config_schema import FinetuneSettings, LoraSettings
    from lakedoc.finetune.train import fit

    settings = FinetuneSettings(device="cpu", batch_size=BATCH, epochs=1, max_seq_length=128, eval_every=None,
                                validation_fraction=0.0, frozen_cache_gb=cache_gb,
                                lora=LoraSettings(layers=layers))
    res = fit(records, [], names, descriptions, settings)
    steps = math.ceil(len(records) / BATCH)
    keep = float(res.frozen.get("seconds", 0.0))
    return {"layers": layers, "kept": bool(res.frozen.get("kept")), "steps": steps, "fit_s": round(res.seconds, 2),
            "keep_s": keep, "s_per_step": round((res.seconds - keep) / steps, 3), "frozen": res.frozen}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="256 stories")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if not REUTERS.is_file():
        print(f"skipped: {REUTERS} is absent (the shared data sets)", file=sys.stderr)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lakedoc.config import load_config
    from lakedoc.finetune.method import label_descriptions

    n = 256 if args.quick else args.docs
    records, names = _records(n)
    descriptions = label_descriptions(load_config("local"), names)
    n_desc = sum(len(v) for v in descriptions.values())
    print(f"{len(records)} stories, {len(names)} labels ({n_desc} descriptions), batch {BATCH}, 1 epoch, "
          f"{os.cpu_count()} cores")
    _fit(records[:BATCH], names, descriptions, None, 0.0)  # warm-up: weights, tokenizer, allocator
    runs = {"all_layers": _fit(records, names, descriptions, None, 0.0),
            "top_recomputed": _fit(records, names, descriptions, args.layers, 0.0),
            "top_kept": _fit(records, names, descriptions, args.layers, 4.0)}
    base = runs["all_layers"]
    for key, r in runs.items():
        r["ratio_step"] = round(base["s_per_step"] / r["s_per_step"], 2)
        r["ratio_fit"] = round(base["fit_s"] / r["fit_s"], 2)
        print(f"{key:15s} layers={r['layers']!s:4s} {r['s_per_step']:.2f} s/step, one-time keep {r['keep_s']:.1f} s, "
              f"fit {r['fit_s']:.1f} s; all layers ÷ this: {r['ratio_step']:.2f}x per step, "
              f"{r['ratio_fit']:.2f}x per fit")
    out = {"machine": machine(), "docs": len(records), "labels": len(names), "descriptions": n_desc,
           "batch": BATCH, "runs": runs, "ratio": runs["top_kept"]["ratio_step"]}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
