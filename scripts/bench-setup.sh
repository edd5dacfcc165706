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

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- nginx ------------------------------------------------------------------------------------
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    echo "nginx: already installed ($(/usr/sbin/nginx -v 2>&1 || nginx -v 2>&1))"
else
    echo "nginx: installing"
    export DEBIAN_FRONTEND=noninteractive
    # Never start the packaged service: the bench runs nginx itself, on 127.0.0.1 only.
    policy_rc=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy_rc" ]; then
        printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy_rc" >/dev/null
        sudo_if_needed chmod +x "$policy_rc"
        added_policy=1
    fi
    remove_policy() { if [ "$added_policy" -eq 1 ]; then sudo_if_needed rm -f "$policy_rc"; fi; }
    trap remove_policy EXIT
    candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; }
    if ! candidate nginx-light && ! candidate nginx; then
        sudo_if_needed apt-get update
    fi
    if candidate nginx-light; then
        sudo_if_needed apt-get install -y --no-install-recommends nginx-light
    else
        sudo_if_needed apt-get install -y --no-install-recommends nginx
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
