#!/usr/bin/env bash
# Installs the system programs that some tests need, from Debian's packages:
#   - chromium: the HTML report test loads the report in headless Chromium;
#   - redis-server: the shared-frontier tests start their own Redis on 127.0.0.1.
# The packaged Redis service is neither enabled nor started: tests run their own server.
# Idempotent: a second run finds everything in place and changes nothing.
# Called by .ci/run; run it by hand (as root, or with sudo) before `pytest` to run those tests
# locally, where they are skipped (with a reason naming this script) when a program is missing.
set -euo pipefail

# shellcheck source=scripts/apt-lib.sh
source "$(dirname "$0")/apt-lib.sh"

# program -> Debian package
declare -A wanted=(
    [chromium]=chromium
    [redis-server]=redis-server
)

missing=()
for program in "${!wanted[@]}"; do
    if command -v "$program" >/dev/null 2>&1 || [ -x "/usr/bin/$program" ]; then
        echo "$program: already installed"
    else
        missing+=("${wanted[$program]}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "installing: ${missing[*]}"
apt_install "${missing[@]}"

for program in "${!wanted[@]}"; do
    command -v "$program" >/dev/null 2>&1 || {
        echo "$program: still missing after installing ${wanted[$program]}" >&2
        exit 1
    }
done
echo "system deps: $(chromium --version 2>/dev/null); $(redis-server --version | cut -d' ' -f1-3)"
