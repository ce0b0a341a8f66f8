// `vda`, `vda[3]`: how operators name a disk or one element of its backing
// chain. The name is everything before the first `[` (not empty, no `]`, no
// control character); the index is an unsigned decimal that fits 32 bits,
// followed by exactly `]`. `vda` and `vda[0]` both mean the active layer.
// Index N >= 1 is an identity (see index_registry), not a depth. Every
// target's printed forms parse back to it.
#pragma once

#include <qmp/block/error.hpp>
#include <qmp/protocol/error.hpp>
#include <qmp/protocol/wire.hpp>

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
/// block_error::invalid_target and `diag->message` to a sentence saying what
/// is wrong and at which character.
inline std::optional<target> parse_target(std::string_view text, std::error_code& ec, diagnostics* diag = nullptr) {
    auto fail = [&](std::size_t pos, const std::string& what) -> std::optional<target> {
        ec = block_error::invalid_target;
        if (diag)
            *diag = {{}, "invalid target '" + std::string(text) + "': " + what + " at character " + std::to_string(pos + 1)};
        return std::nullopt;
    };
    ec.clear();
    if (text.empty()) {
        ec = block_error::invalid_target;
        if (diag) *diag = {{}, "invalid target '': the disk name is empty"};
        return std::nullopt;
    }
    const std::size_t open = text.find('[');
    if (open == 0) return fail(0, "the disk name before '[' is empty");
    const std::size_t name_end = open == std::string_view::npos ? text.size() : open;
    for (std::size_t k = 0; k < name_end; ++k) {
        const auto c = static_cast<unsigned char>(text[k]);
        if (c == ']') return fail(k, "']' without '['");
        if (c < 0x20 || c == 0x7f) return fail(k, "a control character in the disk name");
    }
    target t;
    t.disk = std::string(text.substr(0, name_end));
    if (open == std::string_view::npos) return t;
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

/// Throwing form: qmp_error(block_error::invalid_target) with the explanation.
inline target parse_target(std::string_view text) {
    return detail::value_or_throw([&](std::error_code& ec, diagnostics* d) { return parse_target(text, ec, d); });
}

namespace detail {

/// A target travels as its indexed text (`vda[3]`), parsed strictly.
template <>
struct io<target> {
    static target from_text(const std::string& s) {
        std::error_code ec;
        diagnostics diag;
        auto t = parse_target(s, ec, &diag);
        if (!t) throw conversion_error(error::invalid_result, {}, diag.message);
        return *t;
    }
    static void read(json_reader& r, target& v) {
        if (r.current() != json_token::string) fail_type("a string", token_name(r.current()));
        v = from_text(r.string_value());
    }
    static void read(const json& j, target& v) {
        if (!j.is_string()) fail_type("a string", dom_name(j));
        v = from_text(j.get_ref<const std::string&>());
    }
    static void write(json& j, const target& v) { j = v.indexed(); }
};

}  // namespace detail

}  // namespace qmp
