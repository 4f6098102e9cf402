"""A small local fake of the Databricks AI Search (Vector Search) REST API for direct-access indexes, for
tests of lakedoc's ``databricks_ai_search`` backend. Plain http on 127.0.0.1, bearer-token auth.

* ``POST /api/2.0/vector-search/indexes``                    create (``DIRECT_ACCESS``; 409 when it exists)
* ``GET|DELETE /api/2.0/vector-search/indexes/{name}``       describe (``status.indexed_row_count``), drop
* ``POST /api/2.0/vector-search/indexes/{name}/upsert-data`` ``inputs_json`` rows -> ``SUCCESS`` /
  ``PARTIAL_SUCCESS`` with ``result.failed_primary_keys``
* ``DELETE /api/2.0/vector-search/indexes/{name}/delete-data?primary_keys=..``
* ``POST /api/2.0/vector-search/indexes/{name}/query``       ``query_vector`` (ANN, exact cosine, score
  ``1/(1+distance)``), + ``query_text`` with ``query_type: HYBRID`` (reciprocal rank fusion with term
  overlap), ``filters_json`` (``{"col": v}`` equality, ``{"col": [..]}`` any-of, also on array columns)

Rows must match the index's ``schema_json`` (unknown columns: 400; a vector of another dimension: 400).
Fault injection (:meth:`FakeVectorSearch.inject`): each :class:`Fault` applies to the next request of
its ``op`` (``upsert``, ``delete``, ``query``, ``get``, ``create``): ``status`` (429 with ``retry_after``,
503 ...), ``cut`` (connection closed without an answer), or ``fail_keys``/``fail_every`` (a
``PARTIAL_SUCCESS`` naming those keys, which are not applied). Counters record requests, every row
received and every row applied.
"""
from __future__ import annotations

import json
import math
import re
import socket
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "dapi-test-token"
API = "/api/2.0/vector-search/indexes"


@dataclass
class Fault:
    op: str = "upsert"
    status: int | None = None
    retry_after: str | None = None
    cut: bool = False
    fail_keys: tuple = ()
    fail_every: int = 0


@dataclass
class SearchState:
    indexes: dict = field(default_factory=dict)   # name -> definition
    rows: dict = field(default_factory=dict)      # name -> {pk: row}
    faults: deque = field(default_factory=deque)
    requests: Counter = field(default_factory=Counter)
    received: Counter = field(default_factory=Counter)  # pk -> rows received
    applied: Counter = field(default_factory=Counter)   # pk -> rows applied
    statuses: Counter = field(default_factory=Counter)
    queries: list = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)


def _cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(y * y for y in b)) or 1.0
    return dot / (na * nb)


def _terms(text: str) -> list[str]:
    return re.findall(r"\w+", (text or "").lower())


def _match(row: dict, filters: dict) -> bool:
    for col, want in filters.items():
        have = row.get(col)
        wants = want if isinstance(want, list) else [want]
        haves = have if isinstance(have, list) else [have]
        if not set(map(str, haves)) & set(map(str, wants)):
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5.0
    server: _Server

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict | None = None, headers: dict | None = None):
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        with self.server.state.lock:
            self.server.state.statuses[status] += 1

    def _error(self, status: int, code: str, message: str, headers: dict | None = None):
        self._reply(status, {"error_code": code, "message": message}, headers)

    def _route(self, verb: str):
        u = urlparse(self.path)
        path = unquote(u.path)
        query = parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}") if n else {}
        st = self.server.state
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._error(401, "UNAUTHENTICATED", "invalid token")
        if path == API and verb == "POST":
            op, name = "create", body.get("name")
        else:
            m = re.match(rf"^{re.escape(API)}/([^/]+)(/(upsert-data|delete-data|query))?$", path)
            if not m:
                return self._error(404, "ENDPOINT_NOT_FOUND", path)
            name, sub = m.group(1), m.group(3)
            op = {"upsert-data": "upsert", "delete-data": "delete", "query": "query"}.get(sub or "",
                                                                                          verb.lower())
        with st.lock:
            st.requests[op] += 1
            fault = st.faults[0] if st.faults and st.faults[0].op == op else None
            if fault:
                st.faults.popleft()
        if fault and fault.cut:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if fault and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._error(fault.status, "TEMPORARILY_UNAVAILABLE" if fault.status != 429 else
                               "REQUEST_LIMIT_EXCEEDED", "injected fault", headers)
        return getattr(self, f"_op_{op}")(name, body, query, fault)

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")

    # -- operations -------------------------------------------------------------------------------
    def _op_create(self, name, body, query, fault):
        st = self.server.state
        if body.get("index_type") != "DIRECT_ACCESS" or body.get("primary_key") != "chunk_id":
            return self._error(400, "INVALID_PARAMETER_VALUE", "only DIRECT_ACCESS indexes keyed by chunk_id")
        spec = body.get("direct_access_index_spec") or {}
        json.loads(spec["schema_json"])
        with st.lock:
            if name in st.indexes:
                return self._error(409, "RESOURCE_ALREADY_EXISTS", f"index {name} exists")
            st.indexes[name] = {**body, "status": {"ready": True, "indexed_row_count": 0}}
            st.rows[name] = {}
        return self._reply(200, st.indexes[name])

    def _op_get(self, name, body, query, fault):
        st = self.server.state
        with st.lock:
            if name not in st.indexes:
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"index {name} does not exist")
            info = {**st.indexes[name], "status": {"ready": True, "indexed_row_count": len(st.rows[name])}}
        return self._reply(200, info)

    def _op_delete(self, name, body, query, fault):
        st = self.server.state
        with st.lock:
            if name not in st.indexes:
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"index {name} does not exist")
            if "primary_keys" not in query:  # drop the index
                del st.indexes[name]
                del st.rows[name]
                return self._reply(200, {})
            keys = query["primary_keys"]
            failed = self._failed(keys, fault)
            for k in keys:
                st.received[k] += 1
                if k not in failed:
                    st.rows[name].pop(k, None)
                    st.applied[k] += 1
        return self._result(keys, failed)

    def _failed(self, keys, fault) -> list:
        if not fault:
            return []
        return [k for i, k in enumerate(keys)
                if k in fault.fail_keys or (fault.fail_every and i % fault.fail_every == 0)]

    def _result(self, keys, failed):
        status = "SUCCESS" if not failed else "FAILURE" if len(failed) == len(keys) else "PARTIAL_SUCCESS"
        return self._reply(200, {"status": status, "result": {"success_row_count": len(keys) - len(failed),
                                                              "failed_primary_keys": failed}})

    def _op_upsert(self, name, body, query, fault):
        st = self.server.state
        with st.lock:
            if name not in st.indexes:
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"index {name} does not exist")
            spec = st.indexes[name]["direct_access_index_spec"]
            schema = json.loads(spec["schema_json"])
            dim = spec["embedding_vector_columns"][0]["embedding_dimension"]
            rows = json.loads(body.get("inputs_json") or "[]")
            for r in rows:
                unknown = set(r) - set(schema)
                if unknown:
                    return self._error(400, "INVALID_PARAMETER_VALUE", f"columns not in the schema: {sorted(unknown)}")
                if len(r.get("vector") or []) != dim:
                    return self._error(400, "INVALID_PARAMETER_VALUE", f"vector dimension must be {dim}")
            keys = [r["chunk_id"] for r in rows]
            failed = self._failed(keys, fault)
            for r in rows:
                st.received[r["chunk_id"]] += 1
                if r["chunk_id"] not in failed:
                    st.rows[name][r["chunk_id"]] = r
                    st.applied[r["chunk_id"]] += 1
        return self._result(keys, failed)

    def _op_query(self, name, body, query, fault):
        st = self.server.state
        with st.lock:
            if name not in st.indexes:
                return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"index {name} does not exist")
            st.queries.append(body)
            rows = [r for r in st.rows[name].values() if _match(r, json.loads(body.get("filters_json") or "{}"))]
        k = int(body.get("num_results") or 10)
        rankings = []
        if body.get("query_vector") is not None:
            vec = body["query_vector"]
            rankings.append(sorted(((1.0 / (1.0 + (1.0 - _cosine(vec, r["vector"]))), r) for r in rows),
                                   key=lambda x: -x[0]))
        if body.get("query_type") == "HYBRID" and body.get("query_text"):
            q = set(_terms(body["query_text"]))
            scored = []
            for r in rows:
                t = _terms(r.get("text", ""))
                hits = sum(1 for w in t if w in q)
                if hits:
                    scored.append((hits / math.sqrt(len(t)), r))
            rankings.append(sorted(scored, key=lambda x: -x[0]))
        if len(rankings) == 1:
            final = rankings[0]
        else:
            fused: dict = {}
            for ranking in rankings:
                for rank, (_, r) in enumerate(ranking):
                    s, _r = fused.get(r["chunk_id"], (0.0, r))
                    fused[r["chunk_id"]] = (s + 1.0 / (60 + rank + 1), r)
            final = sorted(fused.values(), key=lambda x: -x[0])
        columns = list(body.get("columns") or ["chunk_id"])
        data = [[r.get(c) for c in columns] + [score] for score, r in final[:k]]
        return self._reply(200, {"manifest": {"column_count": len(columns) + 1,
                                              "columns": [{"name": c} for c in columns] + [{"name": "score"}]},
                                 "result": {"row_count": len(data), "data_array": data}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, state: SearchState, token: str):
        super().__init__(addr, _Handler)
        self.state = state
        self.token = token


class FakeVectorSearch:
    """``with FakeVectorSearch() as svc: svc.host, svc.token, svc.state, svc.inject(...)``."""

    def __init__(self, token: str = TOKEN):
        self.state = SearchState()
        self.token = token
        self._server = _Server(("127.0.0.1", 0), self.state, token)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-vector-search")

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def rows(self, index: str) -> dict:
        with self.state.lock:
            return dict(self.state.rows.get(index, {}))

    def start(self) -> FakeVectorSearch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeVectorSearch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
