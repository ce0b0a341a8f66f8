// C++20 coroutines with asio::use_awaitable (compiled in the C++20 suite only).
#include "../support/fake_server.hpp"

#include <qmp/client/basic_client.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <future>

TEST_CASE("coroutines: connect, execute, receive an event with use_awaitable" * doctest::test_suite("client")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        auto req = srv.read_message();
        srv.send_event("BLOCK_WRITE_THRESHOLD", {{"node-name", "n"}, {"amount-exceeded", 1}, {"write-threshold", 2}});
        srv.reply(req, {{"qemu", {{"major", 10}, {"minor", 0}, {"micro", 2}}}, {"package", ""}});
        srv.reply_error(srv.read_message(), "GenericError", "bad");
    });
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            co_await client.async_connect(srv.endpoint(), asio::use_awaitable);
            auto v = co_await client.async_execute(qmp::query_version{}, asio::use_awaitable);
            CHECK(v.qemu.major == 10);
            auto ev = co_await client.async_receive_event(asio::use_awaitable);
            CHECK(ev.name == "BLOCK_WRITE_THRESHOLD");
            CHECK(ev.data["write-threshold"] == 2);
            try {
                co_await client.async_execute("fails", nullptr, asio::use_awaitable);
                FAIL("no exception");
            } catch (const std::system_error& e) {
                CHECK(e.code() == qmp::server_error::generic_error);
            }
            client.close();
            done = true;
        },
        asio::detached);
    ctx.run();
    CHECK(done);
    script.get();
}
