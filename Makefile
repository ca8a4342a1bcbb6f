# Set-up and common tasks. `make setup` creates .venv and installs everything (as root it also
# installs the Debian libraries Open3D needs); `make test` runs the test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: setup test demo system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  if ! dpkg -s libusb-1.0-0 libegl1 libgl1 libgomp1 >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq libusb-1.0-0 libegl1 libgl1 libgomp1 >/dev/null; \
	  fi; \
	else echo "note: not root; make sure libusb-1.0-0, libegl1, libgl1 are installed for Open3D"; fi

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(MAKE) system-deps
	# torch first, pinned, so the CPU wheel is used and no CUDA build is pulled on CPU machines.
	$(BIN)/pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/recon run samples/face.mp4 --no-view --save-video runs/demo/overlay.mp4 --json runs/demo/summary.json

clean:
	rm -rf $(VENV) build *.egg-info
