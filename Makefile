# muster — every target sets up what it needs; `make demo` and `make test` are the two commands.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: setup demo test lint unit e2e controlplane loadtest clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint,loadtest]'
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)                       ## virtualenv with muster, test and lint tools

demo: setup                           ## the extender on a simulated cluster, driven like kube-scheduler
	$(BIN)/muster demo

lint: setup                           ## ruff, mypy --strict, import-layer contracts
	$(BIN)/ruff check extender tests loadtest
	$(BIN)/ruff format --check extender tests loadtest
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: setup                           ## fast tests: core, service, web, kube adapters (no cluster)
	$(BIN)/pytest -m "not e2e" -q

# Kubernetes releases the end-to-end suite runs on, one control plane after the other: 1.20.2
# (Debian's source, Go 1.19) and 1.36 (Go modules, the Go on PATH; tests/e2e/k8s/1.36/go.mod).
E2E_RELEASES ?= 1.20.2 1.36

controlplane:                         ## build etcd + kube-apiserver/-scheduler/-controller-manager once per release (cached)
	@for release in $(E2E_RELEASES); do bash tests/e2e/controlplane.sh build $$release || exit 1; done

e2e: setup controlplane               ## end to end against each release's real control plane on loopback
	@status=0; for release in $(E2E_RELEASES); do \
	  echo "== e2e on Kubernetes $$release"; \
	  MUSTER_E2E_K8S=$$release $(BIN)/pytest -m e2e -q || status=1; \
	done; exit $$status

test: lint unit e2e                   ## everything CI runs

loadtest: setup                       ## load test on the simulated cluster (see loadtest/README)
	$(BIN)/python loadtest/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
