// What the client adds to the session: asio. Completion tokens, executors,
// cancellation, timeouts, and any stream, on an in-memory stream (the test
// plays QEMU) and on a 20-line stream of the user's own.
#include "../support/fake_server.hpp"

#include <qmp/block/graph_query.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/testing.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
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

// A result type with its own nlohmann from_json (no wire description).
struct strict_result {
    std::string needed;
};
void from_json(const qmp::json& j, strict_result& r) { j.at("needed").get_to(r.needed); }
struct strict_cmd {
    static constexpr std::string_view name = "strict";
    using result_type = strict_result;
};

// A user's own stream: only what AsyncReadStream and AsyncWriteStream
// require (no connect, no close), here over a unix socket.
struct my_stream {
    asio::local::stream_protocol::socket s;
    using executor_type = asio::any_io_executor;
    executor_type get_executor() { return s.get_executor(); }
    template <class B, class H>
    auto async_read_some(const B& b, H&& h) {
        return s.async_read_some(b, std::forward<H>(h));
    }
    template <class B, class H>
    auto async_write_some(const B& b, H&& h) {
        return s.async_write_some(b, std::forward<H>(h));
    }
};

// A wrapper around a socket that counts its reads (next_layer(): the
// client connects and closes it through the socket), and one that says its
// writes reach the socket unchanged (immediate writes and descriptors too).
template <class Next>
struct counting {
    Next next;
    std::size_t reads = 0;
    using executor_type = typename Next::executor_type;
    template <class... A>
    explicit counting(A&&... a) : next(std::forward<A>(a)...) {}
    executor_type get_executor() { return next.get_executor(); }
    Next& next_layer() { return next; }
    template <class B, class H>
    auto async_read_some(const B& b, H&& h) {
        ++reads;
        return next.async_read_some(b, std::forward<H>(h));
    }
    template <class B, class H>
    auto async_write_some(const B& b, H&& h) {
        return next.async_write_some(b, std::forward<H>(h));
    }
};
template <class Next>
struct passing : counting<Next> {
    using counting<Next>::counting;
};

}  // namespace

template <class Next>
struct qmp::transport<passing<Next>> : qmp::forwarding_transport<passing<Next>, true> {};

namespace {

using unix_socket = asio::local::stream_protocol::socket;
static_assert(qmp::transport<counting<unix_socket>>::can_connect, "a wrapper connects through its next layer");
static_assert(!qmp::transport<counting<unix_socket>>::can_pass_fds, "a wrapper passes no descriptors unless it says so");
static_assert(qmp::transport<passing<unix_socket>>::can_pass_fds, "one that writes through passes descriptors");
static_assert(std::is_same_v<qmp::transport<counting<unix_socket>>::endpoint_type, asio::local::stream_protocol::endpoint>,
              "a wrapper connects to its next layer's endpoints");

// A client negotiated with a peer that leaves every command to the test:
// requests() tells what the client sent, answer_next() answers it.
struct memory_session {
    asio::io_context ctx;
    qmp::testing::peer qemu;
    qmp::basic_client<qmp::testing::stream> client;
    std::size_t seen = 0;
    explicit memory_session(qmp::client_options o = {}) : client(ctx, std::move(o)) {
        qemu.version(10, 0, 2, false);
        qemu.on_any().no_reply();
        std::error_code result = qmp::error::timeout;
        client.async_connect(qemu.endpoint(), [&](std::error_code ec) { result = ec; });
        ctx.poll();
        answer_next("{}");
        ctx.poll();
        REQUIRE(!result);
    }
    // The requests the client sent since the last call.
    std::vector<qmp::json> requests() {
        auto all = qemu.received();
        std::vector<qmp::json> out(all.begin() + static_cast<std::ptrdiff_t>(seen), all.end());
        seen = all.size();
        return out;
    }
    static std::string name(const qmp::json& req) { return req.value("execute", std::string()); }
    void answer_next(const std::string& ret) {
        auto reqs = requests();
        REQUIRE(!reqs.empty());
        for (auto& r : reqs) REQUIRE(qemu.answer(name(r), ret));
    }
};

}  // namespace

TEST_CASE("tokens: callbacks run on their executor, after the initiation, never inside it" *
          doctest::test_suite("client")) {
    memory_session s;
    auto strand = asio::make_strand(s.ctx);
    bool inside_initiation = true, ran = false;
    s.client.async_execute(qmp::query_version{}, asio::bind_executor(strand, [&](std::error_code ec, qmp::version_info v) {
                               CHECK(!inside_initiation);
                               CHECK(strand.running_in_this_thread());
                               CHECK(!ec);
                               CHECK(v.qemu.major == 7);
                               ran = true;
                           }));
    inside_initiation = false;
    s.ctx.poll();
    CHECK(!ran);
    s.answer_next(R"({"qemu": {"major": 7, "minor": 2, "micro": 22}, "package": "p"})");
    s.ctx.poll();
    CHECK(ran);
    // A refusal (not connected, bad arguments) is posted too, never inline.
    asio::io_context fresh;
    qmp::unix_client idle(fresh);
    bool refused = false;
    idle.async_execute("x", nullptr, [&](std::error_code ec, qmp::json) { refused = ec == qmp::error::not_connected; });
    CHECK(!refused);
    fresh.poll();
    CHECK(refused);
}

TEST_CASE("tokens: use_future, user commands and result types, conversion errors as codes" *
          doctest::test_suite("client")) {
    memory_session s;
    auto f = s.client.async_execute(echo_cmd{"hi"}, asio::use_future);
    s.ctx.poll();
    auto reqs = s.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0]["arguments"]["text"] == "hi");
    s.qemu.answer(s.name(reqs[0]), R"("hi")");
    s.ctx.poll();
    CHECK(f.get() == "hi");

    qmp::diagnostics diag;
    std::error_code got;
    s.client.async_execute(strict_cmd{}, qmp::bind_diagnostics(diag, [&](std::error_code ec, strict_result) { got = ec; }));
    s.ctx.poll();
    s.answer_next(R"({"other": 1})");
    s.ctx.poll();
    CHECK(got == qmp::error::missing_member);
    CHECK(diag.message.find("needed") != std::string::npos);
    s.client.async_execute(strict_cmd{}, [&](std::error_code ec, strict_result) { got = ec; });
    s.ctx.poll();
    s.answer_next(R"({"needed": 5})");
    s.ctx.poll();
    CHECK(got == qmp::error::invalid_result);  // wrong type, not missing
}

TEST_CASE("tokens: every operation QEMU can refuse takes a diagnostics& for QEMU's text" * doctest::test_suite("client")) {
    memory_session s;
    auto refuse_next = [&] {
        auto reqs = s.requests();
        REQUIRE(reqs.size() == 1);
        s.qemu.answer_error(s.name(reqs[0]), "GenericError", "Device 'x' not found");
    };
    qmp::diagnostics typed, named, graph;
    std::error_code e1, e2, e3;
    s.client.async_execute(qmp::block_set_write_threshold{"x", 1}, typed, [&](std::error_code ec, qmp::empty_result) { e1 = ec; });
    s.ctx.poll();
    refuse_next();
    s.ctx.poll();
    CHECK(e1 == qmp::server_error::generic_error);
    CHECK(typed.error_class == "GenericError");
    CHECK(typed.message == "Device 'x' not found");
    s.client.async_execute("block-set-write-threshold", {{"node-name", "x"}, {"write-threshold", 1}}, named,
                           [&](std::error_code ec, qmp::json) { e2 = ec; });
    s.ctx.poll();
    refuse_next();
    s.ctx.poll();
    CHECK(e2 == qmp::server_error::generic_error);
    CHECK(named.message == "Device 'x' not found");
    // The block graph query: with a diagnostics&, or without one (its own
    // then, or the handler's through bind_diagnostics).
    qmp::graph_query_options no_probe;
    no_probe.offers = qmp::block_query_offers{};
    qmp::async_query_block_graph(s.client, no_probe, nullptr, graph, [&](std::error_code ec, qmp::block_graph) { e3 = ec; });
    s.ctx.poll();
    refuse_next();
    s.ctx.poll();
    CHECK(e3 == qmp::server_error::generic_error);
    CHECK(graph.message == "x-debug-query-block-graph: Device 'x' not found");
    qmp::diagnostics bound;
    e3.clear();
    qmp::async_query_block_graph(s.client, no_probe, nullptr,
                                 qmp::bind_diagnostics(bound, [&](std::error_code ec, qmp::block_graph) { e3 = ec; }));
    s.ctx.poll();
    refuse_next();
    s.ctx.poll();
    CHECK(e3 == qmp::server_error::generic_error);
    CHECK(bound.message == "x-debug-query-block-graph: Device 'x' not found");
    e3.clear();
    qmp::async_query_block_graph(s.client, no_probe, nullptr, [&](std::error_code ec, qmp::block_graph) { e3 = ec; });
    s.ctx.poll();
    refuse_next();
    s.ctx.poll();
    CHECK(e3 == qmp::server_error::generic_error);
}

TEST_CASE("tokens: per-operation cancellation and timeouts, late replies consumed" * doctest::test_suite("client")) {
    qmp::client_options o;
    o.command_timeout = 50ms;
    memory_session s(o);
    asio::cancellation_signal sig;
    std::error_code cancelled, timed_out;
    s.client.async_execute("a", nullptr, asio::bind_cancellation_slot(sig.slot(), [&](std::error_code ec, qmp::json) {
                               cancelled = ec;
                           }));
    s.client.async_execute("b", nullptr, [&](std::error_code ec, qmp::json) { timed_out = ec; });
    s.ctx.poll();
    auto reqs = s.requests();
    REQUIRE(reqs.size() == 2);
    sig.emit(asio::cancellation_type::terminal);
    s.ctx.poll();
    CHECK(cancelled == asio::error::operation_aborted);
    s.ctx.run_for(200ms);
    CHECK(timed_out == qmp::error::timeout);
    for (auto& r : reqs) s.qemu.answer(s.name(r), R"("late")");
    s.ctx.poll();
    CHECK(s.client.stats().late_replies == 2);
    CHECK(s.client.pending_commands() == 0);
    // One timer serves every command: the session goes on.
    std::string v;
    s.client.async_execute("c", nullptr, [&](std::error_code, qmp::json j) { v = j; });
    s.ctx.poll();
    s.answer_next("\"fine\"");
    s.ctx.poll();
    CHECK(v == "fine");
}

TEST_CASE("tokens: subscriptions: each its own events, queue and loss markers" * doctest::test_suite("client")) {
    memory_session s;
    auto jobs = s.client.subscribe({{"BLOCK_JOB_COMPLETED", "BLOCK_JOB_READY"}, {}}, 4);
    auto mine = s.client.subscribe({{}, [](const qmp::event& e) { return e.data.value("n", 0) % 2 == 0; }}, 100);
    auto ev = [](const std::string& name, int n) {
        return R"({"event": ")" + name + R"(", "data": {"n": )" + std::to_string(n) + "}}\r\n";
    };
    for (int i = 0; i < 10; ++i) s.qemu.send(ev("BLOCK_JOB_COMPLETED", i));
    s.qemu.send(ev("OTHER", 2));
    s.ctx.poll();
    std::vector<qmp::event> got;
    for (int i = 0; i < 6; ++i) jobs.async_receive([&](std::error_code ec, qmp::event e) {
        CHECK(!ec);
        got.push_back(e);
    });
    s.ctx.poll();
    REQUIRE(got.size() == 5);  // 4 kept, then one marker for the 6 lost; the sixth receive waits
    CHECK(got[3].data["n"] == 3);
    CHECK(got[4].lost == 6);
    CHECK(jobs.dropped() == 6);
    CHECK(mine.queued() == 6);  // 0, 2, 4, 6, 8 and OTHER's 2: unaffected by the other's losses
    CHECK(s.client.queued_events() == 11);  // the everything queue saw them all
    s.qemu.send(ev("BLOCK_JOB_READY", 99));
    s.ctx.poll();
    REQUIRE(got.size() == 6);
    CHECK(got[5].name == "BLOCK_JOB_READY");
    // Ended subscriptions complete their waiters.
    std::error_code ended;
    jobs.async_receive([&](std::error_code ec, qmp::event) { ended = ec; });
    s.ctx.poll();
    jobs.reset();
    s.ctx.poll();
    CHECK(ended == asio::error::operation_aborted);
}

TEST_CASE("tokens: stream wrappers: connect, close and the peer through the next layer, immediate writes when declared" *
          doctest::test_suite("client")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        srv.reply(srv.read_message(), "through the wrapper");
        srv.handshake();  // the second client
        srv.reply(srv.read_message(), "again");
    });
    asio::io_context ctx;
    {
        qmp::basic_client<counting<unix_socket>> client(ctx);
        std::string got;
        client.async_connect(srv.endpoint(), [&](std::error_code ec) {
            REQUIRE(!ec);
            client.async_execute("x", nullptr, [&](std::error_code, qmp::json j) {
                got = j;
                client.close();
            });
        });
        ctx.run_for(5s);
        CHECK(got == "through the wrapper");
        CHECK(client.stream().reads >= 2);        // the greeting, the replies: through the wrapper
        CHECK(!client.stream().next.is_open());   // closed through the next layer
        CHECK(client.peer_instance() == std::nullopt);  // closed: nobody there
    }
    ctx.restart();
    qmp::basic_client<passing<unix_socket>> client(ctx);
    std::optional<std::string> peer;
    std::string got;
    client.async_connect(srv.endpoint(), [&](std::error_code ec) {
        REQUIRE(!ec);
        peer = client.peer_instance();
        client.async_execute("y", nullptr, [&](std::error_code, qmp::json j) { got = j; });
    });
    ctx.run_for(5s);
    CHECK(got == "again");
    REQUIRE(peer);  // the peer's process, through the socket underneath
    CHECK(peer->rfind(std::to_string(::getpid()) + ":", 0) == 0);
    script.get();
}

TEST_CASE("tokens: the blocking client takes a socket connected by its owner" * doctest::test_suite("client")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        srv.reply(srv.read_message(), "handed over");
    });
    asio::io_context mine;
    unix_socket s(mine);  // another context's socket
    s.connect(srv.endpoint());
    qmp::sync_client cl;
    cl.handshake(std::move(s));
    CHECK(cl.execute("z") == "handed over");
    CHECK(cl.is_open());
    script.get();
    // A handshake while a session runs is refused (the new socket is not
    // taken), and the session goes on.
    unix_socket other(mine);
    other.connect(srv.endpoint());  // the listen backlog takes it
    std::error_code ec;
    qmp::diagnostics d;
    cl.handshake(std::move(other), ec, d);
    CHECK(ec == qmp::error::already_connected);
    CHECK(cl.is_open());
}

TEST_CASE("tokens: a user's 20-line stream works, and so does the in-memory one when QEMU goes away" *
          doctest::test_suite("client")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        srv.reply(srv.read_message(), "from a stream of my own");
    });
    asio::io_context ctx;
    asio::local::stream_protocol::socket sock(ctx);
    sock.connect(srv.endpoint());
    qmp::basic_client<my_stream> client(my_stream{std::move(sock)});
    std::string got;
    client.async_handshake([&](std::error_code ec) {
        REQUIRE(!ec);
        client.async_execute("x", nullptr, [&](std::error_code, qmp::json j) { got = j; });
    });
    ctx.run_for(5s);
    CHECK(got == "from a stream of my own");
    script.get();

    memory_session m;
    std::error_code e1, e2;
    m.client.async_execute("a", nullptr, [&](std::error_code ec, qmp::json) { e1 = ec; });
    m.client.async_receive_event([&](std::error_code ec, qmp::event) { e2 = ec; });
    m.ctx.poll();
    m.qemu.hang_up();
    m.ctx.poll();
    CHECK(e1 == qmp::error::connection_closed);
    CHECK(e2 == qmp::error::connection_closed);
}

TEST_CASE("tokens: connecting to a socket nobody listens on is an error, not a hang, retries are bounded" *
          doctest::test_suite("client")) {
    qmp_test::temp_dir dir;
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    std::error_code e;
    client.async_connect(asio::local::stream_protocol::endpoint(dir.file("none.sock")), [&](std::error_code ec) { e = ec; });
    ctx.run();
    CHECK(e);
    CHECK(!client.is_open());
    // With retries: it keeps trying until the time is up, then says why.
    ctx.restart();
    auto t0 = std::chrono::steady_clock::now();
    const qmp::backoff retry{20ms, 500ms, 0.0, 300ms};
    e.clear();
    qmp::diagnostics why;
    client.async_connect(asio::local::stream_protocol::endpoint(dir.file("none.sock")), retry, why,
                         [&](std::error_code ec) { e = ec; });
    ctx.run();
    CHECK(e);
    CHECK(std::chrono::steady_clock::now() - t0 >= 100ms);  // backoff 20, 40, 80 ms: it waited
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    // It says how many attempts it made, over how long, and the last one's reason.
    CHECK(why.message.find("4 attempt(s) over ") == 0);
    CHECK(why.message.find("No such file or directory") != std::string::npos);
}
