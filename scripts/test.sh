#!/usr/bin/env bash
# Sets the machine up, builds everything and runs every test.
#   scripts/test.sh [PRESET]   default (GCC, Debug, in build/), sanitize
#                              (clang -O3, ASan + UBSan), release (GCC -O3)
#   scripts/test.sh --sanitize the same as `sanitize`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${1:-default}
if [ "$preset" = "--sanitize" ]; then preset=sanitize; fi
bash scripts/setup.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset"
