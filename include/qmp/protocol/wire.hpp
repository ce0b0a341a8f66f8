// Typed conversions between QMP's JSON and plain C++ structs. A struct
// describes its wire members once, in a static `wire_members()`:
//
//     struct block_write_threshold_event {
//         std::string node_name;
//         std::uint64_t write_threshold = 0;
//         static constexpr auto wire_members() {
//             using T = block_write_threshold_event;
//             return std::make_tuple(qmp::wire::required("node-name", &T::node_name),
//                                    qmp::wire::required("write-threshold", &T::write_threshold));
//         }
//     };
//
// and gets reading from JSON text (no tree is built), reading from the DOM,
// and writing to the DOM (command arguments), plus ADL to_json/from_json.
// Every conversion checks types, and for integers range, sign and
// integrality; a failure names the member (`[3].image.virtual-size`).
// Unknown members are ignored; std::optional members may be absent or null.
#pragma once

#include <qmp/protocol/error.hpp>
#include <qmp/protocol/json_parse.hpp>
#include <qmp/protocol/json_reader.hpp>

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

template <class T, class = void>
struct is_described : std::false_type {};
template <class T>
struct is_described<T, std::void_t<decltype(T::wire_members())>> : std::true_type {};

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

inline const char* dom_name(const json& j) {
    switch (j.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::null: return "null";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a fraction";
    default: return "an unsupported value";
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
    static void read(const json& j, bool& v) {
        if (!j.is_boolean()) fail_type("a boolean", dom_name(j));
        v = j.get<bool>();
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
            throw conversion_error(error::invalid_result, {},
                                   dom_builder::abbreviate(r.raw()) + " does not fit " + integer_type_name<I>());
        }
    }
    static void read(const json& j, I& v) {
        if (j.is_number_unsigned()) {
            const auto u = j.get<std::uint64_t>();
            v = checked_integer<I>(false, u, std::to_string(u));
        } else if (j.is_number_integer()) {
            const auto s = j.get<std::int64_t>();
            const std::uint64_t mag = s < 0 ? (s == INT64_MIN ? std::uint64_t(INT64_MAX) + 1 : std::uint64_t(-s))
                                            : std::uint64_t(s);
            v = checked_integer<I>(s < 0, mag, std::to_string(s));
        } else if (j.is_number_float()) {
            throw conversion_error(error::invalid_result, {},
                                   j.dump() + " is not an integer; expected " + integer_type_name<I>());
        } else {
            fail_type(integer_type_name<I>().c_str(), dom_name(j));
        }
    }
    static void write(json& j, I v) { j = v; }
};

template <>
struct io<double> {
    static void read(json_reader& r, double& v) {
        if (r.current() != json_token::number) fail_type("a number", token_name(r.current()));
        if (r.number_kind() == json_number_kind::out_of_range)
            throw conversion_error(error::invalid_result, {}, dom_builder::abbreviate(r.raw()) + " does not fit a double");
        v = r.double_value();
    }
    static void read(const json& j, double& v) {
        if (!j.is_number()) fail_type("a number", dom_name(j));
        v = j.get<double>();
    }
    static void write(json& j, double v) { j = v; }
};

template <>
struct io<std::string> {
    static void read(json_reader& r, std::string& v) {
        if (r.current() != json_token::string) fail_type("a string", token_name(r.current()));
        r.string_value(v);
    }
    static void read(const json& j, std::string& v) {
        if (!j.is_string()) fail_type("a string", dom_name(j));
        v = j.get_ref<const std::string&>();
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
    static void read(const json& j, json& v) { v = j; }
    static void write(json& j, const json& v) { j = v; }
};

// ---- containers -------------------------------------------------------------

inline bool is_null(const json_reader& r) { return r.current() == json_token::null; }
inline bool is_null(const json& j) { return j.is_null(); }

// Optional and recursive members read the same from text (a json_reader)
// and from the tree (a const json): Src is either.
template <class T>
struct io<std::optional<T>> {
    template <class Src>
    static void read(Src& src, std::optional<T>& v) {
        if (is_null(src)) {
            v.reset();
            return;
        }
        v.emplace();
        io<T>::read(src, *v);
    }
    static void write(json& j, const std::optional<T>& v) {
        if (v)
            io<T>::write(j, *v);
        else
            j = nullptr;
    }
};

/// A recursive member (`backing-image`): null when absent.
template <class T>
struct io<std::shared_ptr<T>> {
    template <class Src>
    static void read(Src& src, std::shared_ptr<T>& v) {
        if (is_null(src)) {
            v.reset();
            return;
        }
        auto p = std::make_shared<T>();
        io<T>::read(src, *p);
        v = std::move(p);
    }
    static void write(json& j, const std::shared_ptr<T>& v) {
        if (v)
            io<T>::write(j, *v);
        else
            j = nullptr;
    }
};

template <class T>
struct io<std::vector<T>> {
    static void read(json_reader& r, std::vector<T>& v) {
        if (r.current() != json_token::begin_array) fail_type("an array", token_name(r.current()));
        v.clear();
        for (std::size_t i = 0;; ++i) {
            const json_token t = r.next();
            if (t == json_token::end_array) return;
            if (t == json_token::error) throw conversion_error(r.error(), {}, r.error_message());
            v.emplace_back();
            try {
                io<T>::read(r, v.back());
            } catch (const conversion_error& e) {
                throw e.within("[" + std::to_string(i) + "]");
            }
        }
    }
    static void read(const json& j, std::vector<T>& v) {
        if (!j.is_array()) fail_type("an array", dom_name(j));
        v.clear();
        v.reserve(j.size());
        std::size_t i = 0;
        for (const auto& e : j) {
            v.emplace_back();
            try {
                io<T>::read(e, v.back());
            } catch (const conversion_error& x) {
                throw x.within("[" + std::to_string(i) + "]");
            }
            ++i;
        }
    }
    static void write(json& j, const std::vector<T>& v) {
        j = json::array();
        for (const auto& e : v) {
            json x;
            io<T>::write(x, e);
            j.push_back(std::move(x));
        }
    }
};

template <class E>
struct io<E, std::enable_if_t<std::is_enum_v<E> && has_wire_enum<E>::value>> {
    static E from_name(std::string_view n) {
        for (const auto& [v, name] : wire_enum<E>::values)
            if (name == n) return v;
        std::string known;
        for (const auto& [v, name] : wire_enum<E>::values) {
            if (!known.empty()) known += ", ";
            known += name;
        }
        throw conversion_error(error::invalid_result, {},
                               "unknown value '" + std::string(n) + "'; expected one of " + known);
    }
    static void read(json_reader& r, E& v) {
        if (r.current() != json_token::string) fail_type("a string", token_name(r.current()));
        v = from_name(r.string_value());
    }
    static void read(const json& j, E& v) {
        if (!j.is_string()) fail_type("a string", dom_name(j));
        v = from_name(j.get_ref<const std::string&>());
    }
    static void write(json& j, E v) {
        for (const auto& [e, name] : wire_enum<E>::values)
            if (e == v) {
                j = std::string(name);
                return;
            }
        throw conversion_error(error::invalid_argument, {},
                               "no name for value " + std::to_string(static_cast<long long>(v)));
    }
};

/// A JSON object with any member names: name -> T.
template <class T>
struct io<std::map<std::string, T>> {
    static void read(json_reader& r, std::map<std::string, T>& v) {
        if (r.current() != json_token::begin_object) fail_type("an object", token_name(r.current()));
        v.clear();
        for (;;) {
            const json_token t = r.next();
            if (t == json_token::end_object) return;
            if (t != json_token::key) throw conversion_error(r.error(), {}, r.error_message());
            std::string key = r.string_value();
            if (v.count(key)) throw conversion_error(error::invalid_result, key, "appears twice");
            r.next();
            try {
                io<T>::read(r, v[key]);
            } catch (const conversion_error& e) {
                throw e.within(key);
            }
        }
    }
    static void read(const json& j, std::map<std::string, T>& v) {
        if (!j.is_object()) fail_type("an object", dom_name(j));
        v.clear();
        for (auto it = j.begin(); it != j.end(); ++it) {
            try {
                io<T>::read(*it, v[it.key()]);
            } catch (const conversion_error& e) {
                throw e.within(it.key());
            }
        }
    }
    static void write(json& j, const std::map<std::string, T>& v) {
        j = json::object();
        for (const auto& [k, e] : v) io<T>::write(j[k], e);
    }
};

// ---- described structs ---------------------------------------------------------

template <class Tuple, class F, std::size_t... I>
void for_each_field(const Tuple& t, F&& f, std::index_sequence<I...>) {
    (f(std::get<I>(t), I), ...);
}
template <class Tuple, class F>
void for_each_field(const Tuple& t, F&& f) {
    for_each_field(t, std::forward<F>(f), std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}

[[noreturn]] inline void fail_missing(std::string_view name) {
    throw conversion_error(error::missing_member, std::string(name), "missing");
}

template <class T>
struct io<T, std::enable_if_t<is_described<T>::value>> {
    static constexpr auto fields = T::wire_members();
    static_assert(std::tuple_size_v<decltype(fields)> <= 64, "at most 64 wire members per struct");

    template <class F, class M>
    static void read_member(json_reader& r, const F& f, M& m) {
        if (r.current() == json_token::null) {
            if (f.how == wire::presence::required) fail_missing(f.name);
            m = M{};
            return;
        }
        try {
            io<M>::read(r, m);
        } catch (const conversion_error& e) {
            throw e.within(f.name);
        }
    }

    // The object `outer` holding `f.inner`: only that member is read.
    template <class F, class M>
    static void read_inner(json_reader& r, const F& f, M& m) {
        if (r.current() != json_token::begin_object) {
            r.skip_value();
            return;
        }
        std::string kbuf;
        for (;;) {
            const json_token t = r.next();
            if (t == json_token::end_object) return;
            if (t != json_token::key) throw conversion_error(r.error(), {}, r.error_message());
            const std::string_view key = r.escaped() ? std::string_view(kbuf = r.string_value()) : r.raw();
            r.next();
            if (key == f.inner && r.current() != json_token::null) {
                try {
                    io<M>::read(r, m);
                } catch (const conversion_error& e) {
                    throw e.within(f.inner).within(f.name);
                }
            } else if (!r.skip_value()) {
                throw conversion_error(r.error(), {}, r.error_message());
            }
        }
    }

    static void read(json_reader& r, T& v) {
        if (r.current() != json_token::begin_object) fail_type("an object", token_name(r.current()));
        std::uint64_t seen = 0;
        std::string kbuf;
        for (;;) {
            const json_token t = r.next();
            if (t == json_token::end_object) break;
            if (t != json_token::key) throw conversion_error(r.error(), {}, r.error_message());
            const std::string_view key = r.escaped() ? std::string_view(kbuf = r.string_value()) : r.raw();
            r.next();
            bool matched = false;
            for_each_field(fields, [&](const auto& f, std::size_t i) {
                if (matched || f.name != key) return;
                matched = true;
                auto& m = v.*(f.member);
                if (f.inner.empty()) {
                    seen |= std::uint64_t(1) << i;
                    read_member(r, f, m);
                } else {
                    read_inner(r, f, m);
                }
            });
            if (!matched && !r.skip_value()) throw conversion_error(r.error(), {}, r.error_message());
        }
        for_each_field(fields, [&](const auto& f, std::size_t i) {
            if (f.how == wire::presence::required && !(seen & (std::uint64_t(1) << i))) fail_missing(f.name);
        });
        check(v);
    }

    static void check(const T& v) {
        if constexpr (has_wire_check<T>::value) {
            std::string why = T::wire_check(v);
            if (!why.empty()) throw conversion_error(error::invalid_result, {}, why);
        }
    }

    static void read(const json& j, T& v) {
        if (!j.is_object()) fail_type("an object", dom_name(j));
        for_each_field(fields, [&](const auto& f, std::size_t) {
            auto& m = v.*(f.member);
            using M = std::remove_reference_t<decltype(m)>;
            auto it = j.find(std::string(f.name));
            if (!f.inner.empty()) {
                if (it == j.end() || !it->is_object()) return;
                auto in = it->find(std::string(f.inner));
                if (in == it->end() || in->is_null()) return;
                try {
                    io<M>::read(*in, m);
                } catch (const conversion_error& e) {
                    throw e.within(f.inner).within(f.name);
                }
                return;
            }
            if (it == j.end() || it->is_null()) {
                if (f.how == wire::presence::required) fail_missing(f.name);
                m = M{};
                return;
            }
            try {
                io<M>::read(*it, m);
            } catch (const conversion_error& e) {
                throw e.within(f.name);
            }
        });
        check(v);
    }

    static void write(json& j, const T& v) {
        j = json::object();
        for_each_field(fields, [&](const auto& f, std::size_t) {
            if (!f.inner.empty()) return;
            const auto& m = v.*(f.member);
            using M = std::remove_cv_t<std::remove_reference_t<decltype(m)>>;
            if constexpr (is_optional<M>::value) {
                if (!m) return;
            }
            json x;
            io<M>::write(x, m);
            j[std::string(f.name)] = std::move(x);
        });
    }
};

/// Types with their own ADL from_json/to_json (and no description): read
/// through a DOM subtree; nlohmann's exceptions become conversion errors.
template <class T, class = void>
struct has_adl_from_json : std::false_type {};
template <class T>
struct has_adl_from_json<T, std::void_t<decltype(from_json(std::declval<const json&>(), std::declval<T&>()))>>
    : std::true_type {};

template <class T>
struct io<T, std::enable_if_t<!is_described<T>::value && has_adl_from_json<T>::value>> {
    static void read(json_reader& r, T& v) {
        json j;
        io<json>::read(r, j);
        read(j, v);
    }
    static void read(const json& j, T& v) {
        try {
            from_json(j, v);
        } catch (const conversion_error&) {
            throw;
        } catch (const json::exception& e) {
            throw conversion_error(e.id == 403 ? make_error_code(error::missing_member) : make_error_code(error::invalid_result),
                                   {}, e.what());
        }
    }
    static void write(json& j, const T& v) { j = v; }
};

inline void fill_diag(diagnostics* diag, const std::string& text) {
    if (!diag) return;
    diag->error_class.clear();
    diag->message = text;
}

}  // namespace detail

/// Typed conversion of a DOM value; errors come back as codes
/// (missing_member, invalid_result) with the member named in `diag`, and
/// `out` unchanged.
template <class R>
std::error_code convert(const json& j, R& out, diagnostics* diag = nullptr) {
    try {
        R tmp{};
        detail::io<R>::read(j, tmp);
        out = std::move(tmp);
        return {};
    } catch (const conversion_error& e) {
        detail::fill_diag(diag, e.what());
        return e.code();
    } catch (const std::exception& e) {
        detail::fill_diag(diag, e.what());
        return make_error_code(error::invalid_result);
    }
}

/// Typed conversion straight from JSON text (no tree is built for
/// described types); `out` is unchanged on failure.
template <class R>
std::error_code convert_text(std::string_view text, R& out, diagnostics* diag = nullptr) {
    try {
        json_reader r(text);
        if (r.next() == json_token::error) throw conversion_error(r.error(), {}, r.error_message());
        R tmp{};
        detail::io<R>::read(r, tmp);
        if (r.next() != json_token::end)
            throw conversion_error(r.error() ? r.error() : make_error_code(error::malformed_message), {},
                                   r.error_message().empty() ? "unexpected text" : r.error_message());
        out = std::move(tmp);
        return {};
    } catch (const conversion_error& e) {
        detail::fill_diag(diag, e.what());
        return e.code();
    } catch (const std::exception& e) {
        detail::fill_diag(diag, e.what());
        return make_error_code(error::invalid_result);
    }
}

/// ADL hooks for described types: `json j = cmd;`, `j.get<T>()`.
template <class T, std::enable_if_t<detail::is_described<T>::value, int> = 0>
void from_json(const json& j, T& v) {
    detail::io<T>::read(j, v);
}
template <class T, std::enable_if_t<detail::is_described<T>::value, int> = 0>
void to_json(json& j, const T& v) {
    detail::io<T>::write(j, v);
}

}  // namespace qmp
