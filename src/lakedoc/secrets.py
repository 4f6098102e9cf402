"""Secret resolution: configuration holds references only, never values.

A secret is configured as ``{env: NAME}``, ``{scope: S, key: K}`` or both. :func:`resolve_secret`
tries the environment variable first (a laptop, CI, or a cluster's ``spark_env_vars`` fed from a
secret with ``{{secrets/scope/key}}``), then — on Databricks — the secret scope through
``databricks.sdk.WorkspaceClient().dbutils.secrets.get(scope, key)``.

Failures of the secret scope are told apart, because each has a different fix:

* :class:`SecretNotFound` — the scope or the key does not exist (nor the environment variable): the
  message names them and the commands that create them;
* :class:`SecretAccessDenied` — the scope exists but the principal running the task has no ``READ``
  on it: the message names the principal (when it can be found) and the ``put-acl`` command;
* :class:`SecretUnavailable` — anything else (no workspace configured, bad credentials, network,
  a server error): the real cause is passed through, and chained as ``__cause__``.

No message or log line ever contains a secret value (only names: variable, scope, key, principal).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Literal, overload

log = logging.getLogger(__name__)


class SecretError(Exception):
    """A configured secret could not be read (the message names where it looked, never a value)."""


class SecretNotFound(SecretError, LookupError):
    """No value for a configured secret reference: the variable is unset and the scope/key does not exist."""


class SecretAccessDenied(SecretError, PermissionError):
    """The secret scope exists but the principal running the task may not read it."""


class SecretUnavailable(SecretError):
    """The secret API could not be asked (no workspace, authentication, network, server error)."""


def describe(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return "no reference"
    parts = []
    if ref.get("env"):
        parts.append(f"environment variable {ref['env']}")
    if ref.get("scope"):
        parts.append(f"secret scope {ref['scope']!r} key {ref.get('key')!r}")
    return " or ".join(parts)


@overload
def resolve_secret(ref: Mapping[str, Any] | None, *, required: Literal[True] = ...,
                   environ: Mapping[str, str] | None = None) -> str: ...
@overload
def resolve_secret(ref: Mapping[str, Any] | None, *, required: bool,
                   environ: Mapping[str, str] | None = None) -> str | None: ...


def resolve_secret(ref: Mapping[str, Any] | None, *, required: bool = True,
                   environ: Mapping[str, str] | None = None) -> str | None:
    """The value behind a secret reference.

    ``None`` when nothing is found and ``required`` is false, else :class:`SecretNotFound`. A scope
    that exists but cannot be read (:class:`SecretAccessDenied`) or a secret API that cannot be asked
    (:class:`SecretUnavailable`) raises whether or not the secret is required: that is a deployment
    defect to fix, not an absent optional value.
    """
    environ = os.environ if environ is None else environ
    if ref:
        name = ref.get("env")
        if name and environ.get(name):
            return environ[name]
        scope, key = ref.get("scope"), ref.get("key")
        if scope and key:
            try:
                value = _databricks_secret(scope, key)
            except (SecretAccessDenied, SecretUnavailable) as exc:
                if not name:
                    raise
                raise type(exc)(f"{exc} (environment variable {name} is not set either)") from exc.__cause__
            if value:
                return value
    if required:
        raise SecretNotFound(f"secret not found: looked for {describe(ref)}{_create_hint(ref)}")
    return None


def _create_hint(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return ""
    hints = []
    scope, key = ref.get("scope"), ref.get("key")
    if scope and key:
        hints.append(f"create it with `databricks secrets create-scope {scope}` (if the scope is new) and "
                     f"`databricks secrets put-secret {scope} {key}`")
    if ref.get("env"):
        hints.append(f"set the environment variable {ref['env']}")
    return " (" + ", or ".join(hints) + ")" if hints else ""


def _databricks_secret(scope: str, key: str) -> str | None:
    """The secret's value, ``None`` when the scope or key does not exist; raises on any other failure."""
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as exc:  # pragma: no cover - databricks-sdk is a dependency
        raise SecretUnavailable(f"cannot read secret scope {scope!r} key {key!r}: databricks-sdk is not "
                                f"installed ({exc})") from exc
    client = None
    try:
        client = WorkspaceClient()
        return client.dbutils.secrets.get(scope=scope, key=key)
    except Exception as exc:  # noqa: BLE001 - classified below; the cause is never swallowed
        kind = _classify(exc)
        if kind == "not_found":
            log.debug("secret scope %r key %r does not exist: %s", scope, key, _cause(exc))
            return None
        if kind == "denied":
            principal = _principal(client)
            who = f"principal {principal!r}" if principal else \
                "principal running this task (the job's run-as user or service principal)"
            raise SecretAccessDenied(
                f"permission denied reading secret scope {scope!r} key {key!r}: the {who} needs READ on "
                f"scope {scope!r} (`databricks secrets put-acl {scope} {principal or '<principal>'} READ`, "
                f"by a MANAGE holder of the scope); cause: {_cause(exc)}") from exc
        what = "authentication to the workspace failed" if kind == "auth" else "the secret API could not be asked"
        raise SecretUnavailable(f"cannot read secret scope {scope!r} key {key!r}: {what}: {_cause(exc)}") from exc


_NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "SECRET_DOES_NOT_EXIST")
_DENIED_CODES = ("PERMISSION_DENIED",)
_AUTH_CODES = ("UNAUTHENTICATED", "INVALID_TOKEN")


def _classify(exc: BaseException) -> str:
    """``not_found`` | ``denied`` | ``auth`` | ``other`` for an exception of the SDK or of the runtime's dbutils.

    The SDK raises typed errors (``databricks.sdk.errors``); the Databricks runtime's own ``dbutils``
    raises JVM exceptions whose message carries the error code (``PERMISSION_DENIED: ...``) or says
    ``Secret does not exist with scope: s and key: k``.
    """
    try:
        from databricks.sdk import errors as E
    except ImportError:  # pragma: no cover
        pass
    else:
        if isinstance(exc, E.NotFound):
            return "not_found"
        if isinstance(exc, E.PermissionDenied):
            return "denied"
        if isinstance(exc, E.Unauthenticated):
            return "auth"
    code = str(getattr(exc, "error_code", "") or "").upper()
    text = str(exc)
    upper, lower = text.upper(), text.lower()
    for kind, codes in (("denied", _DENIED_CODES), ("auth", _AUTH_CODES), ("not_found", _NOT_FOUND_CODES)):
        if code in codes or any(c in upper for c in codes):
            return kind
    if "does not exist" in lower:
        return "not_found"
    if "permission" in lower:
        return "denied"
    return "other"


def _cause(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _principal(client) -> str | None:
    """The user name (or service principal application id) the client runs as; best effort."""
    if client is None:
        return None
    try:
        me = client.current_user.me()
        return getattr(me, "user_name", None) or getattr(me, "display_name", None)
    except Exception:  # noqa: BLE001 - the principal is only a hint in the message
        return None
