// A reply's text is given back page by page while a `json` is built from it,
// and only then: the tree is whole, and no other reader sees a page go. The
// session's side (the text it opens) is in session_test.cpp.
#include <qmp/json/wire.hpp>
#include <qmp/protocol/command.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

// An array of `n` distinct strings of 100 bytes: about n * 104 bytes of text.
std::string big_array(std::size_t n) {
    std::string t = "[";
    for (std::size_t i = 0; i < n; ++i) {
        if (i) t += ',';
        std::string s = "element-" + std::to_string(i) + "-";
        s.resize(100, 'x');
        t += '"' + s + '"';
    }
    t += ']';
    return t;
}

bool check_array(const qmp::json& j, std::size_t n) {
    if (!j.is_array() || j.size() != n) return false;
    for (std::size_t i : {std::size_t{0}, n / 2, n - 1}) {
        const auto& s = j[i].get_ref<const std::string&>();
        if (s.rfind("element-" + std::to_string(i) + "-", 0) != 0 || s.size() != 100) return false;
    }
    return true;
}

constexpr std::size_t elements = 60000;  // about 6 MiB of text

}  // namespace

TEST_CASE("spent text: a json built from an open reply gives its text back, and the tree is whole" *
          doctest::test_suite("protocol")) {
    std::string text = big_array(elements);
    const std::string copy = text;
    qmp::json j;
    {
        qmp::detail::spent_text open(text);
        REQUIRE_FALSE(qmp::convert_text(text, j));
    }
    CHECK(check_array(j, elements));
    CHECK(text.back() == ']');  // the page of the last token is kept
#if defined(__linux__)
    // The pages the tree passed read as zeros now: they were given back.
    CHECK(text[text.size() / 2] == '\0');
    CHECK(std::memcmp(text.data() + text.size() / 2, copy.data() + text.size() / 2, 4096) != 0);
#endif
}

TEST_CASE("spent text: nothing is given back without an open text, to a second claimant, or to a nested reader" *
          doctest::test_suite("protocol")) {
    const std::string original = big_array(elements);

    SUBCASE("no open text") {
        std::string text = original;
        qmp::json j;
        REQUIRE_FALSE(qmp::convert_text(text, j));
        CHECK(check_array(j, elements));
        CHECK(text == original);
    }
    SUBCASE("another text than the open one") {
        std::string text = original, other = original;
        qmp::detail::spent_text open(other);
        qmp::json j;
        REQUIRE_FALSE(qmp::convert_text(text, j));
        CHECK(text == original);
        CHECK(other == original);
    }
    SUBCASE("a tree of one member of the value (it may not be the last reader)") {
        std::string text = original;
        qmp::detail::spent_text open(text);
        std::vector<qmp::json> v;
        REQUIRE_FALSE(qmp::convert_text(text, v));
        CHECK(v.size() == elements);
        CHECK(text == original);
        // Still open: the one reader of the whole value may claim it once.
        CHECK(qmp::detail::spent_text::claim(text) != nullptr);
        CHECK(qmp::detail::spent_text::claim(text) == nullptr);
    }
    SUBCASE("the value's text kept as text") {
        std::string text = original;
        qmp::detail::spent_text open(text);
        qmp::json_text raw;
        REQUIRE_FALSE(qmp::convert_text(text, raw));
        CHECK(raw.text == original);
        CHECK(text == original);
    }
    SUBCASE("a failed tree still names where it failed") {
        std::string text = original;
        text.insert(text.size() - 1, ",1e999");
        qmp::detail::spent_text open(text);
        qmp::json j;
        qmp::diagnostics d;
        CHECK(qmp::convert_text(text, j, &d) == qmp::error::unrepresentable_number);
        CHECK(d.message.find("1e999") != std::string::npos);
        CHECK(d.message.find("[60000]") != std::string::npos);
    }
}
