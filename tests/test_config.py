"""Configuration loading, layering and validation messages."""
from __future__ import annotations

import pytest
import yaml

from conftest import ROOT
from lakedoc.config import ConfigError, load_config, parse_sets
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
    with pytest.raises(ConfigError, match="allowed: local, dev, prod"):
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


def test_no_secret_values_in_conf_files():
    """Secrets are references only ({env: ..} / {scope: .., key: ..}); nothing that looks like a key."""
    import re

    for f in (ROOT / "conf").rglob("*.yml"):
        text = f.read_text()
        assert not re.search(r"(?i)(password|api[_-]?key|secret|token)\s*:\s*['\"]?[A-Za-z0-9+/=_-]{12,}", text), f
