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
    CHECK(m.id == R"({"x": [1, 2]})");
    CHECK(m.value == R"({"a": 1})");

    REQUIRE(!qmp::classify(R"({"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}, "id": 5})", m));
    CHECK(m.kind == qmp::message_kind::failure);
    CHECK(m.id == "5");
    std::string id;
    CHECK(!m.id_string(id));
    CHECK(m.error_class == "CommandNotFound");
    CHECK(m.error_desc == "The command x has not been found");

    REQUIRE(!qmp::classify(R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})", m));
    CHECK(!m.has_id);
    CHECK(m.id.empty());

    REQUIRE(!qmp::classify(R"({"id": "qmp\u00231", "return": [1, {"b": "}"}]})", m));
    CHECK(m.id_string(id));
    CHECK(id == "qmp#1");  // escaped ids are compared unescaped
    CHECK(m.value == R"([1, {"b": "}"}])");
}

TEST_CASE("classify: error replies whose class or desc is no string still say something" *
          doctest::test_suite("protocol")) {
    qmp::message m;
    REQUIRE(!qmp::classify(R"({"error": {"class": 7, "desc": ["x"]}, "id": "qmp#1"})", m));
    CHECK(m.kind == qmp::message_kind::failure);
    CHECK(m.error_class.empty());
    CHECK(m.error_desc.find("no text and no class") != std::string::npos);
    CHECK(m.error_desc.find(R"({"class": 7, "desc": ["x"]})") != std::string::npos);
    REQUIRE(!qmp::classify(R"({"error": {"class": "GenericError"}, "id": "qmp#1"})", m));
    CHECK(m.error_class == "GenericError");
    CHECK(m.error_desc.find("no text") != std::string::npos);
}

TEST_CASE("classify: numbers the tree cannot hold keep the reply and the event" * doctest::test_suite("protocol")) {
    qmp::message m;
    // A reply: the value stays text; reading it is where the number matters.
    REQUIRE(!qmp::classify(R"({"return": {"n": 18446744073709551616, "f": 1e999}, "id": "qmp#1"})", m));
    CHECK(m.kind == qmp::message_kind::success);
    CHECK(m.value == R"({"n": 18446744073709551616, "f": 1e999})");
    // An event: delivered with its exact text, the tree left null.
    REQUIRE(!qmp::classify(
        R"({"event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "n", "amount-exceeded": 1e999, "write-threshold": 1}})",
        m));
    CHECK(m.kind == qmp::message_kind::event);
    CHECK(m.event.data.is_null());
    CHECK(m.event.undecoded == R"({"node-name": "n", "amount-exceeded": 1e999, "write-threshold": 1})");
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
    CHECK(qmp::classify("{\"return\": 1} x", m) == qmp::error::malformed_message);
    CHECK(qmp::classify("{\"return\": 01}", m) == qmp::error::malformed_message);
    CHECK(qmp::classify(std::string(3000, '[') + std::string(3000, ']'), m) == qmp::error::malformed_message);
    CHECK(qmp::classify("{\"a\":" + std::string(3000, '[') + std::string(3000, ']') + "}", m) ==
          qmp::error::nesting_too_deep);
}
