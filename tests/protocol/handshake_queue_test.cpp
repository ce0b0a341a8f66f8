#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/handshake.hpp>

#include <doctest/doctest.h>


TEST_CASE("event_queue: bounded, the marker exactly where the gap is" * doctest::test_suite("protocol")) {
    qmp::event_queue q(4);
    auto ev = [](int i) {
        qmp::event e;
        e.name = "E" + std::to_string(i);
        return e;
    };
    for (int i = 0; i < 10; ++i) q.push(ev(i));
    CHECK(q.size() == 4);
    CHECK(q.dropped() == 6);
    CHECK(q.received() == 10);
    CHECK(q.pop().name == "E0");
    q.push(ev(10));  // 3 held: above half, still dropping into the same marker
    CHECK(q.dropped() == 7);
    CHECK(q.pop().name == "E1");
    CHECK(q.pop().name == "E2");
    q.push(ev(11));  // drained to half: taken again, after the marker
    CHECK(q.pop().name == "E3");
    auto m = q.pop();
    CHECK(m.lost == 7);  // E4..E10, one marker
    CHECK(m.name.empty());
    CHECK(q.pop().name == "E11");
    CHECK(q.empty());
    CHECK(q.size() == 0);
}

TEST_CASE("event_queue: a consumer reading through a flood gets events, not a marker per event" *
          doctest::test_suite("protocol")) {
    qmp::event_queue q(1024);
    std::uint64_t events = 0, markers = 0, lost = 0, next = 0;
    qmp::event e;
    e.name = "FLOOD";
    // Three arrive for each one the consumer takes, for a million arrivals.
    for (int round = 0; round < 333334; ++round) {
        for (int k = 0; k < 3; ++k) {
            e.data = next++;
            q.push(e);
        }
        if (q.empty()) continue;
        auto got = q.pop();
        if (got.lost) {
            ++markers;
            lost += got.lost;
        } else {
            ++events;
        }
    }
    while (!q.empty()) {
        auto got = q.pop();
        got.lost ? (++markers, lost += got.lost) : ++events;
    }
    CHECK(events + lost == next);       // every arrival accounted for, exactly
    CHECK(events >= 333000);            // the consumer kept reading events
    CHECK(markers * 400 <= events);     // one marker per several hundred events
    CHECK(q.dropped() == lost);
}

TEST_CASE("handshake: greeting, negotiation with and without oob" * doctest::test_suite("protocol")) {
    static const std::string with_oob =
        R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}})";
    static const std::string without_oob =
        R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}})";
    auto greet = [](bool oob) {
        qmp::message m;  // its views point into the static texts
        REQUIRE(!qmp::classify(oob ? with_oob : without_oob, m));
        return m;
    };
    for (bool offered : {true, false})
        for (bool wanted : {true, false}) {
            CAPTURE(offered);
            CAPTURE(wanted);
            qmp::handshake h(wanted);
            std::string out;
            bool handled;
            qmp::message ev;
            REQUIRE(!qmp::classify(R"({"event": "EARLY", "data": {}})", ev));
            CHECK(!h.on_message(ev, out, handled));
            CHECK(!handled);
            REQUIRE(!h.on_message(greet(offered), out, handled));
            CHECK(handled);
            auto req = qmp::json::parse(out);
            CHECK(req["execute"] == "qmp_capabilities");
            CHECK(req.contains("arguments") == (offered && wanted));
            CHECK(h.current() == qmp::handshake::state::awaiting_capabilities);
            qmp::message rep;
            const std::string rep_text = R"({"return": {}, "id": ")" + qmp::handshake::capabilities_id() + "\"}";
            REQUIRE(!qmp::classify(rep_text, rep));
            // A copy of the greeting before the reply ends the negotiation:
            // QEMU opened its monitor again under this connection.
            {
                qmp::handshake twice = h;
                CHECK(twice.on_message(greet(offered), out, handled) == qmp::error::greeted_twice);
                CHECK(handled);
                CHECK(out.empty());
                CHECK(twice.extra_greetings() == 1);
                CHECK(twice.current() == qmp::handshake::state::failed);
            }
            REQUIRE(!h.on_message(rep, out, handled));
            CHECK(h.current() == qmp::handshake::state::ready);
            CHECK(h.oob_enabled() == (offered && wanted));
            // After negotiation too; a different greeting is no copy at all.
            {
                qmp::handshake twice = h;
                CHECK(twice.on_message(greet(offered), out, handled) == qmp::error::greeted_twice);
                CHECK(twice.current() == qmp::handshake::state::failed);
            }
            CHECK(h.on_message(greet(!offered), out, handled) == qmp::error::unexpected_message);
            CHECK(h.current() == qmp::handshake::state::failed);
        }
}

TEST_CASE("handshake: refusal and wrong first message" * doctest::test_suite("protocol")) {
    qmp::handshake h;
    std::string out;
    bool handled;
    qmp::message m;
    REQUIRE(!qmp::classify(R"({"return": {}, "id": 1})", m));
    CHECK(h.on_message(m, out, handled) == qmp::error::unexpected_message);
    CHECK(h.current() == qmp::handshake::state::failed);

    qmp::handshake h2;
    REQUIRE(!qmp::classify(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}})", m));
    REQUIRE(!h2.on_message(m, out, handled));
    REQUIRE(!qmp::classify(R"({"error": {"class": "GenericError", "desc": "no"}, "id": "qmp#capabilities"})", m));
    CHECK(h2.on_message(m, out, handled) == qmp::error::negotiation_failed);
    CHECK(h2.error_desc() == "no");

}

TEST_CASE("errors: every code has a message and its category" * doctest::test_suite("protocol")) {
    for (int i = static_cast<int>(qmp::error::not_connected); i <= static_cast<int>(qmp::error::greeted_twice); ++i) {
        std::error_code ec = static_cast<qmp::error>(i);
        CHECK(ec.category().name() == std::string("qmp.client"));
        CHECK(ec.message().find("unknown") == std::string::npos);
        CHECK(!ec.message().empty());
    }
    for (int i = 1; i <= static_cast<int>(qmp::server_error::unknown_class); ++i) {
        std::error_code ec = static_cast<qmp::server_error>(i);
        CHECK(ec.category().name() == std::string("qmp.server"));
        CHECK(!ec.message().empty());
    }
    CHECK(qmp::server_error_from_class("GenericError") == qmp::server_error::generic_error);
    CHECK(qmp::server_error_from_class("CommandNotFound") == qmp::server_error::command_not_found);
    CHECK(qmp::server_error_from_class("DeviceNotActive") == qmp::server_error::device_not_active);
    CHECK(qmp::server_error_from_class("DeviceNotFound") == qmp::server_error::device_not_found);
    CHECK(qmp::server_error_from_class("KVMMissingCap") == qmp::server_error::kvm_missing_cap);
    CHECK(qmp::server_error_from_class("Whatever") == qmp::server_error::unknown_class);
    qmp::qmp_error ex(qmp::server_error::generic_error, qmp::diagnostics{"GenericError", "Device 'x' not found"});
    CHECK(std::string(ex.what()).find("Device 'x' not found") != std::string::npos);
    CHECK(ex.code() == qmp::server_error::generic_error);
}
