#!/usr/bin/env bash
# Sets the machine up, builds the main job and runs it: a program that
# starts its own QEMU, arms a write threshold, writes past it and prints the
# event QEMU sends back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target qmp-threshold-once
exec build/bin/qmp-threshold-once "$@"
