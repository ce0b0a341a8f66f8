#!/usr/bin/env bash
# What including the library costs a translation unit: wall time and peak
# memory of the compiler (/usr/bin/time), median of ROUNDS interleaved runs,
# against a plain asio program that connects a unix socket.
#   bench/compile_cost.sh [ROUNDS (5)]      CXX (g++) and CXXFLAGS (-std=c++17 -O2) as usual
# Units:
#   asio        <asio.hpp>, connect a unix socket
#   header      <qmp/qmp.hpp>: sync_client, connect, execute(query_version{})
#   separate    the same file with QMP_SEPARATE_COMPILATION (qmp::separate)
#   block       <qmp/qmp.hpp> + <qmp/qapi/block_query.hpp>: execute(query_named_block_nodes{}), header-only
#   block-sep   the same, separate compilation
#   src         the one file with <qmp/src.hpp> (paid once per program)
#   status      <qmp/qmp.hpp> + generated <qmp/qapi/run_state.hpp>: execute(query_status{}), separate
#   machine     <qmp/qmp.hpp> + generated <qmp/qapi/machine.hpp>: execute(query_cpus_fast{}), separate
#   block-core  <qmp/qmp.hpp> + generated <qmp/qapi/block_core.hpp> (the largest module):
#               execute(block_dirty_bitmap_add{...}), separate
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-5}
cxx=${CXX:-g++}
flags=${CXXFLAGS:--std=c++17 -O2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/asio.cpp" <<'CPP'
#include <asio.hpp>
#include <iostream>
int main(int argc, char** argv) {
    asio::io_context io;
    asio::local::stream_protocol::socket s(io);
    std::error_code ec;
    s.connect(asio::local::stream_protocol::endpoint(argc > 1 ? argv[1] : "qmp.sock"), ec);
    std::cout << ec.message() << "\n";
}
CPP
cat > "$work/header.cpp" <<'CPP'
#include <qmp/qmp.hpp>
#include <iostream>
int main(int argc, char** argv) {
    qmp::sync_client c;
    c.connect(asio::local::stream_protocol::endpoint(argc > 1 ? argv[1] : "qmp.sock"));
    const auto v = c.execute(qmp::query_version{});
    std::cout << v.qemu.major << "." << v.qemu.minor << "\n";
}
CPP
cat > "$work/block.cpp" <<'CPP'
#include <qmp/qapi/block_query.hpp>
#include <qmp/qmp.hpp>
#include <iostream>
int main(int argc, char** argv) {
    qmp::sync_client c;
    c.connect(asio::local::stream_protocol::endpoint(argc > 1 ? argv[1] : "qmp.sock"));
    for (const auto& n : c.execute(qmp::query_named_block_nodes{})) std::cout << n.node_name.value_or("-") << "\n";
}
CPP
echo '#include <qmp/src.hpp>' > "$work/src.cpp"
# One generated module header and one of its commands: FILE HEADER STATEMENT.
generated_unit() {
  cat > "$work/$1.cpp" <<CPP
#include <qmp/qapi/$2.hpp>
#include <qmp/qmp.hpp>
#include <iostream>
int main(int argc, char** argv) {
    qmp::sync_client c;
    c.connect(asio::local::stream_protocol::endpoint(argc > 1 ? argv[1] : "qmp.sock"));
    $3
}
CPP
}
generated_unit status run_state 'std::cout << c.execute(qmp::query_status{}).status.text() << "\n";'
generated_unit machine machine 'for (const auto& cpu : c.execute(qmp::query_cpus_fast{})) std::cout << cpu.qom_path << "\n";'
generated_unit block-core block_core 'qmp::block_dirty_bitmap_add a; a.node = "n"; a.name_ = "b"; c.execute(a);'

sep="-DQMP_SEPARATE_COMPILATION"
declare -A extra=([asio]="" [header]="" [separate]="$sep" [block]="" [block-sep]="$sep" [src]="$sep"
                  [status]="$sep" [machine]="$sep" [block-core]="$sep")
declare -A file=([asio]=asio [header]=header [separate]=header [block]=block [block-sep]=block [src]=src
                 [status]=status [machine]=machine [block-core]=block-core)
units=(asio header separate block block-sep src status machine block-core)
declare -A times mems
for ((r = 0; r < rounds; r++)); do
  for u in "${units[@]}"; do
    # shellcheck disable=SC2086
    out=$(/usr/bin/time -f "%e %M" $cxx $flags ${extra[$u]} -Iinclude -c "$work/${file[$u]}.cpp" -o "$work/$u.o" 2>&1 | tail -1)
    times[$u]+="${out% *} "
    mems[$u]+="${out#* } "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
base=$(echo "${times[asio]}" | median)
echo "$cxx $flags, median of $rounds runs:"
for u in "${units[@]}"; do
  t=$(echo "${times[$u]}" | median)
  m=$(echo "${mems[$u]}" | median)
  printf '  %-10s %6.2f s  x%.2f of asio  %5d MiB\n' "$u" "$t" "$(echo "$t / $base" | bc -l)" $((m / 1024))
done
