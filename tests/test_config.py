"""Configuration loading, layering and validation messages."""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT
from lakedoc.config import ConfigError, interpolate, load_config, parse_sets
from lakedoc.config_schema import SCHEMA


@pytest.mark.parametrize("target", ["local", "dev", "prod"])
def test_every_target_loads(target):
    cfg = load_config(target, conf_dir=ROOT / "conf", environ={})
    assert cfg.target == target
    assert cfg["tables"]["backend"] == ("delta_rs" if target == "local" else "unity_catalog")


def test_layers_env_and_set_override_in_order():
    env = {"LAKEDOC__INGEST__TIMEOUT_S": "42", "LAKEDOC__TABLES__SCHEMA": "from_env"}
    cfg = load_config("local", conf_dir=ROOT / "conf", environ=env, sets=["tables.schema=from_set"])
    assert cfg["ingest"]["timeout_s"] == 42.0
    assert cfg["tables"]["schema"] == "from_set"


def test_user_file_overlay(tmp_path):
    f = tmp_path / "mine.yml"
    f.write_text(yaml.safe_dump({"ingest": {"max_file_mb": 5}}))
    assert load_config("local", conf_dir=ROOT / "conf", user_file=f, environ={})["ingest"]["max_file_mb"] == 5.0


@pytest.mark.parametrize("override, needle", [
    (["ingest.timeoutt=3"], "unknown configuration key 'ingest.timeoutt'"),
    (["tables.backend=sqlite"], "allowed values: delta_rs, unity_catalog"),
    (["ingest.max_attachment_depth=two"], "'ingest.max_attachment_depth' must be an integer"),
    (["ingest.timeout_s=-1"], "'ingest.timeout_s' must be >="),
    (["nosuchsection.x=1"], "unknown configuration key 'nosuchsection'"),
])
def test_bad_values_are_named(override, needle):
    with pytest.raises(ConfigError) as exc:
        load_config("local", conf_dir=ROOT / "conf", sets=override, environ={})
    assert needle in str(exc.value)


def test_unknown_target():
    with pytest.raises(ConfigError, match="unknown target 'staging'; allowed: local, .*dev, prod"):
        load_config("staging", conf_dir=ROOT / "conf")


def test_parse_sets_types():
    assert parse_sets(["a.b=3", "a.c=true", "d=[x, y]", "e=hello"]) == {"a": {"b": 3, "c": True}, "d": ["x", "y"], "e": "hello"}
    with pytest.raises(ConfigError):
        parse_sets(["novalue"])


def _keys(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_every_schema_key_is_documented():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [k for k in _keys(SCHEMA) if f"`{k}`" not in doc]
    assert not missing, f"configuration keys missing from docs/architecture.md: {missing}"


def _spec(dotted):
    node = SCHEMA
    for part in dotted.split("."):
        node = node[part]
    return node


def _documented_default(cell):
    """The default a "Configuration keys" cell states: the text before a note (`` (...)`` or `` →``),
    backticks removed, read as YAML; ``N things: a, b`` counts a list (and may name its items)."""
    text = re.split(r" \(| →", cell, maxsplit=1)[0].replace("`", "").strip()
    m = re.fullmatch(r"(\d+) [a-z ]+?(?:: (.*))?", text)
    if m:
        return "count", (int(m.group(1)), m.group(2))
    return "value", ("" if text == '""' else yaml.safe_load(text))


def _matches(kind, documented, default):
    if kind == "count":
        n, names = documented
        items = [x["name"] if isinstance(x, dict) else x for x in default]
        return len(default) == n and (names is None or names.split(", ") == items)
    if isinstance(default, bool) or default is None or isinstance(default, str):
        return documented == default
    if isinstance(default, (int, float)):
        try:
            return float(documented) == default  # 2e-4 reads as a string in YAML 1.1
        except (TypeError, ValueError):
            return False
    if isinstance(default, list) and isinstance(documented, str):  # ok, empty, partial
        documented = [yaml.safe_load(x) for x in documented.split(", ")]
    if isinstance(default, dict) and isinstance(documented, dict) and "..." in documented:  # {a: 1, ...}
        return all(default.get(k) == v for k, v in documented.items() if k != "...")
    return documented == default


def test_documented_defaults_are_the_models():
    """Each configuration key has one row in docs/architecture.md, whose default is the model's."""
    rows: dict[str, list[str]] = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        m = re.match(r"\| `([a-z_.]+)` \| (.*?) \| .* \|$", line)
        if m and m.group(1) in set(_keys(SCHEMA)):
            rows.setdefault(m.group(1), []).append(m.group(2))
    assert set(rows) == set(_keys(SCHEMA)), sorted(set(_keys(SCHEMA)) - set(rows))
    assert not {k: v for k, v in rows.items() if len(v) > 1}, "a key documented twice"
    wrong = {k: (cells[0], _spec(k).default) for k, cells in rows.items()
             if not _matches(*_documented_default(cells[0]), _spec(k).default)}
    assert not wrong, f"docs/architecture.md states other defaults than lakedoc.config_schema: {wrong}"
    # the check itself: a changed number, a missing list item, a wrong count are caught
    assert not _matches(*_documented_default("`201`"), 200.0)
    assert not _matches(*_documented_default("ok, empty"), ["ok", "empty", "partial"])
    assert not _matches(*_documented_default("26 regions"), _spec("pii.phone_regions").default)
    assert _matches(*_documented_default("`null` → `<tables.warehouse>/_lancedb`"), None)


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict) and isinstance(_spec(f"{prefix}{k}"), dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_defaults_are_written_once_and_are_what_the_pipeline_runs():
    """conf/base.yml restates no default; the local target is the defaults plus conf/local.yml."""
    from lakedoc.config import deep_merge, default_tree
    from lakedoc.config_schema import SECTIONS, PiiSettings

    base = yaml.safe_load((ROOT / "conf" / "base.yml").read_text()) or {}
    restated = [k for k, v in _leaves(base) if v == _spec(k).default]
    assert not restated, f"conf/base.yml restates the defaults of {restated} (lakedoc.config_schema)"
    cfg = load_config("local", conf_dir=ROOT / "conf", environ={})
    local = yaml.safe_load((ROOT / "conf" / "local.yml").read_text())
    assert cfg.data == deep_merge(deep_merge(default_tree(), base), local)
    assert cfg.pii == PiiSettings()  # what PiiSettings() in a unit test gives is what the pipeline runs
    for name in set(SECTIONS) - set(local):
        assert getattr(cfg, name) == SECTIONS[name](), name


def test_mappings_merge_into_their_defaults():
    cfg = load_config("local", conf_dir=ROOT / "conf", environ={},
                      sets=["pii.operators={PERSON: hash}", "pii.hash_key={scope: s, key: k}",
                            "pii.name_gazetteer={score_full: 0.7}"])
    assert cfg.pii.operators == {"DEFAULT": "replace", "PERSON": "hash"}
    assert cfg.pii.hash_key == {"env": "LAKEDOC_PII_HASH_KEY", "scope": "s", "key": "k"}
    assert cfg.pii.name_gazetteer["score_full"] == 0.7 and cfg.pii.name_gazetteer["exclude"]


def test_no_secret_values_in_conf_files():
    """Secrets are references only ({env: ..} / {scope: .., key: ..}); nothing that looks like a key."""
    import re

    for f in (ROOT / "conf").rglob("*.yml"):
        text = f.read_text()
        assert not re.search(r"(?i)(password|api[_-]?key|secret|token)\s*:\s*['\"]?[A-Za-z0-9+/=_-]{12,}", text), f


# --- {section.key} references, resolved after every layer ------------------------------------------

@pytest.mark.parametrize("target", ["dev", "prod"])
def test_volume_paths_follow_catalog_and_schema(target):
    paths = ("input.path", "encoder.cache_dir", "baselines.model_dir", "provision.libs_dir")
    cfg = load_config(target, conf_dir=ROOT / "conf", environ={})
    schema = cfg["tables"]["schema"]
    assert cfg.get("input.path") == f"/Volumes/main/{schema}/landing"
    # --set (the last layer) moves every derived path
    moved = load_config(target, conf_dir=ROOT / "conf", environ={}, sets=["tables.catalog=corp", "tables.schema=s2"])
    for key in paths:
        assert moved.get(key) == cfg.get(key).replace(f"/Volumes/main/{schema}/", "/Volumes/corp/s2/"), key
    # and so does the environment (the job clusters' LAKEDOC__TABLES__SCHEMA)
    env = load_config(target, conf_dir=ROOT / "conf", environ={"LAKEDOC__TABLES__SCHEMA": "dev_ann_lakedoc_dev"})
    assert env.get("encoder.cache_dir") == "/Volumes/main/dev_ann_lakedoc_dev/models/hf"
    if target == "dev":
        assert moved.get("index.lancedb.path") == "/Volumes/corp/s2/index/lancedb"


def test_unknown_reference_names_the_key():
    with pytest.raises(ConfigError) as exc:
        load_config("local", conf_dir=ROOT / "conf", environ={}, sets=["input.path=/Volumes/{tables.catalgo}/x"])
    assert "'input.path' refers to {tables.catalgo}, which is not a configuration key" in str(exc.value)
    with pytest.raises(ConfigError, match=r"'encoder.cache_dir' refers to \{nosuch.key\}"):
        load_config("local", conf_dir=ROOT / "conf", environ={}, sets=["encoder.cache_dir={nosuch.key}/hf"])


def test_empty_section_and_circular_references_are_errors():
    with pytest.raises(ConfigError, match=r"'input.path' refers to \{encoder.cache_dir\}, which is empty"):
        load_config("local", conf_dir=ROOT / "conf", environ={}, sets=["input.path={encoder.cache_dir}/x"])
    with pytest.raises(ConfigError, match="which is a section"):
        load_config("local", conf_dir=ROOT / "conf", environ={}, sets=["input.path={pii.operators}/x"])
    with pytest.raises(ConfigError, match="circular reference"):
        interpolate({"a": {"x": "{b.y}"}, "b": {"y": "{a.x}"}}, schema={})


def test_references_resolve_through_values_and_defaults_and_keep_types():
    tree = {"tables": {"catalog": "c", "schema": "{tables.catalog}_s"},
            "input": {"path": "/Volumes/{tables.catalog}/{tables.schema}/landing"},
            "ingest": {"timeout_s": "{ingest.max_attachment_depth}"}}
    out = interpolate(tree)
    assert out["input"]["path"] == "/Volumes/c/c_s/landing"
    assert out["ingest"]["timeout_s"] == 3  # a whole-string reference keeps the type; 3 is the schema default
    assert tree["input"]["path"].startswith("/Volumes/{"), "the input tree is not modified"


def test_bundle_and_regex_braces_are_not_references():
    keep = {"a": {"b": "${var.catalog}/{{job.run_id}}/{{ job.parameters.x }}", "r": r"\d{1,6}(?:x){0,4}",
                  "c": "{notadottedname}", "d": "{{tables.catalog}}"}}
    assert interpolate(keep, schema={}) == keep
    # the shipped regex recognizers (defaults, layer 0) pass through untouched
    from lakedoc.config_schema import PII_RECOGNIZERS

    cfg = load_config("local", conf_dir=ROOT / "conf", environ={}, sets=["tables.catalog=c"])
    assert cfg["pii"]["recognizers"] == PII_RECOGNIZERS
    assert any("{1,6}" in p["regex"] for r in PII_RECOGNIZERS for p in r["patterns"])


def test_with_overrides_resolves_new_references():
    cfg = load_config("dev", conf_dir=ROOT / "conf", environ={})
    assert cfg.with_overrides({"baselines": {"train_path": "/Volumes/{tables.catalog}/{tables.schema}/landing/t.jsonl"}}) \
        .get("baselines.train_path") == "/Volumes/main/lakedoc_dev/landing/t.jsonl"


def test_runtime_table_is_not_a_configuration_layer():
    """conf/databricks_runtime.yml sits in conf/ but is data for tests and docs, never loaded as a target."""
    with pytest.raises(ConfigError, match="unknown target"):
        load_config("databricks_runtime", conf_dir=ROOT / "conf")


# --- typed sections (lakedoc.config_schema models) ------------------------------------------------------

def test_sections_are_typed_frozen_models_equal_to_the_mapping_view():
    import pydantic

    from lakedoc.config_schema import SECTIONS, IngestSettings, LanceDBSettings, Settings

    cfg = load_config("dev", conf_dir=ROOT / "conf", environ={}, sets=["ingest.timeout_s=42"])
    assert isinstance(cfg.settings, Settings)
    for name, model in SECTIONS.items():
        section = getattr(cfg, name)
        assert isinstance(section, model), name
        assert section.model_dump(by_alias=True) == cfg[name], name
    assert cfg.ingest.timeout_s == 42.0 and cfg.tables.schema_ == cfg["tables"]["schema"] == "lakedoc_dev"
    assert isinstance(cfg.index.lancedb, LanceDBSettings)
    assert cfg.index.lancedb.path == "/Volumes/main/lakedoc_dev/index/lancedb"
    with pytest.raises(pydantic.ValidationError):
        cfg.ingest.timeout_s = 1  # frozen
    # defaults are the models' own; a section is taken from a Config, a mapping or nothing
    assert IngestSettings().timeout_s == 300.0 and IngestSettings().max_uncompressed_mb == 2048.0
    assert IngestSettings.from_config(cfg) is cfg.ingest
    assert IngestSettings.from_config({"ingest": {"timeout_s": 5}}).timeout_s == 5.0
    assert IngestSettings.from_config(None) == IngestSettings()


def test_schema_checkers_come_from_the_models():
    from lakedoc.config import default_config
    from lakedoc.config_schema import IngestSettings

    assert set(SCHEMA["ingest"]) == set(IngestSettings.model_fields)
    assert SCHEMA["ingest"]["timeout_s"].default == IngestSettings().timeout_s
    assert SCHEMA["ingest"]["timeout_s"].min == 0.1
    assert SCHEMA["tables"]["backend"].choices == ("delta_rs", "unity_catalog")
    assert SCHEMA["pii"]["hash_key"].type == "secret" and SCHEMA["baselines"]["at_least_one"].type == "any"
    assert default_config().ingest == IngestSettings()
