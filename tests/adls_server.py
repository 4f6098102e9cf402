"""A small local fake of an ADLS Gen2 storage account (the ``dfs`` endpoint, plus the few ``blob``
operations the DataLake SDK routes to the blob endpoint), for tests of ``lakedoc land`` and
``lakedoc archive``. The Azure Storage emulator (Azurite) has no dfs endpoint.

It speaks the REST protocol that the real ``azure-storage-file-datalake`` SDK sends, over plain http
on 127.0.0.1, with path-style URLs: account URL ``http://127.0.0.1:PORT/ACCOUNT`` (the SDK takes the
account name from the first path segment for an IP host), so a request is ``/ACCOUNT/FS[/PATH]``.

* ``PUT /A/FS?restype=container`` (or ``?resource=filesystem``)    create a file system
* ``HEAD|DELETE /A/FS?restype=container``                          file system properties, delete
* ``PUT /A/FS/P?resource=file|directory``                          create a path (parents implied;
  ``If-None-Match: *`` -> 409 when it exists); a new file truncates the old content, an existing
  directory keeps its content but gets new properties (ETag, modification time)
* ``PATCH /A/FS/P?action=append&position=N``                       append uncommitted bytes; the
  position must equal the uncommitted length (400 ``InvalidFlushPosition`` otherwise), as on the service
* ``PATCH /A/FS/P?action=flush&position=N``                        commit; stores ``x-ms-content-md5``
  (and the content type); ``If-Match`` is checked (412)
* ``PUT /A/FS/P`` + ``x-ms-rename-source: /FS/SRC[?sas]``            atomic rename of a file or a directory
  tree (``If-None-Match: *`` -> 409 when the destination exists). As on the service, the destination's
  parent directory must exist: 404 ``RenameDestinationParentPathNotFound`` otherwise (a rename creates no
  parents; a path create does)
* ``GET /A/FS?resource=filesystem&directory=D&recursive=B``        list paths (JSON, ``maxResults`` +
  ``x-ms-continuation`` paging)
* ``DELETE /A/FS/P[?recursive=true]``                              delete a file or a directory
* ``HEAD /A/FS/P``                                                 properties as the blob endpoint gives
  them: ``Content-Length``, ``Content-MD5``, ``Last-Modified``, ``ETag``, ``hdi_isfolder`` for folders
* ``GET /A/FS/P`` (``Range``/``x-ms-range``)                       download

Authentication: every request must carry ``Authorization: SharedKey ACCOUNT:...`` or a SAS query
(``sig=``); anything else is 403. The signature itself is not verified.

Fault injection (:meth:`FakeDataLake.inject`): each :class:`Fault` applies to the next request of its
``op`` (``create``, ``append``, ``flush``, ``rename``, ``list``, ``properties``, ``read``, ``delete``,
``*``):
``status`` (503 ``ServerBusy`` ...) answered without applying; ``delay_s`` (a read timeout of the
client: the request is not applied); ``cut`` (the connection is closed after half the body was read:
a connection cut mid-upload, nothing applied); ``cut_after_apply`` (applied, then the connection is
closed before the answer: the client cannot know it succeeded); ``sticky`` keeps a fault for every
matching request until :meth:`FakeDataLake.clear_faults` (a file that can never be read). Counters
record every request by op, every flush and every rename by destination.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, unquote, urlparse

ACCOUNT = "account"
ACCOUNT_KEY = base64.b64encode(b"lakedoc-test-account-key-0123456789").decode()


@dataclass
class Fault:
    op: str = "*"
    status: int | None = None
    code: str = "ServerBusy"
    delay_s: float = 0.0
    cut: bool = False
    cut_after_apply: bool = False
    path_contains: str = ""   # only requests whose path contains this
    sticky: bool = False      # applies to every matching request until cleared (clear_faults)


@dataclass
class Node:
    is_dir: bool
    data: bytes = b""
    pending: dict = field(default_factory=dict)  # position -> appended bytes, not yet flushed
    content_md5: str | None = None       # base64, as sent in x-ms-content-md5
    content_type: str | None = None
    etag: str = ""
    modified: float = 0.0


@dataclass
class LakeState:
    filesystems: dict = field(default_factory=dict)  # fs -> {path: Node}
    faults: deque = field(default_factory=deque)
    requests: Counter = field(default_factory=Counter)   # op -> count
    flushes: Counter = field(default_factory=Counter)    # "fs/path" -> committed flushes
    renames: Counter = field(default_factory=Counter)    # "fs/destination" -> renames onto it
    statuses: Counter = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)  # answers are sent while it is held
    counter: int = 0


class _Cut(Exception):
    """Close the connection without an answer."""


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5.0
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall per answer
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes | dict | None = None, headers: dict | None = None,
               code: str | None = None, head: bool = False):
        if getattr(self, "_silent", False):
            return
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            ctype = "application/json;charset=utf-8"
        else:
            data = body or b""
            ctype = "application/octet-stream"
        self.send_response(status)
        hdrs = {"Content-Type": ctype, "x-ms-request-id": "fake", "x-ms-version": "2025-01-05",
                "Date": _http_date(time.time())}
        if code:
            hdrs["x-ms-error-code"] = code
        hdrs.update(headers or {})
        if "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(data))
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if data and not head:
            self.wfile.write(data)
        with self.server.state.lock:
            self.server.state.statuses[status] += 1

    def _error(self, status: int, code: str, message: str, head: bool = False):
        if head:  # an answer to HEAD has no body
            return self._reply(status, None, {"Content-Length": "0"}, code=code, head=True)
        self._reply(status, {"error": {"code": code, "message": message}}, code=code)

    def _read_body(self, fault: Fault | None) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if fault and fault.cut:
            self.rfile.read(n // 2)
            raise _Cut()
        return self.rfile.read(n) if n else b""

    def _parse(self):
        u = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        parts = unquote(u.path).lstrip("/").split("/", 2)
        account = parts[0] if parts else ""
        fs = parts[1] if len(parts) > 1 else ""
        path = parts[2].strip("/") if len(parts) > 2 else ""
        return account, fs, path, query

    def _authorised(self, account: str, query: dict) -> bool:
        auth = self.headers.get("Authorization") or ""
        return account == self.server.account and (
            auth.startswith(f"SharedKey {self.server.account}:") or auth.startswith("Bearer ") or "sig" in query)

    def _take_fault(self, op: str, path: str) -> Fault | None:
        st = self.server.state
        with st.lock:
            for f in list(st.faults):
                if f.op in (op, "*") and f.path_contains in path:
                    if not f.sticky:
                        st.faults.remove(f)
                    return f
        return None

    def _dispatch(self, verb: str):
        account, fs, path, query = self._parse()
        op = self._op(verb, path, query)
        st = self.server.state
        with st.lock:
            st.requests[op] += 1
        try:
            if not self._authorised(account, query):
                self._read_body(None)
                return self._error(403, "AuthenticationFailed", "no SharedKey or SAS", head=verb == "HEAD")
            fault = self._take_fault(op, f"{fs}/{path}")
            if fault and fault.delay_s:
                self._read_body(None)
                time.sleep(fault.delay_s)  # the client times out; nothing is applied
                raise _Cut()
            if fault and fault.status:
                self._read_body(fault if fault.cut else None)
                return self._error(fault.status, fault.code, "injected fault", head=verb == "HEAD")
            body = self._read_body(fault) if verb in ("PUT", "PATCH", "POST") else b""
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                return self._error(400, "UnsupportedOperation", f"{verb} {self.path}", head=verb == "HEAD")
            if fault and fault.cut_after_apply:
                self._silent = True  # applied, but the answer never reaches the client
                handler(fs, path, query, body)
                raise _Cut()
            handler(fs, path, query, body)
        except _Cut:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _op(verb: str, path: str, query: dict) -> str:
        if verb == "PUT":
            return "create" if path else "create_fs"
        if verb == "PATCH":
            return query.get("action", "patch")
        if verb == "GET":
            return "list" if not path else "read"
        if verb == "HEAD":
            return "fs_properties" if not path else "properties"
        if verb == "DELETE":
            return "delete_fs" if not path else "delete"
        return verb.lower()

    def do_PUT(self):
        if self.headers.get("x-ms-rename-source"):
            return self._dispatch_rename()
        self._dispatch("PUT")

    def _dispatch_rename(self):
        account, fs, path, query = self._parse()
        st = self.server.state
        with st.lock:
            st.requests["rename"] += 1
        try:
            if not self._authorised(account, query):
                self._read_body(None)
                return self._error(403, "AuthenticationFailed", "no SharedKey or SAS")
            fault = self._take_fault("rename", f"{fs}/{path}")
            if fault and fault.delay_s:
                time.sleep(fault.delay_s)
                raise _Cut()
            if fault and fault.status:
                return self._error(fault.status, fault.code, "injected fault")
            self._read_body(None)
            if fault and fault.cut_after_apply:
                self._silent = True
                self._op_rename(fs, path, query, b"")
                raise _Cut()
            self._op_rename(fs, path, query, b"")
        except _Cut:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- state helpers ----------------------------------------------------------------------------
    def _new_etag(self) -> str:
        st = self.server.state
        st.counter += 1
        return f'"0x8DC{st.counter:012X}"'

    def _ensure_parents(self, paths: dict, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in paths:
                paths[d] = Node(is_dir=True, etag=self._new_etag(), modified=time.time())

    def _node_headers(self, node: Node) -> dict:
        h = {"ETag": node.etag, "Last-Modified": _http_date(node.modified)}
        return h

    # -- operations -------------------------------------------------------------------------------
    def _op_create_fs(self, fs, path, query, body):
        st = self.server.state
        with st.lock:
            if fs in st.filesystems:
                return self._error(409, "ContainerAlreadyExists", "The specified container already exists.")
            st.filesystems[fs] = {}
            etag = self._new_etag()
        return self._reply(201, headers={"ETag": etag, "Last-Modified": _http_date(time.time())})

    def _op_fs_properties(self, fs, path, query, body):
        with self.server.state.lock:
            exists = fs in self.server.state.filesystems
        if not exists:
            return self._error(404, "ContainerNotFound", "no such container", head=self.command == "HEAD")
        return self._reply(200, headers={"ETag": '"0x1"', "Last-Modified": _http_date(time.time()),
                                         "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available",
                                         "x-ms-has-immutability-policy": "false", "x-ms-has-legal-hold": "false"},
                           head=self.command == "HEAD")

    def _op_delete_fs(self, fs, path, query, body):
        with self.server.state.lock:
            existed = self.server.state.filesystems.pop(fs, None) is not None
        if not existed:
            return self._error(404, "ContainerNotFound", "no such container")
        return self._reply(202)

    def _paths(self, fs: str) -> dict | None:
        return self.server.state.filesystems.get(fs)

    def _op_create(self, fs, path, query, body):
        st = self.server.state
        resource = query.get("resource", "file")
        with st.lock:
            paths = self._paths(fs)
            if paths is None:
                return self._error(404, "FilesystemNotFound", "The specified filesystem does not exist.")
            existing = paths.get(path)
            if existing is not None and self.headers.get("If-None-Match") == "*":
                return self._error(409, "PathAlreadyExists", "The specified path already exists.")
            if existing is not None and existing.is_dir and resource == "directory":
                # re-created over itself: its content stays, its properties are new (as on the service)
                node = existing
                node.etag, node.modified = self._new_etag(), time.time()
                node.content_type = self.headers.get("x-ms-content-type")
            else:
                if existing is not None and existing.is_dir:
                    return self._error(409, "PathConflict", "a directory exists at this path")
                node = Node(is_dir=resource == "directory", etag=self._new_etag(), modified=time.time(),
                            content_type=self.headers.get("x-ms-content-type"))
                self._ensure_parents(paths, path)
                paths[path] = node
        return self._reply(201, headers=self._node_headers(node))

    def _file(self, fs: str, path: str):
        paths = self._paths(fs)
        if paths is None:
            return None, ("FilesystemNotFound", "The specified filesystem does not exist.")
        node = paths.get(path)
        if node is None or node.is_dir:
            return None, ("PathNotFound", "The specified path does not exist.")
        return node, None

    def _op_append(self, fs, path, query, body):
        st = self.server.state
        position = int(query.get("position", "0"))
        with st.lock:
            node, err = self._file(fs, path)
            if err:
                return self._error(404, *err)
            if position < len(node.data):
                return self._error(400, "InvalidFlushPosition",
                                   "The uploaded data is not contiguous or the position query parameter value "
                                   "is not equal to the length of the file after appending the uploaded data.")
            md5 = self.headers.get("Content-MD5")
            if md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
                return self._error(400, "Md5Mismatch", "The MD5 value specified in the request did not match.")
            node.pending[position] = body  # appends may arrive in any order; a re-sent one replaces
        return self._reply(202, headers={"x-ms-request-server-encrypted": "false"})

    def _op_flush(self, fs, path, query, body):
        st = self.server.state
        position = int(query.get("position", "0"))
        with st.lock:
            node, err = self._file(fs, path)
            if err:
                return self._error(404, *err)
            if_match = self.headers.get("If-Match")
            if if_match and if_match != "*" and if_match != node.etag:
                return self._error(412, "ConditionNotMet", "The condition specified using HTTP conditional "
                                                            "header(s) is not met.")
            data = bytearray(node.data)
            for pos in sorted(node.pending):
                if pos == len(data):
                    data.extend(node.pending[pos])
            if position != len(data):
                return self._error(400, "InvalidFlushPosition", "The uploaded data is not contiguous or the "
                                                                "position is not equal to the file length.")
            node.data = bytes(data)
            node.pending = {}
            node.content_md5 = self.headers.get("x-ms-content-md5")
            node.content_type = self.headers.get("x-ms-content-type") or node.content_type
            node.etag = self._new_etag()
            node.modified = time.time()
            st.flushes[f"{fs}/{path}"] += 1
            headers = self._node_headers(node)
        headers["x-ms-request-server-encrypted"] = "false"
        return self._reply(200, headers=headers)

    def _op_rename(self, fs, path, query, body):
        st = self.server.state
        source = urlparse(unquote(self.headers["x-ms-rename-source"]))
        src_parts = source.path.lstrip("/").split("/", 1)
        src_fs, src_path = src_parts[0], (src_parts[1].strip("/") if len(src_parts) > 1 else "")
        with st.lock:
            src_paths, dst_paths = self._paths(src_fs), self._paths(fs)
            if src_paths is None or dst_paths is None:
                return self._error(404, "FilesystemNotFound", "The specified filesystem does not exist.")
            node = src_paths.get(src_path)
            if node is None:
                return self._error(404, "SourcePathNotFound", "The source path for a rename operation "
                                                              "does not exist.")
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if parent and (parent not in dst_paths or not dst_paths[parent].is_dir):
                # as the service: a rename never creates the destination's parent directory
                return self._error(404, "RenameDestinationParentPathNotFound",
                                   "The parent directory of the destination path does not exist.")
            if path in dst_paths and self.headers.get("If-None-Match") == "*":
                return self._error(409, "PathAlreadyExists", "The specified path already exists.")
            if path in dst_paths and dst_paths[path].is_dir != node.is_dir:
                return self._error(409, "PathConflict", "destination is of another kind")
            moved = {p: n for p, n in src_paths.items() if p == src_path or p.startswith(src_path + "/")}
            for p in moved:
                del src_paths[p]
            for p, n in moved.items():
                dst_paths[path + p[len(src_path):]] = n
            st.renames[f"{fs}/{path}"] += 1
            headers = self._node_headers(node)
        return self._reply(201, headers=headers)

    def _op_list(self, fs, path, query, body):
        st = self.server.state
        if query.get("restype") == "container" and not query.get("comp"):
            return self._op_fs_properties(fs, path, query, body)
        if query.get("resource") != "filesystem":
            return self._error(400, "UnsupportedOperation", "only resource=filesystem listings")
        directory = (query.get("directory") or "").strip("/")
        recursive = query.get("recursive", "false").lower() == "true"
        max_results = int(query.get("maxResults") or 5000)
        start = int(query.get("continuation") or self.headers.get("x-ms-continuation") or 0)
        with st.lock:
            paths = self._paths(fs)
            if paths is None:
                return self._error(404, "FilesystemNotFound", "The specified filesystem does not exist.")
            if directory and (directory not in paths or not paths[directory].is_dir):
                return self._error(404, "PathNotFound", "The specified path does not exist.")
            prefix = directory + "/" if directory else ""
            names = sorted(p for p in paths if p.startswith(prefix)
                           and (recursive or "/" not in p[len(prefix):]))
            page = names[start:start + max_results]
            out = []
            for p in page:
                n = paths[p]
                entry = {"name": p, "lastModified": _http_date(n.modified), "etag": n.etag,
                         "contentLength": str(0 if n.is_dir else len(n.data)), "owner": "$superuser",
                         "group": "$superuser", "permissions": "rwxr-x---"}
                if n.is_dir:
                    entry["isDirectory"] = "true"
                out.append(entry)
        headers = {}
        if start + max_results < len(names):
            headers["x-ms-continuation"] = str(start + max_results)
        return self._reply(200, {"paths": out}, headers=headers)

    def _op_delete(self, fs, path, query, body):
        st = self.server.state
        recursive = query.get("recursive", "false").lower() == "true"
        with st.lock:
            paths = self._paths(fs)
            if paths is None:
                return self._error(404, "FilesystemNotFound", "The specified filesystem does not exist.")
            node = paths.get(path)
            if node is None:
                return self._error(404, "PathNotFound", "The specified path does not exist.")
            below = [p for p in paths if p.startswith(path + "/")]
            if node.is_dir and below and not recursive:
                return self._error(409, "DirectoryNotEmpty", "The recursive query parameter value must be true "
                                                             "to delete a non-empty directory.")
            for p in [path, *below]:
                del paths[p]
        return self._reply(200)

    def _op_properties(self, fs, path, query, body):
        with self.server.state.lock:
            paths = self._paths(fs)
            node = paths.get(path) if paths is not None else None
            if node is None:
                return self._error(404, "BlobNotFound", "The specified blob does not exist.", head=True)
            headers = self._blob_headers(node)
        return self._reply(200, headers=headers, head=True)

    @staticmethod
    def _blob_headers(node: Node) -> dict:
        h = {"ETag": node.etag, "Last-Modified": _http_date(node.modified),
             "x-ms-creation-time": _http_date(node.modified), "x-ms-blob-type": "BlockBlob",
             "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available", "x-ms-server-encrypted": "false",
             "Accept-Ranges": "bytes", "Content-Length": str(len(node.data))}
        if node.is_dir:
            h["x-ms-meta-hdi_isfolder"] = "true"
        if node.content_md5:
            h["Content-MD5"] = node.content_md5
        if node.content_type:
            h["Content-Type"] = node.content_type
        return h

    def _op_read(self, fs, path, query, body):
        with self.server.state.lock:
            paths = self._paths(fs)
            node = paths.get(path) if paths is not None else None
            if node is None or node.is_dir:
                return self._error(404, "BlobNotFound", "The specified blob does not exist.")
            headers = self._blob_headers(node)
            data = node.data
        rng = self.headers.get("x-ms-range") or self.headers.get("Range")
        m = re.match(r"bytes=(\d+)-(\d*)", rng or "")
        if m and int(m.group(1)) >= len(data):  # as the service: a range past the end (or of an empty file)
            return self._error(416, "InvalidRange", "The range specified is invalid for the current size "
                                                   "of the resource.")
        if m and data:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            part = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            if node.content_md5:
                headers["x-ms-blob-content-md5"] = node.content_md5
                headers.pop("Content-MD5", None)
            headers["Content-Length"] = str(len(part))
            return self._reply(206, part, headers=headers)
        headers["Content-Length"] = str(len(data))
        return self._reply(200, data, headers=headers)


class _Server(HTTPServer):
    daemon_threads = True

    def __init__(self, addr, state: LakeState, account: str, max_threads: int):
        super().__init__(addr, _Handler)
        self.state = state
        self.account = account
        self.pool = ThreadPoolExecutor(max_threads, thread_name_prefix="fake-adls")
        self.open_sockets: set = set()
        self._sockets_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self._sockets_lock:
            self.open_sockets.add(request)
        self.pool.submit(self._work, request, client_address)

    def _work(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a client that went away
            pass
        finally:
            with self._sockets_lock:
                self.open_sockets.discard(request)
            self.shutdown_request(request)

    def close_connections(self) -> None:
        with self._sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeDataLake:
    """``with FakeDataLake() as lake: lake.account_url, lake.endpoint, lake.inject(...), lake.files(fs)``."""

    def __init__(self, account: str = ACCOUNT, account_key: str = ACCOUNT_KEY, max_threads: int = 32):
        self.account = account
        self.account_key = account_key
        self.state = LakeState()
        self._server = _Server(("127.0.0.1", 0), self.state, account, max_threads)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-adls-server")

    @property
    def endpoint(self) -> str:
        """The ``lake.endpoint`` setting: ``{account}`` is replaced by the account of an abfss:// URI."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{{account}}"

    @property
    def account_url(self) -> str:
        return self.endpoint.format(account=self.account)

    def inject(self, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def pending_faults(self) -> int:
        with self.state.lock:
            return len(self.state.faults)

    def create_filesystem(self, fs: str) -> None:
        with self.state.lock:
            self.state.filesystems.setdefault(fs, {})

    def files(self, fs: str) -> dict[str, bytes]:
        """Committed content of every file (not folders) of a file system."""
        with self.state.lock:
            return {p: n.data for p, n in self.state.filesystems.get(fs, {}).items() if not n.is_dir}

    def node(self, fs: str, path: str) -> Node | None:
        with self.state.lock:
            return self.state.filesystems.get(fs, {}).get(path)

    def put_file(self, fs: str, path: str, data: bytes) -> None:
        """Place a committed file directly (test setup), as another writer would."""
        with self.state.lock:
            paths = self.state.filesystems.setdefault(fs, {})
            parts = path.split("/")
            for i in range(1, len(parts)):
                paths.setdefault("/".join(parts[:i]), Node(is_dir=True, etag='"d"', modified=time.time()))
            self.state.counter += 1
            paths[path] = Node(is_dir=False, data=data, etag=f'"p{self.state.counter}"', modified=time.time(),
                               content_md5=base64.b64encode(hashlib.md5(data).digest()).decode())

    def start(self) -> FakeDataLake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._server.pool.shutdown(wait=False, cancel_futures=True)
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeDataLake:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
