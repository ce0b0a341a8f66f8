// qmp-threshold-once: the smallest end-to-end write-threshold story.
//
// It starts its own qemu-storage-daemon in a temporary directory with one
// qcow2 image exported over NBD, arms a 1 MiB write threshold on the image's
// storage (file) node, writes 3 MiB through NBD with qemu-io, and prints the
// BLOCK_WRITE_THRESHOLD event QEMU sends back. QEMU is stopped by PID and the
// directory removed on the way out.
//
//   qmp-threshold-once [--qemu-bindir DIR]     (default: /usr/bin)
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

#include <iostream>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const auto found = qmp_support::qemu_from_args(argc, argv, "qmp-threshold-once");
    if (!found) return 2;
    const qmp_support::qemu_build& qemu = *found;
    try {
        qmp_support::temp_dir dir;
        auto images = qmp_support::make_chain(qemu, dir, "disk", 1);
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(images, "disk");
        cfg.nbd_export_node = "disk-0-fmt";
        qmp_support::qemu_instance q(qemu, dir, cfg);

        // The blocking facade: connect, negotiate, run commands.
        qmp::sync_client client;
        client.connect(asio::local::stream_protocol::endpoint(q.qmp_path()));
        auto v = client.execute(qmp::query_version{});
        std::cout << "connected to QEMU " << v.qemu.major << "." << v.qemu.minor << "." << v.qemu.micro << " ("
                  << v.package << ")\n";

        const std::uint64_t threshold = 1 << 20;
        client.execute("block-set-write-threshold", {{"node-name", "disk-0-file"}, {"write-threshold", threshold}});
        std::cout << "armed: node disk-0-file, threshold " << threshold << " bytes\n";

        std::string out;
        if (q.nbd_write(0, 3 << 20, &out) != 0) throw std::runtime_error("qemu-io write failed: " + out);
        std::cout << "wrote 3 MiB at offset 0 through NBD\n";

        for (;;) {
            qmp::event ev = client.receive_event(10s);  // throws qmp_error on timeout
            std::error_code ec;
            qmp::diagnostics why;
            // Read typed: a member of the wrong type is an error, never an exception in a handler.
            auto fired = qmp::event_as<qmp::block_write_threshold_event>(ev, ec, &why);
            if (ec) throw std::runtime_error(why.message);
            if (!fired) continue;  // another event
            std::cout << "event: " << ev.name << " node " << fired->node_name << " threshold " << fired->write_threshold
                      << " exceeded by " << fired->amount_exceeded << " at " << ev.time.seconds << "."
                      << ev.time.microseconds << "\n";
            for (const auto& n : client.execute(qmp::query_named_block_nodes{true}))
                if (n.node_name == std::optional<std::string>("disk-0-file"))
                    std::cout << "after the event QEMU reports write_threshold " << n.write_threshold
                              << " (one shot: it must be re-armed)\n";
            break;
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qmp-threshold-once: " << e.what() << "\n";
        return 1;
    }
}
