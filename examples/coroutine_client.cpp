// C++20 coroutines: the same story as the callback example, written
// straight down with asio::use_awaitable; errors arrive as exceptions. The
// raw client lists the nodes; a threshold service on the same connection
// arms `disk` and hands its event back as `disk[1]`, both with co_await.
//
//   qmp-example-coroutines [--qemu-bindir DIR]
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>
#include <qmp/threshold/service.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>

#include <iostream>

int main(int argc, char** argv) {
    qmp_support::qemu_build qemu{"system", argc == 3 ? argv[2] : "/usr/bin"};
    qmp_support::temp_dir dir;
    auto images = qmp_support::make_chain(qemu, dir, "disk", 2);
    qmp_support::qemu_config cfg;
    cfg.blockdevs = qmp_support::chain_blockdevs(images, "disk");
    cfg.nbd_export_node = "disk-1-fmt";
    qmp_support::qemu_instance vm(qemu, dir, cfg);

    asio::io_context io;
    qmp::unix_client client(io);
    int rc = 1;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            using asio::use_awaitable;
            co_await client.async_connect(asio::local::stream_protocol::endpoint(vm.qmp_path()), use_awaitable);
            // Commands are named variables, not temporaries inside co_await: GCC 12
            // destroys such temporaries twice (a compiler bug, fixed in GCC 13).
            const qmp::query_named_block_nodes query{true};
            auto nodes = co_await client.async_execute(query, use_awaitable);
            std::cout << nodes.size() << " nodes:";
            for (const auto& n : nodes) std::cout << " " << n.node_name.value_or("?") << " (" << n.drv << ")";
            std::cout << "\n";
            // The service on the same client: it asks for the events it
            // needs; everything else stays the application's.
            qmp::threshold_service_options o;
            o.tracker.catalog.entries["disk"] = "disk-1-fmt";
            qmp::threshold_service service(client, o);
            service.on_connected();
            const auto spec = qmp::threshold_spec::bytes(1 << 20);
            auto at_once = co_await service.async_arm("disk", spec, use_awaitable);
            std::cout << "armed disk (" << at_once.size() << " crossed already)\n";
            vm.nbd_write(0, 2 << 20);
            qmp::threshold_event e = co_await service.async_receive(std::chrono::seconds(10), use_awaitable);
            std::cout << "event: " << e.where.indexed() << " (" << e.node << ") crossed " << e.threshold << " by "
                      << e.amount_exceeded << "\n";
            rc = 0;
            client.close();
        },
        [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                std::cerr << "failed: " << x.what() << "\n";
            }
        });
    io.run();
    return rc;
}
