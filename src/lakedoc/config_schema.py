"""The configuration schema: every key that ``conf/*.yml`` may hold, its type, default and allowed values.

One section per stage. ``docs/architecture.md`` documents the same keys; a test checks that every key
of ``conf/base.yml`` is known here and that every schema key is documented.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


class ConfigError(ValueError):
    """A configuration problem, with a message that names the offending key."""


@dataclass(frozen=True)
class Field:
    """One configuration value: ``type`` is one of str, int, float, bool, list, dict, secret, any."""

    type: str
    default: Any = None
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    doc: str = ""

    def check(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ConfigError(f"'{key}' must not be empty ({self.doc or self.type})")
        t = self.type
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise ConfigError(f"'{key}' must be an integer, got {value!r}")
            value = int(value)
        elif t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"'{key}' must be a number, got {value!r}")
            value = float(value)
        elif t == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        elif t == "str":
            if not isinstance(value, str):
                raise ConfigError(f"'{key}' must be a string, got {value!r}")
        elif t == "list":
            if not isinstance(value, list):
                raise ConfigError(f"'{key}' must be a list, got {value!r}")
        elif t == "dict":
            if not isinstance(value, dict):
                raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        elif t == "secret":
            if not isinstance(value, dict) or not ({"env", "scope"} & set(value)):
                raise ConfigError(
                    f"'{key}' must be a secret reference such as {{env: NAME}} or "
                    f"{{scope: SCOPE, key: KEY}} — never the secret itself"
                )
            unknown = set(value) - {"env", "scope", "key"}
            if unknown or ("scope" in value and "key" not in value):
                raise ConfigError(f"'{key}': a secret reference takes env, scope and key; got {sorted(value)}")
        if self.choices is not None:
            items = value if t == "list" else [value]
            for item in items:
                if item not in self.choices:
                    raise ConfigError(
                        f"'{key}' has value {item!r}; allowed values: {', '.join(map(str, self.choices))}"
                    )
        if self.min is not None and value < self.min:
            raise ConfigError(f"'{key}' must be >= {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"'{key}' must be <= {self.max}, got {value!r}")
        return value


INGEST_FAMILIES = ("docx", "xlsx", "pptx", "pdf", "msg")

SCHEMA: dict = {
    "tables": {
        "backend": Field("str", "delta_rs", choices=("delta_rs", "unity_catalog"),
                         doc="delta_rs: local Delta tables under `warehouse`; unity_catalog: catalog.schema tables"),
        "warehouse": Field("str", "./warehouse", doc="root folder of the local Delta tables (delta_rs)"),
        "catalog": Field("str", "main", doc="Unity Catalog catalog (unity_catalog backend)"),
        "schema": Field("str", "lakedoc", doc="Unity Catalog schema (unity_catalog backend)"),
    },
    "input": {
        "path": Field("str", "./samples", doc="folder, /Volumes/... or abfss://... path with the input files"),
    },
    "spark": {
        "master": Field("str", "local[2]", doc="local master URL (ignored on Databricks)"),
        "shuffle_partitions": Field("int", 4, min=1),
        "arrow_batch_rows": Field("int", 32, min=1, doc="rows per Arrow batch handed to mapInPandas"),
        "driver_memory": Field("str", "4g", doc="local driver memory (ignored on Databricks)"),
    },
    "ingest": {
        "max_file_mb": Field("float", 200.0, min=0.001, doc="larger files get status too_large"),
        "timeout_s": Field("float", 300.0, min=0.1, doc="per-file extraction time budget -> status timeout"),
        "max_uncompressed_mb": Field("float", 2048.0, min=1, doc="zip bomb guard: total uncompressed size"),
        "max_compression_ratio": Field("float", 200.0, min=1, doc="zip bomb guard: uncompressed/compressed"),
        "max_attachment_depth": Field("int", 3, min=0, doc="nesting depth of attachments extracted"),
        "files_per_partition": Field("int", 8, min=1, doc="input files per Spark partition (balance)"),
    },
}
