#!/usr/bin/env bash
# Sets the machine up, builds the main job and runs it: the thin-provisioning
# demo, which starts its own QEMU and plays the story end to end (extensions
# driven by write-threshold events, a live merge, a missed event recovered).
# Arguments go to the demo: --no-agent, --keep, --qemu-bindir DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target qmp-thin-demo qmpctl
exec build/bin/qmp-thin-demo "$@"
