#!/usr/bin/env bash
# Installs what `python -m bench.compare` needs and nothing the tests need:
#   - Debian's nginx (nginx-light, or nginx where that package is not offered), which serves the
#     generated site; the bench starts its own nginx with its own config, so the package's
#     service is neither enabled nor started here;
#   - .venv-bench, a virtualenv of its own (gitignored) with Scrapy for the Scrapy contender:
#     Scrapy is not one of the project's dependencies.
# Idempotent: a second run finds both in place and changes nothing.
# Environment: PYTHON (default python3) creates the virtualenv; SCRAPY_SPEC (default below).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SCRAPY_SPEC="${SCRAPY_SPEC:-scrapy==2.19.0}"
VENV=.venv-bench

# shellcheck source=scripts/apt-lib.sh
source scripts/apt-lib.sh

# --- nginx ------------------------------------------------------------------------------------
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    echo "nginx: already installed ($(/usr/sbin/nginx -v 2>&1 || nginx -v 2>&1))"
else
    echo "nginx: installing"
    if apt_candidate nginx-light; then
        apt_install nginx-light
    else
        apt_install nginx
    fi
    echo "nginx: $(/usr/sbin/nginx -v 2>&1)"
fi

# --- Scrapy in .venv-bench ----------------------------------------------------------------------
scrapy_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$SCRAPY_SPEC" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
name, _, wanted = sys.argv[1].partition("==")
have = version(name)
sys.exit(0 if not wanted or have == wanted else 1)
PY
}
if scrapy_ok; then
    echo "scrapy: already in $VENV ($("$VENV/bin/python" -m scrapy version))"
else
    echo "scrapy: installing $SCRAPY_SPEC into $VENV"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SCRAPY_SPEC"
    echo "scrapy: $("$VENV/bin/python" -m scrapy version)"
fi
