"""Configuration: defaults + ``conf/base.yml`` + ``conf/<target>.yml`` + a user file + environment + ``--set``.

Layers, later wins:

0. the section models' defaults     (:mod:`lakedoc.config_schema`, the one place defaults are written)
1. ``conf/base.yml``                  what every target sets differently from the defaults (nothing now)
2. ``conf/<target>.yml``              ``local``, ``rehearsal``, ``dev`` or ``prod``
3. ``--config FILE``                  a user's own overlay (optional)
4. environment ``LAKEDOC__SECTION__KEY=value``   (double underscores separate levels)
5. ``--set section.key=value``        (what the bundle's task parameters and the local runner pass)

Mappings merge key by key through every layer, the defaults included: ``pii.operators: {PERSON: hash}``
keeps ``DEFAULT: replace``, and ``hash_key: {scope: S, key: K}`` keeps the default ``env`` name.

After merging, string values may refer to other keys as ``{section.key}`` (e.g. ``input.path:
/Volumes/{tables.catalog}/{tables.schema}/landing``): :func:`interpolate` replaces each reference
with the merged value, so ``--set tables.catalog=x`` moves every path derived from it. The bundle's
``${...}`` and the job's ``{{...}}`` references are left alone (a ``{`` preceded by ``$`` or ``{`` is
not a reference). A reference to an unknown or empty key, or a cycle, is a :class:`ConfigError`
naming the key that holds it.

The merged mapping is validated against :data:`lakedoc.config_schema.SCHEMA` (derived from the
section models of :mod:`lakedoc.config_schema`): an unknown key, a wrong type or a value outside the
allowed set stops the run with a message naming the key, the value and what is allowed. The result
is a :class:`Config`: ``cfg.ingest``, ``cfg.pii``, ... are the frozen, typed section models
(``cfg.ingest.timeout_s``); ``cfg["ingest"]["timeout_s"]`` reads the same value from the plain mapping.
No secret is ever read from these files: a secret is configured as a
*reference* (``{env: NAME}`` and/or ``{scope: S, key: K}``) and resolved by :mod:`lakedoc.secrets`.
"""
from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import yaml
from pydantic import ValidationError

from lakedoc.config_schema import (
    SCHEMA,
    BaselinesSettings,
    ChunkingSettings,
    ClassifySettings,
    ConfigError,
    EncoderSettings,
    Field,
    FinetuneSettings,
    IndexSettings,
    IngestSettings,
    InputSettings,
    LakeSettings,
    PiiSettings,
    ProvisionSettings,
    Settings,
    SparkSettings,
    TablesSettings,
    defaults,
)

TARGETS = ("local", "rehearsal", "dev", "prod")
ENV_PREFIX = "LAKEDOC__"


def find_conf_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Locate the ``conf/`` folder: explicit argument, ``$LAKEDOC_CONF_DIR``, the checkout, the CWD."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("LAKEDOC_CONF_DIR"):
        candidates.append(Path(os.environ["LAKEDOC_CONF_DIR"]))
    candidates.append(Path(__file__).resolve().parents[2] / "conf")  # src/lakedoc/config.py -> repo/conf
    candidates.append(Path.cwd() / "conf")
    for c in candidates:
        if (c / "base.yml").is_file():
            return c.resolve()
    raise ConfigError(
        "cannot find the configuration folder (conf/base.yml); looked in: "
        + ", ".join(str(c) for c in candidates)
        + ". Pass --conf-dir or set LAKEDOC_CONF_DIR."
    )


def deep_merge(base: dict, over: Mapping) -> dict:
    """Recursively merge ``over`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError(f"empty configuration key in override {dotted!r}")
    node = tree
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted!r}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_scalar(text: str) -> Any:
    """Parse an override value the way YAML would (``true``, ``3``, ``[a, b]``, ``null``...)."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_sets(items: Iterable[str]) -> dict:
    """Turn ``["a.b=1", "c=x"]`` into a nested mapping."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        _set_path(out, key.strip(), parse_scalar(value))
    return out


def env_overrides(environ: Mapping[str, str] | None = None) -> dict:
    """``LAKEDOC__TABLES__WAREHOUSE=/x`` -> ``{"tables": {"warehouse": "/x"}}``."""
    environ = os.environ if environ is None else environ
    out: dict = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = ".".join(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
            _set_path(out, dotted, parse_scalar(value))
    return out


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


# ``{section.key}``: not after ``$`` (the bundle's ``${var.x}``) nor ``{`` (the job's ``{{job.run_id}}``),
# at least one dot (regex quantifiers such as ``{1,6}`` never match), not followed by another ``}``.
_REF = re.compile(r"(?<![${])\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\}(?!\})")
_MISSING = object()


def _lookup(tree: Mapping, schema: Mapping, dotted: str) -> Any:
    """The merged value at ``dotted``, else the schema default, else ``_MISSING``."""
    node: Any = tree
    for p in dotted.split("."):
        if not isinstance(node, Mapping) or p not in node:
            node = _MISSING
            break
        node = node[p]
    if node is not _MISSING:
        return node
    spec: Any = schema
    for p in dotted.split("."):
        if not isinstance(spec, Mapping) or p not in spec:
            return _MISSING
        spec = spec[p]
    return spec.default if isinstance(spec, Field) else _MISSING


def interpolate(tree: Mapping, schema: Mapping = SCHEMA) -> dict:
    """Resolve ``{section.key}`` references in string values against the merged ``tree``.

    A string that is exactly one reference takes the referenced value as it is (a number stays a
    number); otherwise each reference is replaced by the value's text. Referenced values may hold
    references themselves. Returns a new tree; raises :class:`ConfigError` naming the key that holds
    a reference to an unknown key, to an empty value or to a section, and for a cycle.
    """

    def resolve_ref(dotted: str, where: str, stack: tuple[str, ...]) -> Any:
        if dotted in stack:
            raise ConfigError(f"'{where}': circular reference {' -> '.join([*stack, dotted])}")
        value = _lookup(tree, schema, dotted)
        if value is _MISSING:
            raise ConfigError(f"'{where}' refers to {{{dotted}}}, which is not a configuration key")
        if value is None or value == "":
            raise ConfigError(f"'{where}' refers to {{{dotted}}}, which is empty")
        if isinstance(value, (Mapping, list)):
            raise ConfigError(f"'{where}' refers to {{{dotted}}}, which is a section or a list, not a value")
        return resolve_str(value, dotted, (*stack, dotted)) if isinstance(value, str) else value

    def resolve_str(text: str, where: str, stack: tuple[str, ...]) -> Any:
        whole = _REF.fullmatch(text)
        if whole:
            return resolve_ref(whole.group(1), where, stack)
        return _REF.sub(lambda m: str(resolve_ref(m.group(1), where, stack)), text)

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and "{" in node:
            return resolve_str(node, where, (where,))
        return copy.deepcopy(node)

    return walk(tree, "")


def validate(tree: Mapping, schema: Mapping = SCHEMA, prefix: str = "") -> dict:
    """Check every key against the schema, fill defaults, coerce numbers; return a new tree."""
    out: dict = {}
    for key in tree:
        if key not in schema:
            where = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"unknown configuration key '{prefix}{key}'; allowed keys in {where}: "
                + ", ".join(sorted(schema))
            )
    for key, spec in schema.items():
        dotted = f"{prefix}{key}"
        if isinstance(spec, Mapping):
            sub = tree.get(key, {})
            if sub is None:
                sub = {}
            if not isinstance(sub, Mapping):
                raise ConfigError(f"'{dotted}' must be a section (mapping), got {type(sub).__name__}")
            out[key] = validate(sub, spec, dotted + ".")
        else:
            out[key] = spec.check(dotted, tree.get(key, spec.default) if key in tree else spec.default)
    return out


def typed(tree: Mapping) -> Settings:
    """The section models of a validated tree (see :func:`validate`)."""
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"'{where}': {err['msg']}, got {err.get('input')!r}") from None


@dataclass(frozen=True)
class Config:
    """The validated configuration of one run.

    Typed: ``cfg.ingest.timeout_s`` (each section a frozen model of :mod:`lakedoc.config_schema`;
    ``cfg.settings`` is all of them). As a mapping: ``cfg["ingest"]["timeout_s"]`` or :meth:`get`
    with a dotted key."""

    target: str
    data: dict
    conf_dir: Path | None = None
    settings: Settings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", typed(self.data))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def tables(self) -> TablesSettings:
        return self.settings.tables

    @property
    def input(self) -> InputSettings:
        return self.settings.input

    @property
    def spark(self) -> SparkSettings:
        return self.settings.spark

    @property
    def ingest(self) -> IngestSettings:
        return self.settings.ingest

    @property
    def pii(self) -> PiiSettings:
        return self.settings.pii

    @property
    def index(self) -> IndexSettings:
        return self.settings.index

    @property
    def baselines(self) -> BaselinesSettings:
        return self.settings.baselines

    @property
    def encoder(self) -> EncoderSettings:
        return self.settings.encoder

    @property
    def chunking(self) -> ChunkingSettings:
        return self.settings.chunking

    @property
    def classify(self) -> ClassifySettings:
        return self.settings.classify

    @property
    def provision(self) -> ProvisionSettings:
        return self.settings.provision

    @property
    def lake(self) -> LakeSettings:
        return self.settings.lake

    @property
    def finetune(self) -> FinetuneSettings:
        return self.settings.finetune

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for p in dotted.split("."):
            if not isinstance(node, Mapping) or p not in node:
                return default
            node = node[p]
        return node

    def with_overrides(self, sets: Mapping) -> Config:
        return Config(self.target, validate(interpolate(deep_merge(self.data, sets))), self.conf_dir)

    @overload
    def resolve_path(self, value: str) -> str: ...
    @overload
    def resolve_path(self, value: None) -> None: ...
    @overload
    def resolve_path(self, value: str | None) -> str | None: ...

    def resolve_path(self, value: str | None) -> str | None:
        """Relative local paths in the config are relative to the repository root (conf/..)."""
        if not value or "://" in value or value.startswith(("/", "dbfs:")):
            return value
        root = self.conf_dir.parent if self.conf_dir else Path.cwd()
        return str((root / value).resolve())


def load_config(
    target: str = "local",
    conf_dir: str | os.PathLike | None = None,
    user_file: str | os.PathLike | None = None,
    sets: Iterable[str] | Mapping | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build and validate the configuration for ``target`` (see the module docstring for layers)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; allowed: {', '.join(TARGETS)}")
    cdir = find_conf_dir(conf_dir)
    tree = deep_merge(default_tree(), _load_yaml(cdir / "base.yml"))
    target_file = cdir / f"{target}.yml"
    if target_file.is_file():
        tree = deep_merge(tree, _load_yaml(target_file))
    if user_file:
        uf = Path(user_file)
        if not uf.is_file():
            raise ConfigError(f"--config file {uf} does not exist")
        tree = deep_merge(tree, _load_yaml(uf))
    tree = deep_merge(tree, env_overrides(environ))
    if sets:
        tree = deep_merge(tree, sets if isinstance(sets, Mapping) else parse_sets(sets))
    return Config(target, validate(interpolate(tree)), cdir)


def default_tree() -> dict:
    """Every key at its default (:func:`lakedoc.config_schema.defaults`) as a plain mapping: layer 0."""
    return defaults().model_dump(mode="json", by_alias=True)


def default_config(target: str = "local", conf_dir: str | os.PathLike | None = None) -> Config:
    """A :class:`Config` holding every schema default (no file read): for unit tests."""
    return Config(target, validate({}), Path(conf_dir) if conf_dir else None)


__all__ = ["Config", "ConfigError", "Field", "load_config", "default_config", "default_tree", "parse_sets",
           "find_conf_dir", "interpolate", "typed", "TARGETS"]
