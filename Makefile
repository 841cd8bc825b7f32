# Quickstart on a fresh Debian/Ubuntu machine:  make demo   and   make test
# Both set up everything they need: system packages (apt-get, when run as root), a virtualenv
# in .venv and the package with its dev extras.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `immichcheck bench --local` needs (make demo): postgresql: initdb/postgres/pgbench for
# the throwaway servers; redis-server + redis-tools: redis-server and redis-benchmark; fio: the
# storage reference tool. Each probe is "binary:package", checked before calling apt-get at all.
RUNTIME_PROBES := "initdb:postgresql" "pgbench:postgresql-contrib" "redis-server:redis-server" \
                  "redis-benchmark:redis-tools" "fio:fio"
# What only the tests add (make test): prometheus (with promtool), prometheus-node-exporter and
# prometheus-pushgateway: the monitoring tests' real parts; chromium: the HTML report test
# opens the report in a headless browser.
TEST_PROBES := "prometheus:prometheus" "promtool:prometheus" \
               "prometheus-node-exporter:prometheus-node-exporter" \
               "prometheus-pushgateway:prometheus-pushgateway" "chromium:chromium"
# Services these packages enable on install; the tests start their own instances instead, so
# the ones just installed are disabled again (a service that was already there is left alone).
SYSTEM_SERVICES := postgresql redis-server prometheus prometheus-node-exporter \
                   prometheus-pushgateway

.PHONY: demo test lint bootstrap system-packages clean

demo: PROBES = $(RUNTIME_PROBES)
demo: bootstrap
	$(BIN)/immichcheck bench --local --profile quick
	$(BIN)/immichcheck report --format markdown --output reports/latest.md --fail-on none
	@echo "Saved runs are under reports/runs/; the comparison report is reports/latest.md"

test: PROBES = $(RUNTIME_PROBES) $(TEST_PROBES)
test: bootstrap lint
	$(BIN)/pytest -q

lint: PROBES = $(RUNTIME_PROBES) $(TEST_PROBES)
lint: bootstrap
	$(BIN)/ruff check immichcheck tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bootstrap: system-packages $(STAMP)

# Installs only what is missing. Debian keeps the PostgreSQL server binaries outside PATH
# (/usr/lib/postgresql/<version>/bin), so look there too.
system-packages:
	@missing=""; \
	for probe in $(or $(PROBES),$(RUNTIME_PROBES) $(TEST_PROBES)); do \
	  tool=$${probe%%:*}; package=$${probe##*:}; \
	  if ! command -v $$tool >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/$$tool >/dev/null 2>&1; then \
	    missing="$$missing $$package"; \
	  fi; \
	done; \
	if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null && \
	    for service in $$missing; do \
	      case " $(SYSTEM_SERVICES) " in *" $$service "*) \
	        (systemctl disable --now $$service || service $$service stop) >/dev/null 2>&1 || true;; \
	      esac; \
	    done; \
	  else \
	    echo "Missing system packages:$$missing"; \
	    echo "Run:  sudo apt-get install -y$$missing"; \
	    exit 3; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "immichcheck needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
