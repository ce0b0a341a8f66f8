// The client against an in-process server scripted to misbehave in the ways
// real QEMU cannot be made to.
#include "../support/reply_id.hpp"
#include "../support/fake_server.hpp"
#include "../support/tool_paths.hpp"

#include <qmp/client/clients.hpp>
#include <qmp/qapi/events.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <cerrno>
#include <unistd.h>

using namespace std::chrono_literals;
using qmp_test::fake_server;

namespace {

template <class F>
auto in_thread(F&& f) {
    return std::async(std::launch::async, std::forward<F>(f));
}

qmp::client_options quick(std::chrono::milliseconds cmd_timeout = 5000ms) {
    qmp::client_options o;
    o.command_timeout = cmd_timeout;
    o.greeting_timeout = 5000ms;
    return o;
}

}  // namespace

TEST_CASE("fake: server errors map to codes and keep the desc" * doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        srv.reply_error(srv.read_message(), "CommandNotFound", "The command nope has not been found");
        srv.reply_error(srv.read_message(), "SomethingNew", "new class");
        srv.reply_error(srv.read_message(), "GenericError", "thrown");
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    std::error_code ec;
    qmp::diagnostics d;
    cl.execute("nope", nullptr, ec, d);
    CHECK(ec == qmp::server_error::command_not_found);
    CHECK(d.error_class == "CommandNotFound");
    CHECK(d.message == "The command nope has not been found");
    cl.execute("new", nullptr, ec, d);
    CHECK(ec == qmp::server_error::unknown_class);
    CHECK(d.error_class == "SomethingNew");
    try {
        cl.execute("boom");
        FAIL("no exception");
    } catch (const qmp::qmp_error& e) {
        CHECK(e.code() == qmp::server_error::generic_error);
        CHECK(std::string(e.what()).find("thrown") != std::string::npos);
        CHECK(e.diag().error_class == "GenericError");
    }
    script.get();
}

TEST_CASE("fake: socket closed in the middle of a message" * doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        srv.read_message();
        srv.send(R"({"return": {"half": )");
        srv.close();
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    auto t0 = std::chrono::steady_clock::now();
    std::error_code ec;
    qmp::diagnostics d;
    cl.execute("a", nullptr, ec, d);
    CHECK(ec == qmp::error::connection_closed);
    CHECK(std::chrono::steady_clock::now() - t0 < 4s);  // not the 5 s command timeout
    script.get();
}

TEST_CASE("fake: a peer that stops reading fails commands with connection_closed, not a write error" *
          doctest::test_suite("fake")) {
    fake_server srv;
    std::promise<void> finished, stopped_reading;
    auto script = in_thread([&] {
        srv.handshake();
        ::shutdown(srv.socket().native_handle(), SHUT_RD);  // our writes now fail (EPIPE); our reads do not end
        stopped_reading.set_value();
        finished.get_future().wait();
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    // The peer stops reading before the command goes out: a client already
    // waiting on a full buffer when it does is not always woken by Linux,
    // and would see its command time out instead (seen once under load).
    stopped_reading.get_future().wait();
    std::error_code ec;
    qmp::diagnostics d;
    cl.execute("big", {{"pad", std::string(1 << 20, 'x')}}, ec, d);
    CHECK(ec == qmp::error::connection_closed);
    CHECK(cl.async_client().close_reason() == qmp::error::connection_closed);
    finished.set_value();
    script.get();
}

TEST_CASE("fake: 10,000 events to a client that reads none: bounded, the marker at the gap" *
          doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        std::string burst;
        for (int i = 0; i < 10000; ++i)
            burst += R"({"event": "TICK", "data": {"i": )" + std::to_string(i) +
                     R"(}, "timestamp": {"seconds": 1, "microseconds": 0}})" "\r\n";
        srv.send(burst);
        srv.reply(srv.read_message(), "done");  // a command still works after the flood
    });
    auto o = quick();
    o.event_queue_capacity = 100;
    qmp::sync_client cl(o);
    cl.connect(srv.endpoint());
    CHECK(cl.execute("after") == "done");  // reads the flood on the way to its reply
    CHECK(cl.queued_events() == 100);
    auto st = cl.stats();
    CHECK(st.events_received == 10000);
    CHECK(st.events_dropped == 9900);
    std::error_code ec;
    for (int i = 0; i < 100; ++i) CHECK(cl.receive_event(1000ms).data["i"] == i);  // the first 100, in order
    auto marker = cl.receive_event(1000ms, ec);
    CHECK(!ec);
    CHECK(marker.lost == 9900);  // then one marker for everything after them, in order
    CHECK(marker.name.empty());
    cl.receive_event(50ms, ec);
    CHECK(ec == qmp::error::timeout);
    script.get();
}

TEST_CASE("fake: command timeout, the late reply is consumed" * doctest::test_suite("fake")) {
    fake_server srv;
    std::promise<void> timed_out;
    auto script = in_thread([&] {
        srv.handshake();
        auto slow = srv.read_message();
        timed_out.get_future().wait();
        srv.reply(slow, "late");
        srv.reply(srv.read_message(), "fresh");
    });
    qmp::sync_client cl(quick(100ms));
    cl.connect(srv.endpoint());
    std::error_code ec;
    qmp::diagnostics d;
    cl.execute("slow", nullptr, ec, d);
    CHECK(ec == qmp::error::timeout);
    timed_out.set_value();
    CHECK(cl.execute("next", nullptr, qmp::exec_options{false, 5000ms}) == "fresh");
    CHECK(cl.stats().late_replies == 1);
    CHECK(cl.stats().unknown_ids == 0);
    script.get();
}

TEST_CASE("fake: per-operation cancellation, late reply consumed" * doctest::test_suite("fake")) {
    fake_server srv;
    std::promise<void> cancelled;
    auto script = in_thread([&] {
        srv.handshake();
        auto req = srv.read_message();
        cancelled.get_future().wait();
        srv.reply(req, "late");
        srv.reply(srv.read_message(), "ok");
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    auto& ac = cl.async_client();
    asio::cancellation_signal sig;
    std::promise<std::error_code> res;
    ac.async_execute("hang", nullptr,
                     asio::bind_cancellation_slot(sig.slot(), [&](std::error_code ec, qmp::json) { res.set_value(ec); }));
    cl.poll();  // the command goes out
    std::this_thread::sleep_for(50ms);
    asio::post(ac.get_executor(), [&] { sig.emit(asio::cancellation_type::terminal); });
    CHECK(cl.wait(res.get_future()) == asio::error::operation_aborted);
    cancelled.set_value();
    CHECK(cl.execute("next") == "ok");
    CHECK(cl.stats().late_replies == 1);
    script.get();
}

TEST_CASE("fake: greeting timeout" * doctest::test_suite("fake")) {
    fake_server srv;
    std::promise<void> done;
    auto script = in_thread([&] {
        srv.accept();
        done.get_future().wait();
    });
    auto o = quick();
    o.greeting_timeout = 100ms;
    qmp::sync_client cl(o);
    std::error_code ec;
    cl.connect(srv.endpoint(), ec);
    CHECK(ec == qmp::error::greeting_timeout);
    done.set_value();
    script.get();
}

TEST_CASE("fake: close() completes every pending operation at once" * doctest::test_suite("fake")) {
    fake_server srv;
    std::promise<void> done;
    auto script = in_thread([&] {
        srv.handshake();
        done.get_future().wait();
    });
    qmp::sync_client cl(quick(0ms));
    cl.connect(srv.endpoint());
    auto& ac = cl.async_client();
    std::vector<std::future<qmp::json>> fs;
    for (int i = 0; i < 50; ++i) fs.push_back(ac.async_execute("x", nullptr, asio::use_future));
    auto ev = ac.async_receive_event(asio::use_future);
    cl.poll();  // all of them are waiting now
    cl.close();
    for (auto& f : fs) CHECK_THROWS_AS(cl.wait(std::move(f)), std::system_error);
    CHECK_THROWS_AS(cl.wait(std::move(ev)), std::system_error);
    done.set_value();
    script.get();
}

TEST_CASE("fake: the blocking client's close() from another thread ends a call in progress" *
          doctest::test_suite("fake")) {
    // Both modes: the caller's thread runs the client (close() hands it
    // over), or the client's own reading thread does (keep_reading).
    for (bool keep_reading : {false, true}) {
        CAPTURE(keep_reading);
        fake_server srv;
        std::promise<void> done;
        auto script = in_thread([&] {
            srv.handshake();
            srv.read_message();  // never answered
            done.get_future().wait();
        });
        {
            qmp::sync_client cl(quick(0ms), keep_reading);
            cl.connect(srv.endpoint());
            auto closer = in_thread([&] {
                std::this_thread::sleep_for(100ms);
                cl.close();
            });
            std::error_code ec;
            qmp::diagnostics diag;
            cl.execute("query-status", nullptr, ec, diag);
            CHECK(ec == qmp::error::connection_closed);
            closer.get();
            CHECK(!cl.is_open());
            cl.close();  // again, while no call runs: close() runs the client itself
        }
        done.set_value();
        script.get();
    }
}

TEST_CASE("fake: the trace hook sees traffic and states" * doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        srv.reply(srv.read_message(), 1);
    });
    std::vector<std::pair<qmp::trace_kind, std::string>> seen;
    std::mutex m;
    auto o = quick();
    o.trace = [&](qmp::trace_kind k, std::string_view t) {
        std::lock_guard<std::mutex> lk(m);
        seen.emplace_back(k, std::string(t));
    };
    qmp::sync_client cl(o);
    cl.connect(srv.endpoint());
    cl.execute("traced");
    script.get();
    std::lock_guard<std::mutex> lk(m);
    bool sent = false, received_greeting = false, ready = false;
    for (auto& [k, t] : seen) {
        if (k == qmp::trace_kind::sent && t.find("\"traced\"") != std::string::npos) sent = true;
        if (k == qmp::trace_kind::received && t.find("\"QMP\"") != std::string::npos) received_greeting = true;
        if (k == qmp::trace_kind::state && t.rfind("ready", 0) == 0) ready = true;
    }
    CHECK(sent);
    CHECK(received_greeting);
    CHECK(ready);
}

TEST_CASE("fake: a closed client reconnects" * doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        srv.close();
        srv.handshake();
        srv.reply(srv.read_message(), "again");
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    std::error_code ec;
    cl.receive_event(2000ms, ec);
    CHECK(ec == qmp::error::connection_closed);
    cl.connect(srv.endpoint());
    CHECK(cl.execute("x") == "again");
    CHECK(cl.stats().connections == 2);
    script.get();
}

TEST_CASE("fake: numbers that fit no C++ type: clear typed errors, exact raw text, the session goes on" *
          doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        auto id = [&] { return qmp_test::id_member(srv.read_message()); };
        srv.send(R"({"return": {"qemu": {"major": 1e300, "minor": 0, "micro": 0}, "package": ""})" + id() + "}\r\n");
        srv.send(R"({"return": {"qemu": {"major": -5, "minor": 0, "micro": 18446744073709551616}})" + id() + "}\r\n");
        srv.send(R"({"return": {"n": 18446744073709551616, "f": 1e999})" + id() + "}\r\n");
        srv.send(R"({"return": {"n": 18446744073709551616})" + id() + "}\r\n");
        srv.send_event("BLOCK_WRITE_THRESHOLD", qmp::json::parse(R"({"node-name": "n", "amount-exceeded": 18446744073709551615, "write-threshold": 1.5})"));
        srv.send(R"({"event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "n", "amount-exceeded": 1e999, "write-threshold": 1}})" "\r\n");
        srv.reply(srv.read_message(), "still here");
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    std::error_code ec;
    qmp::diagnostics d;
    cl.execute(qmp::query_version{}, ec, d);
    CHECK(ec == qmp::error::invalid_result);
    CHECK(d.message == "qemu.major: 1e300 is not an integer; expected a signed 64-bit integer");
    cl.execute(qmp::query_version{}, ec, d);
    CHECK(ec == qmp::error::unrepresentable_number);  // beyond any 64-bit integer
    CHECK(d.message.find("qemu.micro: 18446744073709551616 does not fit a signed 64-bit integer") == 0);
    // The raw tree refuses to round, and says where.
    cl.execute("raw", nullptr, ec, d);
    CHECK(ec == qmp::error::unrepresentable_number);
    CHECK(d.message.find("18446744073709551616") != std::string::npos);
    // The exact text is always available.
    auto text = cl.execute(qmp::dynamic_command<qmp::json_text>{"raw-text"}, ec, d);
    REQUIRE(!ec);
    CHECK(text.text == R"({"n": 18446744073709551616})");
    // Events are delivered, never dropped; typed decoding fails clearly.
    qmp::event ev = cl.receive_event(std::chrono::seconds(5));
    auto t = qmp::event_as<qmp::block_write_threshold_event>(ev, ec, &d);
    CHECK(!t);
    CHECK(ec == qmp::error::invalid_result);
    CHECK(d.message == "BLOCK_WRITE_THRESHOLD: write-threshold: 1.5 is not an integer; expected an unsigned 64-bit integer");
    ev = cl.receive_event(std::chrono::seconds(5));
    CHECK(ev.data.is_null());
    CHECK(ev.undecoded.find("1e999") != std::string::npos);
    t = qmp::event_as<qmp::block_write_threshold_event>(ev, ec, &d);
    CHECK(ec == qmp::error::unrepresentable_number);
    CHECK(d.message.find("BLOCK_WRITE_THRESHOLD") == 0);
    CHECK(cl.execute("after") == "still here");
    script.get();
}

#ifdef QMP_BIN_DIR
TEST_CASE("fake: qmpctl exec prints what the server sent, digit for digit" * doctest::test_suite("fake")) {
    fake_server srv;
    const std::string big = "1" + std::string(400, '0');
    auto script = in_thread([&] {
        for (const std::string& ret : {std::string("18446744073709551616"), std::string("1e999"), big,
                                       std::string(R"({"a": [1.5, -0, "\u00e9"]})")}) {
            srv.handshake();
            srv.send(R"({"return": )" + ret + qmp_test::id_member(srv.read_message()) + "}\r\n");
            srv.close();
        }
    });
    auto exec = [&](std::string& out) {
        return qmp_support::run({qmp_test::qmpctl(), "-s", srv.path(), "exec", "x"}, &out);
    };
    std::string out;
    CHECK(exec(out) == 0);
    CHECK(out == "18446744073709551616\n");
    CHECK(exec(out) == 0);
    CHECK(out == "1e999\n");
    CHECK(exec(out) == 0);
    CHECK(out == big + "\n");
    CHECK(exec(out) == 0);
    CHECK(out == "{\"a\":[1.5,-0,\"\\u00e9\"]}\n");
    script.get();
}
#endif

namespace {
// A typed command whose arguments cannot be built.
struct unbuildable {
    static constexpr std::string_view name = "unbuildable";
    using result_type = qmp::empty_result;
    int member = 0;
};
[[maybe_unused]] void to_json(qmp::json&, const unbuildable&) { throw std::runtime_error("no arguments for you"); }
}  // namespace

TEST_CASE("fake: the blocking client's one path for every command: arguments refused before sending, typed and "
          "raw results, errors with QEMU's text" *
          doctest::test_suite("fake")) {
    fake_server srv;
    auto script = in_thread([&] {
        srv.handshake();
        auto m = srv.read_message();
        CHECK(m["execute"] == "query-version");
        srv.reply(m, qmp::json::parse(R"({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""})"));
        srv.reply_error(srv.read_message(), "GenericError", "Device 'x' not found");
        m = srv.read_message();
        CHECK(m["execute"] == "raw");  // nothing refused above reached the server
        srv.reply(m, qmp::json::parse(R"([1, {"a": "b"}])"));
        srv.reply(srv.read_message(), qmp::json::parse(R"({"qemu": "not an object"})"));
    });
    qmp::sync_client cl(quick());
    cl.connect(srv.endpoint());
    std::error_code ec;
    qmp::diagnostics d;
    CHECK(cl.execute(qmp::query_version{}, ec, d).qemu.major == 10);
    CHECK(!ec);
    cl.execute(qmp::dynamic_command<qmp::empty_result>{"x", nullptr}, ec, d);
    CHECK(ec == qmp::server_error::generic_error);
    CHECK(d.message == "Device 'x' not found");
    cl.execute(unbuildable{}, ec, d);
    CHECK(ec == qmp::error::invalid_argument);
    CHECK(d.message == "no arguments for you");
    cl.execute("bad-utf8", {{"s", "\xff"}}, ec, d);  // cannot be serialised
    CHECK(ec == qmp::error::invalid_argument);
    CHECK(cl.execute("raw") == qmp::json::parse(R"([1, {"a": "b"}])"));
    cl.execute(qmp::query_version{}, ec, d);
    CHECK(ec == qmp::error::invalid_result);
    CHECK(d.message.find("qemu") != std::string::npos);
    CHECK(cl.is_open());
    script.get();
}

TEST_CASE("fake: a TCP connection sends each write at once (TCP_NODELAY)" *
          doctest::test_suite("fake")) {
    asio::io_context io;
    asio::ip::tcp::acceptor acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::ip::tcp::socket peer(io);
    bool accepted = false;
    acc.async_accept(peer, [&](std::error_code ec) { accepted = !ec; });
    qmp::tcp_client c(io, quick());
    std::error_code connect_result = qmp::error::not_connected;
    c.async_connect(acc.local_endpoint(), [&](std::error_code ec) { connect_result = ec; });
    while (!accepted) io.run_one();  // the TCP connection exists; the greeting never comes
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    REQUIRE(::getsockopt(c.stream().native_handle(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0);
    CHECK(nodelay == 1);
    c.close();
    io.poll();
    CHECK(connect_result == qmp::error::connection_closed);
}

TEST_CASE("fake: a failed connect names the socket, a timeout names what it waited for" * doctest::test_suite("fake")) {
    const std::string path = "/tmp/qmp-test-no-such-socket-" + std::to_string(::getpid());
    qmp::sync_client c;
    try {
        c.connect(asio::local::stream_protocol::endpoint(path));
        FAIL("connected to nothing");
    } catch (const qmp::qmp_error& e) {
        CHECK(e.code().value() == ENOENT);
        CHECK(e.diag().message == "cannot connect to " + path);
        CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    // The asynchronous form with diagnostics says the same.
    asio::io_context ctx;
    qmp::unix_client ac(ctx);
    qmp::diagnostics d;
    std::error_code got;
    ac.async_connect(asio::local::stream_protocol::endpoint(path), d, [&](std::error_code ec) { got = ec; });
    ctx.run();
    CHECK(got.value() == ENOENT);
    CHECK(d.message == "cannot connect to " + path);

    // Waiting for an event that does not come.
    fake_server srv;
    auto script = in_thread([&] { srv.handshake(); });
    c.connect(srv.endpoint());
    script.get();
    std::error_code ec;
    (void)c.receive_event(std::chrono::milliseconds(50), ec);
    CHECK(ec == qmp::error::timeout);
    CHECK(ec.message().find("an event") != std::string::npos);
}
