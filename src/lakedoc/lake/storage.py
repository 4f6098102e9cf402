"""One small file-system interface over ADLS Gen2 (``abfss://fs@account.dfs.core.windows.net/path``,
through ``azure-storage-file-datalake``) and local folders, for ``lakedoc land`` and ``lakedoc archive``.

Settings come from the ``lake`` configuration section (:class:`LakeSettings`). Credentials, in this
order: the account key behind ``lake.account_key`` (a secret reference: environment variable or
Databricks secret scope), else the SAS token behind ``lake.sas_token``, else the Azure default
credential chain (``azure.identity.DefaultAzureCredential``: environment, workload/managed identity,
Azure CLI). ``lake.auth`` can force one of them. No credential value is ever logged or put in a message.
``lake.endpoint`` overrides the account URL (``{account}`` is replaced), e.g. a local fake in tests.
"""
from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lakedoc.config_schema import LakeSettings

log = logging.getLogger(__name__)

__all__ = ["AbfssPath", "AdlsFS", "Entry", "LakeFS", "LakeSettings", "LocalFS", "md5_file", "open_fs",
           "parse_abfss"]

# the service's answer (404) to a rename whose destination folder does not exist
RENAME_PARENT_MISSING = "RenameDestinationParentPathNotFound"

_ABFSS = re.compile(r"^abfss?://(?P<fs>[^@/]+)@(?P<account>[^./]+)\.dfs\.(?P<suffix>[^/]+)(?:/(?P<path>.*))?$")


@dataclass(frozen=True)
class AbfssPath:
    file_system: str
    account: str
    suffix: str
    path: str  # inside the file system, no leading or trailing slash

    @property
    def uri(self) -> str:
        return f"abfss://{self.file_system}@{self.account}.dfs.{self.suffix}/{self.path}".rstrip("/")

    def child(self, rel: str) -> AbfssPath:
        return AbfssPath(self.file_system, self.account, self.suffix, "/".join(p for p in (self.path, rel) if p))


def parse_abfss(uri: str) -> AbfssPath | None:
    m = _ABFSS.match(uri)
    if not m:
        return None
    return AbfssPath(m.group("fs"), m.group("account"), m.group("suffix"), (m.group("path") or "").strip("/"))


def is_remote(path: str) -> bool:
    return parse_abfss(path) is not None


@dataclass
class Entry:
    rel: str        # path relative to the listed root, '/'-separated
    size: int
    mtime: datetime  # UTC


def md5_file(path: str | os.PathLike, block: int = 4 << 20) -> bytes:
    h = hashlib.md5()  # Content-MD5 is MD5 by protocol, not a security use
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.digest()


class LakeFS:
    """What land and archive need from a file system. Paths are absolute: a local path or an abfss URI."""

    def join(self, root: str, rel: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def list_files(self, root: str) -> Iterator[Entry]:  # pragma: no cover - interface
        raise NotImplementedError

    def content_md5(self, path: str) -> bytes | None:  # pragma: no cover - interface
        """The stored Content-MD5 (local: computed), None when the file does not exist or has none."""
        raise NotImplementedError

    def exists(self, path: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def upload(self, local: str, path: str, md5: bytes, size: int) -> None:  # pragma: no cover - interface
        """Write ``local``'s bytes to ``path`` (created or truncated), with ``md5`` as its Content-MD5."""
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:  # pragma: no cover - interface
        """Atomic move (hierarchical-namespace rename / ``os.rename``); missing parents of ``dst`` are
        created first (an existing folder is kept as it is)."""
        raise NotImplementedError

    def write_bytes(self, path: str, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def delete_tree(self, path: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class LocalFS(LakeFS):
    def join(self, root: str, rel: str) -> str:
        return os.path.join(root, *rel.split("/")) if rel else root

    def list_files(self, root: str) -> Iterator[Entry]:
        base = Path(root)
        if not base.is_dir():
            return
        stack = [base]
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        yield Entry(Path(e.path).relative_to(base).as_posix(), st.st_size,
                                    datetime.fromtimestamp(st.st_mtime, tz=timezone.utc))

    def content_md5(self, path: str) -> bytes | None:
        return md5_file(path) if os.path.isfile(path) else None

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def upload(self, local: str, path: str, md5: bytes, size: int) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        shutil.copyfile(local, path)

    def rename(self, src: str, dst: str) -> None:
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        os.rename(src, dst)

    def write_bytes(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def delete_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


class AdlsFS(LakeFS):
    """ADLS Gen2 through ``azure-storage-file-datalake`` (one service client per account)."""

    def __init__(self, settings: LakeSettings, environ: Mapping[str, str] | None = None):
        self.settings = settings
        self._environ = environ
        self._clients: dict[str, Any] = {}

    # -- clients ----------------------------------------------------------------------------------
    def account_url(self, p: AbfssPath) -> str:
        if self.settings.endpoint:
            return self.settings.endpoint.replace("{account}", p.account).rstrip("/")
        return f"https://{p.account}.dfs.{p.suffix}"

    def credential(self, account: str):
        """The credential object; the kind is logged, never the value."""
        from lakedoc.secrets import resolve_secret

        s = self.settings
        if s.auth in ("auto", "account_key"):
            key = resolve_secret(s.account_key, required=s.auth == "account_key", environ=self._environ)
            if key:
                log.info("lake: account %s with an account key", account)
                return {"account_name": account, "account_key": key}
        if s.auth in ("auto", "sas"):
            sas = resolve_secret(s.sas_token, required=s.auth == "sas", environ=self._environ)
            if sas:
                log.info("lake: account %s with a SAS token", account)
                return sas.lstrip("?")
        from azure.identity import DefaultAzureCredential

        log.info("lake: account %s with the Azure default credential chain", account)
        return DefaultAzureCredential()

    def service(self, p: AbfssPath):
        url = self.account_url(p)
        client = self._clients.get(url)
        if client is None:
            from azure.storage.blob import LinearRetry
            from azure.storage.filedatalake import DataLakeServiceClient

            s = self.settings
            # seconds as floats (typed int in the SDK; it only adds and compares them)
            retry_kw: dict[str, Any] = {"backoff": s.backoff_s, "random_jitter_range": min(s.backoff_s / 2, 3),
                                        "retry_total": s.max_retries}
            retry = LinearRetry(**retry_kw)
            client = DataLakeServiceClient(url, credential=self.credential(p.account), retry_policy=retry,
                                           connection_timeout=min(s.timeout_s, 20), read_timeout=s.timeout_s)
            self._clients[url] = client
        return client

    def _p(self, path: str) -> AbfssPath:
        p = parse_abfss(path)
        if p is None:
            raise ValueError(f"not an abfss:// URI: {path}")
        return p

    def file_system(self, p: AbfssPath):
        return self.service(p).get_file_system_client(p.file_system)

    def file_client(self, path: str):
        p = self._p(path)
        return self.file_system(p).get_file_client(p.path)

    # -- operations -------------------------------------------------------------------------------
    def join(self, root: str, rel: str) -> str:
        return self._p(root).child(rel).uri

    def list_files(self, root: str) -> Iterator[Entry]:
        from azure.core.exceptions import ResourceNotFoundError

        p = self._p(root)
        prefix = p.path + "/" if p.path else ""
        try:
            for item in self.file_system(p).get_paths(path=p.path or None, recursive=True):
                if item.is_directory:
                    continue
                lm = item.last_modified
                if lm.tzinfo is None:
                    lm = lm.replace(tzinfo=timezone.utc)
                yield Entry(item.name[len(prefix):], int(item.content_length or 0), lm)
        except ResourceNotFoundError:
            return

    def content_md5(self, path: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self.file_client(path).get_file_properties()
        except ResourceNotFoundError:
            return None
        md5 = props.content_settings.content_md5
        return bytes(md5) if md5 else None

    def exists(self, path: str) -> bool:
        return bool(self.file_client(path).exists())

    def ensure_file_system(self, path: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        fs = self.file_system(self._p(path))
        if not fs.exists():
            try:
                fs.create_file_system()
            except ResourceExistsError:
                pass

    def upload(self, local: str, path: str, md5: bytes, size: int) -> None:
        from azure.storage.filedatalake import ContentSettings

        s = self.settings
        with open(local, "rb") as f:
            self.file_client(path).upload_data(
                f, length=size, overwrite=True, chunk_size=max(int(s.chunk_mb * 1024 * 1024), 1024),
                max_concurrency=s.chunk_concurrency, content_settings=ContentSettings(content_md5=md5))
        if size == 0:  # upload_data creates nothing for an empty stream: create + flush (stores the MD5)
            fc = self.file_client(path)
            fc.create_file()
            fc.flush_data(0, content_settings=ContentSettings(content_md5=md5))

    def rename(self, src: str, dst: str) -> None:
        """One hierarchical-namespace rename. The service creates no parent of ``dst`` (404
        ``RenameDestinationParentPathNotFound``): on that answer the parent directory is created — only
        if missing (``If-None-Match: *``), never over an existing one; its own parents are implied — and
        the rename is sent once more."""
        from azure.core.exceptions import ResourceNotFoundError

        s, d = self._p(src), self._p(dst)
        if s.file_system != d.file_system or s.account != d.account:
            raise ValueError(f"a rename stays in one file system: {src} -> {dst}")
        try:
            self.file_client(src).rename_file(f"{d.file_system}/{d.path}")
            return
        except ResourceNotFoundError as exc:
            parent = posixpath.dirname(d.path)
            if not parent or getattr(exc, "error_code", None) != RENAME_PARENT_MISSING:
                raise
        log.debug("lake: creating the missing folder %s of a rename destination", parent)
        self.make_dirs(AbfssPath(d.file_system, d.account, d.suffix, parent).uri)
        self.file_client(src).rename_file(f"{d.file_system}/{d.path}")

    def make_dirs(self, path: str) -> None:
        """Create the folder ``path`` (its parents are implied by the service) unless it exists; an
        existing folder is left as it is (properties, ACLs, content)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError

        p = self._p(path)
        try:
            self.file_system(p).get_directory_client(p.path).create_directory(
                match_condition=MatchConditions.IfMissing)
        except ResourceExistsError:
            pass  # already there (another writer, or an earlier try whose answer was lost)

    def write_bytes(self, path: str, data: bytes) -> None:
        self.file_client(path).upload_data(data, overwrite=True)

    def delete_tree(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        p = self._p(path)
        try:
            self.file_system(p).get_directory_client(p.path).delete_directory()
        except ResourceNotFoundError:
            pass


def open_fs(path: str, settings: LakeSettings, environ: Mapping[str, str] | None = None) -> LakeFS:
    return AdlsFS(settings, environ) if is_remote(path) else LocalFS()

