# leadmatch — `make demo` and `make test` work from a fresh clone: each creates .venv if missing and installs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools<81" wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"
	# face_recognition's metadata requires `dlib` (a 14-minute source build); dlib-bin already provides it.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps face_recognition==1.3.0
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/leadmatch demo

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
