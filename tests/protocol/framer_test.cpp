#include <qmp/protocol/framer.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

// Feeds `input` in pieces of `chunk` bytes and collects every message.
std::vector<std::string> frame_all(const std::string& input, std::size_t chunk, qmp::framer_limits lim = {},
                                   std::error_code* err = nullptr) {
    qmp::framer f(lim);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < input.size(); i += chunk) {
        f.feed(input.data() + i, std::min(chunk, input.size() - i));
        for (;;) {
            std::string_view m;
            std::error_code ec;
            auto st = f.next(m, ec);
            if (st == qmp::framer::status::message) {
                out.emplace_back(m);
                continue;
            }
            if (st == qmp::framer::status::failed) {
                if (err) *err = ec;
                return out;
            }
            break;
        }
    }
    return out;
}

const std::string pretty_reply =
    "{\r\n    \"return\": {\r\n        \"qemu\": {\r\n            \"micro\": 0,\r\n"
    "            \"minor\": 2,\r\n            \"major\": 7\r\n        },\r\n"
    "        \"package\": \"Debian\"\r\n    },\r\n    \"id\": \"qmp#1\"\r\n}\r\n";

}  // namespace

TEST_CASE("framer: one-line messages with CRLF and LF endings" * doctest::test_suite("protocol")) {
    std::string in = "{\"return\": {}}\r\n{\"event\": \"X\"}\n{\"a\":1}";
    for (std::size_t chunk : {std::size_t(1), std::size_t(2), std::size_t(7), in.size()}) {
        CAPTURE(chunk);
        auto msgs = frame_all(in, chunk);
        REQUIRE(msgs.size() == 3);
        CHECK(msgs[0] == "{\"return\": {}}");
        CHECK(msgs[1] == "{\"event\": \"X\"}");
        CHECK(msgs[2] == "{\"a\":1}");
    }
}

TEST_CASE("framer: a pretty=on message spanning many lines" * doctest::test_suite("protocol")) {
    std::string in = pretty_reply + pretty_reply;
    for (std::size_t chunk : {std::size_t(1), std::size_t(3), std::size_t(64), in.size()}) {
        CAPTURE(chunk);
        auto msgs = frame_all(in, chunk);
        REQUIRE(msgs.size() == 2);
        CHECK(msgs[0] == pretty_reply.substr(0, pretty_reply.size() - 2));
    }
}

TEST_CASE("framer: braces, brackets and escaped quotes inside strings" * doctest::test_suite("protocol")) {
    std::string m1 = R"({"desc": "a } b { c ] [", "x": "q\"}\"", "y": "\\", "z": "\\\"}"})";
    std::string m2 = R"({"k": ["}", "{", {"n": "\\\\\"{"}]})";
    auto msgs = frame_all(m1 + "\r\n" + m2 + "\r\n", 1);
    REQUIRE(msgs.size() == 2);
    CHECK(msgs[0] == m1);
    CHECK(msgs[1] == m2);
}

TEST_CASE("framer: a message split exactly at every byte boundary" * doctest::test_suite("protocol")) {
    std::string m = R"({"return": {"a": "x\\\"y", "b": [1, {"c": "}"}]}, "id": "qmp#7"})";
    for (std::size_t cut = 0; cut <= m.size(); ++cut) {
        qmp::framer f;
        f.feed(m.substr(0, cut));
        std::string_view out;
        std::error_code ec;
        if (cut < m.size()) CHECK(f.next(out, ec) == qmp::framer::status::need_more);
        f.feed(m.substr(cut));
        REQUIRE(f.next(out, ec) == qmp::framer::status::message);
        CHECK(out == m);
    }
}

TEST_CASE("framer: oversize message is a distinct error" * doctest::test_suite("protocol")) {
    qmp::framer_limits lim;
    lim.max_message_size = 100;
    std::string big = "{\"return\": \"" + std::string(200, 'x') + "\"}";
    std::error_code ec;
    auto msgs = frame_all("{\"ok\":1}\r\n" + big, 1, lim, &ec);
    REQUIRE(msgs.size() == 1);
    CHECK(ec == qmp::error::message_too_large);

    // Exactly at the cap is accepted.
    std::string exact = "{\"r\":\"" + std::string(100 - 8, 'y') + "\"}";
    REQUIRE(exact.size() == 100);
    ec.clear();
    msgs = frame_all(exact, 13, lim, &ec);
    CHECK(!ec);
    CHECK(msgs.size() == 1);

    // One byte over is refused, whichever read brought the last byte.
    std::string over = "{\"r\":\"" + std::string(100 - 7, 'y') + "\"}";
    REQUIRE(over.size() == 101);
    for (std::size_t chunk : {std::size_t(1), std::size_t(7), std::size_t(100), std::size_t(101), std::size_t(4096)}) {
        CAPTURE(chunk);
        ec.clear();
        msgs = frame_all(over, chunk, lim, &ec);
        CHECK(ec == qmp::error::message_too_large);
        CHECK(msgs.empty());
    }
}

TEST_CASE("framer: a failed framer stays failed" * doctest::test_suite("protocol")) {
    qmp::framer f;
    f.feed("garbage {\"a\":1}");
    std::string_view out;
    std::error_code ec;
    CHECK(f.next(out, ec) == qmp::framer::status::failed);
    CHECK(ec == qmp::error::malformed_message);
    f.feed("{\"b\":2}");
    ec.clear();
    CHECK(f.next(out, ec) == qmp::framer::status::failed);
    CHECK(ec == qmp::error::malformed_message);
    f.reset();
    f.feed("{\"b\":2}");
    CHECK(f.next(out, ec) == qmp::framer::status::message);
}

TEST_CASE("framer: nesting cap" * doctest::test_suite("protocol")) {
    qmp::framer_limits lim;
    lim.max_depth = 4;
    std::error_code ec;
    auto msgs = frame_all("{\"a\":[[[1]]]}", 1, lim, &ec);
    CHECK(msgs.size() == 1);
    CHECK(!ec);
    msgs = frame_all("{\"a\":[[[[1]]]]}", 1, lim, &ec);
    CHECK(msgs.empty());
    CHECK(ec == qmp::error::nesting_too_deep);
}

TEST_CASE("framer: large input is framed with bounded buffering" * doctest::test_suite("protocol")) {
    qmp::framer f;
    std::string m = "{\"event\": \"E\", \"data\": {\"s\": \"" + std::string(1000, 'z') + "\"}}\r\n";
    std::size_t got = 0;
    for (int i = 0; i < 5000; ++i) {
        f.feed(m);
        std::string_view out;
        std::error_code ec;
        while (f.next(out, ec) == qmp::framer::status::message) ++got;
        CHECK(f.buffered() <= m.size());
    }
    CHECK(got == 5000);
}
