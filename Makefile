# lakedoc — every target sets itself up (virtual environment, pinned requirements, the package).
# Prerequisites: Python 3.10+ and Java 17+ (for local Spark).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JARS    := $(VENV)/.delta-jars
SAMPLES ?= samples
WAREHOUSE ?= warehouse
REHEARSAL_WAREHOUSE ?= warehouse-rehearsal
PYTEST_ARGS ?=

.PHONY: run rehearsal test lint venv jars samples bench bench-peers clean check-java chromium tesseract

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ is required for local Spark (apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	 if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then echo "error: Java 17+ is required for local Spark, found: $$(java -version 2>&1 | head -1)"; exit 1; fi

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Delta Lake's jars (the version of the pinned delta-spark package) for local Delta-on-Spark, fetched
# once with Maven into ~/.cache/lakedoc/jars (without Maven, Spark resolves them at session start).
$(JARS): $(STAMP)
	$(PY) -m lakedoc.spark fetch-jars
	touch $(JARS)

jars: $(JARS)

## make run: generate the samples if missing, run the whole job DAG locally, print the summary
run: check-java venv
	$(VENV)/bin/lakedoc samples $(SAMPLES)
	$(VENV)/bin/lakedoc run --input $(SAMPLES) --warehouse $(WAREHOUSE) --config conf/samples.yml

## make rehearsal: the whole DAG as Databricks runs it — unity_catalog backend (Spark SQL MERGE) on local
## Delta-on-Spark, through a local Spark Connect session — on the samples, tables under $(REHEARSAL_WAREHOUSE)
rehearsal: check-java venv jars
	$(VENV)/bin/lakedoc samples $(SAMPLES)
	$(VENV)/bin/lakedoc run --target rehearsal --input $(SAMPLES) --warehouse $(REHEARSAL_WAREHOUSE) --config conf/samples.yml

## make test: the test suite (reads ../shared when present, skips those tests otherwise), then the
## table-layer and Spark Connect tests again through a local Spark Connect server (a process speaks
## either classic Spark or Spark Connect). The rehearsal run is one of the tests (tests/test_rehearsal.py).
test: check-java venv jars lint chromium tesseract
	$(PY) -m pytest $(PYTEST_ARGS)
	LAKEDOC_TEST_SPARK_MODE=connect $(PY) -m pytest $(PYTEST_ARGS) tests/test_tables.py tests/test_connect.py

## chromium: Debian's headless browser for the run report's browser test (tests/test_report.py), installed
## with apt-get where it can be (root, or sudo without a password). Never fails: without it that test skips.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	 if ! command -v apt-get >/dev/null 2>&1; then echo "note: no chromium and no apt-get: the report's browser test will skip"; exit 0; fi; \
	 if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	 else echo "note: chromium is missing and apt-get needs root: the report's browser test will skip"; exit 0; fi; \
	 echo "installing chromium for the report's headless-browser test"; \
	 $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	 { $$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } || \
	 echo "note: could not install chromium: the report's browser test will skip"; exit 0

## tesseract: Tesseract's English language data (eng.traineddata) for OCR (PyMuPDF has the engine built
## in; ingest.ocr), installed with apt-get where it can be. Never fails: without it the OCR assertions of
## tests/test_ocr.py skip and ingestion gives image_only rows that say the data is missing.
TESSDATA_FILES := /usr/share/tesseract-ocr/5/tessdata/eng.traineddata /usr/share/tesseract-ocr/4.00/tessdata/eng.traineddata /usr/share/tessdata/eng.traineddata
tesseract:
	@for f in $(TESSDATA_FILES) $${TESSDATA_PREFIX:+$$TESSDATA_PREFIX/eng.traineddata}; do [ -f "$$f" ] && exit 0; done; \
	 if ! command -v apt-get >/dev/null 2>&1; then echo "note: no eng.traineddata and no apt-get: OCR tests will skip (set TESSDATA_PREFIX)"; exit 0; fi; \
	 if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	 else echo "note: eng.traineddata is missing and apt-get needs root: OCR tests will skip"; exit 0; fi; \
	 echo "installing tesseract-ocr-eng (OCR language data) for the OCR tests"; \
	 $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr-eng >/dev/null 2>&1 || \
	 { $$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr-eng >/dev/null 2>&1; } || \
	 echo "note: could not install tesseract-ocr-eng: OCR tests will skip"; exit 0

## make lint: ruff and mypy on src/ (configured in pyproject.toml); make test runs it first
lint: venv
	$(PY) -m ruff check src
	$(PY) -m mypy

samples: venv
	$(VENV)/bin/lakedoc samples $(SAMPLES)

bench: check-java venv
	$(PY) bench/ingest.py

## make bench-peers: lakedoc's extraction against unstructured, MarkItDown, Apache Tika and docling on
## ../shared/corpus (bench/peers.py; PEERS_ARGS, e.g. "--quick --json out.json"). The peers go into their
## own environment, .venv-peers (bench/requirements-peers.txt), never into .venv; Tika's jar is fetched
## with Maven into ~/.cache/lakedoc/jars.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
PEERS_ARGS  ?=
$(PEERS_STAMP): bench/requirements-peers.txt
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q -r bench/requirements-peers.txt
	touch $(PEERS_STAMP)

bench-peers: check-java venv $(PEERS_STAMP)
	$(PY) bench/peers.py $(PEERS_ARGS)

clean:
	rm -rf $(WAREHOUSE) $(REHEARSAL_WAREHOUSE) $(SAMPLES) dist build src/*.egg-info .pytest_cache
