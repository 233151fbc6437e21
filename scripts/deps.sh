#!/bin/sh
# Install the Debian packages melt needs, only those missing.
# Usage: scripts/deps.sh [build|fuzz|cross|report|ssh|adb|all]   (default: build)
# Idempotent; with everything present it only asks dpkg, well under a second.
set -eu

build_pkgs="gcc make libc6-dev pkg-config git libcmocka-dev libjansson-dev libyaml-dev libsqlite3-dev sqlite3 libmicrohttpd-dev curl"
fuzz_pkgs="clang libclang-rt-14-dev"
cross_pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
# headless Chromium: tests/integration/test_report.sh renders the HTML report
report_pkgs="chromium fonts-dejavu-core"
# a throw-away sshd: tests/integration/test_ssh.sh drives the ssh transport
ssh_pkgs="openssh-client openssh-server"
# Debian's adb: tests/integration/test_adb.sh and test_devices.sh check melt drives it
adb_pkgs="adb"

case "${1:-build}" in
build) want="$build_pkgs" ;;
fuzz) want="$build_pkgs $fuzz_pkgs" ;;
cross) want="$build_pkgs $cross_pkgs" ;;
report) want="$build_pkgs $report_pkgs" ;;
ssh) want="$build_pkgs $ssh_pkgs" ;;
adb) want="$build_pkgs $adb_pkgs" ;;
all) want="$build_pkgs $fuzz_pkgs $cross_pkgs" ;;
*) echo "deps.sh: unknown set '$1' (build, fuzz, cross, report, ssh, adb, all)" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    # "ii " = installed; anything else (absent, half-configured) is missing.
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in
    ii*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "deps: missing packages:$missing (run as root or install them)" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# Update the package lists once: a fresh image has none.
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
