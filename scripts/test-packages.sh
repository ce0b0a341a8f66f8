#!/usr/bin/env bash
# The Debian packages, as an administrator meets them:
#   scripts/test-packages.sh BUILD_DIR
# builds libqmp-dev and qmp-tools with CPack from BUILD_DIR (a configured
# and built tree), installs them with `apt-get install ./*.deb`, builds one
# consumer with find_package(qmp) and one with `pkg-config --cflags qmp`
# against what was installed, runs `qmpctl --version` and
# `qmp-thin-agent --version`, checks the installed unit with
# `systemd-analyze verify`, then removes the packages (and anything apt
# pulled in for them) and checks that the installed package set is what it
# was before.
#
# Installing needs root (or sudo without a password). Without it, or when
# either package is installed already (removing it would change the
# machine), it says why and exits 77, which ctest reports as skipped.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(sed -n 's/^#define QMP_VERSION_STRING "\(.*\)"$/\1/p' "$src/include/qmp/version.hpp")

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "test-packages: installing packages needs root or sudo without a password; not run"
    exit 77
  fi
  sudo_cmd=(sudo -n)
fi
for p in libqmp-dev qmp-tools; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "test-packages: $p is installed on this machine already; not run (removing it would change the machine)"
    exit 77
  fi
done

work=$(mktemp -d)
installed_list() { dpkg-query -W -f='${Package}:${Architecture} ${Version}\n' | sort; }
installed_list > "$work/before"
cleanup() {
  local rc=$?
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q libqmp-dev qmp-tools >/dev/null 2>&1 || true
  # Anything apt installed for them goes too.
  installed_list > "$work/after"
  extra=$(comm -13 "$work/before" "$work/after" | cut -d' ' -f1)
  if [ -n "$extra" ]; then
    # shellcheck disable=SC2086
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $extra >/dev/null 2>&1 || true
    installed_list > "$work/after"
  fi
  if ! cmp -s "$work/before" "$work/after"; then
    echo "test-packages: FAIL: the installed packages differ from before:"
    diff "$work/before" "$work/after" || true
    rc=1
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

echo "== cpack"
(cd "$build" && cpack -G DEB -B "$work/debs" >/dev/null)
dev="$work/debs/libqmp-dev_${version}-1_all.deb"
tools=$(ls "$work"/debs/qmp-tools_"${version}"-1_*.deb)
test -f "$dev" && test -f "$tools"
dpkg-deb -f "$dev" Package Architecture Depends
dpkg-deb -f "$tools" Package Architecture Depends
# libqmp-dev holds no compiled code; qmp-tools holds the two programs and the unit.
dpkg-deb -c "$dev" | awk '{print $6}' > "$work/dev-files"
dpkg-deb -c "$tools" | awk '{print $6}' > "$work/tools-files"
if grep -E '\.(so|a|o)$|/bin/' "$work/dev-files"; then echo "libqmp-dev holds compiled code"; exit 1; fi
for f in ./usr/include/qmp/qmp.hpp ./usr/include/qmp/testing.hpp ./usr/lib/cmake/qmp/qmpConfig.cmake \
         ./usr/lib/pkgconfig/qmp.pc; do
  grep -qx "$f" "$work/dev-files" || { echo "libqmp-dev lacks $f"; exit 1; }
done
for f in ./usr/bin/qmpctl ./usr/bin/qmp-thin-agent ./usr/lib/systemd/system/qmp-thin-agent.service \
         ./usr/share/doc/qmp/examples/vms.example; do
  grep -qx "$f" "$work/tools-files" || { echo "qmp-tools lacks $f"; exit 1; }
done

echo "== apt-get install"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$dev" "$tools" >/dev/null
test -f /usr/include/qmp/qmp.hpp
test -f /usr/lib/cmake/qmp/qmpConfig.cmake

echo "== find_package consumer"
cmake -S "$src/tests/consumers/find_package" -B "$work/fp" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >/dev/null
grep -q '^qmp_DIR:PATH=/usr/lib/cmake/qmp$' "$work/fp/CMakeCache.txt" || { grep '^qmp_DIR' "$work/fp/CMakeCache.txt"; exit 1; }
cmake --build "$work/fp" >/dev/null
"$work/fp/consumer" | grep -x "qmp $version ok"

echo "== pkg-config consumer"
test "$(pkg-config --modversion qmp)" = "$version"
# shellcheck disable=SC2046
g++ -std=c++17 $(pkg-config --cflags qmp) "$src/tests/consumers/main.cpp" -o "$work/pc-consumer" $(pkg-config --libs qmp)
"$work/pc-consumer" | grep -x "qmp $version ok"

echo "== the programs and the unit"
qmpctl --version | grep -x "qmpctl $version"
qmp-thin-agent --version | grep -x "qmp-thin-agent $version"
grep -q '^ExecStart=/usr/bin/qmp-thin-agent ' /usr/lib/systemd/system/qmp-thin-agent.service
out=$(systemd-analyze verify /usr/lib/systemd/system/qmp-thin-agent.service 2>&1)
if [ -n "$out" ]; then echo "$out"; exit 1; fi

echo "== apt-get purge"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q libqmp-dev qmp-tools >/dev/null
test ! -e /usr/include/qmp && test ! -e /usr/bin/qmpctl && test ! -e /usr/lib/systemd/system/qmp-thin-agent.service
echo "packages-ok"
