// Test support: a qemu-storage-daemon whose disks are qcow2 chains on thin
// storage in miniature (a raw window over a bigger file), each disk exported
// over NBD under its name, for the threshold tests.
#pragma once

#include <support/qemu.hpp>

#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/manager.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qmp_support {

// A storage daemon with disks whose storage is a raw window (thin storage in
// miniature) under a qcow2 chain, each exported over NBD under its disk name.
struct thin_vm {
    temp_dir dir;
    std::unique_ptr<qemu_instance> q;
    const qemu_build& b;
    qemu_config cfg;

    // disks: name -> chain depth. Node names: <disk>-<i>-fmt, <disk>-<i>-thin, <disk>-<i>-file.
    thin_vm(const qemu_build& build, std::vector<std::pair<std::string, int>> disks, std::uint64_t window = 64u << 20)
        : b(build) {
        bool first = true;
        for (auto& [name, depth] : disks) {
            auto files = make_chain(b, dir, name, depth);
            for (int i = 0; i < depth; ++i) {
                std::string n = name + "-" + std::to_string(i);
                run_checked({"truncate", "-s", "256M", files[i]});  // room behind the window
                cfg.blockdevs.push_back(R"({"driver":"file","node-name":")" + n + R"(-file","filename":")" + files[i] + "\"}");
                cfg.blockdevs.push_back(R"({"driver":"raw","node-name":")" + n + R"(-thin","file":")" + n +
                                        R"(-file","offset":0,"size":)" + std::to_string(window) + "}");
                std::string fmt = R"({"driver":"qcow2","node-name":")" + n + R"(-fmt","file":")" + n + "-thin\"";
                if (i > 0) fmt += R"(,"backing":")" + name + "-" + std::to_string(i - 1) + "-fmt\"";
                cfg.blockdevs.push_back(fmt + "}");
            }
            std::string top = name + "-" + std::to_string(depth - 1) + "-fmt";
            if (first) {
                cfg.nbd_export_node = top;  // exported as "vda"
                first = false;
            } else {
                cfg.extra.insert(cfg.extra.end(), {"--export", "nbd,id=e-" + name + ",node-name=" + top + ",writable=on,name=" + name});
            }
        }
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }
    asio::local::stream_protocol::endpoint ep() const { return q->qmp_endpoint(); }

    /// QEMU dies (SIGKILL) and starts again on the same socket and images:
    /// a new instance, its thresholds and high-water marks back at 0.
    void restart() {
        q->process().kill_now();
        q.reset();
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }

    /// QEMU starts again with a second QMP monitor (for the side of a test
    /// that must not read the first one's events); returns its socket path.
    std::string with_second_monitor() {
        std::string path = dir.file("second.qmp");
        cfg.extra.insert(cfg.extra.end(), {"--chardev", "socket,path=" + path + ",server=on,wait=off,id=m2", "--monitor", "chardev=m2"});
        restart();
        return path;
    }

    std::uint64_t threshold_of(qmp::sync_client& cl, const std::string& node) {
        for (const auto& n : cl.execute(qmp::query_named_block_nodes{true}))
            if (n.node_name == std::optional<std::string>(node)) return static_cast<std::uint64_t>(n.write_threshold);
        FAIL("no node " << node);
        return 0;
    }
};

/// Manager options with a catalog of `name -> disk id` entries.
inline qmp::threshold_manager_options named(std::vector<std::pair<std::string, std::string>> entries) {
    qmp::threshold_manager_options o;
    for (auto& [k, v] : entries) o.catalog.entries[k] = v;
    o.client.command_timeout = std::chrono::seconds(30);
    return o;
}

/// Polls until `n` events came or `total` passed.
inline std::vector<qmp::threshold_event> poll_until(qmp::threshold_manager& m, std::size_t n,
                                                    std::chrono::milliseconds total = std::chrono::seconds(20)) {
    std::vector<qmp::threshold_event> got;
    auto deadline = std::chrono::steady_clock::now() + total;
    while (got.size() < n && std::chrono::steady_clock::now() < deadline)
        for (auto& e : m.poll(std::chrono::milliseconds(500))) got.push_back(e);
    return got;
}

}  // namespace qmp_support
