"""Databricks AI Search (formerly Vector Search): a **direct-access** index, pushed like Azure AI Search.

Why direct access and not a Delta Sync index over the ``embeddings`` table: the index task already
computes exactly which chunks changed (``index_state``) and pushes documents that join chunk text,
labels and vectors; a direct-access index takes those same documents, is queryable as soon as a push
is acknowledged, and works from a laptop or CI against any workspace. A Delta Sync index would need a
source table holding that join (the embeddings table has no text or labels) with change data feed on,
in Unity Catalog — so not on the local ``delta_rs`` store — and a sync pipeline whose lag the index
task cannot observe. No measurement against a real workspace was possible here (no workspace), so the
choice rests on these properties; docs/architecture.md says so.

REST API (``/api/2.0/vector-search``), the calls the databricks-sdk ``VectorSearchIndexesAPI`` makes:

* ``GET /indexes/{name}``; ``POST /indexes`` (``index_type: DIRECT_ACCESS``, ``primary_key: chunk_id``,
  ``direct_access_index_spec``: the ``vector`` column of the model's dimension and the ``schema_json``)
  — an index of another dimension is dropped (``DELETE /indexes/{name}``) and created again;
* ``POST /indexes/{name}/upsert-data`` (``inputs_json``) and ``DELETE /indexes/{name}/delete-data``
  (``primary_keys``): the answer's ``status`` is ``SUCCESS``, ``PARTIAL_SUCCESS`` (with
  ``result.failed_primary_keys``) or ``FAILURE``;
* ``POST /indexes/{name}/query``: ``query_vector`` (ANN) or, for hybrid search, ``query_vector`` +
  ``query_text`` with ``query_type: HYBRID``; filters as ``filters_json``: ``{"format": "pdf"}`` and
  ``{"labels": ["a", "b"]}`` (any of the labels).

Retries are done here, with one explicit bound like the azure_search backend: a request answered
429/500/502/503/504 or a connection error/timeout is re-sent at most ``index.max_retries`` times
(``Retry-After`` honoured, else exponential back-off from ``index.backoff_s``); keys a partial success
reports failed are re-sent at most ``index.item_retries`` times, then reported failed (not recorded in
``index_state``: the next run sends them again). Authentication: the token behind
``index.databricks.token`` (a secret reference), else the databricks-sdk default chain
(``WorkspaceClient().config``: notebook/job runtime, OAuth, ``DATABRICKS_*`` variables). The token is
never logged.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from lakedoc.index.backends.base import IndexBackend, PushResult, backoff_s, iso_utc, retry_after_s
from lakedoc.index.hit import Hit

log = logging.getLogger(__name__)

API = "/api/2.0/vector-search"
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
COLUMNS = ["chunk_id", "doc_id", "seq", "source_path", "file_name", "format", "unit_ref", "text", "labels",
           "label_scores_json", "modified_at"]
SCHEMA = {"chunk_id": "string", "doc_id": "string", "seq": "int", "source_path": "string", "file_name": "string",
          "format": "string", "unit_ref": "string", "text": "string", "vector": "array<float>",
          "labels": "array<string>", "label_scores_json": "string", "modified_at": "string",
          "indexed_at": "string", "model": "string", "run_id": "string"}


class DatabricksSearchError(RuntimeError):
    def __init__(self, status: int | None, message: str):
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


def to_row(doc: dict) -> dict:
    """An index document as a row of the direct-access index (label scores as one JSON string)."""
    row: dict[str, Any] = {}
    for k in SCHEMA:
        if k == "label_scores_json":
            row[k] = json.dumps(doc.get("label_scores") or [], default=str)
        elif k == "vector":
            row[k] = [float(x) for x in doc.get("vector") or []]
        elif k == "labels":
            row[k] = list(doc.get("labels") or [])
        elif k == "seq":
            row[k] = int(doc["seq"]) if doc.get("seq") is not None else None
        else:
            row[k] = iso_utc(doc.get(k))
    return row


def filters(labels: Sequence[str] | None, format: str | None) -> dict | None:
    out: dict[str, Any] = {}
    if labels:
        out["labels"] = list(labels)
    if format:
        out["format"] = format
    return out or None


def default_index_name(cfg) -> str:
    """``catalog.schema.<index.name with dashes as underscores>``: AI Search indexes are Unity Catalog objects."""
    t = cfg.tables
    return f"{t.catalog}.{t.schema_}.{cfg.index.name.replace('-', '_')}"


class DatabricksAISearchBackend(IndexBackend):
    name = "databricks_ai_search"

    def __init__(self, host: str, index_name: str, endpoint_name: str, *, token: str | None = None,
                 auth_headers=None, batch_size: int = 500, max_retries: int = 5, item_retries: int = 3,
                 backoff_s: float = 1.0, backoff_max_s: float = 60.0, parallel_requests: int = 2,
                 timeout_s: float = 120.0, sleep=time.sleep):
        import requests

        self.host = host.rstrip("/")
        self.index_name = index_name
        self.endpoint_name = endpoint_name
        self._token = token
        self._auth_headers = auth_headers
        self.batch_size = max(1, int(batch_size))
        self.max_retries = int(max_retries)
        self.item_retries = int(item_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.parallel_requests = max(1, int(parallel_requests))
        self.timeout_s = float(timeout_s)
        self._sleep = sleep
        self._session = requests.Session()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg, **overrides) -> DatabricksAISearchBackend:
        from lakedoc.secrets import resolve_secret

        ic = cfg.index
        db = ic.databricks
        if not db.endpoint_name:
            raise ValueError("index.databricks.endpoint_name is not set (the AI Search endpoint serving the index)")
        token = resolve_secret(db.token, required=False) if db.token else None
        host, auth = db.host, None
        if token is None or not host:
            from databricks.sdk import WorkspaceClient

            wc_config = WorkspaceClient(host=host or None).config
            host = host or wc_config.host
            if token is None:
                auth = wc_config.authenticate
        if not host:
            raise ValueError("index.databricks.host is not set and the Databricks SDK found no workspace")
        return cls(host, db.index_name or default_index_name(cfg), db.endpoint_name, token=token,
                   auth_headers=auth, batch_size=ic.batch_size, max_retries=ic.max_retries,
                   item_retries=ic.item_retries, backoff_s=ic.backoff_s, backoff_max_s=ic.backoff_max_s,
                   parallel_requests=ic.parallel_requests, timeout_s=db.timeout_s, **overrides)

    # -- transport --------------------------------------------------------------------------------
    def _headers(self) -> dict:
        h = {"Content-Type": "application/json", "User-Agent": "lakedoc"}
        if self._token:
            h["Authorization"] = f"Bearer {self._token}"
        elif self._auth_headers is not None:
            h.update(self._auth_headers())
        return h

    def _backoff(self, attempt: int, headers: Mapping[str, str] | None) -> float:
        return backoff_s(attempt, self.backoff_s, self.backoff_max_s, retry_after_s(headers))

    def _call(self, method: str, path: str, *, body: dict | None = None, params: dict | None = None,
              stats: PushResult | None = None, ok404: bool = False) -> dict | None:
        import requests

        url = f"{self.host}{API}{path}"
        attempt = 0
        while True:
            if stats is not None:
                stats.requests += 1
            status: int | None
            try:
                r = self._session.request(method, url, json=body, params=params, headers=self._headers(),
                                          timeout=(min(30.0, self.timeout_s), self.timeout_s))
                status, retry_headers = r.status_code, r.headers
                if status < 400:
                    return r.json() if r.content else {}
                if status == 404 and ok404:
                    return None
                try:
                    err = r.json()
                    message = f"{err.get('error_code', '')}: {err.get('message', '')}".strip(": ")
                except ValueError:
                    message = r.text[:300]
            except (requests.ConnectionError, requests.Timeout) as exc:
                status, retry_headers, message = None, None, f"{type(exc).__name__}: {str(exc)[:200]}"
            transient = status is None or status in TRANSIENT_STATUS
            if not transient or attempt >= self.max_retries:
                raise DatabricksSearchError(status, message[:500])
            delay = self._backoff(attempt, retry_headers)
            attempt += 1
            if stats is not None:
                stats.retries += 1
            log.info("%s %s: %s, retry %d/%d in %.2fs", method, path, status or message, attempt, self.max_retries,
                     delay)
            self._sleep(delay)

    def _index_path(self, suffix: str = "") -> str:
        return f"/indexes/{quote(self.index_name, safe='')}{suffix}"

    # -- schema -----------------------------------------------------------------------------------
    def index_definition(self, dimension: int) -> dict:
        return {"name": self.index_name, "endpoint_name": self.endpoint_name, "primary_key": "chunk_id",
                "index_type": "DIRECT_ACCESS",
                "direct_access_index_spec": {
                    "embedding_vector_columns": [{"name": "vector", "embedding_dimension": int(dimension)}],
                    "schema_json": json.dumps(SCHEMA)}}

    def ensure_index(self, dimension: int) -> bool:
        current = self._call("GET", self._index_path(), ok404=True)
        if current is not None:
            cols = (current.get("direct_access_index_spec") or {}).get("embedding_vector_columns") or []
            dims = [c.get("embedding_dimension") for c in cols if c.get("name") == "vector"]
            if current.get("index_type") == "DIRECT_ACCESS" and dims and int(dims[0]) == int(dimension):
                return False
            log.warning("index %s is %s with vector dimension %s, the model gives %s: recreating it",
                        self.index_name, current.get("index_type"), dims[0] if dims else None, dimension)
            self._call("DELETE", self._index_path(), ok404=True)
        self._call("POST", "/indexes", body=self.index_definition(dimension))
        return True

    # -- pushing ----------------------------------------------------------------------------------
    def _send(self, rows: list[dict], action: str) -> PushResult:
        result = PushResult()
        pending = {r["chunk_id"]: r for r in rows}
        item_round = 0
        while pending:
            keys = list(pending)
            try:
                if action == "upsert":
                    answer = self._call("POST", self._index_path("/upsert-data"), stats=result,
                                        body={"inputs_json": json.dumps(list(pending.values()))})
                else:
                    answer = self._call("DELETE", self._index_path("/delete-data"), stats=result,
                                        params={"primary_keys": keys})
            except DatabricksSearchError as exc:
                for k in keys:
                    result.failed[k] = str(exc)
                return result
            answer = answer or {}
            status = answer.get("status")
            failed = set((answer.get("result") or {}).get("failed_primary_keys") or [])
            if status == "FAILURE":
                failed = set(keys)
            elif status not in ("SUCCESS", "PARTIAL_SUCCESS"):
                for k in keys:
                    result.failed[k] = f"unexpected answer status {status!r}"
                return result
            result.succeeded.extend(k for k in keys if k not in failed)
            if failed and item_round < self.item_retries:
                item_round += 1
                result.retries += 1
                delay = self._backoff(item_round - 1, None)
                log.info("%s: %d row(s) failed, re-sending (%d/%d) in %.2fs", action, len(failed), item_round,
                         self.item_retries, delay)
                self._sleep(delay)
                pending = {k: pending[k] for k in keys if k in failed}
                continue
            for k in failed:
                result.failed[k] = f"{action} failed ({status})"
            break
        return result

    def _push(self, rows: list[dict], action: str) -> PushResult:
        total = PushResult()
        groups = [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        if len(groups) <= 1 or self.parallel_requests == 1:
            for g in groups:
                total.extend(self._send(g, action))
            return total
        with ThreadPoolExecutor(self.parallel_requests, thread_name_prefix="dbsearch-push") as pool:
            for r in pool.map(lambda g: self._send(g, action), groups):
                total.extend(r)
        return total

    def upsert(self, docs: list[dict]) -> PushResult:
        return self._push([to_row(d) for d in docs], "upsert")

    def delete(self, chunk_ids: Sequence[str]) -> PushResult:
        return self._push([{"chunk_id": c} for c in chunk_ids], "delete")

    def count(self) -> int:
        info = self._call("GET", self._index_path(), ok404=True) or {}
        return int((info.get("status") or {}).get("indexed_row_count") or 0)

    # -- search -----------------------------------------------------------------------------------
    def search(self, vector, text=None, *, labels=None, format=None, k=10, mode="vector") -> list[Hit]:
        if mode not in ("vector", "hybrid"):
            raise ValueError(f"unknown search mode {mode!r}; use vector or hybrid")
        body: dict[str, Any] = {"columns": COLUMNS, "num_results": int(k),
                                "query_vector": [float(x) for x in vector]}
        if mode == "hybrid" and text:
            body["query_text"] = text
            body["query_type"] = "HYBRID"
        else:
            body["query_type"] = "ANN"
        f = filters(labels, format)
        if f:
            body["filters_json"] = json.dumps(f)
        answer = self._call("POST", self._index_path("/query"), body=body) or {}
        names = [c["name"] for c in (answer.get("manifest") or {}).get("columns") or []]
        hits = []
        for values in (answer.get("result") or {}).get("data_array") or []:
            r = dict(zip(names, values, strict=True))
            try:
                scores = json.loads(r.get("label_scores_json") or "[]")
            except ValueError:
                scores = []
            hits.append(Hit(chunk_id=r["chunk_id"], doc_id=r.get("doc_id"), score=float(r.get("score") or 0.0),
                            text=r.get("text") or "", file_name=r.get("file_name"), source_path=r.get("source_path"),
                            format=r.get("format"), unit_ref=r.get("unit_ref"), labels=list(r.get("labels") or []),
                            label_scores=scores, modified_at=r.get("modified_at")))
        return hits

    def close(self) -> None:
        self._session.close()
