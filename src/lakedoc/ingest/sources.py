"""Where the ingestion tasks list and read their input: one interface, two implementations.

* :class:`LocalFolderSource` — a local folder (a plain path, ``file:``, a ``/Volumes/...`` FUSE path on
  Databricks): listed with ``os.scandir`` (:func:`lakedoc.ingest.listing.list_local`), read with ``open``.
* :class:`AdlsSource` — an ADLS Gen2 folder (``abfss://fs@account.dfs.core.windows.net/landing/...``) read
  from a local run (a laptop against a real lake) through ``azure-storage-file-datalake``: listed on the
  driver with one recursive ``get_paths`` (every file, whatever its name: no Hadoop globbing, no
  ``_``/``.`` skipping, 0-byte files included), each file downloaded by path inside the Spark task
  (``mapInPandas``). The row's ``source_path`` is the file's ``abfss://`` URI (what ``lakedoc archive``
  keys on too); its ``modified_at`` is the service's ``Last-Modified`` (whole seconds).

Other URIs (``dbfs:``) have no source here: the tasks fall back to Spark's ``binaryFile`` reader; so does
``abfss://`` on a Databricks cluster (``input.abfss_reader: auto``), which reads the lake through its own
Unity Catalog access.

Credentials (ADLS): the ``lake`` section's, as for ``lakedoc land`` (:class:`lakedoc.lake.storage.AdlsFS`:
account key, else SAS token, else the Azure default credential chain), resolved once on the driver; the
Spark tasks get the resolved key or SAS token, or a storage access token the driver obtained from the
default chain (re-obtained in the task only when it is about to expire). A credential is never logged,
and error messages have any ``sig=`` value and the key removed. No credential at all is a
:class:`LakeCredentialError` before anything is listed, saying what to set.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Protocol

import pandas as pd

from lakedoc.config_schema import LakeSettings
from lakedoc.lake.storage import AdlsFS, parse_abfss

log = logging.getLogger(__name__)

STORAGE_SCOPE = "https://storage.azure.com/.default"


class LakeCredentialError(RuntimeError):
    """No usable credential for an ``abfss://`` input (the message says what to set; never a value)."""


class InputSource(Protocol):
    """What an ingestion task needs from its input: a listing, and each listed file's bytes."""

    root: str

    def list(self, log: Any = None):
        """A :class:`lakedoc.ingest.listing.Listing` (``files``: path, fs_path, mtime_us, length); the
        listing's ``source`` is this object."""

    def read(self, path: str, fs_path: bytes | None, length: int, max_bytes: int) -> bytes:
        """At most ``max_bytes + 1`` bytes of one listed file; ``OSError`` when it cannot be read
        (the task writes a row with status ``error``). Runs inside a Spark task."""


class LocalFolderSource:
    """A local folder, listed from its real path without following symbolic links."""

    def __init__(self, root: str):
        self.root = root

    def list(self, log: Any = None):
        from lakedoc.ingest.listing import list_local

        listing = list_local(self.root, log)
        listing.source = self
        return listing

    def read(self, path: str, fs_path: bytes | None, length: int, max_bytes: int) -> bytes:
        with open(bytes(fs_path or path.encode()), "rb") as fh:
            return fh.read(max_bytes + 1)


# ---------------------------------------------------------------------------------------------- ADLS Gen2

_SIG = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)


@dataclass(frozen=True)
class TaskCredential:
    """What the Spark tasks authenticate with (picklable): ``kind`` account_key / sas / token."""

    kind: str
    value: str = ""
    expires_on: int = 0

    def __repr__(self) -> str:  # never the value
        return f"TaskCredential(kind={self.kind!r})"


class _TokenCredential:
    """A storage access token the driver obtained; the default chain again once it is about to expire."""

    def __init__(self, token: str, expires_on: int):
        self._token, self._expires_on = token, expires_on
        self._fallback: Any = None

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        if self._expires_on - time.time() > 300:
            return AccessToken(self._token, self._expires_on)
        if self._fallback is None:
            from azure.identity import DefaultAzureCredential

            self._fallback = DefaultAzureCredential()
        return self._fallback.get_token(*scopes, **kwargs)


class _TaskFS(AdlsFS):
    """:class:`AdlsFS` with the credential the driver resolved (no secret lookup inside a task)."""

    def __init__(self, settings: LakeSettings, cred: TaskCredential):
        super().__init__(settings)
        self._cred = cred

    def credential(self, account: str):
        c = self._cred
        if c.kind == "account_key":
            return {"account_name": account, "account_key": c.value}
        if c.kind == "sas":
            return c.value
        return _TokenCredential(c.value, c.expires_on)


def redact(message: str, secret: str = "") -> str:
    """A message without any SAS signature (``sig=``) or ``secret`` in it."""
    message = _SIG.sub(r"\1REDACTED", message)
    return message.replace(secret, "REDACTED") if secret and len(secret) >= 8 else message


class AdlsSource:
    """An ``abfss://`` input folder (or one file) read through the DataLake SDK."""

    def __init__(self, root: str, settings: LakeSettings | None = None, environ=None):
        p = parse_abfss(root)
        if p is None:
            raise ValueError(f"not an abfss:// URI: {root}")
        self.settings = settings or LakeSettings()
        self.root = p.uri
        self._p = p
        self._environ = environ
        self._cred: TaskCredential | None = None
        self._fs: AdlsFS | None = None

    # -- pickling: a Spark task gets the settings, the root and the resolved credential only -----------
    def __getstate__(self) -> dict:
        if self._cred is None:
            self._cred = self.task_credential()
        state = dict(self.__dict__)
        state["_fs"] = None
        state["_environ"] = None
        return state

    def __repr__(self) -> str:
        return f"AdlsSource({self.root!r})"

    # -- credentials --------------------------------------------------------------------------------
    def task_credential(self) -> TaskCredential:
        """Resolve the ``lake`` credential once (driver); :class:`LakeCredentialError` when there is none."""
        from lakedoc.secrets import SecretError

        if self._cred is not None:
            return self._cred
        account = self._p.account
        hint = (f"set the storage account key in LAKEDOC_LAKE_ACCOUNT_KEY or a SAS token in "
                f"LAKEDOC_LAKE_SAS_TOKEN (or point lake.account_key / lake.sas_token at a Databricks secret "
                f"scope), or sign in for the Azure default credential chain (az login, a managed or workload "
                f"identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET); lake.auth is "
                f"{self.settings.auth!r}")
        try:
            cred = AdlsFS(self.settings, self._environ).credential(account)
        except SecretError as exc:
            raise LakeCredentialError(f"no credential for the input {self.root}: {exc}. To fix: {hint}") from None
        if isinstance(cred, dict):
            self._cred = TaskCredential("account_key", cred["account_key"])
        elif isinstance(cred, str):
            self._cred = TaskCredential("sas", cred)
        else:
            try:
                token = cred.get_token(STORAGE_SCOPE)
            except Exception as exc:  # noqa: BLE001 - CredentialUnavailableError, ClientAuthenticationError ...
                first = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                raise LakeCredentialError(
                    f"no credential for the input {self.root}: the Azure default credential chain found none "
                    f"({type(exc).__name__}: {first[:300]}). To fix: {hint}") from None
            self._cred = TaskCredential("token", token.token, int(token.expires_on))
        return self._cred

    def _client(self) -> AdlsFS:
        if self._fs is None:
            self._fs = _TaskFS(self.settings, self.task_credential())
        return self._fs

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return redact(text, self._cred.value if self._cred else "")[:500]

    # -- listing (driver) ---------------------------------------------------------------------------
    def list(self, log: Any = None):
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        from lakedoc.ingest.listing import LISTING_COLUMNS, Listing

        p = self._p
        fs = self._client()
        rows: list[tuple] = []
        try:
            try:
                items = list(fs.file_system(p).get_paths(path=p.path or None, recursive=True))
            except ResourceNotFoundError:
                items = None
            if items is None and p.path:  # the root may be one file
                try:
                    props = fs.file_client(self.root).get_file_properties()
                except ResourceNotFoundError:
                    props = None
                if props is None or (props.metadata or {}).get("hdi_isfolder") == "true":
                    raise FileNotFoundError(f"input folder {self.root} does not exist")
                rows.append((self.root, self.root.encode(), _epoch_us(props.last_modified), int(props.size or 0)))
            elif items is None:
                raise FileNotFoundError(f"input file system {p.file_system} of {self.root} does not exist")
            for item in items or ():
                if item.is_directory:
                    continue
                path = fs.join(self.root, item.name[len(p.path) + 1:] if p.path else item.name)
                rows.append((path, path.encode(), _epoch_us(item.last_modified), int(item.content_length or 0)))
        except AzureError as exc:
            raise OSError(f"cannot list {self.root}: {type(exc).__name__}: {self._clean(exc)}") from None
        files = pd.DataFrame(rows, columns=LISTING_COLUMNS) if rows else pd.DataFrame(columns=LISTING_COLUMNS)
        return Listing(self.root, False, files, source=self)

    # -- reading (Spark task) -----------------------------------------------------------------------
    def read(self, path: str, fs_path: bytes | None, length: int, max_bytes: int) -> bytes:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            client = self._client().file_client(path)
            if length <= 0:  # a range request on an empty file is answered 416: ask for the whole file
                return client.download_file().readall()
            return client.download_file(offset=0, length=max_bytes + 1).readall()
        except ResourceNotFoundError as exc:
            raise FileNotFoundError(f"{path} is gone from the lake: {self._clean(exc)}") from None
        except AzureError as exc:
            raise OSError(f"cannot read {path}: {type(exc).__name__}: {self._clean(exc)}") from None


def _epoch_us(ts) -> int:
    """A listing's Last-Modified -> epoch microseconds (whole seconds on ADLS)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond // 1000 * 1000


def open_source(path: str, cfg: Any = None) -> InputSource | None:
    """The source for an input path: a local folder, an ``abfss://`` folder, or None (``dbfs:``, other
    URIs, and ``abfss://`` read by Spark: the ``binaryFile`` reader). ``cfg``: the configuration (a
    Config, a plain mapping or None: defaults) — ``input.abfss_reader`` and the ``lake`` section."""
    from lakedoc.config_schema import InputSettings
    from lakedoc.ingest.listing import is_local_input

    if is_local_input(path):
        return LocalFolderSource(path)
    if isinstance(cfg, LakeSettings):  # the lake settings alone (input.abfss_reader: its default)
        lake, reader = cfg, InputSettings().abfss_reader
    else:
        lake, reader = LakeSettings.from_config(cfg), InputSettings.from_config(cfg).abfss_reader
    if parse_abfss(path) is not None and abfss_reader(reader) == "sdk":
        return AdlsSource(path, lake)
    return None


def abfss_reader(setting: str) -> str:
    """``input.abfss_reader`` resolved: ``auto`` is ``spark`` on a Databricks cluster (its own ABFS access
    through Unity Catalog: external locations, storage credentials) and ``sdk`` elsewhere."""
    if setting != "auto":
        return setting
    from lakedoc.spark import on_databricks

    return "spark" if on_databricks() else "sdk"
