#!/usr/bin/env bash
# One idempotent set-up step for a fresh Debian bookworm machine:
#  1. installs the Debian packages the build and the tests need, when missing;
#  2. unpacks QEMU 10.0 from bookworm-backports into .deps/qemu-10.0 (a
#     project-local prefix; the system's QEMU is never upgraded);
#  3. unpacks promtool from Debian's prometheus package into .deps/prometheus;
#  4. fetches QEMU 10.0's QAPI schema sources into .deps/qapi-10.0.
# Uses sudo when not root. Safe to run again: it does nothing when all is there.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# strace: qmp-bench-roundtrip counts system calls with it.
# python3, curl, xz-utils: the QAPI header generator's check, and fetching
# the schema sources it reads.
# dpkg-dev: dpkg-shlibdeps, for the qmp-tools package's dependencies.
# pkg-config, systemd: the consumer built with pkg-config, and systemd-analyze
# verify on the agent's unit.
packages=(g++ clang dpkg-dev libclang-rt-14-dev make cmake libasio-dev nlohmann-json3-dev doctest-dev qemu-system-x86 qemu-utils libssl-dev openssl strace python3 curl xz-utils pkg-config systemd)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# QEMU 10.0: downloaded with a private apt configuration (its own source list
# and package lists under .deps/apt), so nothing in /etc/apt changes and no
# system package is upgraded.
prefix="$root/.deps/qemu-10.0"
if [ ! -x "$prefix/usr/bin/qemu-storage-daemon" ] || [ ! -x "$prefix/usr/bin/qemu-system-x86_64" ]; then
  apt_dir="$root/.deps/apt"
  rm -rf "$apt_dir" "$prefix"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
            -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
  echo "setup: fetching QEMU 10.0 from bookworm-backports"
  apt-get "${apt_opts[@]}" update -q
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download qemu-system-common qemu-utils qemu-system-x86)
  mkdir -p "$prefix"
  for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
  rm -rf "$apt_dir"
fi
version=$("$prefix/usr/bin/qemu-storage-daemon" --version | head -n 1)
case "$version" in
  *" 10."*) ;;
  *) echo "setup: expected QEMU 10.x in $prefix, got: $version" >&2; exit 1 ;;
esac
# promtool (from Debian's prometheus package), to check the agent's metrics
# the way a real scraper reads them: unpacked into .deps/prometheus, never
# installed (no Prometheus server is set up or started).
promdir="$root/.deps/prometheus"
if [ ! -x "$promdir/usr/bin/promtool" ]; then
  echo "setup: fetching promtool (Debian's prometheus package, unpacked only)"
  rm -rf "$promdir" && mkdir -p "$promdir/debs"
  if ! (cd "$promdir/debs" && apt-get download prometheus >/dev/null 2>&1); then
    "${sudo_cmd[@]}" apt-get update -q
    (cd "$promdir/debs" && apt-get download prometheus)
  fi
  dpkg -x "$promdir"/debs/prometheus_*.deb "$promdir"
  rm -rf "$promdir/debs"
fi

# QEMU 10.0's QAPI schema sources, for the generated headers' check.
bash "$root/scripts/fetch-qapi.sh"

echo "setup: ok ($(qemu-storage-daemon --version | head -n 1); $version; $("$promdir/usr/bin/promtool" --version 2>&1 | head -n 1))"
