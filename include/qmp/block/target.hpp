// `vda`, `vda[3]`: how operators name a disk or one element of its backing
// chain. The index is a trailing `[N]`, N an unsigned decimal that fits 32
// bits; the name is everything before it (not empty, no control character,
// brackets only as `[digits]` ending a path component, as in QEMU's paths of
// devices without an id: `/machine/peripheral-anon/device[0]/virtio-backend[2]`).
// `vda` and `vda[0]` both mean the active layer.
// Index N >= 1 is an identity (see index_registry), not a depth. Every
// target's printed forms parse back to it.
#pragma once

#include <qmp/block/error.hpp>
#include <qmp/error.hpp>
#include <qmp/json/wire.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace qmp {

struct target {
    std::string disk;
    std::uint32_t index = 0;  ///< 0: the active layer

    /// The canonical form: `vda` for index 0, `vda[N]` otherwise (and
    /// `name[0]` where the name itself ends with `]`, so it parses back).
    std::string str() const { return index == 0 && (disk.empty() || disk.back() != ']') ? disk : indexed(); }
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
    // The index is the trailing `[digits]`; the name is what comes before.
    const bool has_index = text.back() == ']';
    const std::size_t open = has_index ? text.rfind('[') : std::string_view::npos;
    if (has_index && open == std::string_view::npos) return fail(text.size() - 1, "']' without '['");
    if (open == 0) return fail(0, "the disk name before '[' is empty");
    const std::size_t name_end = has_index ? open : text.size();
    // Inside the name, brackets only enclose numbers and end a path
    // component: QEMU's canonical paths of devices without an id look like
    // `/machine/peripheral-anon/device[0]/virtio-backend`.
    for (std::size_t k = 0; k < name_end; ++k) {
        const auto c = static_cast<unsigned char>(text[k]);
        if (c == ']') return fail(k, "']' without '['");
        if (c < 0x20 || c == 0x7f) return fail(k, "a control character in the disk name");
        if (c != '[') continue;
        std::size_t j = k + 1;
        if (j >= name_end) return fail(j, "missing index after '['");
        while (j < name_end && text[j] >= '0' && text[j] <= '9') ++j;
        if (j == k + 1) return fail(j, "'[' in the disk name without a number after it");
        if (j >= name_end) return fail(j, "missing ']'");
        if (text[j] != ']') return fail(j, "unexpected character '" + std::string(1, text[j]) + "' in index");
        if (j + 1 < name_end && text[j + 1] != '/') return fail(j + 1, "unexpected text after ']'");
        k = j;
    }
    target t;
    t.disk = std::string(text.substr(0, name_end));
    if (!has_index) return t;
    std::size_t i = open + 1;
    if (text[i] == ']') return fail(i, "empty index");
    std::uint64_t value = 0;
    const std::size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (value > UINT32_MAX) return fail(digits_start, "index does not fit 32 bits");
        ++i;
    }
    if (i == digits_start) return fail(i, "index is not an unsigned decimal number");
    if (text[i] != ']') return fail(i, "unexpected character '" + std::string(1, text[i]) + "' in index");
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
    static void write(json& j, const target& v) { j = v.indexed(); }
};

}  // namespace detail

}  // namespace qmp
