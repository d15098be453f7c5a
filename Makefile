# Entry points. `make test` and `make book` each set up everything they need on a
# fresh Debian machine (Python venv in .venv, Debian packages, npm assets), then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# Idle OpenMP threads must not spin: on a shared 2-core machine spinning makes small ops 100x slower.
export OMP_WAIT_POLICY ?= PASSIVE
STAMPS := .stamps
# Re-install when the dependency list changes.
DEPS_HASH := $(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: test book setup setup-system setup-python setup-book demo clean

setup: setup-system setup-python

# Debian packages: graphviz (cell drawings), chromium (the book's browser test).
setup-system:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMPS)/python-$(DEPS_HASH):
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: it takes the local CPU wheel (see README for CUDA builds).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,book,baselines,export]'
	@touch $@

setup-python: $(STAMPS)/python-$(DEPS_HASH)

# MathJax and the Jupyter widget manager, from the npm registry, served by the book itself.
$(STAMPS)/npm-$(DEPS_HASH): book/package.json
	@mkdir -p $(STAMPS)
	cd book && npm install --no-audit --no-fund --silent
	@touch $@

setup-book: setup $(STAMPS)/npm-$(DEPS_HASH)

test: setup-book
	$(PY) -m pytest -q

book: setup-book
	$(PY) -m hinas.book build --profile $(PROFILE)

clean:
	rm -rf _build book/generated $(STAMPS)
