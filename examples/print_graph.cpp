// qmp-print-graph: prints the block graph of a live QEMU, disk by disk.
//
//   qmp-print-graph -s SOCKET [--details]   a QEMU you run
//   qmp-print-graph [--qemu-bindir DIR]     starts its own paused VM with a
//                                           3-deep chain under a throttle filter
//
// For every backend: its device / qdev and root node, then the chain from the
// root down, one line per node with its role, driver and write high-water
// mark; filters are marked and skipped over.
#include <support/qemu.hpp>

#include <qmp/block/graph_query.hpp>
#include <qmp/qmp.hpp>

#include <iostream>

namespace {

void print_node(const qmp::block_graph& g, std::size_t i, const std::string& role, int depth) {
    const auto& n = g.nodes()[i];
    std::cout << std::string(2 + depth * 2, ' ') << role << ": " << (n.name.empty() ? "(unnamed)" : n.name) << " ["
              << n.driver.value_or("?") << (g.is_filter(i) ? ", filter" : "") << "]";
    if (n.wr_highest_offset) std::cout << " highest write " << *n.wr_highest_offset;
    if (n.details) std::cout << " size " << n.details->virtual_size << " threshold " << n.details->write_threshold.value_or(0) << " "
                             << n.details->filename;
    std::cout << "\n";
    for (const auto* e : g.children(i))
        if (e->role != qmp::edge_role::job) print_node(g, e->child, e->name, depth + 1);
}

void print_graph(const qmp::block_graph& g) {
    std::cout << "source: "
              << (g.source() == qmp::graph_source::debug_graph ? "x-debug-query-block-graph" : "query-blockstats") << ", "
              << g.nodes().size() << " nodes, " << g.edges().size() << " edges\n";
    for (const auto& b : g.backends()) {
        std::cout << "backend device '" << b.device << "' qdev '" << b.qdev << "' root " << b.root_node << "\n";
        if (auto i = g.index_of(b.root_node)) print_node(g, *i, "root", 0);
    }
    for (std::size_t i = 0; i < g.nodes().size(); ++i)
        if (g.nodes()[i].kind == qmp::node_kind::job) {
            std::cout << "job " << g.nodes()[i].name << " uses:";
            for (const auto* e : g.children(i)) std::cout << " " << g.nodes()[e->child].name << " (" << e->name << ")";
            std::cout << "\n";
        }
}

}  // namespace

int main(int argc, char** argv) {
    std::string socket;
    bool details = false;
    qmp_support::qemu_build qemu{"system", "/usr/bin"};
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-s" && i + 1 < argc)
            socket = argv[++i];
        else if (a == "--details")
            details = true;
        else if (a == "--qemu-bindir" && i + 1 < argc)
            qemu.bindir = argv[++i];
        else {
            std::cerr << "usage: qmp-print-graph [-s SOCKET] [--details] [--qemu-bindir DIR]\n";
            return 2;
        }
    }
    try {
        std::unique_ptr<qmp_support::temp_dir> dir;
        std::unique_ptr<qmp_support::qemu_instance> vm;
        if (socket.empty()) {
            dir = std::make_unique<qmp_support::temp_dir>();
            auto files = qmp_support::make_chain(qemu, *dir, "vda", 3);
            qmp_support::qemu_config cfg;
            cfg.kind = qmp_support::qemu_kind::system;
            cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
            cfg.blockdevs.push_back(
                R"({"driver":"throttle","node-name":"vda-throttle","throttle-group":"tg0","file":"vda-2-fmt"})");
            cfg.extra = {"-object", "throttle-group,id=tg0", "-device",
                         "virtio-blk-pci,drive=vda-throttle,id=virtio-disk0"};
            vm = std::make_unique<qmp_support::qemu_instance>(qemu, *dir, cfg);
            socket = vm->qmp_path();
            details = true;
        }
        qmp::sync_client client;
        client.connect(asio::local::stream_protocol::endpoint(socket));
        qmp::driver_cache drivers;  // keep one per QEMU: drivers are learned once
        qmp::graph_query_options opts;
        opts.details = details ? qmp::details_need::fresh : qmp::details_need::none;
        print_graph(qmp::query_block_graph(client, opts, &drivers));
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qmp-print-graph: " << e.what() << "\n";
        return 1;
    }
}
