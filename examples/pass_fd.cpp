// qmp-example-pass-fd: the management process opens the image, QEMU gets
// the open descriptor.
//
// A thin-provisioning agent often owns the storage (an LV it activated, an
// image QEMU may not open by path). It opens the image itself, hands the
// descriptor to QEMU with `add-fd` (SCM_RIGHTS over the QMP socket), and
// QEMU opens `/dev/fdset/N` instead of a path. The write threshold then
// works on that node like on any other: this example arms one, writes
// through an NBD export as a guest would, and prints the event.
//
//   qmp-example-pass-fd [--qemu-bindir DIR]     (default: /usr/bin)
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <iostream>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const auto found = qmp_support::qemu_from_args(argc, argv, "qmp-example-pass-fd");
    if (!found) return 2;
    const qmp_support::qemu_build& qemu = *found;
    try {
        qmp_support::temp_dir dir;
        auto image = qmp_support::make_chain(qemu, dir, "disk", 1).front();
        qmp_support::qemu_config cfg;
        cfg.kind = qmp_support::qemu_kind::system;  // add-fd lives in the system emulator
        qmp_support::qemu_instance q(qemu, dir, cfg);

        qmp::sync_client client;
        client.connect(asio::local::stream_protocol::endpoint(q.qmp_path()));

        // Open the image here and pass the descriptor with add-fd.
        int fd = ::open(image.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) throw std::runtime_error("cannot open " + image);
        qmp::exec_options with_fd;
        with_fd.fds = {fd};
        auto added = client.execute(qmp::add_fd{std::nullopt, std::string("disk")}, with_fd);
        ::close(fd);  // QEMU holds its own copy now
        std::string set = "/dev/fdset/" + std::to_string(added.fdset_id);
        std::cout << "passed the image's descriptor: QEMU keeps it as fd " << added.fd << " in " << set << "\n";

        client.execute(qmp::blockdev::file("disk-file", set));
        client.execute(qmp::blockdev::qcow2("disk-fmt", "disk-file"));
        std::cout << "opened " << set << " as node disk-file, qcow2 on top as disk-fmt\n";

        // A writer in place of a guest: an NBD export of the qcow2 node.
        client.execute("nbd-server-start",
                       {{"addr", {{"type", "unix"}, {"data", {{"path", q.nbd_path()}}}}}});
        client.execute("block-export-add", {{"type", "nbd"},
                                            {"id", "e0"},
                                            {"node-name", "disk-fmt"},
                                            {"writable", true},
                                            {"name", "vda"}});

        client.execute(qmp::block_set_write_threshold{"disk-file", 1 << 20});
        std::cout << "armed: node disk-file, threshold 1048576 bytes\n";
        std::string out;
        if (q.nbd_write(0, 2 << 20, &out) != 0) throw std::runtime_error("qemu-io write failed: " + out);

        for (;;) {
            std::error_code ec;
            auto ev = client.receive_event(10s);
            if (auto t = qmp::event_as<qmp::block_write_threshold_event>(ev, ec)) {
                std::cout << "event: " << t->node_name << " crossed " << t->write_threshold << " by "
                          << t->amount_exceeded << " bytes\n";
                break;
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qmp-example-pass-fd: " << e.what() << "\n";
        return 1;
    }
}
