// Benchmark of the threshold manager's resync: 128 armed elements of a
// 128-deep chain (one disk) in qemu-storage-daemon, each QEMU, the images
// naming their backing files by absolute path and by relative name.
//
//   qmp-bench-threshold [--rounds N]
//
// Prints the median time of resync() with the cheap path only (high-water
// marks from query-blockstats) and with verification (write_threshold read
// back with query-named-block-nodes for elements the mark does not settle).
#include <support/qemu.hpp>

#include <qmp/threshold/manager.hpp>

#include <algorithm>
#include <iomanip>
#include <iostream>

namespace {

using clock_type = std::chrono::steady_clock;

double median_ms(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void bench(const qmp_support::qemu_build& b, int rounds, qmp_support::chain_layout layout) {
    qmp_support::temp_dir dir;
    const int depth = 128;
    auto files = qmp_support::make_chain(b, dir, "vda", depth, "1G", layout);
    qmp_support::qemu_config cfg;
    cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
    const std::string root = "vda-" + std::to_string(depth - 1) + "-fmt";
    cfg.nbd_export_node = root;  // the export's backend makes the chain a disk
    qmp_support::qemu_instance q(b, dir, cfg);
    std::cout << std::fixed << std::setprecision(1) << "QEMU " << b.label << ", " << qmp_support::to_string(layout)
              << " backing names, 128 armed elements:";
    for (bool verify : {false, true}) {
        qmp::threshold_manager_options o;
        o.tracker.catalog.entries["vda"] = root;
        o.tracker.verify_uncrossed = verify;
        o.client.command_timeout = std::chrono::minutes(2);
        qmp::threshold_manager m(q.qmp_endpoint(), o);
        m.connect();
        for (std::uint32_t i = 1; i <= depth && m.armed().size() < depth; ++i)
            m.arm("vda[" + std::to_string(i) + "]", qmp::threshold_spec::bytes(512u << 20).with_capacity(1ull << 30));
        std::vector<double> t;
        for (int r = 0; r < rounds; ++r) {
            auto t0 = clock_type::now();
            auto ev = m.resync();
            t.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
            if (!ev.empty()) throw std::runtime_error("unexpected events in resync");
        }
        std::cout << (verify ? " with verification " : " cheap path ") << median_ms(t) << " ms;";
    }
    std::cout << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 11;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else {
            std::cerr << "usage: qmp-bench-threshold [--rounds N]\n";
            return 2;
        }
    }
    try {
        for (const auto& b : qmp_support::qemu_builds())
            for (auto layout : {qmp_support::chain_layout::absolute, qmp_support::chain_layout::relative}) bench(b, rounds, layout);
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-threshold: " << e.what() << "\n";
        return 1;
    }
}
