// The protocol and client layers against real QEMU 7.2 and 10.0.
#include "../support/tool_paths.hpp"
#include <support/qemu.hpp>

#include <qmp/client/clients.hpp>
#include <qmp/threshold/manager.hpp>

#include <asio/use_future.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace qmp_support;

namespace {

// A 3-deep chain in a storage daemon with an NBD export of the top.
struct chain_daemon {
    temp_dir dir;
    std::vector<std::string> files;
    std::unique_ptr<qemu_instance> q;

    explicit chain_daemon(const qemu_build& b, bool pretty = false) {
        files = make_chain(b, dir, "vda", 3);
        qemu_config cfg;
        cfg.pretty = pretty;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.nbd_export_node = "vda-2-fmt";
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }
};

}  // namespace

TEST_CASE("qemu: greeting, version and oob on the storage daemon and the system emulator" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        for (auto kind : {qemu_kind::storage_daemon, qemu_kind::system}) {
            CAPTURE(b.label);
            CAPTURE(static_cast<int>(kind));
            temp_dir dir;
            qemu_config cfg;
            cfg.kind = kind;
            qemu_instance q(b, dir, cfg);
            INFO(q.log());
            qmp::sync_client cl;
            cl.connect(q.qmp_endpoint());
            auto g = cl.server_greeting();
            CHECK(std::to_string(g.version.qemu.major) + "." + std::to_string(g.version.qemu.minor) == b.label);
            CHECK(g.offers("oob"));
            CHECK(cl.oob_enabled());
            auto v = cl.execute(qmp::query_version{});
            CHECK(v.qemu.major == g.version.qemu.major);
            CHECK(v.package == g.version.package);
            CHECK(!v.package.empty());
        }
    }
}

TEST_CASE("qemu: connecting the moment QEMU listens: a session or a clean, bounded error, then a session" *
          doctest::test_suite("qemu")) {
    // Right after start QEMU sometimes greets twice, never greets, or closes
    // the connection. The client must fail those with a clear error in
    // bounded time, and connect on a retry.
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        std::uint64_t refused = 0;
        int replaced = 0, twice = 0;
        for (int i = 0; i < 20; ++i) {
            temp_dir dir;
            qemu_config cfg;
            cfg.wait_ready = false;
            qemu_instance q(b, dir, cfg);
            INFO(q.log());
            qmp::client_options o;
            o.greeting_timeout = std::chrono::milliseconds(2000);
            // The wire as the client saw it, shown when a check fails.
            std::string wire;
            o.trace = [&wire](qmp::trace_kind k, std::string_view text) {
                wire += k == qmp::trace_kind::received ? "<- " : k == qmp::trace_kind::sent ? "-> " : "-- ";
                wire.append(text).push_back('\n');
            };
            INFO("wire:\n" << wire);
            qmp::sync_client cl(o);
            // A first session, retried on the clean failures QEMU causes at
            // start (under load also a full listen backlog: EAGAIN, and a
            // close right after negotiating).
            std::error_code ec;
            std::vector<std::error_code> errors;
            int attempts = 0;
            do {
                qmp::diagnostics d;
                cl.connect(q.qmp_endpoint(), ec, d);
                if (!ec) cl.execute(qmp::query_version{}, ec, d);
                ++attempts;
                if (ec) {
                    errors.push_back(ec);
                    wire += "-- error: " + ec.message() + " " + d.error_class + " " + d.message + "\n";
                }
            } while (ec && ec != qmp::error::greeted_twice && attempts < 10 && q.process().running());
            // QEMU itself (7.2 and 10.0) sometimes dies of SIGSEGV when a
            // client negotiates the moment it listens (about once in 150
            // starts here), after answering it oddly ("capabilities
            // negotiation failed", a closed connection). When it greeted
            // twice, it read that connection unreliably and can still send
            // what it made of it to the next one (seen: an error without id
            // in the next session). The client's part, a clean error in
            // bounded time, is done; this QEMU is replaced.
            const bool greeted_twice = ec == qmp::error::greeted_twice;
            if (!q.process().running() || greeted_twice) {
                MESSAGE("QEMU " << b.label
                                << (greeted_twice ? " greeted twice" : " ended at start (" + q.process().how_it_ended() + ")")
                                << " after the client's error: " << (errors.empty() ? "none" : errors.back().message()));
                if (greeted_twice) CHECK(cl.stats().repeated_greetings == 1);
                twice += greeted_twice;
                REQUIRE(++replaced <= 6);
                --i;
                continue;
            }
            for (const auto& e : errors) {
                INFO(e.message() << " (" << e.category().name() << ")");
                CHECK((e == qmp::error::greeting_timeout || e == qmp::error::connection_closed ||
                       e == std::errc::resource_unavailable_try_again || e == asio::error::try_again));
                ++refused;
            }
            REQUIRE(!ec);
            CHECK(cl.execute(qmp::query_version{}).qemu.major == cl.server_greeting().version.qemu.major);
            CHECK(cl.stats().repeated_greetings == 0);
        }
        MESSAGE("QEMU " << b.label << ", 20 fresh starts: " << twice << " greeted twice (replaced), " << refused
                        << " first connections without a session");
    }
}

TEST_CASE("qemu: a TCP monitor on loopback, with tcp_client, tcp_threshold_manager and qmpctl -t" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        // A free loopback port: bind to 0, read the port, let QEMU take it.
        unsigned short port = 0;
        {
            asio::io_context ctx;
            asio::ip::tcp::acceptor a(ctx, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
            port = a.local_endpoint().port();
        }
        temp_dir dir;
        std::vector<std::string> argv{b.tool("qemu-storage-daemon"), "--chardev",
                                      "socket,host=127.0.0.1,port=" + std::to_string(port) + ",server=on,wait=off,id=c0",
                                      "--monitor", "chardev=c0"};
        for (auto& bd : chain_blockdevs(make_chain(b, dir, "vda", 2), "vda")) argv.insert(argv.end(), {"--blockdev", bd});
        std::string nbd = dir.file("tcp.nbd");
        argv.insert(argv.end(), {"--nbd-server", "addr.type=unix,addr.path=" + nbd, "--export",
                                 "nbd,id=e0,node-name=vda-1-fmt,writable=on,name=vda"});
        child_process qemu(argv, dir.file("tcp.log"));
        INFO(qemu.log());
        qmp::sync_tcp_client cl;
        std::error_code ec;
        for (int i = 0; i < 200; ++i) {
            cl.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
            if (!ec) break;
            std::this_thread::sleep_for(10ms);
        }
        REQUIRE(!ec);
        auto v = cl.execute(qmp::query_version{});
        CHECK(std::to_string(v.qemu.major) + "." + std::to_string(v.qemu.minor) == b.label);
        cl.close();
#ifdef QMP_BIN_DIR
        std::string out;
        CHECK(run({qmp_test::qmpctl(), "-t", "127.0.0.1:" + std::to_string(port), "exec",
                   "query-version"},
                  &out) == 0);
        CHECK(out.find("\"major\"") != std::string::npos);
        CHECK(run({qmp_test::qmpctl(), "-t", "127.0.0.1:" + std::to_string(port), "--disk",
                   "vda=vda-1-fmt", "threshold", "set", "vda[2]", "512K"},
                  &out) == 0);
        CHECK(out == "vda[2] (backing, depth 1) storage node vda-0-file threshold 524288\n");  // the base: numbered top down
#endif
        // The threshold manager over TCP: arm the top, write, get it back by name.
        qmp::threshold_manager_options o;
        o.service.tracker.catalog.entries["vda"] = "vda-1-fmt";
        qmp::tcp_threshold_manager m(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), o);
        m.connect();
        m.arm("vda", qmp::threshold_spec::bytes(1u << 20));
        REQUIRE(run({b.tool("qemu-io"), "-f", "raw", "nbd+unix:///vda?socket=" + nbd, "-c", "write -P 0xab 0 2M"}) ==
                0);
        std::vector<qmp::threshold_event> got;
        for (int i = 0; i < 40 && got.empty(); ++i) got = m.poll(500ms);
        REQUIRE(got.size() == 1);
        CHECK(got[0].where.indexed() == "vda[1]");
        CHECK(got[0].threshold == 1u << 20);
    }
}

TEST_CASE("qemu: 1,000 commands in flight at once, every reply matched" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        for (bool oob : {true, false}) {
            CAPTURE(b.label);
            CAPTURE(oob);
            chain_daemon d(b);
            INFO(d.q->log());
            qmp::client_options o;
            o.enable_oob = oob;
            qmp::sync_client cl(o);
            cl.connect(d.q->qmp_endpoint());
            auto& ac = cl.async_client();
            // Alternate two commands with different answers so a mismatch shows.
            std::vector<std::future<qmp::json>> fs;
            for (int i = 0; i < 1000; ++i) {
                if (i % 2)
                    fs.push_back(ac.async_execute("query-version", nullptr, asio::use_future));
                else
                    fs.push_back(ac.async_execute("query-named-block-nodes", {{"flat", true}}, asio::use_future));
            }
            for (int i = 0; i < 1000; ++i) {
                auto r = cl.wait(std::move(fs[i]));
                if (i % 2)
                    CHECK(r.contains("qemu"));
                else
                    CHECK((r.is_array() && r.size() == 6));
            }
            auto st = cl.stats();
            CHECK(st.unknown_ids == 0);
            CHECK(st.commands_sent == 1000);
        }
    }
}

TEST_CASE("qemu: CommandNotFound and GenericError are mapped with QEMU's text" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        chain_daemon d(b);
        INFO(d.q->log());
        qmp::sync_client cl;
        cl.connect(d.q->qmp_endpoint());
        std::error_code ec;
        qmp::diagnostics diag;
        cl.execute("no-such-command", nullptr, ec, diag);
        CHECK(ec == qmp::server_error::command_not_found);
        CHECK(diag.error_class == "CommandNotFound");
        CHECK(diag.message.find("no-such-command") != std::string::npos);

        cl.execute("block-set-write-threshold", {{"node-name", "nope"}, {"write-threshold", 1}}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        CHECK(diag.message.find("nope") != std::string::npos);

        cl.execute("block-set-write-threshold", {{"node-name", "vda-2-fmt"}, {"write-threshold", "x"}}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);

        // A second negotiation is refused by QEMU as CommandNotFound.
        cl.execute(qmp::qmp_capabilities{}, ec, diag);
        CHECK(ec == qmp::server_error::command_not_found);
        CHECK(cl.is_open());
    }
}

TEST_CASE("qemu: a pretty=on monitor" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        chain_daemon d(b, /*pretty=*/true);
        INFO(d.q->log());
        std::vector<std::string> received;
        std::mutex m;
        qmp::client_options o;
        o.trace = [&](qmp::trace_kind k, std::string_view t) {
            std::lock_guard<std::mutex> lk(m);
            if (k == qmp::trace_kind::received) received.emplace_back(t);
        };
        qmp::sync_client cl(o);
        cl.connect(d.q->qmp_endpoint());
        auto nodes = cl.execute("query-named-block-nodes", {{"flat", true}});
        CHECK(nodes.size() == 6);
        std::lock_guard<std::mutex> lk(m);
        REQUIRE(!received.empty());
        CHECK(received.back().find("\n") != std::string::npos);  // really multi-line
    }
}

TEST_CASE("qemu: BLOCK_WRITE_THRESHOLD on the qcow2 node and its file node after an NBD write" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        chain_daemon d(b);
        INFO(d.q->log());
        qmp::sync_client cl;
        cl.connect(d.q->qmp_endpoint());
        cl.execute("block-set-write-threshold", {{"node-name", "vda-2-fmt"}, {"write-threshold", 1048576}});
        cl.execute("block-set-write-threshold", {{"node-name", "vda-2-file"}, {"write-threshold", 1048576}});
        std::string out;
        REQUIRE(d.q->nbd_write(0, 3 * 1048576, &out) == 0);
        std::map<std::string, qmp::json> got;
        while (got.size() < 2) {
            auto ev = cl.receive_event(10s);
            if (ev.name == "BLOCK_WRITE_THRESHOLD") got[ev.data["node-name"].get<std::string>()] = ev.data;
        }
        CHECK(got["vda-2-fmt"]["write-threshold"] == 1048576);
        CHECK(got["vda-2-fmt"]["amount-exceeded"] == 2 * 1048576);  // guest offsets: 3 MiB - 1 MiB
        CHECK(got["vda-2-file"]["write-threshold"] == 1048576);
        CHECK(got["vda-2-file"]["amount-exceeded"].get<std::uint64_t>() > 2 * 1048576u);  // host offsets + metadata
        // One shot: both read 0 now.
        for (const auto& n : cl.execute("query-named-block-nodes", {{"flat", true}}))
            CHECK(n["write_threshold"] == 0);
    }
}

TEST_CASE("qemu: SIGKILL with commands pending: all fail promptly" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        chain_daemon d(b);
        qmp::sync_client cl;
        cl.connect(d.q->qmp_endpoint());
        d.q->process().signal(SIGSTOP);  // nothing gets answered from here on
        auto& ac = cl.async_client();
        std::vector<std::future<qmp::json>> fs;
        for (int i = 0; i < 100; ++i) fs.push_back(ac.async_execute("query-version", nullptr, asio::use_future));
        cl.poll();  // written
        std::this_thread::sleep_for(50ms);
        auto t0 = std::chrono::steady_clock::now();
        d.q->process().kill_now();
        int failed = 0;
        for (auto& f : fs) {
            try {
                cl.wait(std::move(f));
            } catch (const std::system_error& e) {
                CHECK(e.code() == qmp::error::connection_closed);
                ++failed;
            }
        }
        CHECK(failed == 100);
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // far below the 30 s command timeout
        CHECK(!cl.is_open());
    }
}

TEST_CASE("qemu: SIGSTOP: the command timeout fires" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        chain_daemon d(b);
        qmp::client_options o;
        o.command_timeout = 300ms;
        qmp::sync_client cl(o);
        cl.connect(d.q->qmp_endpoint());
        d.q->process().signal(SIGSTOP);
        std::error_code ec;
        qmp::diagnostics diag;
        cl.execute("query-version", nullptr, ec, diag);
        CHECK(ec == qmp::error::timeout);
        d.q->process().signal(SIGCONT);
        // The late reply is consumed; the session still works.
        auto v = cl.execute(qmp::query_version{});
        CHECK(v.qemu.major >= 7);
        CHECK(cl.stats().late_replies == 1);
    }
}
