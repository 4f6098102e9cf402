# lakedoc — every target sets itself up (virtual environment, pinned requirements, the package).
# Prerequisites: Python 3.10+ and Java 17+ (for local Spark).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SAMPLES ?= samples
WAREHOUSE ?= warehouse
PYTEST_ARGS ?=

.PHONY: run test venv samples bench clean check-java

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

## make run: generate the samples if missing, run the whole job DAG locally, print the summary
run: check-java venv
	$(VENV)/bin/lakedoc samples $(SAMPLES)
	$(VENV)/bin/lakedoc run --input $(SAMPLES) --warehouse $(WAREHOUSE) --config conf/samples.yml

## make test: the test suite (reads ../shared when present, skips those tests otherwise)
test: check-java venv
	$(PY) -m pytest $(PYTEST_ARGS)

samples: venv
	$(VENV)/bin/lakedoc samples $(SAMPLES)

bench: check-java venv
	$(PY) bench/ingest.py

clean:
	rm -rf $(WAREHOUSE) $(SAMPLES) dist build src/*.egg-info .pytest_cache
