#include <qmp/protocol/message.hpp>

#include <doctest/doctest.h>

TEST_CASE("classify: greeting with version, package and capabilities" * doctest::test_suite("protocol")) {
    qmp::message m;
    auto ec = qmp::classify(
        R"({"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2"}, "capabilities": ["oob"]}})",
        m);
    REQUIRE(!ec);
    CHECK(m.kind == qmp::message_kind::greeting);
    CHECK(m.greeting.version.qemu.major == 10);
    CHECK(m.greeting.version.qemu.minor == 0);
    CHECK(m.greeting.version.qemu.micro == 2);
    CHECK(m.greeting.version.number() == 10000002);
    CHECK(m.greeting.version.package == "Debian 1:10.0.2");
    CHECK(m.greeting.offers("oob"));
    CHECK(!m.greeting.offers("x"));

    CHECK(qmp::classify(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}})", m) ==
          std::error_code());
    CHECK(m.greeting.capabilities.empty());
}

TEST_CASE("classify: bad greetings" * doctest::test_suite("protocol")) {
    qmp::message m;
    CHECK(qmp::classify(R"({"QMP": {"capabilities": []}})", m) == qmp::error::bad_greeting);
    CHECK(qmp::classify(R"({"QMP": {"version": {"qemu": {"major": "7"}}, "capabilities": []}})", m) ==
          qmp::error::bad_greeting);
    CHECK(qmp::classify(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": [1]}})",
                        m) == qmp::error::bad_greeting);
    CHECK(qmp::classify(R"({"QMP": 3})", m) == qmp::error::bad_greeting);
}

TEST_CASE("classify: success and error replies keep any id" * doctest::test_suite("protocol")) {
    qmp::message m;
    REQUIRE(!qmp::classify(R"({"return": {"a": 1}, "id": {"x": [1, 2]}})", m));
    CHECK(m.kind == qmp::message_kind::success);
    CHECK(m.has_id);
    CHECK(m.id == qmp::json::parse(R"({"x": [1, 2]})"));
    CHECK(m.body["a"] == 1);

    REQUIRE(!qmp::classify(R"({"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}, "id": 5})", m));
    CHECK(m.kind == qmp::message_kind::failure);
    CHECK(m.id == 5);
    CHECK(m.error_class == "CommandNotFound");
    CHECK(m.error_desc == "The command x has not been found");

    REQUIRE(!qmp::classify(R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})", m));
    CHECK(!m.has_id);
    CHECK(m.id.is_null());
}

TEST_CASE("classify: events with and without data" * doctest::test_suite("protocol")) {
    qmp::message m;
    REQUIRE(!qmp::classify(
        R"({"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "n", "amount-exceeded": 1, "write-threshold": 2}})",
        m));
    CHECK(m.kind == qmp::message_kind::event);
    CHECK(m.event.name == "BLOCK_WRITE_THRESHOLD");
    CHECK(m.event.data["node-name"] == "n");
    CHECK(m.event.time.seconds == 1700000000);
    CHECK(m.event.time.microseconds == 5);

    REQUIRE(!qmp::classify(R"({"event": "POWERDOWN", "timestamp": {"seconds": -1, "microseconds": -1}})", m));
    CHECK(m.event.data.is_null());
    CHECK(m.event.time.seconds == -1);
}

TEST_CASE("classify: not QMP" * doctest::test_suite("protocol")) {
    qmp::message m;
    CHECK(qmp::classify("[1, 2]", m) == qmp::error::malformed_message);
    CHECK(qmp::classify("{\"a\": }", m) == qmp::error::malformed_message);
    CHECK(qmp::classify("{\"a\": \"\xff\"}", m) == qmp::error::malformed_message);
    CHECK(qmp::classify("{\"hello\": 1}", m) == qmp::error::unexpected_message);
    CHECK(qmp::classify("{\"event\": 3}", m) == qmp::error::unexpected_message);
    CHECK(qmp::classify("{\"error\": \"x\", \"id\": 1}", m) == qmp::error::unexpected_message);
}
