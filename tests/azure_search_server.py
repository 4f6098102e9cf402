"""A small local fake of the Azure AI Search REST API, for tests and the upload benchmark.

It implements exactly the operations lakedoc's ``azure_search`` backend calls through the real
``azure-search-documents`` SDK, over plain http on 127.0.0.1 (API-key auth does not require TLS):

* ``GET/PUT/DELETE /indexes('NAME')``           index definition (get, create or update, drop)
* ``POST /indexes('NAME')/docs/search.index``   batch of ``upload``/``merge``/``mergeOrUpload``/``delete``
  actions; answers 200, or 207 with per-document status codes when some fail
* ``POST /indexes('NAME')/docs/search.post.search``  ``vectorQueries`` (exact cosine, score
  ``1/(1+distance)`` like the service), ``search`` (term overlap), hybrid (reciprocal rank fusion),
  the ``filter`` forms lakedoc writes (``labels/any(l: l eq 'a' or ...)``, ``format eq 'x'``, ``and``)
* ``GET /indexes('NAME')/docs/$count``

Limits like the service: 1000 actions and 16 MB per request (413 beyond). Requests are served by a
bounded pool of threads. Fault injection: :meth:`FakeSearchService.inject` queues faults that apply
to the next index-batch requests — ``status=429`` with ``Retry-After`` (seconds) or ``retry_after_ms``,
``status=503``, or ``fail_keys``/``fail_every`` to fail some documents of one batch with
``item_status`` (207 response). Counters record every request and every document action received.
"""
from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import unquote, urlparse

MAX_ACTIONS = 1000
MAX_BYTES = 16 * 1024 * 1024
API_KEY = "test-admin-key"


@dataclass
class Fault:
    status: int | None = None          # whole-request status (429, 503, ...)
    retry_after: str | None = None     # Retry-After header (seconds)
    retry_after_ms: int | None = None  # retry-after-ms header
    fail_keys: tuple = ()              # keys that fail inside an otherwise processed batch
    fail_every: int = 0                # ... or every n-th action of the batch
    item_status: int = 503             # status of those failed items
    op: str = "index"                  # which operation the fault applies to


@dataclass
class ServiceState:
    indexes: dict = field(default_factory=dict)     # name -> definition
    docs: dict = field(default_factory=dict)        # name -> {key: doc}
    faults: deque = field(default_factory=deque)
    requests: Counter = field(default_factory=Counter)   # op -> count
    actions_received: Counter = field(default_factory=Counter)  # key -> number of actions received
    actions_applied: Counter = field(default_factory=Counter)   # key -> number applied (200/201)
    statuses: Counter = field(default_factory=Counter)   # response status -> count
    lock: threading.Lock = field(default_factory=threading.Lock)


def _key_field(definition: dict) -> str:
    return next(f["name"] for f in definition.get("fields", []) if f.get("key"))


_LABEL_ANY = re.compile(r"^(\w+)/any\((\w+):\s*(.+)\)$")
_EQ = re.compile(r"^(\w+)\s+eq\s+'((?:[^']|'')*)'$")


def _split_top(expr: str, word: str) -> list[str]:
    """Split on ' and ' / ' or ' outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, False, 0, 0
    token = f" {word} "
    while i < len(expr):
        c = expr[i]
        if c == "'":
            quote = not quote
        elif not quote and c == "(":
            depth += 1
        elif not quote and c == ")":
            depth -= 1
        elif not quote and depth == 0 and expr.startswith(token, i):
            parts.append(expr[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


def compile_filter(expr: str | None):
    """The OData subset lakedoc writes -> a predicate on a document; ValueError otherwise."""
    if not expr:
        return lambda doc: True
    preds = []
    for term in _split_top(expr.strip(), "and"):
        m = _LABEL_ANY.match(term)
        if m:
            coll, var, inner = m.groups()
            values = []
            for alt in _split_top(inner, "or"):
                e = _EQ.match(alt)
                if not e or e.group(1) != var:
                    raise ValueError(f"unsupported filter term {alt!r}")
                values.append(e.group(2).replace("''", "'"))
            preds.append(lambda d, c=coll, vs=frozenset(values): bool(set(d.get(c) or []) & vs))
            continue
        e = _EQ.match(term)
        if e:
            preds.append(lambda d, f=e.group(1), v=e.group(2).replace("''", "'"): d.get(f) == v)
            continue
        raise ValueError(f"unsupported filter {term!r}")
    return lambda doc: all(p(doc) for p in preds)


def _cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(y * y for y in b)) or 1.0
    return dot / (na * nb)


def _terms(text: str) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2.0  # an idle keep-alive connection frees its worker thread after this
    server: "_Server"

    def log_message(self, *args):  # quiet
        pass

    # -- helpers ----------------------------------------------------------------------------------
    def _reply(self, status: int, body=None, headers: dict | None = None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)
        with self.server.state.lock:
            self.server.state.statuses[status] += 1

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _route(self):
        path = unquote(urlparse(self.path).path)
        m = re.match(r"^/indexes\('([^']+)'\)(/docs/(search\.index|search\.post\.search|\$count))?$", path)
        if not m:
            m2 = re.match(r"^/indexes/([^/]+?)(/docs/(search\.index|search\.post\.search|\$count))?$", path)
            m = m2
        return (m.group(1), m.group(3)) if m else (None, None)

    def _authorised(self) -> bool:
        if self.headers.get("api-key") == self.server.api_key:
            return True
        self._body()
        self._reply(403, {"error": {"code": "Forbidden", "message": "invalid api-key"}})
        return False

    def _take_fault(self, op: str) -> Fault | None:
        st = self.server.state
        with st.lock:
            if st.faults and st.faults[0].op == op:
                return st.faults.popleft()
        return None

    # -- verbs ------------------------------------------------------------------------------------
    def do_GET(self):
        if not self._authorised():
            return
        name, op = self._route()
        st = self.server.state
        with st.lock:
            st.requests["get_" + (op or "index")] += 1
            exists = name in st.indexes
            definition = st.indexes.get(name)
            count = len(st.docs.get(name, {}))
        if not exists:
            return self._reply(404, {"error": {"code": "ResourceNameNotFound", "message": f"no index {name}"}})
        if op == "$count":
            data = str(count).encode("utf-8-sig")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        return self._reply(200, definition)

    def do_DELETE(self):
        if not self._authorised():
            return
        name, _ = self._route()
        st = self.server.state
        with st.lock:
            st.requests["delete_index"] += 1
            existed = st.indexes.pop(name, None) is not None
            st.docs.pop(name, None)
        return self._reply(204 if existed else 404)

    def do_PUT(self):
        if not self._authorised():
            return
        name, _ = self._route()
        body = json.loads(self._body() or b"{}")
        st = self.server.state
        with st.lock:
            st.requests["put_index"] += 1
            created = name not in st.indexes
            body["name"] = name
            body["@odata.etag"] = f'"{st.requests["put_index"]}"'
            st.indexes[name] = body
            st.docs.setdefault(name, {})
        return self._reply(201 if created else 200, body)

    def do_POST(self):
        if not self._authorised():
            return
        name, op = self._route()
        raw = self._body()
        st = self.server.state
        with st.lock:
            st.requests[op or "post"] += 1
            exists = name in st.indexes
        if not exists:
            return self._reply(404, {"error": {"code": "ResourceNameNotFound", "message": f"no index {name}"}})
        if op == "search.index":
            return self._index(name, raw)
        if op == "search.post.search":
            return self._search(name, json.loads(raw or b"{}"))
        return self._reply(404, {"error": {"code": "NotFound", "message": self.path}})

    def _index(self, name: str, raw: bytes):
        st = self.server.state
        fault = self._take_fault("index")
        if fault and fault.status:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = str(fault.retry_after_ms)
            return self._reply(fault.status, {"error": {"code": str(fault.status), "message": "injected fault"}},
                               headers)
        if len(raw) > MAX_BYTES:
            return self._reply(413, {"error": {"code": "RequestEntityTooLarge", "message": "over 16 MB"}})
        actions = json.loads(raw).get("value", [])
        if len(actions) > MAX_ACTIONS:
            return self._reply(400, {"error": {"code": "InvalidRequest",
                                               "message": f"{len(actions)} actions, the limit is {MAX_ACTIONS}"}})
        with st.lock:
            key_field = _key_field(st.indexes[name])
            store = st.docs[name]
            results, any_failed = [], False
            for i, a in enumerate(actions):
                kind = a.pop("@search.action", "upload")
                key = a.get(key_field)
                st.actions_received[key] += 1
                if fault and (key in fault.fail_keys or (fault.fail_every and i % fault.fail_every == 0)):
                    any_failed = True
                    results.append({"key": key, "status": False, "errorMessage": "injected item failure",
                                    "statusCode": fault.item_status})
                    continue
                if kind == "delete":
                    store.pop(key, None)
                    code = 200
                elif kind == "merge":
                    if key not in store:
                        any_failed = True
                        results.append({"key": key, "status": False, "errorMessage": "Document not found.",
                                        "statusCode": 404})
                        continue
                    store[key].update(a)
                    code = 200
                elif kind == "mergeOrUpload":
                    code = 200 if key in store else 201
                    store[key] = {**store.get(key, {}), **a}
                else:  # upload
                    code = 200 if key in store else 201
                    store[key] = a
                st.actions_applied[key] += 1
                results.append({"key": key, "status": True, "errorMessage": None, "statusCode": code})
        return self._reply(207 if any_failed else 200, {"value": results})

    def _search(self, name: str, body: dict):
        st = self.server.state
        try:
            pred = compile_filter(body.get("filter"))
        except ValueError as exc:
            return self._reply(400, {"error": {"code": "InvalidRequestParameter", "message": str(exc)}})
        with st.lock:
            docs = [d for d in st.docs[name].values() if pred(d)]
        top = int(body.get("top") or 50)
        rankings = []
        for vq in body.get("vectorQueries") or []:
            vec, field_name = vq["vector"], vq.get("fields", "vector")
            k = int(vq.get("k") or vq.get("kNearestNeighbors") or top)
            scored = sorted(((1.0 / (1.0 + (1.0 - _cosine(vec, d.get(field_name) or []))), d) for d in docs),
                            key=lambda x: -x[0])[:k]
            rankings.append(scored)
        text = body.get("search")
        if text and text != "*":
            q = set(_terms(text))
            scored = []
            for d in docs:
                t = _terms(d.get("text", ""))
                hits = sum(1 for w in t if w in q)
                if hits:
                    scored.append((hits / math.sqrt(len(t)), d))
            rankings.append(sorted(scored, key=lambda x: -x[0]))
        if not rankings:
            final = [(1.0, d) for d in docs]
        elif len(rankings) == 1:
            final = rankings[0]
        else:  # reciprocal rank fusion, as the service does for hybrid queries
            fused: dict = {}
            keyf = _key_field(st.indexes[name])
            for ranking in rankings:
                for rank, (_, d) in enumerate(ranking):
                    s, _d = fused.get(d[keyf], (0.0, d))
                    fused[d[keyf]] = (s + 1.0 / (60 + rank + 1), d)
            final = sorted(fused.values(), key=lambda x: -x[0])
        select = [s.strip() for s in (body.get("select") or "").split(",") if s.strip()]
        out = []
        for score, d in final[:top]:
            row = {k: v for k, v in d.items() if not select or k in select}
            row["@search.score"] = score
            out.append(row)
        return self._reply(200, {"value": out})


class _Server(HTTPServer):
    daemon_threads = True

    def __init__(self, addr, state: ServiceState, api_key: str, max_threads: int):
        super().__init__(addr, _Handler)
        self.state = state
        self.api_key = api_key
        self.pool = ThreadPoolExecutor(max_threads, thread_name_prefix="fake-search")
        self.open_sockets: set = set()
        self._sockets_lock = threading.Lock()

    def process_request(self, request, client_address):  # bounded pool instead of a thread per request
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
        import socket

        with self._sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeSearchService:
    """``with FakeSearchService() as svc: svc.endpoint, svc.api_key, svc.state, svc.inject(...)``."""

    def __init__(self, api_key: str = API_KEY, max_threads: int = 16):
        self.state = ServiceState()
        self.api_key = api_key
        self._server = _Server(("127.0.0.1", 0), self.state, api_key, max_threads)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-search-server")

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def documents(self, index: str) -> dict:
        with self.state.lock:
            return dict(self.state.docs.get(index, {}))

    def start(self) -> "FakeSearchService":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._server.pool.shutdown(wait=True, cancel_futures=True)
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeSearchService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
