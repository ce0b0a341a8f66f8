// QMP over TLS against real QEMU 7.2 and 10.0: a second monitor served with
// tls-creds-x509 (verify-peer=on: mutual TLS), certificates made here with
// openssl. The client is basic_client over asio::ssl::stream<tcp::socket>:
// the same driver as over unix sockets, the stream found by its transport.
#include "../support/tool_paths.hpp"
#include <support/tls_pki.hpp>

#include <qmp/client/tls.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/manager.hpp>

#include <asio/ssl/error.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

using namespace std::chrono_literals;
using namespace qmp_support;

namespace {

// A storage daemon with a 3-deep chain, its usual unix monitor, and a TLS
// monitor on a loopback port.
struct tls_daemon {
    temp_dir dir;
    tls_pki pki{dir};
    unsigned short port = free_tcp_port();
    std::unique_ptr<qemu_instance> q;

    tls_daemon(const qemu_build& b, bool verify_peer) {
        qemu_config cfg;
        cfg.blockdevs = chain_blockdevs(make_chain(b, dir, "vda", 3), "vda");
        cfg.nbd_export_node = "vda-2-fmt";
        cfg.extra = tls_monitor_args(pki, port, verify_peer);
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }

    qmp::tls_tcp_endpoint endpoint(const std::string& name = "localhost") const {
        return {asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), name};
    }
    qmp::tls_files files() const { return {pki.ca_file, pki.client_cert, pki.client_key}; }
};

qmp::client_options tls_quick() {
    qmp::client_options o;
    o.connect_timeout = 5s;
    o.greeting_timeout = 5s;
    o.command_timeout = 10s;
    return o;
}

}  // namespace

TEST_CASE("tls: mutual TLS to QEMU, commands and QEMU's errors, then a reconnect with a fresh TLS session" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        tls_daemon d(b, true);
        INFO(d.q->log());
        auto ctx = qmp::tls_context(d.files());
        qmp::sync_tls_client cl(tls_quick(), false, ctx);
        cl.connect(d.endpoint());
        // Each write goes at once: the space QEMU 7.2 needs after a command
        // must not wait for an acknowledgement (22 round trips/s without).
        int nodelay = 0;
        socklen_t len = sizeof nodelay;
        CHECK(::getsockopt(cl.async_client().stream().lowest_layer().native_handle(), IPPROTO_TCP, TCP_NODELAY,
                           &nodelay, &len) == 0);
        CHECK(nodelay == 1);
        CHECK(std::to_string(cl.server_greeting().version.qemu.major) + "." +
                  std::to_string(cl.server_greeting().version.qemu.minor) ==
              b.label);
        auto nodes = cl.execute(qmp::query_named_block_nodes{});
        CHECK(nodes.size() >= 6);  // 3 elements, format + file each
        // QEMU's desc comes through TLS like through a unix socket.
        std::error_code ec;
        qmp::diagnostics diag;
        cl.execute("block-set-write-threshold", {{"node-name", "no-such-node"}, {"write-threshold", 1}}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        CHECK(diag.message.find("no-such-node") != std::string::npos);
        // A second session on the same client: the transport renews the
        // SSL object, the handshake runs again.
        cl.close();
        CHECK(!cl.is_open());
        cl.connect(d.endpoint());
        CHECK(cl.execute(qmp::query_version{}).qemu.major == cl.server_greeting().version.qemu.major);
    }
}

TEST_CASE("tls: the asynchronous client over TLS, many commands in flight" * doctest::test_suite("qemu")) {
    const auto b = qemu_builds().back();
    tls_daemon d(b, true);
    INFO(d.q->log());
    auto ctx = qmp::tls_context(d.files());
    asio::io_context io;
    qmp::tls_client cl(io.get_executor(), tls_quick(), ctx);
    auto connected = cl.async_connect(d.endpoint(), asio::use_future);
    std::vector<std::future<qmp::version_info>> replies;
    io.run_one_for(10ms);
    std::thread runner([&] { io.run_for(20s); });
    connected.get();
    for (int i = 0; i < 50; ++i) replies.push_back(cl.async_execute(qmp::query_version{}, asio::use_future));
    for (auto& r : replies) CHECK(r.get().qemu.major == 10);
    cl.close();
    io.stop();
    runner.join();
}

TEST_CASE("tls: refusals are clear: another CA, another name, no client certificate" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        tls_daemon d(b, true);
        INFO(d.q->log());
        auto expect_refused = [&](asio::ssl::context& ctx, const qmp::tls_tcp_endpoint& ep, const char* says) {
            qmp::sync_tls_client cl(tls_quick(), false, ctx);
            std::error_code ec;
            qmp::diagnostics diag;
            cl.connect(ep, ec, diag);
            REQUIRE(ec);
            CAPTURE(ec.message());
            CHECK(ec.message().find(says) != std::string::npos);
            CHECK(!cl.is_open());
            return ec;
        };
        {  // QEMU's certificate is signed by a CA we do not trust.
            auto ctx = qmp::tls_context({d.pki.other_ca_file, d.pki.client_cert, d.pki.client_key});
            auto ec = expect_refused(ctx, d.endpoint(), "certificate verify failed");
            CHECK(ec.category() == asio::error::get_ssl_category());
        }
        {  // The certificate is for localhost and 127.0.0.1, not this name.
            auto ctx = qmp::tls_context(d.files());
            expect_refused(ctx, d.endpoint("qemu.example.org"), "certificate verify failed");
        }
        {  // verify-peer=on and no client certificate: QEMU ends it.
            auto ctx = qmp::tls_context({d.pki.ca_file, "", ""});
            qmp::sync_tls_client cl(tls_quick(), false, ctx);
            std::error_code ec;
            cl.connect(d.endpoint(), ec);
            CHECK(ec);
            CHECK(!cl.is_open());
        }
        // None of this disturbed QEMU: a good client still gets a session.
        auto ctx = qmp::tls_context(d.files());
        qmp::sync_tls_client cl(tls_quick(), false, ctx);
        cl.connect(d.endpoint());
        CHECK(cl.execute(qmp::query_version{}).qemu.major > 0);
    }
}

TEST_CASE("tls: the threshold manager over TLS arms vda[2] and reports it" * doctest::test_suite("qemu")) {
    const auto b = qemu_builds().front();
    tls_daemon d(b, false);  // server authentication only
    INFO(d.q->log());
    auto ctx = qmp::tls_context({d.pki.ca_file, "", ""});
    qmp::threshold_manager_options o;
    o.client = tls_quick();
    o.service.tracker.catalog.entries["vda"] = "vda-2-fmt";
    qmp::basic_threshold_manager<qmp::tls_stream> m(d.endpoint(), o, ctx);
    m.connect();
    m.arm("vda[2]", qmp::threshold_spec::bytes(1 << 20));
    bool seen = false;
    for (const auto& row : m.report())
        if (row.element.index == 2 && row.armed) seen = seen || row.armed->threshold == (1u << 20);
    CHECK(seen);
}

#ifdef QMP_BIN_DIR
TEST_CASE("tls: qmpctl -t with --tls-ca, --tls-cert, --tls-key and --tls-name" * doctest::test_suite("qemu")) {
    const auto b = qemu_builds().back();
    tls_daemon d(b, true);
    INFO(d.q->log());
    const std::string qmpctl = qmp_test::qmpctl();
    const std::string where = "127.0.0.1:" + std::to_string(d.port);
    std::string out;
    CHECK(run({qmpctl, "-t", where, "--tls-ca", d.pki.ca_file, "--tls-cert", d.pki.client_cert, "--tls-key",
               d.pki.client_key, "--tls-name", "localhost", "exec", "query-version"},
              &out) == 0);
    CHECK(out.find("\"qemu\"") != std::string::npos);
    // The name defaults to the host: 127.0.0.1 is in the certificate.
    CHECK(run({qmpctl, "-t", where, "--tls-ca", d.pki.ca_file, "--tls-cert", d.pki.client_cert, "--tls-key",
               d.pki.client_key, "chain"},
              &out) == 0);
    CHECK(out.find("vda-2") != std::string::npos);
    CHECK(run({qmpctl, "-t", where, "--tls-ca", d.pki.other_ca_file, "--tls-cert", d.pki.client_cert, "--tls-key",
               d.pki.client_key, "exec", "query-version"},
              &out) == 3);
    CHECK(out.find("certificate verify failed") != std::string::npos);
    CHECK(run({qmpctl, "-t", where, "--tls-ca", d.dir.file("missing.pem"), "exec", "query-version"}, &out) == 2);
    CHECK(out.find("missing.pem") != std::string::npos);
    CHECK(run({qmpctl, "-s", d.q->qmp_path(), "--tls-ca", d.pki.ca_file, "exec", "query-version"}, &out) == 2);
}
#endif
