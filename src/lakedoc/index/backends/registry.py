"""Index backends by name: the value of ``index.backend`` -> the class that implements it.

An entry table of ``"module:Class"`` paths, imported only when that backend is opened, so neither the interface
(:mod:`lakedoc.index.backends.base`) nor this table imports a backend module (no import circle), and a
backend's SDK is loaded only where it is used. Adding a backend is one line in :data:`BACKENDS`; its class
subclasses :class:`~lakedoc.index.backends.base.IndexBackend` and implements ``from_config(cfg)``.
"""
from __future__ import annotations

import importlib
from typing import Any

from lakedoc.index.backends.base import IndexBackend

BACKENDS: dict[str, str] = {
    "azure_search": "lakedoc.index.backends.azure_search:AzureSearchBackend",
    "databricks_ai_search": "lakedoc.index.backends.databricks_ai_search:DatabricksAISearchBackend",
    "lancedb": "lakedoc.index.backends.lancedb_backend:LanceDBBackend",
}


def backend_class(kind: str) -> type[IndexBackend]:
    """The class registered for ``kind`` (imported on first use)."""
    try:
        target = BACKENDS[kind]
    except KeyError:
        raise ValueError(f"unknown index.backend {kind!r} (known: {', '.join(sorted(BACKENDS))})") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, IndexBackend)):
        raise TypeError(f"index backend {kind!r} -> {target} is not an IndexBackend")
    return cls


def open_backend(cfg: Any) -> IndexBackend:
    """The configured backend (``index.backend``), built from the configuration."""
    return backend_class(cfg.index.backend).from_config(cfg)
