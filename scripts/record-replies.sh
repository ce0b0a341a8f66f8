#!/usr/bin/env bash
# Records real QEMU replies as test data (tests/data/qemu-VERSION/*.json), so
# the typed conversions and the graph builder are also tested without QEMU.
# The VM: a paused qemu-system-x86_64 with a 3-deep qcow2 chain under a
# throttle filter on virtio-disk0 and a raw image on virtio-disk1.
#   scripts/record-replies.sh BINDIR VERSION     e.g. /usr/bin 7.2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bindir=$1 version=$2
out="tests/data/qemu-$version"
qmpctl=build/bin/qmpctl
mkdir -p "$out"
tmp=$(mktemp -d /tmp/qmp-record-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$bindir/qemu-img" create -q -f qcow2 "$tmp/vda-0.qcow2" 64M
"$bindir/qemu-img" create -q -f qcow2 -b "$tmp/vda-0.qcow2" -F qcow2 "$tmp/vda-1.qcow2"
"$bindir/qemu-img" create -q -f qcow2 -b "$tmp/vda-1.qcow2" -F qcow2 "$tmp/vda-2.qcow2"
"$bindir/qemu-img" create -q -f raw "$tmp/vdb.img" 8M
bd=()
for i in 0 1 2; do
  bd+=(-blockdev "{\"driver\":\"file\",\"node-name\":\"vda-$i-file\",\"filename\":\"$tmp/vda-$i.qcow2\"}")
  b=""; [ "$i" -gt 0 ] && b=",\"backing\":\"vda-$((i-1))-fmt\""
  bd+=(-blockdev "{\"driver\":\"qcow2\",\"node-name\":\"vda-$i-fmt\",\"file\":\"vda-$i-file\"$b}")
done
"$bindir/qemu-system-x86_64" -M q35,accel=tcg -S -nodefaults -display none \
  -qmp "unix:$tmp/qmp.sock,server=on,wait=off" -object throttle-group,id=tg0 "${bd[@]}" \
  -blockdev '{"driver":"throttle","node-name":"vda-throttle","throttle-group":"tg0","file":"vda-2-fmt"}' \
  -blockdev "{\"driver\":\"file\",\"node-name\":\"vdb-file\",\"filename\":\"$tmp/vdb.img\"}" \
  -device virtio-blk-pci,drive=vda-throttle,id=virtio-disk0 -device virtio-blk-pci,drive=vdb-file,id=virtio-disk1 &
pid=$!
for _ in $(seq 200); do [ -S "$tmp/qmp.sock" ] && break; sleep 0.05; done
q() { "$qmpctl" -s "$tmp/qmp.sock" exec "$@"; }
q block-set-write-threshold '{"node-name": "vda-2-file", "write-threshold": 1048576}' >/dev/null
q query-version > "$out/query-version.json"
q query-named-block-nodes '{"flat": true}' > "$out/query-named-block-nodes-flat.json"
q query-named-block-nodes > "$out/query-named-block-nodes.json"
q query-block > "$out/query-block.json"
q query-blockstats > "$out/query-blockstats.json"
q query-blockstats '{"query-nodes": true}' > "$out/query-blockstats-nodes.json"
q x-debug-query-block-graph > "$out/x-debug-query-block-graph.json"
q query-qmp-schema > "$out/query-qmp-schema.json"
q query-commands > "$out/query-commands.json"
sed -i "s|$tmp|/images|g" "$out"/*.json
echo "recorded $(ls "$out" | wc -l) replies of QEMU $version into $out"
