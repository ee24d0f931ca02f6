# Two entry points for a fresh machine (see README):
#   make demo   - set up and run `mmcurate demo` on the bundled sample data
#   make test   - set up and run the test suite (what CI runs)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
APT_PKGS_DEMO := tuxpaint-stamps-default
APT_PKGS_TEST := tuxpaint-stamps-default chromium
# img2dataset (interop test tests/interop/test_img2dataset.py) pins pandas<3 and webdataset<0.3, which
# would downgrade ours: it is installed with --no-deps, plus what its modules import at load time.
IMG2DATASET     := img2dataset==1.47.0
IMG2DATASET_DEPS := fire exifread-nocycle 'albumentations<2' 'opencv-python-headless<5' wandb

.PHONY: demo test setup setup-dev system-demo system-test lint clean

$(VENV)/.installed: pyproject.toml requirements-pins.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c requirements-pins.txt -e '.[dev,ray]'
	$(PIP) install --quiet -c requirements-pins.txt $(IMG2DATASET_DEPS)
	$(PIP) install --quiet --no-deps $(IMG2DATASET)
	touch $@

setup: $(VENV)/.installed

# Debian packages: sample photos (optional) and Chromium for the browser tests.
# Installed only when missing and when we may (root); otherwise the dependent parts skip with a reason.
system-demo:
	@bash scripts/apt_install.sh $(APT_PKGS_DEMO)

system-test:
	@bash scripts/apt_install.sh $(APT_PKGS_TEST)

demo: setup system-demo
	$(VENV)/bin/mmcurate demo --out demo_out

lint: setup
	$(VENV)/bin/ruff check mmcurate tests scripts
	$(VENV)/bin/mypy mmcurate

test: setup system-test lint
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) demo_out .pytest_cache
