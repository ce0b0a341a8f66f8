// qmp::testing: the scripted peer and its stream, with each client type and
// each fault it can inject.
#include <qmp/client/clients.hpp>
#include <qmp/client/reconnector.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/testing.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

using async_client = qmp::basic_client<qmp::testing::stream>;
using blocking_client = qmp::basic_sync_client<qmp::testing::stream>;

// Runs `io` until `done()` (the client keeps a read pending, so run() would
// not return), for at most `limit`.
template <class Done>
void run_until(asio::io_context& io, Done done, std::chrono::milliseconds limit = 2s) {
    io.restart();
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) io.run_one_for(10ms);
}

// Connects `c` to `qemu` and runs `io` until that is done.
std::error_code connect(asio::io_context& io, async_client& c, const qmp::testing::peer& qemu) {
    std::error_code result = qmp::error::timeout;
    bool done = false;
    c.async_connect(qemu.endpoint(), [&](std::error_code ec) {
        result = ec;
        done = true;
    });
    run_until(io, [&] { return done; });
    return result;
}

// Sends `name` and runs `io` until the reply (or up to a second): its error.
std::error_code execute(asio::io_context& io, async_client& c, const std::string& name,
                        const qmp::exec_options& opts = {}) {
    std::error_code result = qmp::error::timeout;
    bool done = false;
    c.async_execute(name, nullptr, opts, [&](std::error_code ec, qmp::json) {
        result = ec;
        done = true;
    });
    run_until(io, [&] { return done; });
    return result;
}

}  // namespace

TEST_CASE("testing: a scripted peer answers by name and by arguments, echoing ids" * doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    qemu.on("query-status").reply(R"({"status": "running", "running": true})");
    qemu.on("block-set-write-threshold", {{"node-name", "a"}, {"write-threshold", 1}}).reply("{}");
    qemu.on("block-set-write-threshold").error("GenericError", "Device 'b' not found");

    asio::io_context io;
    async_client c(io);
    REQUIRE(!connect(io, c, qemu));
    int done = 0;
    c.async_execute("query-status", nullptr, [&](std::error_code ec, qmp::json r) {
        CHECK(!ec);
        CHECK(r["status"] == "running");
        ++done;
    });
    c.async_execute("block-set-write-threshold", {{"node-name", "a"}, {"write-threshold", 1}},
                    [&](std::error_code ec, qmp::json) {
                        CHECK(!ec);
                        ++done;
                    });
    qmp::diagnostics diag;
    c.async_execute("block-set-write-threshold", {{"node-name", "b"}, {"write-threshold", 1}}, diag,
                    [&](std::error_code ec, qmp::json) {
                        CHECK(ec == qmp::server_error::generic_error);
                        ++done;
                    });
    c.async_execute("no-such-command", nullptr, [&](std::error_code ec, qmp::json) {
        CHECK(ec == qmp::server_error::command_not_found);
        ++done;
    });
    run_until(io, [&] { return done == 4; });
    CHECK(done == 4);
    CHECK(diag.message == "Device 'b' not found");
    CHECK(qemu.commands() == std::vector<std::string>{"qmp_capabilities", "query-status", "block-set-write-threshold",
                                                      "block-set-write-threshold", "no-such-command"});
    REQUIRE(qemu.unexpected().size() == 1);
    CHECK(qemu.check().find("unexpected command") != std::string::npos);
}

TEST_CASE("testing: the blocking client, typed commands and events from another thread" *
          doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    qemu.version(7, 2, 22);
    qemu.on("query-version").reply(R"({"qemu": {"major": 7, "minor": 2, "micro": 22}, "package": ""})").times(1);
    blocking_client c;
    c.connect(qemu.endpoint());
    CHECK(c.execute(qmp::query_version{}).qemu.minor == 2);
    std::thread t([&] { qemu.event("BLOCK_WRITE_THRESHOLD", R"({"node-name": "n", "amount-exceeded": 1, "write-threshold": 2})"); });
    auto ev = c.receive_event(5000ms);
    t.join();
    CHECK(ev.name == "BLOCK_WRITE_THRESHOLD");
    CHECK(qemu.check() == "");
}

TEST_CASE("testing: events before a reply, before negotiation, and a reply that never comes" *
          doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    // go-qemu's bug: an event read as the reply to qmp_capabilities.
    qemu.on("qmp_capabilities").event_before("RESUME").reply("{}");
    qemu.on("block-job-complete").event_before("BLOCK_JOB_COMPLETED", R"({"device": "j", "len": 1, "offset": 1, "speed": 0, "type": "mirror"})").reply("{}");
    qemu.on("query-status").no_reply();

    asio::io_context io;
    async_client c(io);
    REQUIRE(!connect(io, c, qemu));
    std::vector<std::string> order;
    c.async_receive_event([&](std::error_code ec, qmp::event ev) {
        CHECK(!ec);
        order.push_back(ev.name);
        c.async_receive_event([&](std::error_code ec2, qmp::event ev2) {
            CHECK(!ec2);
            order.push_back(ev2.name);
        });
    });
    c.async_execute("block-job-complete", {{"device", "j"}}, [&](std::error_code ec, qmp::json) {
        CHECK(!ec);
        order.push_back("reply");
    });
    std::error_code status_ec = qmp::error::timeout;
    bool status_done = false;
    c.async_execute("query-status", nullptr, [&](std::error_code ec, qmp::json r) {
        status_ec = ec;
        status_done = true;
        CHECK(r["status"] == "paused");
    });
    io.restart();
    io.run_for(200ms);
    CHECK(order == std::vector<std::string>{"RESUME", "BLOCK_JOB_COMPLETED", "reply"});
    CHECK(!status_done);
    REQUIRE(qemu.unanswered().size() == 1);
    CHECK(qemu.answer("query-status", R"({"status": "paused", "running": false})"));
    CHECK(!qemu.answer("query-status"));
    run_until(io, [&] { return status_done; });
    CHECK(status_done);
    CHECK(!status_ec);
}

TEST_CASE("testing: faults: a read or write failing after N operations, a cut at byte N, a hang-up mid-command" *
          doctest::test_suite("testing")) {
    SUBCASE("the third write fails") {
        qmp::testing::peer qemu;
        qemu.on("query-status").reply("{}");
        qemu.set_faults({qmp::testing::faults::never, 2});  // capabilities, one command, then EPIPE
        asio::io_context io;
        async_client c(io);
        REQUIRE(!connect(io, c, qemu));
        CHECK(!execute(io, c, "query-status"));
        CHECK(execute(io, c, "query-status") == qmp::error::connection_closed);
    }
    SUBCASE("a read fails after the greeting and the negotiation's reply") {
        qmp::testing::peer qemu;
        qemu.on("query-status").reply("{}");
        qmp::testing::faults f;
        f.fail_read_after = 2;
        qemu.set_faults(f);
        asio::io_context io;
        async_client c(io);
        REQUIRE(!connect(io, c, qemu));
        CHECK(execute(io, c, "query-status") == qmp::error::connection_closed);
    }
    SUBCASE("the connection is cut inside the greeting, and reads come a byte at a time") {
        qmp::testing::peer qemu;
        qmp::testing::faults f;
        f.cut_after_bytes = 20;
        f.read_limit = 1;
        qemu.set_faults(f);
        asio::io_context io;
        async_client c(io);
        qmp::diagnostics diag;
        std::error_code got = qmp::error::timeout;
        c.async_connect(qemu.endpoint(), diag, [&](std::error_code ec) { got = ec; });
        run_until(io, [&] { return got != qmp::error::timeout; });
        CHECK(got == qmp::error::connection_closed);
    }
    SUBCASE("QEMU dies while a command runs; the next connection works") {
        qmp::testing::peer qemu;
        qemu.on("drive-mirror").hang_up().times(1);
        qemu.on("drive-mirror").reply("{}");
        asio::io_context io;
        async_client c(io);
        REQUIRE(!connect(io, c, qemu));
        CHECK(execute(io, c, "drive-mirror") == qmp::error::connection_closed);
        const auto again = connect(io, c, qemu);
        REQUIRE_MESSAGE(!again, again.message());
        CHECK(!execute(io, c, "drive-mirror"));
        CHECK(qemu.connections() == 2);
        CHECK(qemu.check() == "");
    }
}

TEST_CASE("testing: refused connects, backoff, a restarted QEMU, a delayed reply against the command timeout" *
          doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    qemu.set_faults(qmp::testing::faults::refused(), 1);
    qemu.set_faults(qmp::testing::faults::refused(), 2);
    asio::io_context io;
    async_client c(io);
    // Refused twice: the third attempt gets through.
    qmp::backoff retry;
    retry.min = 1ms;
    std::error_code got = qmp::error::timeout;
    c.async_connect(qemu.endpoint(), retry, [&](std::error_code ec) { got = ec; });
    run_until(io, [&] { return got != qmp::error::timeout; });
    CHECK(!got);
    CHECK(qemu.connections() == 1);
    const auto first = c.peer_instance();
    REQUIRE(first);

    qemu.on("query-status").reply("{}").delay(300ms);
    qmp::exec_options quick;
    quick.timeout = 50ms;
    CHECK(execute(io, c, "query-status", quick) == qmp::error::timeout);
    CHECK(qemu.commands().back() == "query-status");  // sent, and its reply was late

    c.close();
    REQUIRE(!connect(io, c, qemu));
    CHECK(c.peer_instance() == first);  // the same QEMU, connected again
    c.close();
    qemu.restart();
    REQUIRE(!connect(io, c, qemu));
    CHECK(c.peer_instance() != first);
}

TEST_CASE("testing: a hostile peer: garbage before a reply ends the session with malformed_message" *
          doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    qemu.on("query-status").send_before("]]garbage\r\n").reply("{}");
    asio::io_context io;
    async_client c(io);
    REQUIRE(!connect(io, c, qemu));
    CHECK(execute(io, c, "query-status") == qmp::error::malformed_message);
}

TEST_CASE("testing: the reconnector over the peer: refused, up, QEMU gone, up again on a new instance" *
          doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    qemu.set_faults(qmp::testing::faults::refused(), 1);
    asio::io_context io;
    async_client c(io);
    qmp::reconnect_options o;
    o.retry = {1ms, 5ms, 0.0, {}};
    std::vector<std::string> seen;
    std::vector<std::optional<std::string>> instances;
    qmp::basic_reconnector<async_client, qmp::testing::endpoint> r(c, qemu.endpoint(), o, [&](const qmp::reconnect_status& s) {
        seen.push_back(s.up ? "up" : "down");
        if (s.up) {
            instances.push_back(c.peer_instance());
            if (instances.size() == 1) {
                qemu.restart();
                qemu.hang_up();
            }
        }
        if (instances.size() == 2) r.stop();
    });
    r.start();
    run_until(io, [&] { return seen.size() >= 4; });
    CHECK(seen == std::vector<std::string>{"down", "up", "down", "up"});
    REQUIRE(instances.size() == 2);
    CHECK(instances[0] != instances[1]);
    CHECK(qemu.connections() == 2);
}

TEST_CASE("testing: an event before the greeting is kept, and the session starts" * doctest::test_suite("testing")) {
    qmp::testing::peer qemu;
    qemu.greeting(qmp::testing::rule::event_text("RESUME", "{}") +
                  R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""},)"
                  R"( "capabilities": []}})" "\r\n");
    asio::io_context io;
    async_client c(io);
    REQUIRE(!connect(io, c, qemu));
    CHECK(c.queued_events() == 1);
    std::string name;
    c.async_receive_event([&](std::error_code, qmp::event ev) { name = ev.name; });
    io.restart();
    io.poll();
    CHECK(name == "RESUME");
}
