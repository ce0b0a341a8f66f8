// An enumeration as a peer sends it: one of the values this library knows,
// or a value it does not know, kept as text. A newer QEMU adds values to its
// enumerations (RunState, JobStatus, BlockdevDriver...); a reply carrying one
// still decodes, and the value goes back out as it came in.
#pragma once

#include <qmp/json/wire.hpp>

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace qmp {

template <class E>
class open_enum {
    static_assert(std::is_enum_v<E> && detail::has_wire_enum<E>::value, "E needs wire_enum<E>");

public:
    /// The enumeration's first value.
    open_enum() = default;
    open_enum(E v) : value_(v) {}  // NOLINT: a known value converts implicitly

    /// The value of `text`: a known one, or kept as text.
    static open_enum from_text(std::string_view text) {
        open_enum out;
        for (const auto& [v, name] : wire_enum<E>::values)
            if (name == text) {
                out.value_ = v;
                return out;
            }
        out.unknown_ = std::string(text);
        out.is_unknown_ = true;
        return out;
    }

    bool known() const noexcept { return !is_unknown_; }
    /// The known value, or nothing.
    std::optional<E> value() const noexcept { return known() ? std::optional<E>(value_) : std::nullopt; }
    /// The wire text, known or not.
    std::string_view text() const noexcept {
        if (is_unknown_) return unknown_;
        for (const auto& [v, name] : wire_enum<E>::values)
            if (v == value_) return name;
        return {};
    }

    /// The wire text as a string: what a member typed as text gave before
    /// it was generated (`std::string s = ev.status;`).
    operator std::string() const { return std::string(text()); }  // NOLINT: implicit on purpose
    friend std::ostream& operator<<(std::ostream& os, const open_enum& v) { return os << v.text(); }

    friend bool operator==(const open_enum& a, const open_enum& b) noexcept { return a.text() == b.text(); }
    friend bool operator!=(const open_enum& a, const open_enum& b) noexcept { return !(a == b); }
    friend bool operator==(const open_enum& a, E b) noexcept { return a.known() && a.value_ == b; }
    friend bool operator!=(const open_enum& a, E b) noexcept { return !(a == b); }
    friend bool operator==(E a, const open_enum& b) noexcept { return b == a; }
    friend bool operator!=(E a, const open_enum& b) noexcept { return !(b == a); }
    /// Compared with wire text: `status.status == "running"`.
    friend bool operator==(const open_enum& a, std::string_view b) noexcept { return a.text() == b; }
    friend bool operator!=(const open_enum& a, std::string_view b) noexcept { return a.text() != b; }
    friend bool operator==(const open_enum& a, const char* b) noexcept { return a.text() == b; }
    friend bool operator!=(const open_enum& a, const char* b) noexcept { return a.text() != b; }

private:
    E value_{};
    bool is_unknown_ = false;
    std::string unknown_;
};

namespace detail {

template <class E>
struct io<open_enum<E>> {
    static void read(json_reader& r, open_enum<E>& v) {
        if (r.current() != json_token::string) fail_type("a string", token_name(r.current()));
        v = open_enum<E>::from_text(r.string_value());
    }
    static void write(json& j, const open_enum<E>& v) { j = std::string(v.text()); }
};

}  // namespace detail
}  // namespace qmp
