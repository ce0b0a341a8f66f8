// Completion tokens and the typed-command mechanism, on the async client
// driven by its own io_context.
#include "../support/fake_server.hpp"

#include <qmp/client/basic_client.hpp>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>

using namespace std::chrono_literals;

namespace {

// A command defined outside the library, in a few lines.
struct echo_cmd {
    static constexpr std::string_view name = "echo";
    using result_type = std::string;
    std::string text;
};
void to_json(qmp::json& j, const echo_cmd& c) { j = {{"text", c.text}}; }

struct strict_result {
    std::string needed;
};
void from_json(const qmp::json& j, strict_result& r) { j.at("needed").get_to(r.needed); }
struct strict_cmd {
    static constexpr std::string_view name = "strict";
    using result_type = strict_result;
};

}  // namespace

TEST_CASE("tokens: callbacks run on the client's executor, never inside the initiation" *
          doctest::test_suite("client")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        auto req = srv.read_message();
        srv.reply(req, {{"qemu", {{"major", 7}, {"minor", 2}, {"micro", 22}}}, {"package", "p"}});
    });
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    bool connected = false, executed = false;
    bool inside_initiation = true;
    client.async_connect(srv.endpoint(), [&](std::error_code ec) {
        REQUIRE(!ec);
        connected = true;
        client.async_execute(qmp::query_version{}, [&](std::error_code ec2, qmp::version_info v) {
            CHECK(!inside_initiation);
            CHECK(!ec2);
            CHECK(v.qemu.major == 7);
            CHECK(v.qemu.micro == 22);
            CHECK(v.package == "p");
            executed = true;
            client.close();
        });
        inside_initiation = false;
    });
    ctx.run();
    CHECK(connected);
    CHECK(executed);
    script.get();
}

TEST_CASE("tokens: use_future, typed arguments and conversion errors as codes" * doctest::test_suite("client")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        auto req = srv.read_message();
        CHECK(req["arguments"]["text"] == "hi");
        srv.reply(req, req["arguments"]["text"]);
        srv.reply(srv.read_message(), {{"other", 1}});
        srv.reply(srv.read_message(), {{"needed", 5}});
    });
    asio::io_context ctx;
    auto guard = asio::make_work_guard(ctx);
    std::thread t([&] { ctx.run(); });
    qmp::unix_client client(ctx);
    client.async_connect(srv.endpoint(), asio::use_future).get();
    CHECK(client.async_execute(echo_cmd{"hi"}, asio::use_future).get() == "hi");

    std::promise<std::pair<std::error_code, std::string>> p;
    qmp::diagnostics diag;
    qmp::exec_options eo;
    eo.diag = &diag;
    client.async_execute(strict_cmd{}, eo, [&](std::error_code ec, strict_result) { p.set_value({ec, diag.message}); });
    auto [ec, msg] = p.get_future().get();
    CHECK(ec == qmp::error::missing_member);
    CHECK(msg.find("needed") != std::string::npos);

    std::promise<std::error_code> p2;
    client.async_execute(strict_cmd{}, [&](std::error_code e, strict_result) { p2.set_value(e); });
    CHECK(p2.get_future().get() == qmp::error::invalid_result);  // wrong type, not missing
    client.close();
    guard.reset();
    t.join();
    script.get();
}

TEST_CASE("tokens: operations on a client that never connected fail at once" * doctest::test_suite("client")) {
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    std::error_code e1, e2;
    client.async_execute("x", nullptr, [&](std::error_code ec, qmp::json) { e1 = ec; });
    client.async_receive_event([&](std::error_code ec, qmp::event) { e2 = ec; });
    ctx.run();
    CHECK(e1 == qmp::error::not_connected);
    CHECK(e2 == qmp::error::not_connected);
}

TEST_CASE("tokens: connecting to a socket nobody listens on is an error, not a hang" *
          doctest::test_suite("client")) {
    qmp_test::temp_dir dir;
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    std::error_code e;
    client.async_connect(asio::local::stream_protocol::endpoint(dir.file("none.sock")),
                         [&](std::error_code ec) { e = ec; });
    ctx.run();
    CHECK(e);
    CHECK(!client.is_open());
}
