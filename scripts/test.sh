#!/usr/bin/env bash
# Sets the machine up, builds everything and runs every test.
#   scripts/test.sh             plain Debug build in build/
#   scripts/test.sh --sanitize  the same under ASan + UBSan in build-sanitize/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=default
if [ "${1:-}" = "--sanitize" ]; then preset=sanitize; fi
bash scripts/setup.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset"
