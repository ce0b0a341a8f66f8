// C++20 coroutines with asio::use_awaitable (compiled in the C++20 suite only).
#include "../support/fake_server.hpp"

#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/testing.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <future>

TEST_CASE("coroutines: connect, execute, receive an event with use_awaitable" * doctest::test_suite("client")) {
    qmp::testing::peer qemu;
    qemu.on("query-version")
        .event_before("BLOCK_WRITE_THRESHOLD", R"({"node-name": "n", "amount-exceeded": 1, "write-threshold": 2})")
        .reply(R"({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""})");
    qemu.on("fails").error("GenericError", "bad");
    asio::io_context ctx;
    qmp::basic_client<qmp::testing::stream> client(ctx);
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            co_await client.async_connect(qemu.endpoint(), asio::use_awaitable);
            auto v = co_await client.async_execute(qmp::query_version{}, asio::use_awaitable);
            CHECK(v.qemu.major == 10);
            auto ev = co_await client.async_receive_event(asio::use_awaitable);
            CHECK(ev.name == "BLOCK_WRITE_THRESHOLD");
            CHECK(ev.data["write-threshold"] == 2);
            try {
                co_await client.async_execute("fails", nullptr, asio::use_awaitable);
                FAIL("no exception");
            } catch (const std::system_error& e) {  // a qmp_error, with QEMU's text by default
                CHECK(e.code() == qmp::server_error::generic_error);
                CHECK(std::string(e.what()).rfind("bad", 0) == 0);  // "bad: GenericError"
                CHECK(dynamic_cast<const qmp::qmp_error*>(&e) != nullptr);
            }
            client.close();
            done = true;
        },
        asio::detached);
    ctx.run();
    CHECK(done);
    CHECK(qemu.check() == "");
}

TEST_CASE("errors: the same failing command gives QEMU's desc to callbacks, futures, coroutines and sync calls" *
          doctest::test_suite("client")) {
    const std::string desc = "Device 'nope' not found";
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();  // the asynchronous client: three failures
        for (int i = 0; i < 3; ++i) srv.reply_error(srv.read_message(), "GenericError", desc);
        srv.handshake();  // the blocking one
        srv.reply_error(srv.read_message(), "GenericError", desc);
    });
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    std::vector<std::string> seen;  // what each style got to see
    client.async_connect(srv.endpoint(), [&](std::error_code ec) { REQUIRE(!ec); });
    ctx.run_for(std::chrono::seconds(5));
    REQUIRE(client.is_open());
    const qmp::block_set_write_threshold cmd{"nope", 1};

    // 1. A callback, with diagnostics bound to it.
    qmp::diagnostics diag;
    client.async_execute(cmd, qmp::bind_diagnostics(diag, [&](std::error_code ec, qmp::empty_result) {
                             CHECK(ec == qmp::server_error::generic_error);
                             seen.push_back(diag.message);
                         }));
    // 2. A plain asio::use_future: the exception carries the text (the
    // library applies with_diagnostics itself).
    auto f = client.async_execute(cmd, asio::use_future);
    // 3. A plain asio::use_awaitable: so does the exception it throws.
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            try {
                co_await client.async_execute(cmd, asio::use_awaitable);
            } catch (const qmp::qmp_error& e) {
                CHECK(e.code() == qmp::server_error::generic_error);
                CHECK(e.diag().error_class == "GenericError");
                seen.push_back(e.what());
            }
        },
        asio::detached);
    ctx.restart();
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ctx.run_one_for(std::chrono::milliseconds(10));
    ctx.run_for(std::chrono::milliseconds(200));
    try {
        f.get();
    } catch (const qmp::qmp_error& e) {
        seen.push_back(e.what());
    }
    client.close();
    // 4. The blocking facade throws it too.
    qmp::sync_client sync;
    sync.connect(srv.endpoint());
    try {
        sync.execute(cmd);
    } catch (const qmp::qmp_error& e) {
        seen.push_back(e.what());
    }
    script.get();
    REQUIRE(seen.size() == 4);
    for (const auto& s : seen) CHECK(s.find(desc) != std::string::npos);
}
