// C++20 coroutines: the same story as the callback example, written
// straight down with asio::use_awaitable; errors arrive as exceptions.
//
//   qmp-example-coroutines [--qemu-bindir DIR]
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

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
            const qmp::block_set_write_threshold arm{"disk-1-file", 1 << 20};
            co_await client.async_execute(arm, use_awaitable);
            vm.nbd_write(0, 2 << 20);
            for (;;) {
                qmp::event ev = co_await client.async_receive_event(std::chrono::seconds(10), use_awaitable);
                std::error_code ec;
                if (auto t = qmp::event_as<qmp::block_write_threshold_event>(ev, ec)) {
                    std::cout << "event: " << t->node_name << " crossed " << t->write_threshold << "\n";
                    rc = 0;
                    break;
                }
            }
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
