// Typed conversions, part 1 of 3 (see json/wire.hpp): the error they
// throw, how a struct names its wire members, and scalars.
#pragma once

#include <qmp/error.hpp>
#include <qmp/json/parse.hpp>
#include <qmp/json/reader.hpp>

#include <cstddef>
#include <cstdint>
#include <array>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace qmp {

/// Thrown by from_json of described types (and caught by convert(), which
/// turns it into an error code): what failed, and where.
class conversion_error : public std::runtime_error {
public:
    conversion_error(std::error_code code, std::string path, std::string reason)
        : std::runtime_error(path.empty() ? reason : path + ": " + reason),
          code_(code),
          path_(std::move(path)),
          reason_(std::move(reason)) {}
    std::error_code code() const noexcept { return code_; }
    const std::string& path() const noexcept { return path_; }
    const std::string& reason() const noexcept { return reason_; }

    /// The same failure one level further out (`key` or `[i]` prepended).
    conversion_error within(std::string_view segment) const {
        std::string p(segment);
        if (!path_.empty()) {
            if (path_[0] != '[') p += '.';
            p += path_;
        }
        return conversion_error(code_, std::move(p), reason_);
    }

private:
    std::error_code code_;
    std::string path_;
    std::string reason_;
};

namespace wire {

enum class presence : std::uint8_t {
    required,  ///< must be present and not null
    optional,  ///< may be absent or null: the member keeps its default
};

/// One wire member: its name (and, for a member nested one level down such
/// as `driver-specific.driver`, the inner name) and the C++ member.
template <class C, class M>
struct field {
    std::string_view name;
    M C::*member;
    presence how;
    std::string_view inner{};
};

template <class C, class M>
constexpr field<C, M> required(std::string_view name, M C::*m) {
    return {name, m, presence::required};
}
template <class C, class M>
constexpr field<C, M> optional(std::string_view name, M C::*m) {
    return {name, m, presence::optional};
}
/// A member read from `outer.inner` (an object member one level down);
/// optional, and only read (never written).
template <class C, class M>
constexpr field<C, M> nested(std::string_view outer, std::string_view inner, M C::*m) {
    return {outer, m, presence::optional, inner};
}

}  // namespace wire

/// Enumerations travel as strings: specialise with the names, e.g.
///   template <> struct wire_enum<layer> {
///       static constexpr std::array<std::pair<layer, std::string_view>, 2> values{{
///           {layer::format, "format"}, {layer::storage, "storage"}}};
///   };
/// An unknown name is an error listing the known ones.
template <class E>
struct wire_enum;

namespace detail {

/// A QAPI flat union (generated): base members described by wire_members(),
/// a `discriminator` naming the base member that picks the branch, and
/// `branch_of(tag)`, the index of the branch's type in `branch` (0: a
/// `json` object, for a tag without members or one the type does not know).
template <class T, class = void>
struct is_qapi_union : std::false_type {};
template <class T>
struct is_qapi_union<T, std::void_t<decltype(T::discriminator), decltype(T::branch_of(std::string_view()))>>
    : std::true_type {};

/// A struct read and written member by member from its wire_members().
template <class T, class = void>
struct is_described : std::false_type {};
template <class T>
struct is_described<T, std::void_t<decltype(T::wire_members())>> : std::bool_constant<!is_qapi_union<T>::value> {};

template <class E, class = void>
struct has_wire_enum : std::false_type {};
template <class E>
struct has_wire_enum<E, std::void_t<decltype(wire_enum<E>::values)>> : std::true_type {};

/// A described type may check invariants across members after reading:
/// `static std::string wire_check(const T&)` returns what is wrong, or "".
template <class T, class = void>
struct has_wire_check : std::false_type {};
template <class T>
struct has_wire_check<T, std::void_t<decltype(T::wire_check(std::declval<const T&>()))>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

[[noreturn]] inline void fail_type(const char* expected, const char* got) {
    throw conversion_error(error::invalid_result, {}, std::string("expected ") + expected + ", got " + got);
}

inline const char* token_name(json_token t) {
    switch (t) {
    case json_token::begin_object: return "an object";
    case json_token::begin_array: return "an array";
    case json_token::string: return "a string";
    case json_token::number: return "a number";
    case json_token::boolean: return "a boolean";
    case json_token::null: return "null";
    default: return "invalid JSON";
    }
}

template <class I>
std::string integer_type_name() {
    return std::string(std::is_signed_v<I> ? "a signed " : "an unsigned ") + std::to_string(sizeof(I) * 8) +
           "-bit integer";
}

/// An integer of type I from a magnitude and sign, or a clear failure.
template <class I>
I checked_integer(bool negative, std::uint64_t magnitude, std::string_view text) {
    using L = std::numeric_limits<I>;
    if (!negative) {
        if (magnitude > static_cast<std::uint64_t>(L::max()))
            throw conversion_error(error::invalid_result, {},
                                   std::string(text) + " does not fit " + integer_type_name<I>());
        return static_cast<I>(magnitude);
    }
    if constexpr (!std::is_signed_v<I>) {
        throw conversion_error(error::invalid_result, {},
                               std::string(text) + " is negative; expected " + integer_type_name<I>());
    } else {
        const std::uint64_t limit = static_cast<std::uint64_t>(-(L::min() + 1)) + 1;
        if (magnitude > limit)
            throw conversion_error(error::invalid_result, {},
                                   std::string(text) + " does not fit " + integer_type_name<I>());
        return magnitude == limit ? L::min() : static_cast<I>(-static_cast<std::int64_t>(magnitude));
    }
}

template <class T, class = void>
struct io;

// ---- scalars ------------------------------------------------------------------

template <>
struct io<bool> {
    static void read(json_reader& r, bool& v) {
        if (r.current() != json_token::boolean) fail_type("a boolean", token_name(r.current()));
        v = r.boolean_value();
    }
    static void write(json& j, bool v) { j = v; }
};

template <class I>
struct io<I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>>> {
    static void read(json_reader& r, I& v) {
        if (r.current() != json_token::number) fail_type(integer_type_name<I>().c_str(), token_name(r.current()));
        switch (r.number_kind()) {
        case json_number_kind::unsigned_integer: v = checked_integer<I>(false, r.unsigned_value(), r.raw()); return;
        case json_number_kind::negative_integer: {
            const std::int64_t s = r.signed_value();
            const std::uint64_t mag = s == INT64_MIN ? std::uint64_t(INT64_MAX) + 1 : std::uint64_t(-s);
            v = checked_integer<I>(true, mag, r.raw());
            return;
        }
        case json_number_kind::floating:
            throw conversion_error(error::invalid_result, {},
                                   std::string(r.raw()) + " is not an integer; expected " + integer_type_name<I>());
        case json_number_kind::out_of_range:
            throw conversion_error(error::unrepresentable_number, {},
                                   dom_builder::abbreviate(r.raw()) + " does not fit " + integer_type_name<I>());
        }
    }
    static void write(json& j, I v) { j = v; }
};

template <>
struct io<double> {
    static void read(json_reader& r, double& v) {
        if (r.current() != json_token::number) fail_type("a number", token_name(r.current()));
        if (r.number_kind() == json_number_kind::out_of_range)
            throw conversion_error(error::unrepresentable_number, {},
                                   dom_builder::abbreviate(r.raw()) + " does not fit a double");
        v = r.double_value();
    }
    static void write(json& j, double v) { j = v; }
};

template <>
struct io<std::string> {
    static void read(json_reader& r, std::string& v) {
        if (r.current() != json_token::string) fail_type("a string", token_name(r.current()));
        r.string_value(v);
    }
    static void write(json& j, const std::string& v) { j = v; }
};

/// Any JSON value, kept as it is.
template <>
struct io<json> {
    static void read(json_reader& r, json& v) {
        dom_builder b(r);
        if (!b.value(v)) throw conversion_error(b.error(), {}, b.why());
    }
    static void write(json& j, const json& v) { j = v; }
};

}  // namespace detail
}  // namespace qmp
