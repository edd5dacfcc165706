#!/usr/bin/env bash
# Installs the system programs that some tests need, from Debian's packages:
#   - chromium: the HTML report test loads the report in headless Chromium;
#   - redis-server: the shared-frontier tests start their own Redis on 127.0.0.1.
# The packaged Redis service is neither enabled nor started: tests run their own server.
# Idempotent: a second run finds everything in place and changes nothing.
# Called by .ci/run; run it by hand (as root, or with sudo) before `pytest` to run those tests
# locally, where they are skipped (with a reason naming this script) when a program is missing.
set -euo pipefail

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

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
export DEBIAN_FRONTEND=noninteractive
# Never start packaged services (redis-server's): the tests start their own.
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
for package in "${missing[@]}"; do
    if ! candidate "$package"; then
        sudo_if_needed apt-get update
        break
    fi
done
sudo_if_needed apt-get install -y --no-install-recommends "${missing[@]}"

for program in "${!wanted[@]}"; do
    command -v "$program" >/dev/null 2>&1 || {
        echo "$program: still missing after installing ${wanted[$program]}" >&2
        exit 1
    }
done
echo "system deps: $(chromium --version 2>/dev/null); $(redis-server --version | cut -d' ' -f1-3)"
