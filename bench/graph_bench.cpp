// Benchmarks of block-graph discovery on a 128-deep qcow2 chain (256 nodes)
// attached to one virtio-blk device of a paused qemu-system-x86_64, with
// the images naming their backing files by absolute path and by relative
// name (as oVirt/vdsm do: QEMU's per-node replies grow about 10x).
//
//   qmp-bench-graph [--rounds N]       snapshot costs, both QEMUs, then the parses
//   qmp-bench-graph --parse FILE       parse one cached reply (run as a child
//                                      process so its peak memory is its own)
//
// The query-named-block-nodes replies (1.7 MB flat; about 34 MB without flat,
// which takes QEMU about 25 s to produce) are generated once and cached in
// $XDG_CACHE_HOME/qmp-bench (default ~/.cache/qmp-bench), outside the repository.
#include <support/qemu.hpp>

#include <qmp/block/graph_query.hpp>
#include <qmp/block/resolver.hpp>
#include <qmp/qmp.hpp>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

long peak_rss_kb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::string cache_dir() {
    const char* x = std::getenv("XDG_CACHE_HOME");
    const char* h = std::getenv("HOME");
    std::string base = x && *x ? x : std::string(h ? h : "/tmp") + "/.cache";
    std::string d = base + "/qmp-bench";
    std::filesystem::create_directories(d);
    return d;
}

struct deep_vm {
    qmp_support::temp_dir dir;
    std::unique_ptr<qmp_support::qemu_instance> q;
    std::unique_ptr<qmp::sync_client> client;
    qmp::sync_client& cl() { return *client; }
    deep_vm(const qmp_support::qemu_build& b, int depth, qmp_support::qemu_kind kind, qmp_support::chain_layout layout) {
        auto files = qmp_support::make_chain(b, dir, "vda", depth, "1G", layout);
        qmp_support::qemu_config cfg;
        cfg.kind = kind;
        cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
        std::string top = "vda-" + std::to_string(depth - 1) + "-fmt";
        if (kind == qmp_support::qemu_kind::system)
            cfg.extra = {"-device", "virtio-blk-pci,drive=" + top + ",id=virtio-disk0"};
        q = std::make_unique<qmp_support::qemu_instance>(b, dir, cfg);
        qmp::client_options o;
        o.command_timeout = std::chrono::minutes(5);
        client = std::make_unique<qmp::sync_client>(o);
        client->connect(q->qmp_endpoint());
    }
};

template <class F>
double time_median(int rounds, F&& f) {
    std::vector<double> t;
    for (int i = 0; i < rounds; ++i) {
        auto t0 = clock_type::now();
        f();
        t.push_back(ms_since(t0));
    }
    return median(t);
}

void bench_snapshots(const qmp_support::qemu_build& b, int rounds, qmp_support::chain_layout layout) {
    deep_vm vm(b, 128, qmp_support::qemu_kind::system, layout);
    std::cout << std::fixed << std::setprecision(1) << "QEMU " << b.label << ", 128-deep chain, 256 nodes, "
              << qmp_support::to_string(layout) << " backing names:\n";
    for (const auto& query : std::vector<std::pair<std::string, qmp::json>>{
             {"x-debug-query-block-graph", nullptr},
             {"query-blockstats", qmp::json::object()},
             {"query-blockstats", {{"query-nodes", true}}},
             {"query-named-block-nodes", {{"flat", true}}}}) {
        const std::string& cmd = query.first;  // named: clang 14 lambdas cannot capture structured bindings
        const qmp::json& args = query.second;
        int r = cmd == "query-named-block-nodes" ? std::max(3, rounds / 5) : rounds;
        std::cout << "  " << cmd << " " << (args.is_null() ? "" : args.dump()) << ": "
                  << time_median(r, [&] { vm.cl().execute(cmd, args); }) << " ms\n";
    }
    qmp::driver_cache cache;
    auto t0 = clock_type::now();
    qmp::query_block_graph(vm.cl(), {}, &cache);
    std::cout << "  graph snapshot, first (learns drivers): " << ms_since(t0) << " ms\n";
    std::cout << "  graph snapshot, cheap path (drivers cached): "
              << time_median(rounds, [&] { qmp::query_block_graph(vm.cl(), {}, &cache); }) << " ms\n";
    // What `qmpctl resolve` does: a snapshot with nothing known, the disks,
    // then one element.
    std::cout << "  resolve of vda[64] from nothing (snapshot learning drivers + index): "
              << time_median(std::max(3, rounds / 5),
                             [&] {
                                 qmp::driver_cache fresh;
                                 auto g = qmp::query_block_graph(vm.cl(), {}, &fresh);
                                 qmp::resolver r;
                                 qmp::index_registry reg;
                                 r.update(g, reg);
                                 if (r.disks().empty()) throw std::runtime_error("no disk");
                                 std::error_code ec;
                                 if (!r.resolve(r.disks()[0].name + "[64]", ec)) throw std::runtime_error("resolve: " + ec.message());
                             })
              << " ms\n";
    std::cout << "  graph snapshot, detailed path: "
              << time_median(std::max(3, rounds / 5),
                             [&] { qmp::query_block_graph(vm.cl(), qmp::graph_query_options{true}, &cache); })
              << " ms\n";
}

// Makes (once) the cached replies; returns their paths.
std::vector<std::string> cached_replies(const qmp_support::qemu_build& b, qmp_support::chain_layout layout) {
    std::string dir = cache_dir();
    std::string stem = dir + (layout == qmp_support::chain_layout::absolute ? "/qnbn-128" : "/qnbn-128-relative");
    std::string flat = stem + "-flat.json", deep = stem + "-nonflat.json";
    if (!std::filesystem::exists(flat) || !std::filesystem::exists(deep)) {
        std::cerr << "generating the cached replies (QEMU may take half a minute for the non-flat one)...\n";
        deep_vm vm(b, 128, qmp_support::qemu_kind::storage_daemon, layout);
        std::ofstream(flat) << vm.cl().execute("query-named-block-nodes", {{"flat", true}}).dump();
        std::ofstream(deep) << vm.cl().execute("query-named-block-nodes", qmp::json::object()).dump();
    }
    return {flat, deep};
}

int parse_one(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string msg = "{\"return\": " + text + ", \"id\": \"qmp#1\"}";
    text.clear();
    text.shrink_to_fit();
    long base = peak_rss_kb();
    auto t0 = clock_type::now();
    qmp::message m;
    if (qmp::classify(msg, m)) throw std::runtime_error("classify failed");
    double classify_ms = ms_since(t0);
    t0 = clock_type::now();
    std::vector<qmp::block_device_info> nodes;
    if (auto ec = qmp::convert_text(m.value, nodes)) throw std::runtime_error("convert failed: " + ec.message());
    double convert_ms = ms_since(t0);
    long typed_rss = peak_rss_kb();
    t0 = clock_type::now();
    qmp::json tree;
    if (auto ec = qmp::parse_json(m.value, tree)) throw std::runtime_error("parse failed: " + ec.message());
    double tree_ms = ms_since(t0);
    std::cout << std::fixed << std::setprecision(1) << "  " << std::filesystem::path(path).filename().string() << ": "
              << msg.size() / 1e6 << " MB, " << nodes.size() << " nodes; classify " << classify_ms
              << " ms, typed from text " << convert_ms << " ms (peak RSS +" << (typed_rss - base) / 1024
              << " MiB), JSON tree " << tree_ms << " ms (peak RSS +" << (peak_rss_kb() - base) / 1024
              << " MiB) over the " << msg.size() / 1048576 << " MiB text\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 15;
    try {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--parse" && i + 1 < argc) return parse_one(argv[++i]);
            if (a == "--rounds" && i + 1 < argc)
                rounds = std::max(1, std::atoi(argv[++i]));
            else {
                std::cerr << "usage: qmp-bench-graph [--rounds N] | --parse FILE\n";
                return 2;
            }
        }
        auto builds = qmp_support::qemu_builds();
        const qmp_support::chain_layout layouts[] = {qmp_support::chain_layout::absolute, qmp_support::chain_layout::relative};
        for (const auto& b : builds)
            for (auto layout : layouts) bench_snapshots(b, rounds, layout);
        std::cout << "parsing query-named-block-nodes replies of the 128-deep chain (QEMU 7.2):\n" << std::flush;
        for (auto layout : layouts)
            for (const auto& f : cached_replies(builds[0], layout)) {
                std::string out;
                qmp_support::run({argv[0], "--parse", f}, &out);
                std::cout << out << std::flush;
            }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-graph: " << e.what() << "\n";
        return 1;
    }
}
