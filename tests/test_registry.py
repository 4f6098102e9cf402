"""The MLflow registry of the fine-tuned encoder (lakedoc.finetune.registry) on the local SQLite store:
log -> register -> alias -> load gives the same scores, promote moves the alias, and the classify /
embed tasks use the champion when ``encoder.model_uri`` names it."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("sqlalchemy", reason="the local MLflow store is SQLite through SQLAlchemy")

import finetune_data as data  # noqa: E402

from lakedoc.config import load_config  # noqa: E402
from lakedoc.schema import DOCUMENTS_REDACTED, PREDICTIONS  # noqa: E402

URI = "models:/lakedoc_encoder@champion"

# one page each: one chunk, so the stage's score is the DualEncoder's own score of the text
DOCS = {
    "earn1": "Acme Corp reported quarterly net profit of 12.5 mln dlrs, up from 9.1 mln dlrs a year ago, and "
             "declared a dividend.",
    "grain1": "Wheat and corn exports fell sharply this season as drought cut the grain harvest in the plains.",
    "crude1": "Crude oil prices rose to 18 dlrs a barrel after OPEC ministers agreed to cut production quotas.",
    "short1": "Too short to tell.",
}


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    return tmp_path_factory.mktemp("registry-wh")


def _cfg(wh, *sets):
    return load_config("local", environ={}, sets=[f"tables.warehouse={wh}", "classify.docs_per_partition=2", *sets])


@pytest.fixture(scope="module")
def trained(wh, tmp_path_factory):
    """A tiny fine-tuned model, saved, logged and registered as version 1, promoted to champion."""
    import torch

    from lakedoc.finetune import registry
    from lakedoc.finetune.train import fit

    torch.set_num_threads(2)
    cfg = _cfg(wh)
    train, val = data.records()
    names = data.labels(train + val)
    result = fit(train, val, names, data.descriptions(cfg, names), data.settings())
    folder = result.model.save(tmp_path_factory.mktemp("model") / "finetuned")
    mv = registry.log_model(cfg, folder, tags={"lakedoc_run_id": "test"})
    assert registry.promote(cfg, mv.version) is None  # no champion before
    return result.model, folder, mv, val


def test_round_trip_gives_identical_scores(trained, wh):
    from lakedoc.finetune import registry

    model, folder, mv, val = trained
    cfg = _cfg(wh)
    assert mv.name == "lakedoc_encoder" and mv.version == "1" and mv.model_id == "models:/lakedoc_encoder/1"
    assert registry.get_alias(cfg) == "1"
    assert registry.version_tags(cfg, 1)["lakedoc_run_id"] == "test"
    texts = [r["text"] for r in val]
    expected = model.predict_scores(texts)
    loaded = registry.load_champion(cfg)
    assert loaded.label_names == model.label_names
    assert loaded.thresholds is not None and loaded.thresholds.values == model.thresholds.values
    np.testing.assert_allclose(loaded.predict_scores(texts), expected, rtol=0, atol=1e-6)

    # resolved once into the cache folder: adapter, label cache, merged encoder, marker
    res = registry.resolve(cfg, URI)
    assert res.model_id == "models:/lakedoc_encoder/1" and res.folder is not None
    for part in ("adapter", "tokenizer", "meta.json", "label_embeddings.npy", "merged/lakedoc_model.json"):
        assert (res.folder / part).exists(), part
    np.testing.assert_allclose(np.load(res.folder / "label_embeddings.npy"),
                               model.label_embeddings().numpy(), atol=1e-6)

    # the merged encoder (what classify/embed load) embeds like the adapter model
    from lakedoc.encoder import get_encoder

    enc = get_encoder(_cfg(wh, f"encoder.model_uri={URI}"))
    assert enc.model_id == "models:/lakedoc_encoder/1"
    np.testing.assert_allclose(enc.encode(texts, "passage"), model.embed(texts).numpy(), atol=1e-4)

    # the pyfunc flavour scores the same
    import mlflow.pyfunc
    import pandas as pd

    registry.client(registry.store(cfg))
    pyfunc = mlflow.pyfunc.load_model("models:/lakedoc_encoder/1")
    out = pyfunc.predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == model.label_names
    np.testing.assert_allclose(out.to_numpy(), expected, atol=1e-6)


def _write_docs(store, docs: dict[str, str]):
    rows = [{"doc_id": k, "root_doc_id": k, "source_path": f"/in/{k}.pdf", "file_name": f"{k}.pdf", "format": "pdf",
             "content_hash": k, "redacted_text": t, "entity_counts": [], "config_hash": "h", "status": "ok",
             "error": None, "run_id": "r0",
             "redacted_units": [{"kind": "page", "index": 1, "ref": "page 1", "text": t}]} for k, t in docs.items()]
    store.merge(DOCUMENTS_REDACTED, pa.Table.from_pylist(rows, schema=DOCUMENTS_REDACTED.schema))


def _run(task, cfg, spark, store):
    from lakedoc.tasks import run_task

    run = run_task(task, cfg, spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    return run.result


@pytest.mark.spark
def test_classify_and_embed_use_the_champion_and_promote_moves_it(trained, wh, spark, tmp_path):
    from lakedoc.finetune import registry
    from lakedoc.tables import LocalDeltaStore

    model, folder, mv, _ = trained
    store = LocalDeltaStore(tmp_path / "tables", spark)
    base_cfg = _cfg(wh, f"tables.warehouse={tmp_path / 'tables'}")
    _write_docs(store, DOCS)

    # the default path: zero-shot with the base encoder
    res = _run("classify", base_cfg, spark, store)
    assert res.details["method"] == "zero_shot" and res.details["classified"] == 3
    zs = store.read_arrow(PREDICTIONS).to_pandas()
    assert set(zs["method"]) == {"zero_shot"} and set(zs["model"]) == {"sentence-transformers/all-MiniLM-L6-v2"}

    # encoder.model_uri: the champion, resolved from the registry of `wh`
    cfg = _cfg(wh, f"tables.warehouse={tmp_path / 'tables'}", f"encoder.model_uri={URI}",
               f"finetune.registry.tracking_uri=sqlite:///{wh}/_mlflow/mlflow.db",
               f"finetune.registry.cache_dir={wh}/_models/registry")
    res = _run("classify", cfg, spark, store)
    assert res.details["method"] == "finetuned" and res.details["model"] == "models:/lakedoc_encoder/1"
    assert res.details["processed"] == 4 and res.details["classified"] == 3 and res.details["skipped"] == 1
    preds = store.read_arrow(PREDICTIONS).to_pandas()
    assert set(preds["method"]) == {"finetuned"}, "the stale zero-shot rows are gone"
    assert set(preds["model"]) == {"models:/lakedoc_encoder/1"}
    assert set(preds["label"]) == set(model.label_names)
    # chunks are cut to the fine-tuning's max_seq_length: a one-chunk document scores exactly as the
    # DualEncoder scores its text; a longer one aggregates its chunks (classify.aggregation)
    n_chunks = store.read_arrow("chunks").to_pandas().groupby("doc_id").size()
    one = [i for i in ("grain1", "crude1", "earn1") if n_chunks[i] == 1]
    assert one and n_chunks.max() > 1
    table = preds.pivot(index="doc_id", columns="label", values="score")
    np.testing.assert_allclose(table.loc[one, model.label_names].to_numpy(),
                               model.predict_scores([DOCS[i] for i in one]), atol=2e-4)
    ids = ["earn1", "grain1", "crude1"]
    got = table.loc[ids, model.label_names].to_numpy()
    th = dict(zip(model.thresholds.label_names, model.thresholds.values, strict=True))
    assert all(abs(r.threshold - th[r.label]) < 1e-12 for r in preds.itertuples())
    base = zs.pivot(index="doc_id", columns="label", values="score").loc[ids, model.label_names].to_numpy()
    assert np.abs(got - base).max() > 0.05, "the fine-tuned scores are not the base model's"
    emb = store.read_arrow("embeddings").to_pandas()
    assert "models:/lakedoc_encoder/1" in set(emb["model"])
    assert _run("embed", cfg, spark, store).details["embedded_missing"] == 0  # classify wrote them
    assert _run("classify", cfg, spark, store).details["processed"] == 0      # nothing changed

    # a second version promoted: the alias moves and every document is classified again with it
    mv2 = registry.log_model(_cfg(wh), folder, metrics={"test_micro_f1": 0.5})
    assert mv2.version == "2"
    assert registry.promote(_cfg(wh), mv2.version) == "1"
    assert registry.get_alias(_cfg(wh)) == "2"
    res = _run("classify", cfg, spark, store)
    assert res.details["model"] == "models:/lakedoc_encoder/2" and res.details["processed"] == 4
    assert set(store.read_arrow(PREDICTIONS).to_pandas()["model"]) == {"models:/lakedoc_encoder/2"}
    assert registry.resolve(_cfg(wh), "models:/lakedoc_encoder/1").folder.name == "v1"

    # back to the default: zero-shot again, the fine-tuned rows removed
    res = _run("classify", base_cfg, spark, store)
    assert res.details["method"] == "zero_shot" and res.details["processed"] == 4
    assert set(store.read_arrow(PREDICTIONS).to_pandas()["method"]) == {"zero_shot"}


def test_unknown_alias_is_a_clear_error(trained, wh):
    from lakedoc.finetune import registry

    with pytest.raises(registry.RegistryError, match="models:/lakedoc_encoder@nope"):
        registry.resolve(_cfg(wh), "models:/lakedoc_encoder@nope")
    with pytest.raises(registry.RegistryError, match="neither"):
        registry.resolve(_cfg(wh), "/no/such/folder")


def test_promotion_gate():
    from lakedoc.finetune.tasks import promotion_decision

    assert promotion_decision({"micro_f1": 0.5, "macro_f1": 0.4}, None) == (True, "no champion yet")
    assert promotion_decision({"micro_f1": 0.8, "macro_f1": 0.6}, {"micro_f1": 0.8, "macro_f1": 0.5})[0]
    ok, why = promotion_decision({"micro_f1": 0.9, "macro_f1": 0.4}, {"micro_f1": 0.8, "macro_f1": 0.5})
    assert not ok and "macro_f1 0.4000 < 0.5000" in why


@pytest.mark.spark
def test_train_job_runs_locally(tmp_path, spark):
    """`lakedoc run --job lakedoc_train`: finetune -> evaluate -> register -> promote_if_better through the
    bundle's YAML and pipelines/task.py, twice: the first candidate becomes the champion, the second is
    promoted only if it is not worse on the same test split."""
    import json

    from lakedoc.baselines.synthetic import write_synthetic
    from lakedoc.cli import main
    from lakedoc.finetune import registry
    from lakedoc.finetune.tasks import run_dir

    wh, inp = tmp_path / "wh", tmp_path / "in"
    inp.mkdir()
    train = write_synthetic(tmp_path / "labelled.jsonl", n_docs=90, seed=4)
    sets = [f"baselines.train_path={train}", "finetune.max_seq_length=16", "finetune.epochs=1",
            "finetune.batch_size=16", "finetune.lora.r=2", "finetune.lora.alpha=4", "finetune.learning_rate=0.003",
            "finetune.device=cpu", "encoder.device=cpu"]
    args = ["run", "--job", "lakedoc_train", "--warehouse", str(wh), "--input", str(inp), "--parallel", "1"]
    for s in sets:
        args += ["--set", s]
    cfg = _cfg(wh, *sets)
    folders = []
    for expected_version in ("1", "2"):
        assert main(args) == 0
        runs = sorted((run_dir(cfg, "x").parent).iterdir(), key=lambda p: p.stat().st_mtime)
        folder = runs[-1]
        folders.append(folder)
        promotion = json.loads((folder / "promotion.json").read_text())
        evaluation = json.loads((folder / "evaluation.json").read_text())
        assert json.loads((folder / "registered.json").read_text())["version"] == expected_version
        assert evaluation["test_docs"] > 0 and (folder / "model" / "meta.json").is_file()
        if expected_version == "1":
            assert evaluation["champion"] is None and promotion["promoted"] is True
        else:
            assert evaluation["champion_version"] == "1"
            better = all(evaluation["candidate"][k] >= evaluation["champion"][k] for k in ("micro_f1", "macro_f1"))
            assert promotion["promoted"] is better, promotion
        assert registry.get_alias(cfg) == promotion["champion"]
    assert folders[0] != folders[1]
    tags = registry.version_tags(cfg, "2")
    assert tags["lakedoc_job"] == "lakedoc_train" and tags["promotion"].startswith(("promoted", "rejected"))
