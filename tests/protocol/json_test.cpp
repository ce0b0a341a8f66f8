// The JSON reader, exact numbers in the tree, and typed conversions that
// check range, sign and integrality and name the member that failed.
#include <qmp/protocol/command.hpp>
#include <qmp/json/parse.hpp>
#include <qmp/json/reader.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

std::vector<qmp::json_token> tokens(std::string_view text) {
    qmp::json_reader r(text);
    std::vector<qmp::json_token> out;
    for (;;) {
        auto t = r.next();
        out.push_back(t);
        if (t == qmp::json_token::end || t == qmp::json_token::error) return out;
    }
}

bool valid(std::string_view text) { return tokens(text).back() == qmp::json_token::end; }

}  // namespace

TEST_CASE("json_reader: tokens, strings and the grammar" * doctest::test_suite("protocol")) {
    using T = qmp::json_token;
    CHECK(tokens(R"( {"a": [1, -2.5e3, "x", true, false, null], "b": {}} )") ==
          std::vector<T>{T::begin_object, T::key, T::begin_array, T::number, T::number, T::string, T::boolean,
                         T::boolean, T::null, T::end_array, T::key, T::begin_object, T::end_object, T::end_object,
                         T::end});
    qmp::json_reader r(R"("a\"b\\c\/\n\u00e9\ud83d\ude00")");
    REQUIRE(r.next() == T::string);
    CHECK(r.escaped());
    CHECK(r.string_value() == "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");

    for (const char* ok : {"0", "-0", "1.5", "1e5", "1E+5", "-1.0e-5", "[]", "{}", "\"\"", "\"\xc3\xa9\"",
                           "\"\xf4\x8f\xbf\xbf\"", " [1 , 2] "})
        CHECK_MESSAGE(valid(ok), ok);
    for (const char* bad : {"", "01", "1.", ".5", "1e", "+1", "-", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1: 2}",
                            "[1 2]", "tru", "nul", "\"a", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"",
                            "\"\\ud800\\u0041\"", "\"\x01\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"",
                            "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "[1] 2", "{\"a\": 1"})
        CHECK_MESSAGE(!valid(bad), bad);

    const std::string nested = std::string(5, '[') + std::string(5, ']');
    qmp::json_reader deep(nested, 4);  // reads the text in place: it must outlive the reader
    std::error_code ec;
    while (deep.next() != T::error && deep.current() != T::end) {
    }
    CHECK(deep.error() == qmp::error::nesting_too_deep);
}

TEST_CASE("json_reader: numbers say which exact type holds them" * doctest::test_suite("protocol")) {
    auto kind = [](std::string_view n) {
        qmp::json_reader r(n);
        REQUIRE(r.next() == qmp::json_token::number);
        return r.number_kind();
    };
    using K = qmp::json_number_kind;
    CHECK(kind("18446744073709551615") == K::unsigned_integer);
    CHECK(kind("18446744073709551616") == K::out_of_range);
    CHECK(kind("-9223372036854775808") == K::negative_integer);
    CHECK(kind("-9223372036854775809") == K::out_of_range);
    CHECK(kind("-0") == K::unsigned_integer);
    CHECK(kind("1.5") == K::floating);
    CHECK(kind("1e308") == K::floating);
    CHECK(kind("1e999") == K::out_of_range);
    CHECK(kind("1e-999") == K::out_of_range);
    CHECK(kind(std::string(401, '9')) == K::out_of_range);
    qmp::json_reader r("-9223372036854775808");
    r.next();
    CHECK(r.signed_value() == INT64_MIN);
}

TEST_CASE("parse_json: every number exactly, or a clear error saying where" * doctest::test_suite("protocol")) {
    qmp::json j;
    qmp::diagnostics d;
    REQUIRE(!qmp::parse_json(R"({"u": 18446744073709551615, "s": -5, "f": 0.5, "a": [1, "x"]})", j));
    CHECK(j["u"].get<std::uint64_t>() == UINT64_MAX);
    CHECK(j["u"].dump() == "18446744073709551615");
    CHECK(j["s"].get<std::int64_t>() == -5);
    CHECK(j["f"].get<double>() == 0.5);
    CHECK(j["a"][1] == "x");

    CHECK(qmp::parse_json(R"({"a": [0, {"b": 18446744073709551616}]})", j, &d) == qmp::error::unrepresentable_number);
    CHECK(d.message.find("18446744073709551616") != std::string::npos);
    CHECK(d.message.find("a[1].b") != std::string::npos);
    CHECK(qmp::parse_json("[1e999]", j, &d) == qmp::error::unrepresentable_number);
    CHECK(qmp::parse_json("[" + std::string(401, '7') + "]", j, &d) == qmp::error::unrepresentable_number);
    CHECK(d.message.find("401 characters") != std::string::npos);  // not 401 digits in a sentence
    CHECK(qmp::parse_json("{\"a\": }", j, &d) == qmp::error::malformed_message);
    CHECK(d.message.find("byte") != std::string::npos);
}

TEST_CASE("convert: integers are checked for range, sign and integrality, naming the member" *
          doctest::test_suite("protocol")) {
    const std::string tpl = R"({"node-name": "n", "amount-exceeded": AE, "write-threshold": 1})";
    auto event_with = [&](const std::string& v) {
        std::string t = tpl;
        t.replace(t.find("AE"), 2, v);
        return t;
    };
    qmp::block_write_threshold_event e;
    qmp::diagnostics d;
    REQUIRE(!qmp::convert_text(event_with("18446744073709551615"), e));
    CHECK(e.amount_exceeded == UINT64_MAX);
    struct bad_case {
        std::string value;
        std::string says;
    };
    for (const auto& c : std::vector<bad_case>{{"18446744073709551616", "does not fit"},
                                                {"1e20", "not an integer"},
                                                {"1e999", "does not fit"},
                                                {"-5", "negative"},
                                                {"1.5", "not an integer"},
                                                {"\"5\"", "expected an unsigned 64-bit integer, got a string"},
                                                {"true", "got a boolean"},
                                                {"null", "missing"}}) {
        CAPTURE(c.value);
        // From text (no tree) and from the tree (when the tree can hold it).
        auto ec = qmp::convert_text(event_with(c.value), e, &d);
        CHECK(ec);
        CHECK(d.message.find("amount-exceeded") != std::string::npos);
        CHECK(d.message.find(c.says) != std::string::npos);
        qmp::json j;
        if (!qmp::parse_json(event_with(c.value), j)) {
            d = {};
            CHECK(qmp::convert(j, e, &d));
            CHECK(d.message.find("amount-exceeded") != std::string::npos);
            CHECK(d.message.find(c.says) != std::string::npos);
        }
    }
    CHECK(qmp::convert_text(R"({"node-name": "n", "write-threshold": 1})", e, &d) == qmp::error::missing_member);
    CHECK(d.message == "amount-exceeded: missing");

    // Signed limits, nested paths.
    qmp::version_info v;
    CHECK(qmp::convert_text(R"({"qemu": {"major": 9223372036854775808, "minor": 0, "micro": 0}})", v, &d) ==
          qmp::error::invalid_result);
    CHECK(d.message.find("qemu.major") != std::string::npos);
    REQUIRE(!qmp::convert_text(R"({"qemu": {"major": -9223372036854775808, "minor": 0, "micro": 0}})", v));
    CHECK(v.qemu.major == INT64_MIN);
    std::vector<qmp::block_device_info> nodes;
    const std::string node = R"({"file": "f", "ro": false, "drv": "qcow2", "write_threshold": 0,
                                "image": {"filename": "f", "format": "qcow2", "virtual-size": VS}})";
    std::string two = "[" + node + ", " + node + "]";
    two.replace(two.find("VS"), 2, "1");
    two.replace(two.find("VS"), 2, "-1.5");
    CHECK(qmp::convert_text(two, nodes, &d) == qmp::error::invalid_result);
    CHECK(d.message.find("[1].image.virtual-size: -1.5 is not an integer") == 0);
}

TEST_CASE("convert: optional and unknown members, nested members, typed results from text" *
          doctest::test_suite("protocol")) {
    qmp::block_stats s;
    REQUIRE(!qmp::convert_text(R"({"node-name": "a", "new-member": {"x": [1e999]}, "stats": {"rd_bytes": 1,
        "wr_bytes": 2, "rd_operations": 3, "wr_operations": 4, "wr_highest_offset": 5},
        "driver-specific": {"driver": "file", "extra": 1}, "parent": null})",
                               s));
    CHECK(s.node_name == std::optional<std::string>("a"));
    CHECK(s.driver == std::optional<std::string>("file"));
    CHECK(s.stats.wr_highest_offset == 5);
    CHECK(!s.parent);
    CHECK(!s.device);

    qmp::json_text raw;
    REQUIRE(!qmp::convert_text(R"( {"n": 18446744073709551616} )", raw));
    CHECK(raw.text == R"({"n": 18446744073709551616})");

    qmp::json back = qmp::block_set_write_threshold{"node", UINT64_MAX};
    CHECK(back.dump() == R"({"node-name":"node","write-threshold":18446744073709551615})");
    qmp::json q = qmp::query_named_block_nodes{};
    CHECK(q.dump() == "{}");
    q = qmp::query_named_block_nodes{true};
    CHECK(q.dump() == R"({"flat":true})");
}

TEST_CASE("compact_json: every token as written, whitespace gone" * doctest::test_suite("protocol")) {
    std::string out;
    REQUIRE(!qmp::compact_json("{\r\n    \"a\": [1, 18446744073709551616, 1e999, \"x\\u00e9 y\"],\r\n    \"b\": {}\r\n}", out));
    CHECK(out == R"({"a":[1,18446744073709551616,1e999,"x\u00e9 y"],"b":{}})");
    REQUIRE(!qmp::compact_json(" [ ] ", out));
    CHECK(out == "[]");
    REQUIRE(!qmp::compact_json(" 5 ", out));
    CHECK(out == "5");
    CHECK(qmp::compact_json("[1,]", out) == qmp::error::malformed_message);
}

TEST_CASE("json: one conversion path: a tree converts by the rules of its text, and a repeated member is refused" *
          doctest::test_suite("protocol")) {
    struct pair_t {
        std::string name;
        std::uint64_t size = 0;
        static constexpr auto wire_members() {
            return std::make_tuple(qmp::wire::required("name", &pair_t::name), qmp::wire::required("size", &pair_t::size));
        }
    };
    for (const char* text : {R"({"name": "a", "size": 1.0})", R"({"name": "a", "size": -1})", R"({"name": 5, "size": 1})",
                             R"({"size": 1})", R"({"name": "a", "size": 18446744073709551615})"}) {
        CAPTURE(text);
        pair_t from_text, from_tree;
        qmp::diagnostics a, b;
        const std::error_code ea = qmp::convert_text(text, from_text, &a);
        const std::error_code eb = qmp::convert(qmp::json::parse(text), from_tree, &b);
        CHECK(ea == eb);
        CHECK(a.message == b.message);
        CHECK(from_text.size == from_tree.size);
    }
    pair_t p;
    qmp::diagnostics why;
    CHECK(qmp::convert_text(R"({"name": "a", "size": 1, "name": "b"})", p, &why) == qmp::error::invalid_result);
    CHECK(why.message == "name: appears twice");
    CHECK(p.name.empty());  // unchanged on failure
    // ADL for the library's types: j.get<T>() throws what convert reports.
    CHECK_THROWS_AS(qmp::json::parse(R"({"qemu": {"major": 1.5, "minor": 0, "micro": 0}})").get<qmp::version_info>(),
                    qmp::conversion_error);
    CHECK(qmp::json::parse(R"({"qemu": {"major": 10, "minor": 0, "micro": 2}})").get<qmp::version_info>().qemu.major == 10);
}

TEST_CASE("json: strings are scanned eight bytes at a time: every stop is found wherever it falls" *
          doctest::test_suite("protocol")) {
    // A stop byte at every offset of strings up to 24 bytes long, so each
    // lands in every lane of a word and in the byte-wise tail; the framer
    // and the reader agree with nlohmann's parser on every one.
    const std::vector<std::pair<std::string, bool>> stops = {
        {"\\\"", true}, {"\\\\", true}, {"\\n", true}, {"\\u00e9", true}, {"\\ud83d\\ude00", true},
        {"\xc3\xa9", true}, {"\xe2\x82\xac", true}, {"\x01", false}, {"\x1f", false}, {"\xff", false}, {"\x80", false}};
    for (std::size_t len = 0; len <= 24; ++len)
        for (std::size_t at = 0; at <= len; ++at)
            for (const auto& [stop, ok] : stops) {
                const std::string body = std::string(at, 'a') + stop + std::string(len - at, 'z');
                const std::string text = "[\"" + body + "\", \" \"]";
                qmp::json mine;
                const auto ec = qmp::parse_json(text, mine);
                CHECK_MESSAGE(!ec == ok, text);
                if (ok && !ec) CHECK_MESSAGE(mine == qmp::json::parse(text), text);
                qmp::framer f;
                f.feed(text + "{}");
                std::string_view msg;
                std::error_code fe;
                REQUIRE(f.next(msg, fe) == qmp::framer::status::message);
                CHECK_MESSAGE(msg == text, text);
            }
}
