// The generated QAPI types on the wire: enums that keep values they do not
// know, flat unions, alternates and null, read and written back.
#include "../support/fake_server.hpp"

#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_core.hpp>
#include <qmp/qapi/block_export.hpp>
#include <qmp/qapi/common.hpp>
#include <qmp/qapi/events.hpp>
#include <qmp/qapi/migration.hpp>
#include <qmp/qapi/run_state.hpp>

#include <doctest/doctest.h>

#include <asio/use_future.hpp>

#include <chrono>
#include <future>
#include <string>

namespace {

template <class T>
T read(const std::string& text) {
    T v{};
    qmp::diagnostics d;
    const auto ec = qmp::convert_text(text, v, &d);
    INFO(d.message);
    REQUIRE_FALSE(ec);
    return v;
}

}  // namespace

TEST_CASE("generated: an enum keeps a value it does not know, and writes it back" * doctest::test_suite("qapi")) {
    auto st = read<qmp::status_info>(R"({"running": false, "status": "io-error"})");
    CHECK(st.status == qmp::run_state::io_error);
    CHECK(st.status == "io-error");
    CHECK(st.status.known());

    // A state a newer QEMU might add, and a member this header never saw.
    st = read<qmp::status_info>(R"({"running": false, "status": "hibernating", "since": 12})");
    CHECK_FALSE(st.status.known());
    CHECK_FALSE(st.status.value().has_value());
    CHECK(st.status == "hibernating");
    CHECK(st.status != qmp::run_state::paused);
    CHECK(qmp::json(st) == qmp::json{{"running", false}, {"status", "hibernating"}});

    // Still typed: a missing member or a wrong type is an error naming it.
    qmp::status_info bad;
    qmp::diagnostics d;
    CHECK(qmp::convert_text(R"({"running": false})", bad, &d) == qmp::error::missing_member);
    CHECK(d.message.find("status") != std::string::npos);
    CHECK(qmp::convert_text(R"({"running": false, "status": 3})", bad, &d));
    CHECK(d.message.find("status") != std::string::npos);
}

TEST_CASE("generated: a flat union reads the branch its discriminator names, and writes base and branch" *
          doctest::test_suite("qapi")) {
    qmp::blockdev_options o;
    o.driver = qmp::blockdev_driver::qcow2;
    o.node_name = "top";
    qmp::blockdev_options_qcow2 q;
    q.file = std::string("top-file");
    q.backing = qmp::blockdev_ref_or_null{nullptr};
    q.lazy_refcounts = true;
    o.branch = q;
    const qmp::json j = o;
    CHECK(j == qmp::json::parse(R"({"driver": "qcow2", "node-name": "top", "file": "top-file", "backing": null,
                                    "lazy-refcounts": true})"));

    // Back: the branch is the qcow2 one, its alternate a node name.
    auto back = read<qmp::blockdev_options>(j.dump());
    CHECK(back.driver == "qcow2");
    REQUIRE(std::holds_alternative<qmp::blockdev_options_qcow2>(back.branch));
    const auto& bq = std::get<qmp::blockdev_options_qcow2>(back.branch);
    REQUIRE(std::holds_alternative<std::string>(bq.file));
    CHECK(std::get<std::string>(bq.file) == "top-file");
    CHECK(bq.lazy_refcounts == true);

    // The alternate's other side: a whole definition, a union in a union.
    auto nested = read<qmp::blockdev_options>(
        R"({"driver": "raw", "node-name": "fmt", "file": {"driver": "file", "filename": "/tmp/x.img"}})");
    const auto& raw = std::get<qmp::blockdev_options_raw>(nested.branch);
    REQUIRE(std::holds_alternative<std::shared_ptr<qmp::blockdev_options>>(raw.file));
    const auto& inner = *std::get<std::shared_ptr<qmp::blockdev_options>>(raw.file);
    CHECK(inner.driver == qmp::blockdev_driver::file);
    CHECK(std::get<qmp::blockdev_options_file>(inner.branch).filename == "/tmp/x.img");
    CHECK(qmp::json(nested) == qmp::json::parse(R"({"driver": "raw", "node-name": "fmt",
                                                   "file": {"driver": "file", "filename": "/tmp/x.img"}})"));

    // A driver this header does not know: its members kept, out as they came.
    const auto unknown = qmp::json::parse(R"({"driver": "teleport", "node-name": "t", "beam": {"width": 3}})");
    auto u = read<qmp::blockdev_options>(unknown.dump());
    CHECK_FALSE(u.driver.known());
    REQUIRE(std::holds_alternative<qmp::json>(u.branch));
    CHECK(std::get<qmp::json>(u.branch) == qmp::json{{"beam", {{"width", 3}}}});
    CHECK(qmp::json(u) == unknown);

    // A branch's member of the wrong type is an error, as in any struct.
    qmp::blockdev_options bad;
    qmp::diagnostics d;
    CHECK(qmp::convert_text(R"({"driver": "file", "filename": 7})", bad, &d));
    CHECK(d.message.find("filename") != std::string::npos);
}

TEST_CASE("generated: a command whose arguments are a union writes the base and the branch" *
          doctest::test_suite("qapi")) {
    qmp::block_export_add e;
    e.type = qmp::block_export_type::nbd;
    e.id = "e0";
    e.node_name = "fmt";
    e.writable = true;
    qmp::block_export_options_nbd nbd;
    nbd.name = "vda";
    e.branch = nbd;
    CHECK(qmp::block_export_add::name == "block-export-add");
    CHECK(qmp::json(e) ==
          qmp::json::parse(R"({"type": "nbd", "id": "e0", "node-name": "fmt", "writable": true, "name": "vda"})"));
}

TEST_CASE("generated: an alternate follows the JSON type, null included" * doctest::test_suite("qapi")) {
    auto s = read<qmp::str_or_null>(R"("tls0")");
    CHECK(std::get<std::string>(s) == "tls0");
    auto n = read<qmp::str_or_null>("null");
    CHECK(std::holds_alternative<std::nullptr_t>(n));
    // As migrate-set-parameters uses it: null puts a parameter back to its default.
    qmp::migrate_set_parameters p;
    p.tls_creds = qmp::str_or_null{nullptr};
    p.tls_hostname = qmp::str_or_null{std::string("host")};
    CHECK(qmp::json(p) == qmp::json{{"tls-creds", nullptr}, {"tls-hostname", "host"}});
    qmp::str_or_null bad;
    CHECK(qmp::convert_text("12", bad) == qmp::error::invalid_result);
}

TEST_CASE("generated: through a client, a value and a member the generator never saw come from a peer, and the "
          "value goes back to it" * doctest::test_suite("fake")) {
    qmp_test::fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        auto q = srv.read_message();
        srv.reply(q, qmp::json::parse(R"([{"capability": "xbzrle", "state": false},
            {"capability": "teleport", "state": true, "since": "12.0"}])"));
        auto set = srv.read_message();
        srv.reply(set, qmp::json::object());
        return set;
    });
    qmp::sync_client cl;
    cl.connect(srv.endpoint());
    auto caps = cl.execute(qmp::query_migrate_capabilities{});
    REQUIRE(caps.size() == 2);
    CHECK(caps[0].capability == qmp::migration_capability::xbzrle);
    CHECK_FALSE(caps[1].capability.known());
    CHECK(caps[1].capability == "teleport");
    CHECK(caps[1].state);
    cl.execute(qmp::migrate_set_capabilities{caps});
    const qmp::json sent = script.get();
    CHECK(sent["execute"] == "migrate-set-capabilities");
    CHECK(sent["arguments"] == qmp::json::parse(R"({"capabilities": [{"capability": "xbzrle", "state": false},
        {"capability": "teleport", "state": true}]})"));
}

TEST_CASE("generated: a subscription by event type takes only those events, read typed" * doctest::test_suite("fake")) {
    using namespace std::chrono_literals;
    qmp_test::fake_server srv;
    std::promise<void> subscribed;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        subscribed.get_future().wait();
        for (const char* ev : {R"({"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 0}})",
                               R"({"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"},
                                   "timestamp": {"seconds": 2, "microseconds": 0}})",
                               R"({"event": "RESUME", "data": {}, "timestamp": {"seconds": 3, "microseconds": 0}})"})
            srv.send(std::string(ev) + "\r\n");
    });
    qmp::sync_client cl;
    cl.connect(srv.endpoint());
    auto sub = cl.async_client().subscribe(qmp::filter_for<qmp::stop_event, qmp::resume_event>(), 8);
    subscribed.set_value();
    std::vector<std::string> seen;
    for (int i = 0; i < 2; ++i) {
        const qmp::event ev = cl.wait(sub.async_receive(5s, asio::use_future));  // throws on an error
        std::error_code tec;
        if (qmp::event_as<qmp::stop_event>(ev, tec)) seen.push_back("stop");
        if (qmp::event_as<qmp::resume_event>(ev, tec)) seen.push_back("resume");
        CHECK_FALSE(tec);
    }
    CHECK(seen == std::vector<std::string>{"stop", "resume"});
    CHECK(sub.queued() == 0);  // SHUTDOWN went to the connection's own queue only
    script.get();
}
