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

.PHONY: run rehearsal test lint venv jars samples bench clean check-java

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
test: check-java venv jars lint
	$(PY) -m pytest $(PYTEST_ARGS)
	LAKEDOC_TEST_SPARK_MODE=connect $(PY) -m pytest $(PYTEST_ARGS) tests/test_tables.py tests/test_connect.py

## make lint: ruff and mypy on src/ (configured in pyproject.toml); make test runs it first
lint: venv
	$(PY) -m ruff check src
	$(PY) -m mypy

samples: venv
	$(VENV)/bin/lakedoc samples $(SAMPLES)

bench: check-java venv
	$(PY) bench/ingest.py

clean:
	rm -rf $(WAREHOUSE) $(REHEARSAL_WAREHOUSE) $(SAMPLES) dist build src/*.egg-info .pytest_cache
