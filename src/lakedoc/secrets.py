"""Secret resolution: configuration holds references only, never values.

A secret is configured as ``{env: NAME}``, ``{scope: S, key: K}`` or both. :func:`resolve_secret`
tries the environment variable first (a laptop, CI, or a cluster's ``spark_env_vars`` fed from a
secret with ``{{secrets/scope/key}}``), then — on Databricks — the secret scope through
``databricks.sdk.WorkspaceClient().dbutils.secrets.get(scope, key)``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping


class SecretNotFound(LookupError):
    """No value for a configured secret reference (the message names where it looked)."""


def describe(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return "no reference"
    parts = []
    if ref.get("env"):
        parts.append(f"environment variable {ref['env']}")
    if ref.get("scope"):
        parts.append(f"secret scope {ref['scope']!r} key {ref.get('key')!r}")
    return " or ".join(parts)


def resolve_secret(ref: Mapping[str, Any] | None, *, required: bool = True,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """The value behind a secret reference; ``None`` (or :class:`SecretNotFound`) when there is none."""
    environ = os.environ if environ is None else environ
    if ref:
        name = ref.get("env")
        if name and environ.get(name):
            return environ[name]
        scope, key = ref.get("scope"), ref.get("key")
        if scope and key:
            value = _databricks_secret(scope, key)
            if value:
                return value
    if required:
        raise SecretNotFound(f"secret not found: looked for {describe(ref)}")
    return None


def _databricks_secret(scope: str, key: str) -> str | None:
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError:  # pragma: no cover - databricks-sdk is a dependency
        return None
    try:
        return WorkspaceClient().dbutils.secrets.get(scope=scope, key=key)
    except Exception:  # noqa: BLE001 - no workspace configured (laptop) or no access: not found
        return None
