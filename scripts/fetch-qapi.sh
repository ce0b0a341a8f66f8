#!/usr/bin/env bash
# Fetches QEMU 10.0's QAPI schema sources (qapi/*.json) into .deps/qapi-10.0,
# from Debian's source package in bookworm-backports, with a private apt
# configuration (nothing in /etc/apt changes). Only the schema files are
# kept. The generator (tools/qapi/generate.py) reads them; the generated
# headers are committed, so a build never needs this.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/.deps/qapi-10.0"
if [ -f "$out/qapi-schema.json" ]; then
  echo "fetch-qapi: $out is there"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb-src http://deb.debian.org/debian bookworm-backports main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
          -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
apt-get "${apt_opts[@]}" update -q >/dev/null
# The upstream tarball alone: its address and SHA-256 come from the signed
# source index.
line=$(apt-get "${apt_opts[@]}" source --print-uris qemu 2>/dev/null | grep "orig.tar" | grep "qemu_10\.0\." | head -n 1)
if [ -z "$line" ]; then
  echo "fetch-qapi: bookworm-backports offers no QEMU 10.0 source" >&2
  exit 1
fi
url=$(echo "$line" | awk '{print $1}' | tr -d "'")
file=$(echo "$line" | awk '{print $2}')
sum=$(echo "$line" | awk '{print $4}' | sed 's/^SHA256://')
echo "fetch-qapi: $file"
curl -sSfL -o "$work/$file" "$url"
echo "$sum  $work/$file" | sha256sum -c --quiet -
tar -xJf "$work/$file" -C "$work" --wildcards '*/qapi/*.json'
mkdir -p "$out"
cp "$work"/qemu-*/qapi/*.json "$out/"
echo "fetch-qapi: $(ls "$out" | wc -l) schema files in $out"
