# Two commands do all the set-up:  `make run`  and  `make test`.
# Everything is installed into .venv and gis_service/assets/node_modules; system packages
# (Chromium for the browser tests, npm) are installed with apt-get when running as root.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
ASSETS := gis_service/assets
APT    := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: run test install install-test assets translations update-translations system-deps lint clean \
        bench-deps

run: install                        ## install, load the sample city if empty, serve on :5000
	GIS_ENV_NAME=$${GIS_ENV_NAME:-development} $(BIN)/gis-service init
	GIS_ENV_NAME=$${GIS_ENV_NAME:-development} $(BIN)/gis-service run --host $(HOST) --port $(PORT)

test: install-test system-deps      ## install everything the tests need, lint, run the suite on both stores
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)
	GIS_TEST_STORE=postgis $(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed assets translations
install-test: install $(VENV)/.installed-test

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed setup.cfg
	$(BIN)/pip install -q -e '.[test]'
	touch $@

assets: $(ASSETS)/node_modules/.installed
$(ASSETS)/node_modules/.installed: $(ASSETS)/package.json $(ASSETS)/package-lock.json
	command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && $(APT) npm; }
	cd $(ASSETS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

translations:                       ## compile the message catalogues (.po -> .mo)
	$(BIN)/pybabel compile --statistics -d gis_service/translations

update-translations:                ## re-extract strings and merge them into the .po files
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k Message -k kept --no-location -o messages.pot .
	$(BIN)/pybabel update -i messages.pot -d gis_service/translations --width 100
	rm messages.pot

SYSTEM_PACKAGES := chromium gdal-bin postgresql postgresql-15-postgis-3 postgis

system-deps:                        ## Debian's Chromium, GDAL's tools and PostgreSQL/PostGIS for the tests
	@if ! command -v chromium >/dev/null || ! command -v ogrinfo >/dev/null \
	    || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	    || ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && $(APT) $(SYSTEM_PACKAGES); \
	  else echo "Install Debian's $(SYSTEM_PACKAGES) (apt-get install) to run the tests"; exit 1; fi; \
	fi

lint:
	$(BIN)/ruff check .

bench-deps:                         ## wrk, nginx, GDAL bindings, pygeoapi and tipg for benchmarks/
	bash benchmarks/alternatives.sh

clean:
	rm -rf $(VENV) $(ASSETS)/node_modules
