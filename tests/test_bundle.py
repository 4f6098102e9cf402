"""The Databricks Asset Bundle, validated offline (the Databricks CLI is not installable here)."""
from __future__ import annotations

import copy
import json
import re

import yaml

from conftest import ROOT, shared_path
from lakedoc.runner import load_bundle, load_entry_point, substitution_context, task_specs
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
    for path in sorted((ROOT / "resources").glob("*.yml")):  # included resources other than jobs
        for kind, items in ((yaml.safe_load(path.read_text()) or {}).get("resources") or {}).items():
            doc["resources"].setdefault(kind, {}).update(items)
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
    assert "autoscale" not in clusters["cpu"]
    for t in job["tasks"]:
        assert t.get("max_retries", 0) >= 1, t["task_key"]


def _clusters(bundle) -> dict[str, dict]:
    return {(key, c["job_cluster_key"]): c["new_cluster"] for key, job in bundle.jobs.items()
            for c in job["job_clusters"]}


def test_clusters_run_the_lts_ml_runtime_of_the_table():
    runtime = yaml.safe_load((ROOT / "conf" / "databricks_runtime.yml").read_text())
    bundle = load_bundle(ROOT)
    variables = bundle.variables()
    clusters = _clusters(bundle)
    assert clusters[("lakedoc", "cpu")]["spark_version"] == "${var.spark_version}"
    assert clusters[("lakedoc", "gpu")]["spark_version"] == "${var.gpu_spark_version}"
    assert clusters[("lakedoc_provision", "provision")]["spark_version"] == "${var.spark_version}"
    assert variables["spark_version"] == runtime["spark_version"]["cpu"]
    assert variables["gpu_spark_version"] == runtime["spark_version"]["gpu"]
    for target in ("dev", "prod"):  # no target swaps in another runtime
        assert "spark_version" not in bundle.variables(target) or \
            bundle.variables(target)["spark_version"] == runtime["spark_version"]["cpu"]
    for c in clusters.values():
        assert c["data_security_mode"] == "SINGLE_USER"  # xgboost.spark and the ML runtime: dedicated mode
    # the ML runtime ships xgboost: no task installs it (or anything else) from an index -- except the
    # training job, which installs the part of the wheel's `train` extra the runtime lacks (peft)
    import tomllib
    from packaging.requirements import Requirement

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    missing = {(Requirement(r).name, Requirement(r).specifier) for r in extra
               if Requirement(r).name not in runtime["libraries"]}
    for key, job in bundle.jobs.items():
        for t in job["tasks"]:
            libs = t.get("libraries", [])
            assert any(set(lib) == {"whl"} for lib in libs), t["task_key"]
            pypi = {(Requirement(lib["pypi"]["package"]).name, Requirement(lib["pypi"]["package"]).specifier)
                    for lib in libs if "pypi" in lib}
            assert all(set(lib) <= {"whl", "pypi"} for lib in libs), t["task_key"]
            assert pypi == (missing if key == "lakedoc_train" else set()), (key, t["task_key"], pypi)


def test_gpu_cluster_shares_each_gpu_between_a_few_tasks():
    gpu = _clusters(load_bundle(ROOT))[("lakedoc", "gpu")]
    task_amount = float(gpu["spark_conf"]["spark.task.resource.gpu.amount"])
    assert 0 < task_amount < 1, "a whole GPU per task would serialise every stage of the GPU cluster"
    assert gpu["spark_conf"]["spark.executor.resource.gpu.amount"] == "1"
    assert 1 / task_amount == int(1 / task_amount) <= 8, "tasks (model copies) per GPU: a small whole number"


REQUIRED = {"service_principal", "job_owner_group", "job_viewer_group", "search_endpoint"}


def _unassigned(cfg: dict, target: str) -> set[str]:
    """What the CLI reports as "no value assigned to required variable": every declared variable
    needs a default or a value in the target, whether the target uses it or not."""
    assigned = set(cfg["targets"][target].get("variables") or {})
    return {k for k, v in cfg["variables"].items()
            if "default" not in (v or {}) and "lookup" not in (v or {}) and k not in assigned}


def test_identity_is_required_in_prod_and_never_a_placeholder():
    cfg = load_bundle(ROOT).config
    for name in REQUIRED:
        assert "default" not in cfg["variables"][name], f"{name} must have no default (required in prod)"
    assert _unassigned(cfg, "dev") == set(), "`bundle deploy -t dev` must need no --var"
    assert _unassigned(cfg, "prod") == REQUIRED, "`-t prod` must fail until these are given"
    texts = [(ROOT / "databricks.yml").read_text()] + [p.read_text() for p in (ROOT / "jobs").glob("*.yml")]
    for text in texts:
        assert not re.search(r"0{8}-0{4}-0{4}-0{4}-0{12}", text), "placeholder service principal"
        assert "lakedoc-admins" not in text and "lakedoc-users" not in text, "placeholder group"
    dev = cfg["targets"]["dev"]["variables"]
    assert dev["service_principal"] == "${workspace.current_user.userName}"
    prod = cfg["targets"]["prod"]
    assert prod["run_as"] == {"service_principal_name": "${var.service_principal}"}
    perms = {(p.get("group_name") or p.get("service_principal_name"), p["level"]) for p in prod["permissions"]}
    assert perms == {("${var.service_principal}", "CAN_MANAGE"), ("${var.job_owner_group}", "CAN_MANAGE"),
                     ("${var.job_viewer_group}", "CAN_VIEW")}


def test_prod_deploys_to_a_shared_root_path():
    prod = load_bundle(ROOT).config["targets"]["prod"]
    root = prod["workspace"]["root_path"]
    assert root.startswith("/Workspace/Shared/") and "${bundle.target}" in root and "current_user" not in root
    assert "workspace" not in load_bundle(ROOT).config["targets"]["dev"], "dev keeps the per-user default"


def test_unity_catalog_objects_are_bundle_resources():
    cfg = load_bundle(ROOT).config
    schema = cfg["resources"]["schemas"]["lakedoc"]
    assert schema == {**schema, "catalog_name": "${var.catalog}", "name": "${var.schema}"}
    volumes = cfg["resources"]["volumes"]
    assert {"landing", "models", "index", "libs"} <= set(volumes)
    for key, v in volumes.items():
        assert v["name"] == key and v["catalog_name"] == "${var.catalog}"
        assert v["schema_name"] == "${resources.schemas.lakedoc.name}", "created after (and in) the schema"
    grants = {g["principal"]: set(g["privileges"]) for g in cfg["targets"]["prod"]["resources"]["schemas"]["lakedoc"]["grants"]}
    assert {"USE_SCHEMA", "MODIFY", "CREATE_TABLE", "READ_VOLUME", "WRITE_VOLUME"} <= grants["${var.service_principal}"]
    assert "SELECT" not in grants["${var.job_viewer_group}"], "bronze documents hold raw personal data"
    # every volume a dev/prod configuration path names is declared, and no path hard-codes the catalog
    for target in ("dev", "prod"):
        text = (ROOT / "conf" / f"{target}.yml").read_text()
        assert "/Volumes/main" not in text
        paths = re.findall(r"/Volumes/\{tables\.catalog\}/\{tables\.schema\}/([A-Za-z0-9_-]+)", text)
        assert paths and set(paths) <= set(volumes), (target, paths)
        assert not re.findall(r"/Volumes/(?!\{tables\.catalog\}/\{tables\.schema\}/)", text)


def test_catalog_schema_and_secrets_reach_the_clusters():
    bundle = load_bundle(ROOT)
    for (job, key), c in _clusters(bundle).items():
        env = c["spark_env_vars"]
        assert env["LAKEDOC__TABLES__CATALOG"] == "${var.catalog}"
        # the schema resource's real name: in development mode it carries the per-user prefix
        assert env["LAKEDOC__TABLES__SCHEMA"] == "${resources.schemas.lakedoc.name}"
        assert env["LAKEDOC_TARGET"] == "${bundle.target}"
        if job in ("lakedoc", "lakedoc_train"):
            assert env["HF_HUB_OFFLINE"] == "1"
        else:
            assert "HF_HUB_OFFLINE" not in env, "the provisioning cluster downloads from the hub"
        for name, value in env.items():
            if "KEY" in name or "SECRET" in name:
                assert re.fullmatch(r"\{\{secrets/\$\{var\.secret_scope\}/[a-z-]+\}\}", value), (name, value)
    cpu = _clusters(bundle)[("lakedoc", "cpu")]["spark_env_vars"]
    assert cpu["LAKEDOC_PII_HASH_KEY"] == "{{secrets/${var.secret_scope}/pii-hash-key}}"
    prod_cpu = bundle.config["targets"]["prod"]["resources"]["jobs"]["lakedoc"]["job_clusters"][0]
    assert prod_cpu["job_cluster_key"] == "cpu"
    assert prod_cpu["new_cluster"]["spark_env_vars"] == {
        "LAKEDOC__INDEX__AZURE__ENDPOINT": "${var.search_endpoint}",
        "LAKEDOC_SEARCH_API_KEY": "{{secrets/${var.secret_scope}/search-api-key}}"}
    assert bundle.variables("dev")["secret_scope"] == "lakedoc-dev" and bundle.variables("prod")["secret_scope"] == "lakedoc"


def test_commented_lake_wiring_is_valid_once_uncommented():
    """The ADLS Gen2 credential of task archive_inputs and its switch are commented lines of the cpu cluster
    (a reference to a missing secret stops the cluster): uncommented as docs/operations.md says, the bundle
    still validates, the values are secret references, and the switch reaches lake.archive.enabled."""
    import jsonschema

    from lakedoc.config import load_config

    text = (ROOT / "jobs" / "lakedoc.job.yml").read_text()
    wiring = re.compile(r"^(\s+)# (LAKEDOC(?:__LAKE__ARCHIVE__ENABLED|_LAKE_SAS_TOKEN|_LAKE_ACCOUNT_KEY): .*)$", re.M)
    assert len(wiring.findall(text)) == 3
    job = yaml.safe_load(wiring.sub(r"\1\2", text))["resources"]["jobs"]["lakedoc"]
    env = next(c for c in job["job_clusters"] if c["job_cluster_key"] == "cpu")["new_cluster"]["spark_env_vars"]
    assert env["LAKEDOC_LAKE_SAS_TOKEN"] == "{{secrets/${var.secret_scope}/lake-sas-token}}"
    assert env["LAKEDOC_LAKE_ACCOUNT_KEY"] == "{{secrets/${var.secret_scope}/lake-account-key}}"
    schema = _translate(json.loads(shared_path("schemas", "databricks-bundle.schema.json").read_text()))
    doc = _merged_bundle()
    doc["resources"]["jobs"]["lakedoc"] = job
    errors = [leaf for e in jsonschema.Draft7Validator(schema).iter_errors(doc) for leaf in _leaves(e)]
    assert not errors, [e.message[:200] for e in errors[:5]]
    switch = {"LAKEDOC__LAKE__ARCHIVE__ENABLED": env["LAKEDOC__LAKE__ARCHIVE__ENABLED"]}
    assert load_config("prod", conf_dir=ROOT / "conf", environ=switch).lake.archive.enabled
    assert not load_config("prod", conf_dir=ROOT / "conf", environ={}).lake.archive.enabled  # off as deployed


def test_prod_endpoint_comes_from_the_cluster_environment():
    """The variable search_endpoint arrives as LAKEDOC__INDEX__AZURE__ENDPOINT (configuration layer 4)."""
    from lakedoc.config import load_config

    env = {"LAKEDOC__INDEX__AZURE__ENDPOINT": "https://svc.search.windows.net", "LAKEDOC__TABLES__SCHEMA": "s1",
           "LAKEDOC__TABLES__CATALOG": "c1"}
    cfg = load_config("prod", conf_dir=ROOT / "conf", environ=env)
    assert cfg["index"]["backend"] == "azure_search"
    assert cfg["index"]["azure"]["endpoint"] == "https://svc.search.windows.net"
    assert cfg["encoder"]["cache_dir"] == "/Volumes/c1/s1/models/hf"
    assert load_config("prod", conf_dir=ROOT / "conf", environ={})["index"]["azure"]["endpoint"] is None


def test_dag_embed_beside_baselines_index_after_both():
    deps = {t["task_key"]: {d["task_key"] for d in t.get("depends_on", [])} for t in load_bundle(ROOT).jobs["lakedoc"]["tasks"]}
    assert deps["classify"] == {"redact_pii"}
    assert deps["baselines"] == {"classify"}
    assert deps["embed"] == {"classify"}
    assert deps["index"] == {"embed", "baselines"}


def test_provision_job_is_manual_and_parses():
    bundle = load_bundle(ROOT)
    job = bundle.jobs["lakedoc_provision"]
    assert "schedule" not in job and "trigger" not in job and "continuous" not in job
    context = substitution_context(bundle, "prod", "lakedoc_provision", run_id="1", force="false")
    (spec,) = task_specs(bundle, "lakedoc_provision", context)
    args = _task_parser().parse_args(spec.parameters)
    assert args.task == spec.key == "provision_models" and args.task in REGISTRY
    assert args.set == ["provision.force=false"]
    assert callable(load_entry_point(spec.python_file))


def test_every_task_entry_point_exists_and_its_parameters_parse():
    bundle = load_bundle(ROOT)
    context = substitution_context(bundle, "dev", "lakedoc", run_id="1", input_path="/Volumes/x")
    specs = task_specs(bundle, "lakedoc", context)
    keys = [s.key for s in specs]
    ingest = {"ingest_docx", "ingest_xlsx", "ingest_pptx", "ingest_pdf", "ingest_mail_text"}
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


def test_dashboard_is_a_bundle_resource_over_the_pipeline_tables():
    """resources/dashboard.yml: a Lakeview dashboard (validated with the bundle above) whose datasets
    read only the pipeline's tables, never a text column; every widget names one of its datasets."""
    from lakedoc import schema

    cfg = load_bundle(ROOT).config
    assert "resources/*.yml" in cfg["include"]
    dash = _merged_bundle()["resources"]["dashboards"]["lakedoc"]
    assert dash["warehouse_id"] == "${var.warehouse_id}" and "lookup" in cfg["variables"]["warehouse_id"]
    assert dash["dataset_schema"] == "${resources.schemas.lakedoc.name}" and dash["dataset_catalog"] == "${var.catalog}"
    path = (ROOT / "resources" / dash["file_path"]).resolve()
    assert path.name.endswith(".lvdash.json") and path.is_file()
    doc = json.loads(path.read_text())
    tables = {t.name for t in vars(schema).values() if isinstance(t, schema.TableSpec)}
    datasets = {d["name"]: "".join(d["queryLines"]) for d in doc["datasets"]}
    for name, sql in datasets.items():
        used = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)", sql))
        assert used and used <= tables, (name, used)
        assert not re.search(r"\b(redacted_)?text\b", sql), name
    widgets = [item["widget"] for page in doc["pages"] for item in page["layout"]]
    charts = [w for w in widgets if "spec" in w]
    assert len(charts) >= 6
    for w in charts:
        assert all(q["query"]["datasetName"] in datasets for q in w["queries"]), w["name"]


def test_train_job_chains_finetune_evaluate_register_promote():
    """Job lakedoc_train: manual (its weekly schedule is deployed PAUSED in every target), on a GPU job
    cluster of the bundle's gpu variables, tasks finetune -> evaluate -> register -> promote_if_better
    through the pipeline's own entry point and task registry; `lakedoc run --job lakedoc_train` reads it."""
    bundle = load_bundle(ROOT)
    job = bundle.jobs["lakedoc_train"]
    assert bundle.job_files["lakedoc_train"].name == "train.job.yml"
    assert next(iter(bundle.jobs)) == "lakedoc", "`lakedoc run` without --job still runs the pipeline"
    assert job["schedule"]["pause_status"] == "PAUSED" and "? * SUN" in job["schedule"]["quartz_cron_expression"]
    assert "trigger" not in job and "continuous" not in job
    assert job["max_concurrent_runs"] == 1
    (cluster,) = job["job_clusters"]
    c = cluster["new_cluster"]
    assert (c["spark_version"], c["node_type_id"], c["num_workers"]) == (
        "${var.gpu_spark_version}", "${var.gpu_node_type}", "${var.gpu_workers}")
    assert c["spark_conf"]["spark.task.resource.gpu.amount"] == "1", "Ray on Spark: one worker (trial) per GPU"
    assert {p["name"]: p["default"] for p in job["parameters"]} == {"pbt": "false"}
    for target in ("local", "dev", "prod"):
        context = substitution_context(bundle, target, "lakedoc_train", run_id="42")
        specs = task_specs(bundle, "lakedoc_train", context)
        assert [(s.key, s.depends_on) for s in specs] == [
            ("finetune", []), ("evaluate", ["finetune"]), ("register", ["evaluate"]),
            ("promote_if_better", ["register"])]
        for s in specs:
            assert callable(load_entry_point(s.python_file))
            args = _task_parser().parse_args(s.parameters)
            assert args.task == s.key and args.task in REGISTRY and args.target == target
            assert args.run_id == "42", "the tasks of one run share its run folder"
        assert _task_parser().parse_args(specs[0].parameters).set == ["finetune.pbt.enabled=false"]
    context = substitution_context(bundle, "dev", "lakedoc_train", run_id="1", pbt="true")
    assert "finetune.pbt.enabled=true" in task_specs(bundle, "lakedoc_train", context)[0].parameters
