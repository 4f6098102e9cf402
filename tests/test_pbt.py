"""Population-based training with Ray Tune (lakedoc.finetune.pbt): a real, tiny search on CPU — 2 trials
(LoRA ranks 2 and 4), 3 epochs, a perturbation after every epoch (2 rounds) — on the synthetic corpus.

It shows what the module promises: the continuous hyperparameters are perturbed, the LoRA rank never is
(it is structural: a checkpoint always continues at its own rank, and a trial's rank changes only when
PBT replaces it with a copy of a stronger trial, weights and rank together), the best trial is the one
with the highest validation macro-F1, and every trial is an MLflow run nested under the search's run."""
from __future__ import annotations

import numpy as np
import pytest
import tomllib
import yaml
from conftest import ROOT
from packaging.requirements import Requirement

pytest.importorskip("torch")
pytest.importorskip("peft")

import finetune_data as data  # noqa: E402

from lakedoc.config import load_config  # noqa: E402
from lakedoc.config_schema import PbtSettings  # noqa: E402


def test_rank_is_structural_in_the_search_space():
    pytest.importorskip("ray.tune", reason="Ray Tune is the train extra (pip install 'lakedoc[train]')")
    from lakedoc.finetune.pbt import CONTINUOUS, RANK_KEY, mutations, param_space, trial_settings

    s = data.settings(pbt=PbtSettings(ranks=[8, 16]))
    assert set(mutations(s)) == set(CONTINUOUS) and RANK_KEY not in mutations(s)
    assert param_space(s)[RANK_KEY] == {"grid_search": [8, 16]}
    t = trial_settings(s, {RANK_KEY: 16, "learning_rate": 0.01, "cosine_scale": 12.0}, epochs=2)
    assert (t.lora.r, t.learning_rate, t.cosine_scale, t.epochs) == (16, 0.01, 12.0, 2)
    assert (s.lora.r, s.learning_rate) == (4, 3e-3), "the base settings are not changed"


def test_train_extra_admits_the_runtime_ray_and_the_local_pin():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    ray = next(Requirement(r) for r in extra if Requirement(r).name == "ray")
    assert "tune" in ray.extras
    runtime = yaml.safe_load((ROOT / "conf" / "databricks_runtime.yml").read_text())["libraries"]["ray"]
    assert ray.specifier.contains(str(runtime)), f"the Databricks runtime's ray {runtime}"
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.startswith("ray=="))
    assert ray.specifier.contains(pins["ray"])


def test_pbt_perturbs_hyperparameters_not_the_rank_and_selects_by_val_macro_f1(tmp_path):
    pytest.importorskip("ray.tune", reason="Ray Tune is the train extra (pip install 'lakedoc[train]')")
    import mlflow

    from lakedoc.finetune.pbt import RANK_KEY, search
    from lakedoc.finetune.registry import client, experiment_id, store

    cfg = load_config("local", environ={}, sets=[f"tables.warehouse={tmp_path / 'wh'}"])
    train, val = data.records(36, seed=11)
    names = data.labels(train + val)
    settings = data.settings(epochs=3, max_seq_length=16,
                             pbt=PbtSettings(num_samples=2, perturbation_interval=1, ranks=[2, 4]))
    res = search(train, val, names, data.descriptions(cfg, names), settings, storage_path=tmp_path / "ray",
                 local_cpus=2, cfg=cfg)

    assert len(res.trials) == 2
    assert sorted(c[RANK_KEY] for c in res.initial.values()) == [2, 4], "the ranks: initial population only"
    rows = {tid: [r for r in trial if "val_macro_f1" in r] for tid, trial in res.trials.items()}
    for tid, trial in rows.items():
        assert trial, tid
        for r in trial:  # every checkpoint trained at the rank its trial reports
            assert r["adapter_rank"] == r["lora_r"], (tid, r)
        for prev, r in zip(trial, trial[1:], strict=False):
            if r["lora_r"] != prev["lora_r"]:  # only by exploiting another trial: its weights and its rank
                assert r["origin"] != tid and r["origin"] in res.trials, (tid, r)
                donor = [d for d in rows[r["origin"]] if d["epoch"] <= prev["epoch"]]
                assert donor and donor[-1]["lora_r"] == r["lora_r"]
    # the learning rate was perturbed (explore), in 2 rounds
    lrs = [r["hp_learning_rate"] for trial in rows.values() for r in trial]
    assert len(set(np.round(lrs, 12))) > 2 and res.perturbations >= 1
    assert max(r["epoch"] for trial in rows.values() for r in trial) == 3
    # the best trial: highest validation macro-F1 of any evaluation (not the lowest loss)
    best = max((r for trial in rows.values() for r in trial), key=lambda r: r["val_macro_f1"])
    assert res.best["val_macro_f1"] == best["val_macro_f1"]
    assert best["val_macro_f1"] in [r["val_macro_f1"] for r in rows[res.best_trial]]
    # the selected model: its rank, thresholds tuned on validation, scores for every label
    assert res.model.lora.r == res.best_config[RANK_KEY] and res.model.thresholds is not None
    assert res.model.predict_scores([val[0]["text"]]).shape == (1, len(names))

    # MLflow: the search's run with one nested run per trial
    st = store(cfg)
    c = client(st)
    assert res.mlflow_run_id
    children = c.search_runs([experiment_id(st)], f"tags.mlflow.parentRunId = '{res.mlflow_run_id}'")
    assert len(children) == 2
    history = c.get_metric_history(children[0].info.run_id, "hp_learning_rate")
    assert len(history) == len(rows[children[0].info.run_name])
    assert mlflow.get_run(res.mlflow_run_id).data.params["metric"] == "val_macro_f1"
