"""Azure AI Search (production backend), through ``azure-search-documents`` 12.x.

* ``ensure_index`` creates or updates the index schema: ``chunk_id`` key, searchable ``text`` and
  ``file_name``, filterable/facetable ``labels`` and ``format``, a ``vector`` field of the model's
  dimension on an HNSW profile (cosine), label scores as a complex collection, dates.
* ``upsert``/``delete`` send ``mergeOrUpload``/``delete`` actions keyed by ``chunk_id`` in batches of at
  most ``index.batch_size`` (service limit 1000) documents and ``index.max_request_mb`` (service limit
  16 MB) of JSON, ``index.parallel_requests`` batches in flight.
* Retries are done here, not by azure-core, so they have one explicit bound: a request answered
  429/503 (or 500/502/504, or a connection error) is re-sent at most ``index.max_retries`` times,
  waiting what ``Retry-After`` / ``retry-after-ms`` says, else an exponential back-off from
  ``index.backoff_s`` capped at ``index.backoff_max_s``. A batch answered 207 has per-document status
  codes: documents that failed with a transient status (409, 422, 429, 503) are re-sent at most
  ``index.item_retries`` times; the others, and those still failing, are reported as failed with
  the service's message (the stage does not record them as pushed, so the next run sends them again).

Transport security: API keys are sent by azure-core's ``AzureKeyCredentialPolicy``, which does not
insist on https (12.0.0), so the tests talk plain http to a local fake service; Microsoft Entra ID
tokens (``BearerTokenCredentialPolicy``) refuse non-https URLs, as they should.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lakedoc.config_schema import AzureSearchSettings
from lakedoc.index.backends.base import IndexBackend, PushResult, backoff_s, iso_utc, retry_after_s
from lakedoc.index.hit import Hit

log = logging.getLogger(__name__)

PROFILE = "lakedoc-hnsw-profile"
ALGORITHM = "lakedoc-hnsw"
TRANSIENT_ITEM_STATUS = {409, 422, 429, 503}
TRANSIENT_REQUEST_STATUS = {408, 429, 500, 502, 503, 504}
SELECT = ["chunk_id", "doc_id", "seq", "source_path", "file_name", "format", "unit_ref", "text", "labels",
          "label_scores", "modified_at"]


def to_service_doc(doc: dict) -> dict:
    """An index document as the service wants it: ISO dates, plain float lists, no None collections."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "vector":
            out[k] = [float(x) for x in v]
        elif k in ("labels",):
            out[k] = list(v or [])
        elif k == "label_scores":
            out[k] = [{"label": s["label"], "score": None if s.get("score") is None else float(s["score"]),
                       "method": s.get("method")} for s in (v or [])]
        elif k == "seq":
            out[k] = None if v is None else int(v)
        else:
            out[k] = iso_utc(v)
    return out


def _odata(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def odata_filter(labels: Sequence[str] | None, format: str | None) -> str | None:
    parts = []
    if labels:
        parts.append("labels/any(l: " + " or ".join(f"l eq {_odata(x)}" for x in labels) + ")")
    if format:
        parts.append(f"format eq {_odata(format)}")
    return " and ".join(parts) or None


def batches(docs: list[dict], max_docs: int, max_bytes: int) -> Iterable[list[dict]]:
    """Greedy batches under both service limits (a document alone over max_bytes goes alone)."""
    cur: list[dict] = []
    size = 20  # {"value": []}
    for d in docs:
        n = len(json.dumps(d, separators=(",", ":"))) + 40  # + "@search.action" and separators
        if cur and (len(cur) >= max_docs or size + n > max_bytes):
            yield cur
            cur, size = [], 20
        cur.append(d)
        size += n
    if cur:
        yield cur


class AzureSearchBackend(IndexBackend):
    name = "azure_search"

    def __init__(self, endpoint: str, index_name: str, credential, *, batch_size: int = 500,
                 max_request_mb: float = 12.0, max_retries: int = 5, item_retries: int = 3, backoff_s: float = 1.0,
                 backoff_max_s: float = 60.0, parallel_requests: int = 2, api_version: str | None = None,
                 timeout_s: float = 120.0, hnsw_m: int = 4, hnsw_ef_construction: int = 400,
                 hnsw_ef_search: int = 500, sleep=time.sleep):
        from azure.search.documents import SearchClient
        from azure.search.documents.indexes import SearchIndexClient

        self.endpoint = endpoint.rstrip("/")
        self.index_name = index_name
        self.batch_size = min(int(batch_size), 1000)
        self.max_bytes = int(min(float(max_request_mb), 16.0) * 1_000_000)
        self.max_retries = int(max_retries)
        self.item_retries = int(item_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.parallel_requests = max(1, int(parallel_requests))
        self.hnsw = dict(m=hnsw_m, ef_construction=hnsw_ef_construction, ef_search=hnsw_ef_search)
        self._sleep = sleep
        kw: dict = {"read_timeout": timeout_s, "connection_timeout": 30}
        if api_version:
            kw["api_version"] = api_version
        # indexing: retries are ours (one explicit bound); queries and schema calls: azure-core's policy
        self.push_client = SearchClient(self.endpoint, index_name, credential, retry_total=0, **kw)
        self.query_client = SearchClient(self.endpoint, index_name, credential, retry_total=max_retries,
                                         retry_backoff_factor=backoff_s, retry_backoff_max=backoff_max_s, **kw)
        self.index_client = SearchIndexClient(self.endpoint, credential, retry_total=max_retries,
                                              retry_backoff_factor=backoff_s, retry_backoff_max=backoff_max_s, **kw)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "request_retries": 0, "item_retries": 0}

    @classmethod
    def from_config(cls, cfg, **overrides) -> AzureSearchBackend:
        ic, az = cfg.index, cfg.index.azure
        if not az.endpoint:
            raise ValueError("index.azure.endpoint is not set (https://<service>.search.windows.net)")
        return cls(az.endpoint, ic.name, make_credential(az), batch_size=ic.batch_size,
                   max_request_mb=ic.max_request_mb, max_retries=ic.max_retries,
                   item_retries=ic.item_retries, backoff_s=ic.backoff_s, backoff_max_s=ic.backoff_max_s,
                   parallel_requests=ic.parallel_requests, api_version=az.api_version,
                   timeout_s=az.timeout_s, hnsw_m=az.hnsw_m, hnsw_ef_construction=az.hnsw_ef_construction,
                   hnsw_ef_search=az.hnsw_ef_search, **overrides)

    # -- schema -----------------------------------------------------------------------------------
    def index_definition(self, dimension: int):
        from azure.search.documents.indexes.models import (
            ComplexField,
            HnswAlgorithmConfiguration,
            HnswParameters,
            SearchableField,
            SearchField,
            SearchFieldDataType as T,
            SearchIndex,
            SimpleField,
            VectorSearch,
            VectorSearchProfile,
        )

        fields = [
            SimpleField(name="chunk_id", type=T.STRING, key=True, filterable=True),
            SimpleField(name="doc_id", type=T.STRING, filterable=True),
            SimpleField(name="seq", type=T.INT32, filterable=True, sortable=True),
            SimpleField(name="source_path", type=T.STRING, filterable=True),
            SearchableField(name="file_name", type=T.STRING, filterable=True),
            SimpleField(name="format", type=T.STRING, filterable=True, facetable=True),
            SimpleField(name="unit_ref", type=T.STRING),
            SearchableField(name="text", type=T.STRING, analyzer_name="en.lucene"),
            SearchField(name="vector", type="Collection(Edm.Single)", searchable=True,
                        vector_search_dimensions=int(dimension), vector_search_profile_name=PROFILE),
            SimpleField(name="labels", type="Collection(Edm.String)", filterable=True, facetable=True),
            ComplexField(name="label_scores", collection=True, fields=[
                SimpleField(name="label", type=T.STRING, filterable=True),
                SimpleField(name="score", type=T.DOUBLE, filterable=True),
                SimpleField(name="method", type=T.STRING, filterable=True),
            ]),
            SimpleField(name="modified_at", type=T.DATE_TIME_OFFSET, filterable=True, sortable=True),
            SimpleField(name="indexed_at", type=T.DATE_TIME_OFFSET, filterable=True, sortable=True),
            SimpleField(name="model", type=T.STRING, filterable=True),
            SimpleField(name="run_id", type=T.STRING, filterable=True),
        ]
        vector_search = VectorSearch(
            algorithms=[HnswAlgorithmConfiguration(name=ALGORITHM, parameters=HnswParameters(
                m=self.hnsw["m"], ef_construction=self.hnsw["ef_construction"], ef_search=self.hnsw["ef_search"],
                metric="cosine"))],
            profiles=[VectorSearchProfile(name=PROFILE, algorithm_configuration_name=ALGORITHM)],
        )
        return SearchIndex(name=self.index_name, fields=fields, vector_search=vector_search)

    def ensure_index(self, dimension: int) -> bool:
        """Create or update the index. A vector field of another dimension cannot be changed in place:
        the index is dropped and recreated. Returns True when the index is new (send everything)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            current = self.index_client.get_index(self.index_name)
        except ResourceNotFoundError:
            current = None
        fresh = current is None
        if current is not None:
            dims = [f.vector_search_dimensions for f in current.fields or [] if f.name == "vector"]
            if dims and dims[0] != int(dimension):
                log.warning("index %s has vector dimension %s, the model gives %s: recreating it",
                            self.index_name, dims[0], dimension)
                self.index_client.delete_index(self.index_name)
                fresh = True
        self.index_client.create_or_update_index(self.index_definition(dimension))
        return fresh

    # -- pushing ----------------------------------------------------------------------------------
    def _backoff(self, attempt: int, response=None) -> float:
        headers = getattr(response, "headers", None) if response is not None else None
        return backoff_s(attempt, self.backoff_s, self.backoff_max_s, retry_after_s(headers))

    def _send(self, docs: list[dict], action: str) -> PushResult:
        """One batch, with request-level and item-level retries (see the module docstring)."""
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
        from azure.search.documents.models import IndexAction, IndexDocumentsBatch

        result = PushResult()
        by_key = {d["chunk_id"]: d for d in docs}
        pending = list(by_key)
        item_round = 0
        while pending:
            actions = [IndexAction({**by_key[k], "@search.action": action}) for k in pending]
            request_try = 0
            while True:
                result.requests += 1
                try:
                    outcome = self.push_client.index_documents(IndexDocumentsBatch(actions=actions))
                    break
                except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
                    status = getattr(exc, "status_code", None)
                    transient = status is None or status in TRANSIENT_REQUEST_STATUS
                    if not transient or request_try >= self.max_retries:
                        msg = f"HTTP {status}: {exc.message if hasattr(exc, 'message') else exc}"[:500]
                        for k in pending:
                            result.failed[k] = msg
                        return result
                    delay = self._backoff(request_try, getattr(exc, "response", None))
                    request_try += 1
                    result.retries += 1
                    log.info("%s batch of %d: HTTP %s, retry %d/%d in %.2fs", action, len(pending), status,
                             request_try, self.max_retries, delay)
                    self._sleep(delay)
            retry: list[str] = []
            seen = set()
            for r in outcome:
                seen.add(r.key)
                code = int(r.status_code or 0)
                if r.succeeded or code in (200, 201) or (action == "delete" and code == 404):
                    result.succeeded.append(r.key)
                elif code in TRANSIENT_ITEM_STATUS and item_round < self.item_retries:
                    retry.append(r.key)
                else:
                    result.failed[r.key] = f"HTTP {code}: {r.error_message or 'failed'}"
            for k in pending:  # a result the service did not report is not a success
                if k not in seen:
                    result.failed[k] = "no status returned for this document"
            if retry:
                item_round += 1
                result.retries += 1
                delay = self._backoff(item_round - 1)
                log.info("%s: %d document(s) failed transiently, re-sending (%d/%d) in %.2fs", action, len(retry),
                         item_round, self.item_retries, delay)
                self._sleep(delay)
            pending = retry
        return result

    def _push(self, docs: list[dict], action: str) -> PushResult:
        total = PushResult()
        groups = list(batches(docs, self.batch_size, self.max_bytes))
        if not groups:
            return total
        if self.parallel_requests == 1 or len(groups) == 1:
            for g in groups:
                total.extend(self._send(g, action))
        else:
            with ThreadPoolExecutor(self.parallel_requests, thread_name_prefix="azsearch-push") as pool:
                for r in pool.map(lambda g: self._send(g, action), groups):
                    total.extend(r)
        return total

    def upsert(self, docs: list[dict]) -> PushResult:
        return self._push([to_service_doc(d) for d in docs], "mergeOrUpload")

    def delete(self, chunk_ids: Sequence[str]) -> PushResult:
        return self._push([{"chunk_id": c} for c in chunk_ids], "delete")

    def count(self) -> int:
        return int(self.query_client.get_document_count())

    # -- search -----------------------------------------------------------------------------------
    def search(self, vector, text=None, *, labels=None, format=None, k=10, mode="vector") -> list[Hit]:
        from azure.search.documents.models import VectorizedQuery

        if mode not in ("vector", "hybrid"):
            raise ValueError(f"unknown search mode {mode!r}; use vector or hybrid")
        vq = VectorizedQuery(vector=[float(x) for x in vector], k_nearest_neighbors=k, fields="vector")
        results = self.query_client.search(
            search_text=text if mode == "hybrid" else None, vector_queries=[vq],
            filter=odata_filter(labels, format), select=SELECT, top=k)
        hits = []
        for r in results:
            hits.append(Hit(chunk_id=r["chunk_id"], doc_id=r.get("doc_id"), score=float(r.get("@search.score") or 0),
                            text=r.get("text") or "", file_name=r.get("file_name"), source_path=r.get("source_path"),
                            format=r.get("format"), unit_ref=r.get("unit_ref"), labels=list(r.get("labels") or []),
                            label_scores=list(r.get("label_scores") or []), modified_at=r.get("modified_at")))
        return hits

    def close(self) -> None:
        for c in (self.push_client, self.query_client, self.index_client):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - best effort: one client failing to close must not leak the others
                pass


def make_credential(az: AzureSearchSettings):
    """API key (from a secret reference) or Microsoft Entra ID (DefaultAzureCredential)."""
    if az.auth == "entra":
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    from azure.core.credentials import AzureKeyCredential

    from lakedoc.secrets import resolve_secret

    return AzureKeyCredential(resolve_secret(az.api_key))
