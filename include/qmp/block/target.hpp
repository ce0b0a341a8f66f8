// `vda`, `vda[3]`: how operators name a disk or one element of its backing
// chain. The name is everything before the first `[`; the index is an
// unsigned decimal that fits 32 bits, followed by exactly `]`. `vda` and
// `vda[0]` both mean the active layer. Index N >= 1 is an identity (see
// index_registry), not a depth.
#pragma once

#include <qmp/protocol/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace qmp {

struct target {
    std::string disk;
    std::uint32_t index = 0;  ///< 0: the active layer

    /// The canonical form: `vda` for index 0, `vda[N]` otherwise.
    std::string str() const { return index == 0 ? disk : disk + "[" + std::to_string(index) + "]"; }
    /// Always with the index: `vda[N]`.
    std::string indexed() const { return disk + "[" + std::to_string(index) + "]"; }

    friend bool operator==(const target& a, const target& b) { return a.disk == b.disk && a.index == b.index; }
    friend bool operator!=(const target& a, const target& b) { return !(a == b); }
};

/// Parses `text`. On failure returns std::nullopt, sets `ec` to
/// error::invalid_target and `why` to a sentence saying what is wrong and at
/// which character.
inline std::optional<target> parse_target(std::string_view text, std::error_code& ec, std::string* why = nullptr) {
    auto fail = [&](std::size_t pos, const std::string& what) -> std::optional<target> {
        ec = error::invalid_target;
        if (why) *why = "invalid target '" + std::string(text) + "': " + what + " at character " + std::to_string(pos + 1);
        return std::nullopt;
    };
    ec.clear();
    if (text.empty()) {
        ec = error::invalid_target;
        if (why) *why = "invalid target '': the disk name is empty";
        return std::nullopt;
    }
    const std::size_t open = text.find('[');
    if (open == 0) return fail(0, "the disk name before '[' is empty");
    target t;
    t.disk = std::string(text.substr(0, open));
    if (open == std::string_view::npos) {
        if (text.find(']') != std::string_view::npos) return fail(text.find(']'), "']' without '['");
        return t;
    }
    std::size_t i = open + 1;
    if (i >= text.size()) return fail(i, "missing index after '['");
    if (text[i] == ']') return fail(i, "empty index");
    std::uint64_t value = 0;
    const std::size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (value > UINT32_MAX) return fail(digits_start, "index does not fit 32 bits");
        ++i;
    }
    if (i == digits_start) return fail(i, "index is not an unsigned decimal number");
    if (i >= text.size()) return fail(i, "missing ']'");
    if (text[i] != ']') return fail(i, "unexpected character '" + std::string(1, text[i]) + "' in index");
    if (i + 1 != text.size()) return fail(i + 1, "unexpected text after ']'");
    t.index = static_cast<std::uint32_t>(value);
    return t;
}

/// Throwing form: qmp_error(invalid_target) with the explanation.
inline target parse_target(std::string_view text) {
    std::error_code ec;
    std::string why;
    auto t = parse_target(text, ec, &why);
    if (!t) throw qmp_error(ec, diagnostics{std::string(), why});
    return *t;
}

}  // namespace qmp
