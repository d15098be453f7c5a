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

.PHONY: test book setup setup-system setup-python setup-book demo clean gpu-pack gpu-rehearse

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

# One pytest worker a core (pytest-xdist; a file's tests stay in one worker, for its fixtures):
# most tests run one thread, so a single process left the second core idle.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: setup-book
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

book: setup-book
	$(PY) -m hinas.book build --profile $(PROFILE)

clean:
	rm -rf _build book/generated $(STAMPS)

# What a GPU window needs beside the code (README "Reproduce on a GPU"): the BSDS500 images (denoising
# train/test, SR train fallback and B100) and the small SR test sets, copied into the ignored folder
# .gpu/data. The tree that travels (tracked + untracked files, .gpu, the results folder) must stay
# <= 60 MiB (the device takes 64 MiB); Urban100 (130 MiB) is evaluated later on the CPU.
GPU_DATA ?= $(or $(HINAS_DATA),../shared/data)
GPU_SETS ?= BSDS500 Set5 Set14
GPU_RESULTS ?= results/paper
# a checkout of the released code (hkzhang-git/HiNAS) for `hinas bench gpu-speed --code`; copied, never committed
GPU_CODE ?=
# GPU_NOTEBOOKS=1: also the wheels the chapters need there (scripts/gpu_notebook_wheels.txt, for the GPU
# machine's Python 3.12), so that scripts/gpu_window.sh executes them once with papermill (about 10 MiB)
GPU_NOTEBOOKS ?=
GPU_WHEEL_PLATFORMS := $(foreach n,2_17 2_24 2_26 2_27 2_28 2_31 2_34 2_5 2_12,--platform manylinux_$(n)_x86_64) \
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64
gpu-pack:
	@for s in $(GPU_SETS); do test -d "$(GPU_DATA)/$$s" || { echo "gpu-pack: $(GPU_DATA)/$$s not found; set HINAS_DATA or GPU_DATA to the datasets folder (python data_scripts/download.py $$s)" >&2; exit 2; }; done
	rm -rf .gpu && mkdir -p .gpu/data
	for s in $(GPU_SETS); do cp -R "$(GPU_DATA)/$$s" .gpu/data/; done
	@if [ -n "$(GPU_CODE)" ]; then test -d "$(GPU_CODE)/one_stage_nas" || { echo "gpu-pack: $(GPU_CODE) is not a checkout of hkzhang-git/HiNAS (no one_stage_nas/)" >&2; exit 2; }; \
	  mkdir -p .gpu/released && cp -R "$(GPU_CODE)/one_stage_nas" "$(GPU_CODE)/configs" .gpu/released/ && \
	  find .gpu/released -name __pycache__ -prune -exec rm -rf {} + ; \
	  git -C "$(GPU_CODE)" rev-parse HEAD > .gpu/released/COMMIT 2>/dev/null || true; echo "gpu-pack: released code from $(GPU_CODE) in .gpu/released"; fi
	@if [ -n "$(GPU_NOTEBOOKS)" ]; then \
	  $(or $(wildcard $(PY)),$(PYTHON)) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	    --implementation cp $(GPU_WHEEL_PLATFORMS) -d .gpu/wheels -r scripts/gpu_notebook_wheels.txt \
	  || { echo "gpu-pack: the wheels of scripts/gpu_notebook_wheels.txt did not download (pip's message above)" >&2; exit 2; }; \
	  echo "gpu-pack: $$(ls .gpu/wheels | wc -l) wheels for the chapters in .gpu/wheels ($$(du -sm .gpu/wheels | cut -f1) MiB)"; fi
	@# the commit this tree is at, for provenance where the tree travels without .git (a dirty tree says so)
	@rev=$$(git rev-parse HEAD 2>/dev/null) && { test -z "$$(git status --porcelain --untracked-files=no)" || rev="$$rev-dirty"; } \
	  && echo "$$rev" > .gpu/revision && echo "gpu-pack: provenance names commit $$rev (.gpu/revision)" || true
	@bytes=$$( { git ls-files -z -co --exclude-standard; find .gpu -type f -print0; \
	  test -d $(GPU_RESULTS) && find $(GPU_RESULTS) -type f -print0; } | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1); \
	echo "gpu-pack: .gpu $$(du -sm .gpu | cut -f1) MiB; travelling tree $$((bytes / 1048576)) MiB (limit 60)"; \
	test $$bytes -le 62914560 || { echo "gpu-pack: the travelling tree is over 60 MiB; pack fewer sets (GPU_SETS=...)" >&2; exit 1; }

# a GPU window rehearsed on the CPU with the GPU machine's Python 3.12, torch 2.11 and packages, no graphviz,
# the tree as it travels; then collected into a copy of the results and verified (scripts/gpu_rehearse.sh)
GPU_REHEARSE_SECONDS ?= 600
GPU_REHEARSE_DIR ?= /tmp/hinas-gpu-rehearsal
gpu-rehearse:
	bash scripts/gpu_rehearse.sh $(GPU_REHEARSE_SECONDS) $(GPU_REHEARSE_DIR)
