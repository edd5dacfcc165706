# Shared by scripts/system-deps.sh and scripts/bench-setup.sh (sourced, not run):
# installs Debian packages without ever starting their services.

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# True when apt knows an installable version of package $1.
apt_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; }

# apt_install PACKAGE...: `apt-get update` only when a package is unknown yet; packaged services
# are not started (a policy-rc.d that says no, removed afterwards if it was not there before).
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local policy_rc=/usr/sbin/policy-rc.d added_policy=0 package status=0
    if [ ! -e "$policy_rc" ]; then
        printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy_rc" >/dev/null
        sudo_if_needed chmod +x "$policy_rc"
        added_policy=1
    fi
    for package in "$@"; do
        if ! apt_candidate "$package"; then
            sudo_if_needed apt-get update
            break
        fi
    done
    sudo_if_needed apt-get install -y --no-install-recommends "$@" || status=$?
    if [ "$added_policy" -eq 1 ]; then sudo_if_needed rm -f "$policy_rc"; fi
    return "$status"
}
