// What a fresh `qmpctl` costs on a 128-deep chain, the disk of a paused
// qemu-system-x86_64, each QEMU, absolute and relative backing names:
// `resolve 'vda[64]'`, the same with --json, `chain`, each with and without
// --details (the query that describes every node). Each figure is the
// median wall time of the whole process (start, connect, queries, print,
// exit) over the rounds.
//
//   qmp-bench-qmpctl [--rounds N]
#include <support/qemu.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>

namespace {

std::string bin_dir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path().string(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void bench(const qmp_support::qemu_build& b, int rounds, qmp_support::chain_layout layout) {
    qmp_support::temp_dir dir;
    auto files = qmp_support::make_chain(b, dir, "vda", 128, "1G", layout);
    qmp_support::qemu_config cfg;
    cfg.kind = qmp_support::qemu_kind::system;
    cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
    cfg.extra = {"-device", "virtio-blk-pci,drive=vda-127-fmt,id=virtio-disk0"};
    qmp_support::qemu_instance q(b, dir, cfg);
    const std::string state = dir.file("state.json");
    std::cout << std::fixed << std::setprecision(1) << "QEMU " << b.label << ", " << qmp_support::to_string(layout)
              << " backing names, 128-deep chain:\n";
    const std::vector<std::pair<std::string, std::vector<std::string>>> ways{
        {"resolve", {"resolve", "vda[64]"}}, {"resolve --json", {"resolve", "vda[64]", "--json"}}, {"chain", {"chain"}}};
    for (const auto& [label, args] : ways)
        for (bool details : {false, true}) {
            std::vector<std::string> argv{bin_dir() + "/qmpctl", "-s", q.qmp_path(), "--state", state, "--disk",
                                          "vda=virtio-disk0"};
            argv.insert(argv.end(), args.begin(), args.end());
            if (details) argv.push_back("--details");
            std::vector<double> ms;
            for (int r = 0; r < rounds; ++r) {
                std::string out;
                const auto t0 = std::chrono::steady_clock::now();
                if (qmp_support::run(argv, &out) != 0) throw std::runtime_error("qmpctl failed: " + out);
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            std::cout << "  " << std::setw(16) << label << (details ? " --details " : "           ") << std::setw(8)
                      << median(ms) << " ms\n";
        }
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 5;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else {
            std::cerr << "usage: qmp-bench-qmpctl [--rounds N]\n";
            return 2;
        }
    }
    try {
        for (const auto& b : qmp_support::qemu_builds())
            for (auto layout : {qmp_support::chain_layout::absolute, qmp_support::chain_layout::relative}) bench(b, rounds, layout);
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-qmpctl: " << e.what() << "\n";
        return 1;
    }
}
