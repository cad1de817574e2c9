# Two commands on a fresh machine: `make demo` (one export end to end) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export EXPORT_PIPELINE_HOME ?= $(CURDIR)/.data
export DAGSTER_HOME ?= $(EXPORT_PIPELINE_HOME)/dagster
DEMO_EVENTS ?= 200000
BENCH_EVENTS ?= 1000000,10000000
BENCH_PERSONS ?= 100000,1000000
BENCH_RECORDINGS ?= 500
# Every export figure the median of 2 runs: a single run moves 10-20% on a 2-core machine.
BENCH_ARGS ?= --merged --repeat 2
BENCH_BATCH_EVENTS ?= 10000000
JSON_FIELD = $(BIN)/python -c 'import json,sys; print(json.load(open(sys.argv[2]))[sys.argv[1]])'

.PHONY: install demo test faults dev bench bench-api vendor-charts vendor-api-docs dagster-home system-deps clean validate-deploy

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Pinned by constraints.txt so every machine resolves the same versions.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,postgres,kubernetes]"
	# pyppeteer 2.0 pins websockets<11, which breaks uvicorn (Dagster UI, our API); it runs on the newer one.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt pyppeteer
	touch $@

install: $(VENV)/.installed

dagster-home:
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

demo: install dagster-home system-deps
	$(BIN)/export-pipeline init
	$(BIN)/export-pipeline seed --events $(DEMO_EVENTS) --projects 3 --if-empty
	$(BIN)/export-pipeline members add --project-id 1 --user demo-maintainer --role maintainer
	$(BIN)/export-pipeline dashboards demo --project-id 1 --user demo-maintainer > "$(EXPORT_PIPELINE_HOME)/demo-dashboard.json"
	$(BIN)/export-pipeline export --project-id 1 --requested-by demo-maintainer --format ndjson --wait \
		| tee "$(EXPORT_PIPELINE_HOME)/demo-export.json"
	@id=$$($(JSON_FIELD) export_id "$(EXPORT_PIPELINE_HOME)/demo-export.json"); \
	echo; echo "Files of $$id:"; ls -l "$(EXPORT_PIPELINE_HOME)/exports/1/$$id"; \
	echo; echo "First lines:"; $(BIN)/export-pipeline preview "$$id" --lines 3
	@echo; echo "The project's persons (latest versions, all distinct ids):"; \
	$(BIN)/export-pipeline export --project-id 1 --requested-by demo-maintainer --resource persons --format ndjson \
		--wait > "$(EXPORT_PIPELINE_HOME)/demo-persons.json" && \
	$(BIN)/export-pipeline preview "$$($(JSON_FIELD) export_id "$(EXPORT_PIPELINE_HOME)/demo-persons.json")" --lines 2
	@echo; echo "Its recordings (an index, then one PostHog-format file per session):"; \
	$(BIN)/export-pipeline export --project-id 1 --requested-by demo-maintainer --resource recordings --format csv \
		--wait > "$(EXPORT_PIPELINE_HOME)/demo-recordings.json" && \
	rec=$$($(JSON_FIELD) export_id "$(EXPORT_PIPELINE_HOME)/demo-recordings.json"); \
	$(BIN)/export-pipeline preview "$$rec" --lines 2; \
	first=$$(ls "$(EXPORT_PIPELINE_HOME)/exports/1/$$rec" | grep -m1 '^recording-'); \
	echo "$$first:"; gzip -dc "$(EXPORT_PIPELINE_HOME)/exports/1/$$rec/$$first" | head -c 600; echo " …"
	@board=$$($(JSON_FIELD) dashboard_id "$(EXPORT_PIPELINE_HOME)/demo-dashboard.json"); \
	echo; echo "The demo dashboard as a PNG (1920 px wide at device scale 2):"; \
	$(BIN)/export-pipeline export --project-id 1 --requested-by demo-maintainer --resource dashboard \
		--target-id "$$board" --format png --wait > "$(EXPORT_PIPELINE_HOME)/demo-png.json" && \
	ls -l "$(EXPORT_PIPELINE_HOME)/exports/1/$$($(JSON_FIELD) export_id "$(EXPORT_PIPELINE_HOME)/demo-png.json")"; \
	echo; echo "A weekly subscription to it, delivered now (no credentials: to the outbox):"; \
	$(BIN)/export-pipeline subscriptions demo --project-id 1 --user demo-maintainer --dashboard-id "$$board" \
		> "$(EXPORT_PIPELINE_HOME)/demo-subscription.json" && \
	$(BIN)/export-pipeline subscriptions send-now --project-id 1 \
		"$$($(JSON_FIELD) id "$(EXPORT_PIPELINE_HOME)/demo-subscription.json")" && \
	echo && ls -lR "$(EXPORT_PIPELINE_HOME)/outbox" | tail -n 12

# Debian's Chromium for the browser tests (pyppeteer never downloads one), its colour emoji font (without it an
# emoji in a title is an empty box in every PNG), and PostgreSQL, whose server binaries the tests run as a
# throwaway server (root on CI and fresh machines).
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	fc-list 2>/dev/null | grep -qi "Noto Color Emoji" || missing="$$missing fonts-noto-color-emoji"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }

# The floors first (pyproject.toml [tool.importlinter], docs/architecture.md): an upward import fails at once.
test: install dagster-home system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# Deployment files, offline: deploy/kubernetes rendered by `kubectl kustomize` and checked against the Kubernetes
# schemas and Dagster's (K8sRunLauncher) config schema; the compose stack and Dockerfile against the code.
validate-deploy: install
	$(BIN)/python -m pytest -q export_pipeline_tests/deploy/test_kubernetes.py export_pipeline_tests/deploy/test_deploy.py

# Crash and outage faults (kill -9 of the CLI, the run worker and the S3 server mid-export; reconcile; resume).
faults: install dagster-home system-deps
	$(BIN)/python -m pytest -m faults

# The events endpoint under 20 concurrent clients, and the API's RSS over 2,000 requests (docs/benchmarks.md).
bench-api: install
	$(BIN)/python -m bench.api_load

# The Dagster UI (webserver + daemon) on http://127.0.0.1:3000 and the HTTP API on http://127.0.0.1:8000.
# The instance's storage is created before the webserver and daemon start: both creating the same SQLite
# schemas at once can leave two Alembic heads and a code location that never loads.
dev: install dagster-home
	$(BIN)/export-pipeline init
	$(BIN)/dagster instance migrate
	$(BIN)/export-pipeline api --port 8000 & api=$$!; trap "kill $$api" EXIT; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install system-deps
	$(BIN)/python -m bench.exports --events $(BENCH_EVENTS) $(BENCH_ARGS)
	$(BIN)/python -m bench.persons --persons $(BENCH_PERSONS)
	$(BIN)/python -m bench.recordings --sessions $(BENCH_RECORDINGS)
	$(BIN)/python -m bench.render
	$(BIN)/python -m bench.batch_exports --events $(BENCH_BATCH_EVENTS) --days 90

# Re-fetch the vendored Chart.js from the npm registry (pinned version, integrity checked by npm).
CHARTJS_VERSION := 4.6.1
vendor-charts:
	rm -rf .vendor-charts && mkdir .vendor-charts
	cd .vendor-charts && npm pack --silent chart.js@$(CHARTJS_VERSION) && tar xzf chart.js-$(CHARTJS_VERSION).tgz
	cp .vendor-charts/package/dist/chart.umd.min.js export_pipeline/embed/static/vendor/chart.umd.min.js
	cp .vendor-charts/package/LICENSE.md export_pipeline/embed/static/vendor/chart.js.LICENSE.md
	rm -rf .vendor-charts

# Re-fetch what /docs (Swagger UI) and /redoc draw with, likewise: the API serves them itself, so its docs work
# offline. ReDoc stays on 2.x: 3.x ships an ES module with telemetry, which FastAPI's page does not load.
SWAGGER_UI_VERSION := 5.36.0
REDOC_VERSION := 2.5.4
API_DOCS_VENDOR := export_pipeline/api/static/vendor
vendor-api-docs:
	rm -rf .vendor-api-docs && mkdir -p .vendor-api-docs/swagger .vendor-api-docs/redoc $(API_DOCS_VENDOR)
	cd .vendor-api-docs && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) redoc@$(REDOC_VERSION) \
		&& tar xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz -C swagger && tar xzf redoc-$(REDOC_VERSION).tgz -C redoc
	cp .vendor-api-docs/swagger/package/{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt,swagger-ui.css,favicon-32x32.png} \
		$(API_DOCS_VENDOR)/
	cp .vendor-api-docs/swagger/package/LICENSE $(API_DOCS_VENDOR)/swagger-ui-dist.LICENSE
	cp .vendor-api-docs/swagger/package/NOTICE $(API_DOCS_VENDOR)/swagger-ui-dist.NOTICE
	cp .vendor-api-docs/redoc/package/bundles/{redoc.standalone.js,redoc.standalone.js.LICENSE.txt} $(API_DOCS_VENDOR)/
	cp .vendor-api-docs/redoc/package/LICENSE $(API_DOCS_VENDOR)/redoc.LICENSE
	rm -rf .vendor-api-docs

clean:
	rm -rf .data .pytest_cache
