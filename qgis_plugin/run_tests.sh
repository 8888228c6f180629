#!/usr/bin/env bash
# Tests of the geosr QGIS plugin in real QGIS (Debian's qgis package, run headless).
#
#   bash qgis_plugin/run_tests.sh [pytest args...]
#
# - installs QGIS with apt-get when /usr/bin/qgis_process.bin is missing (needs root);
# - leaves the caller's virtualenv, if one is active, for everything it starts (QGIS's
#   embedded Python would take that venv's python3; tests/no_virtualenv.py);
# - makes .venv-qgis: the system Python (QGIS's own) with --system-site-packages plus only
#   pytest and pytest-qgis, so nothing shadows Debian's numpy/GDAL;
# - points the plugin at geosr's own environment: GEOSR_PYTHON, default $REPO/.venv/bin/python
#   (made by `make setup` when missing);
# - finds the geosr wheel the set-up tests install: GEOSR_WHEEL, else dist/geosr-*.whl
#   ('make dist'), else one built here from the checkout;
# - runs qgis_plugin/tests with a throwaway QGIS profile and no display. Pass -m "not slow" to
#   leave out the tests that install geosr with PyTorch into a fresh environment (minutes).
#
# Without QGIS (and no way to install it) the tests are skipped with the reason, except when
# CI=true: then this script fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
QGIS_PROCESS="${QGIS_PROCESS:-/usr/bin/qgis_process.bin}" # not /usr/bin/qgis_process (Debian's wrapper is broken)
SYSTEM_PYTHON=/usr/bin/python3
VENV="$REPO/.venv-qgis"
export QGIS_PROCESS

# Leave the caller's virtualenv for everything started here: QGIS's embedded Python takes the
# first python3 on PATH for its prefix, and a venv's lacks Debian's qgis package.
if [ -x "$SYSTEM_PYTHON" ]; then
    eval "$("$SYSTEM_PYTHON" -I "$HERE/tests/no_virtualenv.py")"
fi

unavailable() {
    if [ "${CI:-}" = "true" ]; then
        echo "qgis_plugin/run_tests.sh: error: $1 (CI=true: the QGIS plugin tests must run)" >&2
        exit 1
    fi
    echo "qgis_plugin/run_tests.sh: SKIPPED all QGIS plugin tests: $1"
    exit 0
}

qgis_works() {
    [ -x "$QGIS_PROCESS" ] && QT_QPA_PLATFORM=offscreen "$QGIS_PROCESS" --version >/dev/null 2>&1 \
        && "$SYSTEM_PYTHON" -c "import qgis.core" >/dev/null 2>&1
}

if ! qgis_works; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "qgis_plugin/run_tests.sh: installing QGIS (apt-get install qgis)..."
        if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends qgis python3-venv; } >"${TMPDIR:-/tmp}/geosr-qgis-apt.log" 2>&1; then
            tail -n 20 "${TMPDIR:-/tmp}/geosr-qgis-apt.log" >&2
            unavailable "apt-get could not install QGIS"
        fi
    else
        unavailable "QGIS is not installed ($QGIS_PROCESS, python3-qgis) and apt-get as root is not available"
    fi
    qgis_works || unavailable "QGIS was installed but '$QGIS_PROCESS --version' or 'import qgis.core' fails"
fi

# The plugin-test venv: QGIS's Python, plus pytest and pytest-qgis only.
if ! "$VENV/bin/python" -c "import pytest, pytest_qgis, qgis.core" >/dev/null 2>&1; then
    rm -rf "$VENV"
    "$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pytest>=8" "pytest-qgis==5.0.2"
fi

# geosr's own environment, which the plugin runs as a child process.
export GEOSR_PYTHON="${GEOSR_PYTHON:-$REPO/.venv/bin/python}"
if [ ! -x "$GEOSR_PYTHON" ] && [ "$GEOSR_PYTHON" = "$REPO/.venv/bin/python" ] && [ -f "$REPO/Makefile" ]; then
    echo "qgis_plugin/run_tests.sh: $GEOSR_PYTHON is missing; running 'make setup'"
    make -C "$REPO" setup
fi

# Headless QGIS with a throwaway profile (never the user's own).
WORK="$(mktemp -d "${TMPDIR:-/tmp}/geosr-qgis-tests.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The set-up tests install geosr from a wheel file, as a user without geosr on an index would.
if [ -z "${GEOSR_WHEEL:-}" ] && ! ls "$REPO"/dist/geosr-*.whl >/dev/null 2>&1 && [ -x "$GEOSR_PYTHON" ]; then
    if { "$GEOSR_PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheel" "$REPO" \
        || "$GEOSR_PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheel" "$REPO"; } >"$WORK/wheel.log" 2>&1; then
        GEOSR_WHEEL="$(ls "$WORK"/wheel/geosr-*.whl)"
        export GEOSR_WHEEL
    else
        tail -n 5 "$WORK/wheel.log" >&2
        echo "qgis_plugin/run_tests.sh: could not build a geosr wheel (set GEOSR_WHEEL or run 'make dist')" >&2
    fi
fi
# pip's user configuration (where its package index is set) is read from XDG_CONFIG_HOME, which
# the tests replace below: keep it for the set-up tests' pip.
PIP_USER_CONFIG="${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf"
if [ -z "${PIP_CONFIG_FILE:-}" ] && [ -f "$PIP_USER_CONFIG" ]; then
    export PIP_CONFIG_FILE="$PIP_USER_CONFIG"
fi
mkdir -p "$WORK/run"
chmod 700 "$WORK/run"
export QT_QPA_PLATFORM=offscreen
export XDG_RUNTIME_DIR="$WORK/run"
export XDG_DATA_HOME="$WORK/data" XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache"
export QGIS_PLUGINPATH="$HERE"
export PYTHONDONTWRITEBYTECODE=1

cd "$REPO"
# pytest-qgis keeps the in-process QGIS settings in <rootdir>/.qgis-settings (git-ignored):
# start from a clean one each time.
rm -rf "$HERE/tests/.qgis-settings"
set +e
"$VENV/bin/python" -m pytest -c "$HERE/tests/pytest.ini" --basetemp "$WORK/pytest" "$HERE/tests" "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    echo "qgis_plugin/run_tests.sh: error: pytest collected no test" >&2
fi
exit "$status"
