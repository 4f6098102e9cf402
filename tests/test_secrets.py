"""Secret references: a missing secret, a denied scope and an unreachable secret API are told apart.

The Databricks side is a stand-in ``WorkspaceClient`` (patched over ``databricks.sdk.WorkspaceClient``)
whose ``dbutils.secrets.get`` raises the SDK's real exception types.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from databricks.sdk import errors

from lakedoc.secrets import (SecretAccessDenied, SecretError, SecretNotFound, SecretUnavailable,
                             resolve_secret)

VALUE = "s3cr3t-value-never-printed"
REF = {"env": "LAKEDOC_TEST_SECRET", "scope": "lakedoc-dev", "key": "pii-hash-key"}


def fake_client(monkeypatch, *, raises=None, value=VALUE, user="job-runner@example.com", on_init=None):
    calls = []

    class Secrets:
        def get(self, scope, key):
            calls.append((scope, key))
            if raises is not None:
                raise raises
            return value

    class Me:
        def me(self):
            if user is None:
                raise errors.PermissionDenied("no access to /me")
            return SimpleNamespace(user_name=user, display_name="Job runner")

    class FakeWorkspaceClient:
        def __init__(self, *a, **kw):
            if on_init is not None:
                raise on_init
            self.dbutils = SimpleNamespace(secrets=Secrets())
            self.current_user = Me()

    monkeypatch.setattr("databricks.sdk.WorkspaceClient", FakeWorkspaceClient)
    return calls


def _no_value_anywhere(exc: BaseException, caplog) -> None:
    assert VALUE not in str(exc)
    assert VALUE not in caplog.text


def test_value_from_the_environment_first_then_the_scope(monkeypatch):
    calls = fake_client(monkeypatch)
    assert resolve_secret(REF, environ={"LAKEDOC_TEST_SECRET": "from-env"}) == "from-env"
    assert calls == []
    assert resolve_secret(REF, environ={}) == VALUE
    assert calls == [("lakedoc-dev", "pii-hash-key")]


@pytest.mark.parametrize("exc", [
    errors.NotFound("Secret does not exist with scope: lakedoc-dev and key: pii-hash-key"),
    errors.ResourceDoesNotExist("Scope lakedoc-dev does not exist!", error_code="RESOURCE_DOES_NOT_EXIST"),
    # the runtime's own dbutils raises JVM exceptions that carry only a message
    RuntimeError("java.lang.IllegalArgumentException: Secret does not exist with scope: lakedoc-dev and key: x"),
])
def test_not_found_names_scope_and_key_and_how_to_create_it(monkeypatch, caplog, exc):
    caplog.set_level(logging.DEBUG, logger="lakedoc")
    fake_client(monkeypatch, raises=exc)
    with pytest.raises(SecretNotFound) as info:
        resolve_secret(REF, environ={})
    msg = str(info.value)
    assert "environment variable LAKEDOC_TEST_SECRET or secret scope 'lakedoc-dev' key 'pii-hash-key'" in msg
    assert "databricks secrets put-secret lakedoc-dev pii-hash-key" in msg
    assert "create-scope lakedoc-dev" in msg
    assert resolve_secret(REF, required=False, environ={}) is None  # optional and absent: no value
    _no_value_anywhere(info.value, caplog)


def test_permission_denied_names_the_principal_that_needs_read(monkeypatch, caplog):
    cause = errors.PermissionDenied("User does not have READ permission on scope lakedoc-dev",
                                    error_code="PERMISSION_DENIED")
    fake_client(monkeypatch, raises=cause, user="sp-lakedoc-jobs")
    with pytest.raises(SecretAccessDenied) as info:
        resolve_secret(REF, environ={})
    msg = str(info.value)
    assert not isinstance(info.value, SecretNotFound)
    assert "permission denied" in msg and "'sp-lakedoc-jobs' needs READ on scope 'lakedoc-dev'" in msg
    assert "databricks secrets put-acl lakedoc-dev sp-lakedoc-jobs READ" in msg
    assert "User does not have READ permission" in msg  # the real cause
    assert "LAKEDOC_TEST_SECRET is not set either" in msg
    assert info.value.__cause__ is cause
    # denied is a defect even for an optional secret: never silently None
    with pytest.raises(SecretAccessDenied):
        resolve_secret(REF, required=False, environ={})
    _no_value_anywhere(info.value, caplog)


def test_permission_denied_without_a_known_principal_still_says_who(monkeypatch):
    fake_client(monkeypatch, raises=RuntimeError("PERMISSION_DENIED: User does not have READ permission"), user=None)
    with pytest.raises(SecretAccessDenied, match="principal running this task .* needs READ on scope 'lakedoc-dev'"):
        resolve_secret({"scope": "lakedoc-dev", "key": "k"}, environ={})


@pytest.mark.parametrize("exc,needle", [
    (errors.Unauthenticated("Invalid access token", error_code="UNAUTHENTICATED"),
     "authentication to the workspace failed: Unauthenticated: Invalid access token"),
    (errors.TemporarilyUnavailable("the service is down"), "TemporarilyUnavailable: the service is down"),
    (ConnectionError("Connection refused"), "ConnectionError: Connection refused"),
])
def test_auth_and_network_errors_pass_the_real_cause_through(monkeypatch, caplog, exc, needle):
    fake_client(monkeypatch, raises=exc)
    with pytest.raises(SecretUnavailable) as info:
        resolve_secret(REF, environ={})
    msg = str(info.value)
    assert not isinstance(info.value, SecretNotFound) and "not found" not in msg
    assert needle in msg and "secret scope 'lakedoc-dev' key 'pii-hash-key'" in msg
    assert info.value.__cause__ is exc
    _no_value_anywhere(info.value, caplog)


def test_no_workspace_configured_is_a_configuration_error_not_a_missing_secret(monkeypatch):
    fake_client(monkeypatch, on_init=ValueError("default auth: cannot configure default credentials"))
    with pytest.raises(SecretUnavailable, match="cannot configure default credentials") as info:
        resolve_secret({"scope": "lakedoc", "key": "k"}, environ={})
    assert isinstance(info.value, SecretError)


def test_env_only_reference_is_not_found_without_asking_databricks(monkeypatch):
    calls = fake_client(monkeypatch)
    with pytest.raises(SecretNotFound, match="set the environment variable LAKEDOC_TEST_SECRET"):
        resolve_secret({"env": "LAKEDOC_TEST_SECRET"}, environ={})
    assert calls == []
