"""The Databricks Asset Bundle, validated offline (the Databricks CLI is not installable here)."""
from __future__ import annotations

import copy
import json
import re


from conftest import ROOT, shared_path
from lakedoc.runner import load_bundle, load_entry_point, task_specs
from lakedoc.tasks import REGISTRY
from lakedoc.cli import _task_parser


def _python_re(pattern: str) -> str:
    """The schema's patterns use \\p{L} / \\p{N}, which Python's re lacks: inside a class
    ``[\\p{L}\\p{N}]`` is "a letter or digit" (``[^\\W_]``), alone ``\\p{L}`` is a letter."""
    pattern = pattern.replace(r"[\p{L}\p{N}]", r"[^\W_]")
    return pattern.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")


def _translate(node):
    if isinstance(node, dict):
        return {k: (_python_re(v) if k == "pattern" and isinstance(v, str) else _translate(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_translate(v) for v in node]
    return node


def _merged_bundle() -> dict:
    bundle = load_bundle(ROOT)
    doc = copy.deepcopy(bundle.config)
    doc.setdefault("resources", {}).setdefault("jobs", {}).update(bundle.jobs)
    doc.pop("include", None)
    return doc


def test_bundle_validates_against_the_published_schema():
    import jsonschema

    schema = _translate(json.loads(shared_path("schemas", "databricks-bundle.schema.json").read_text()))
    doc = _merged_bundle()
    validator = jsonschema.Draft7Validator(schema)
    errors = [leaf for e in validator.iter_errors(doc) for leaf in _leaves(e)]
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors[:30])


def _leaves(error):
    """oneOf/anyOf errors hide the real cause in their context: report the innermost ones."""
    if not error.context:
        yield error
    for sub in error.context:
        yield from _leaves(sub)


def test_schema_rejects_a_broken_bundle():
    """The validation above can fail: a misspelt task field is caught."""
    import jsonschema

    schema = _translate(json.loads(shared_path("schemas", "databricks-bundle.schema.json").read_text()))
    doc = _merged_bundle()
    job = next(iter(doc["resources"]["jobs"].values()))
    job["tasks"][0]["spark_python_taks"] = job["tasks"][0].pop("spark_python_task")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(doc))


def test_bundle_shape():
    bundle = load_bundle(ROOT)
    cfg = bundle.config
    assert cfg["bundle"]["name"] == "lakedoc"
    assert cfg["targets"]["dev"]["mode"] == "development" and cfg["targets"]["dev"]["default"] is True
    assert cfg["targets"]["prod"]["mode"] == "production"
    assert cfg["variables"]["schedule_pause_status"]["default"] == "PAUSED"
    assert cfg["targets"]["prod"]["variables"]["schedule_pause_status"] == "UNPAUSED"
    assert any(a.get("type") == "whl" for a in cfg["artifacts"].values())
    job = bundle.jobs["lakedoc"]
    assert job["max_concurrent_runs"] == 1
    assert job["schedule"]["quartz_cron_expression"]
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    assert "gpu" in clusters["gpu"]["spark_version"] and clusters["gpu"]["spark_conf"]["spark.task.resource.gpu.amount"] == "1"
    assert "autoscale" not in clusters["cpu"]
    for t in job["tasks"]:
        assert t.get("max_retries", 0) >= 1, t["task_key"]


def test_every_task_entry_point_exists_and_its_parameters_parse():
    bundle = load_bundle(ROOT)
    context = {f"var.{k}": str(v) for k, v in bundle.variables("dev").items()}
    context.update({"bundle.target": "dev", "workspace.file_path": str(ROOT), "job.run_id": "1",
                    "job.parameters.input_path": "/Volumes/x", "bundle.name": "lakedoc", "job.id": "1"})
    specs = task_specs(bundle, "lakedoc", context)
    keys = [s.key for s in specs]
    ingest = {"ingest_docx", "ingest_xlsx", "ingest_pptx", "ingest_pdf", "ingest_msg"}
    assert ingest <= set(keys)
    for s in specs:
        assert callable(load_entry_point(s.python_file))
        args = _task_parser().parse_args(s.parameters)
        assert args.task == s.key, "the --task parameter must name the task itself"
        assert args.task in REGISTRY
        assert args.target == "dev"
        if s.key in ingest:
            assert s.depends_on == []
    # later stages depend on all of the ingestion tasks
    for s in specs:
        if s.key == "redact_pii":
            assert set(s.depends_on) == ingest


def test_wheel_dependencies_leave_spark_and_torch_to_the_cluster():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps}
    assert not names & {"pyspark", "torch", "xgboost", "delta-spark"}
