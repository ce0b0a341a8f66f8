// C++17, callbacks: the asynchronous client driven by completion handlers.
// Starts its own qemu-storage-daemon, connects, runs a typed and a raw
// command, arms a threshold, and waits for the event, all on one thread.
//
//   qmp-example-callbacks [--qemu-bindir DIR]
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

#include <iostream>

int main(int argc, char** argv) {
    qmp_support::qemu_build qemu{"system", argc == 3 ? argv[2] : "/usr/bin"};
    qmp_support::temp_dir dir;
    auto images = qmp_support::make_chain(qemu, dir, "disk", 1);
    qmp_support::qemu_config cfg;
    cfg.blockdevs = qmp_support::chain_blockdevs(images, "disk");
    cfg.nbd_export_node = "disk-0-fmt";
    qmp_support::qemu_instance vm(qemu, dir, cfg);

    asio::io_context io;
    qmp::unix_client client(io);
    int rc = 1;

    // Each step starts the next from its completion handler.
    client.async_connect(asio::local::stream_protocol::endpoint(vm.qmp_path()), [&](std::error_code ec) {
        if (ec) return void(std::cerr << "connect: " << ec.message() << "\n");
        client.async_execute(qmp::query_version{}, [&](std::error_code ec, qmp::version_info v) {
            if (ec) return void(std::cerr << "query-version: " << ec.message() << "\n");
            std::cout << "QEMU " << v.qemu.major << "." << v.qemu.minor << "." << v.qemu.micro << "\n";
            client.async_execute(qmp::block_set_write_threshold{"disk-0-file", 1 << 20}, [&](std::error_code ec,
                                                                                              qmp::empty_result) {
                if (ec) return void(std::cerr << "arm: " << ec.message() << "\n");
                std::cout << "armed disk-0-file at 1 MiB\n";
                vm.nbd_write(0, 2 << 20);  // a blocking helper; fine in an example
                client.async_receive_event(std::chrono::seconds(10), [&](std::error_code ec, qmp::event ev) {
                    std::error_code dec;
                    auto t = qmp::event_as<qmp::block_write_threshold_event>(ev, dec);
                    if (ec || !t) return void(std::cerr << "no threshold event: " << ec.message() << "\n");
                    std::cout << "event: " << t->node_name << " crossed " << t->write_threshold << " by "
                              << t->amount_exceeded << "\n";
                    rc = 0;
                    client.close();  // nothing pending any more: run() returns
                });
            });
        });
    });
    io.run();
    return rc;
}
