// qmp-bench-graph-build: building a block graph snapshot from replies, in
// process (no QEMU): how the time grows with the graph. Disks of qcow2
// chains (a format node over a storage node per element, a throttle filter
// on top of each disk), as x-debug-query-block-graph and the per-device
// query-blockstats describe them; then what a tracker does with a
// snapshot: the driver cache's check, the disks and chains, the indexes.
//
//   qmp-bench-graph-build [--rounds N]
//
// Prints, for 256, 1,024 and 4,096 nodes, the median time of each step and
// per node. Uses only build_block_graph, driver_cache and resolver, so it
// compiles against earlier versions of the library too.
#include <qmp/block/graph_query.hpp>
#include <qmp/block/resolver.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// `disks` disks whose chains have `depth` elements each.
qmp::graph_replies replies(int disks, int depth) {
    qmp::graph_replies r;
    r.graph.emplace();
    r.backend_stats.emplace();
    std::uint64_t id = 1;
    auto node = [&](const std::string& name, const std::string& type) {
        r.graph->nodes.push_back({id, type, name});
        return id++;
    };
    for (int d = 0; d < disks; ++d) {
        const std::string disk = "vd" + std::to_string(d);
        std::uint64_t below = 0;
        std::shared_ptr<qmp::block_stats> below_stats;
        for (int i = 0; i < depth; ++i) {
            const std::string n = disk + "-" + std::to_string(i);
            const auto file = node(n + "-file", "block-driver");
            const auto fmt = node(n + "-fmt", "block-driver");
            r.graph->edges.push_back({fmt, file, "file", {}, {}});
            if (below) r.graph->edges.push_back({fmt, below, "backing", {}, {}});
            auto fs = std::make_shared<qmp::block_stats>();
            fs->node_name = n + "-fmt";
            fs->stats.wr_highest_offset = i * 4096;
            fs->parent = std::make_shared<qmp::block_stats>();
            fs->parent->node_name = n + "-file";
            fs->parent->driver = "host_device";
            fs->backing = below_stats;
            below = fmt;
            below_stats = fs;
        }
        const auto throttle = node(disk + "-throttle", "block-driver");
        r.graph->edges.push_back({throttle, below, "file", {}, {}});
        const std::string qdev = "/machine/peripheral/" + disk + "/virtio-backend";
        const auto backend = node(qdev, "block-backend");
        r.graph->edges.push_back({backend, throttle, "root", {}, {}});
        qmp::block_stats top;
        top.qdev = qdev;
        top.node_name = disk + "-throttle";
        top.driver = "throttle";
        top.parent = below_stats;
        top.backing = below_stats;
        r.backend_stats->push_back(top);
    }
    return r;
}

template <class F>
double median_ms(int rounds, F&& f) {
    std::vector<double> t;
    for (int i = 0; i < rounds; ++i) {
        const auto t0 = clock_type::now();
        f();
        t.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 21;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc) {
            rounds = std::max(1, std::atoi(argv[++i]));
        } else {
            std::cerr << "usage: qmp-bench-graph-build [--rounds N]\n";
            return 2;
        }
    }
    std::cout << std::fixed << std::setprecision(3);
    // 4 disks; each element two nodes, each disk a throttle and a backend.
    for (int nodes : {256, 1024, 4096}) {
        const int disks = 4, depth = (nodes / disks - 2) / 2;
        const qmp::graph_replies r = replies(disks, depth);
        qmp::driver_cache cache;
        const double build = median_ms(rounds, [&] { (void)qmp::build_block_graph(r, &cache.drivers); });
        const qmp::block_graph g = qmp::build_block_graph(r, &cache.drivers);
        bool missing = false;
        const double check = median_ms(rounds, [&] { missing = cache.misses(g); });
        const double chains = median_ms(rounds, [&] {
            qmp::resolver res;
            qmp::index_registry reg;
            res.update(g, reg);
        });
        const std::size_t n = r.graph->nodes.size();
        std::cout << n << " nodes (" << disks << " disks of " << depth << " elements): build " << build
                  << " ms, driver check " << check << " ms" << (missing ? " (needs drivers)" : "") << ", chains and indexes "
                  << chains << " ms; per node: " << std::setprecision(2) << (build + check + chains) * 1000 / n << " us\n"
                  << std::setprecision(3);
    }
}
