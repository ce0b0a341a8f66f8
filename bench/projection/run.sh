#!/bin/bash
# What the hand-written projection `block_device_info` saves against the
# full generated `BlockDeviceInfo` (35 members, nested image and cache
# info): both decode the same query-named-block-nodes replies of a 128-deep
# qcow2 chain from QEMU 10.0 (flat and without flat), median of 21 rounds,
# peak RSS of the process. The full type exists only here: a scratch
# worktree renames the projections (proj_*) so the generator emits the
# full types under the usual names.
#
#   bash bench/projection/run.sh        # after scripts/setup.sh (QEMU 10.0 in .deps)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true; git -C "$root" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
q="$root/.deps/qemu-10.0/usr/bin"
export LD_LIBRARY_PATH=$(find "$root/.deps/qemu-10.0" -name '*.so*' -printf '%h\n' | sort -u | tr '\n' ':')

# The chain and its two replies.
(cd "$work" && "$q/qemu-img" create -q -f qcow2 img0.qcow2 16M &&
 for i in $(seq 1 127); do "$q/qemu-img" create -q -f qcow2 -b "img$((i - 1)).qcow2" -F qcow2 "img$i.qcow2"; done)
"$q/qemu-storage-daemon" --blockdev "driver=qcow2,node-name=top,file.driver=file,file.filename=$work/img127.qcow2" \
    --chardev "socket,path=$work/qmp,server=on,wait=off,id=c" --monitor chardev=c &
echo $! > "$work/pid"
python3 "$root/bench/projection/fetch_reply.py" "$work/qmp" "$work/flat.json" flat
python3 "$root/bench/projection/fetch_reply.py" "$work/qmp" "$work/deep.json" deep
kill "$(cat "$work/pid")"

# The full types, generated in a scratch tree.
git -C "$root" worktree add -q --detach "$work/tree" HEAD
ln -s "$root/.deps" "$work/tree/.deps"
for n in image_info block_device_info block_info block_stats block_device_stats query_named_block_nodes query_block \
         query_blockstats x_dbg_block_graph_node x_dbg_block_graph_edge x_dbg_block_graph x_debug_query_block_graph \
         blockdev_child; do
    sed -i "s/\\b$n\\b/proj_$n/g" "$work/tree/include/qmp/qapi/block_query.hpp"
done
python3 "$work/tree/tools/qapi/generate.py" --schema "$root/.deps/qapi-10.0" > /dev/null
"${CXX:-g++}" -std=c++17 -O2 -DNDEBUG -I"$work/tree/include" "$root/bench/projection/projection_bench.cpp" -o "$work/bench"
for f in flat deep; do
    printf '%s (%s bytes)\n' "$f" "$(stat -c %s "$work/$f.json")"
    for way in proj full proj full; do "$work/bench" "$work/$f.json" "$way"; done
done
