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
// and gets one conversion path: reading from JSON text (no tree is built;
// a value already in a tree is read from the tree's text, so the rules are
// the same whatever the input), and writing to the tree (command
// arguments), plus ADL to_json/from_json. Every conversion checks types,
// and for integers range, sign and integrality; a failure names the member
// (`[3].image.virtual-size`); a member repeated in an object is refused.
// Unknown members are ignored; std::optional members may be absent or null.
#pragma once

#include <qmp/json/detail/wire_containers.hpp>

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
namespace detail {

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

/// Reads and writes the members T::wire_members() describes (a described
/// struct, or the base members of a QAPI union).
template <class T>
struct described_io {
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
                    if (seen & (std::uint64_t(1) << i)) throw conversion_error(error::invalid_result, std::string(key), "appears twice");
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

    /// Calls f with each member's wire name.
    template <class F>
    static void for_each_name(F&& f) {
        for_each_field(fields, [&](const auto& field, std::size_t) {
            if (field.inner.empty()) f(field.name);
        });
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

template <class T>
struct io<T, std::enable_if_t<is_described<T>::value>> : described_io<T> {};

/// Types with their own ADL from_json/to_json (and no description): read
/// through a DOM subtree; nlohmann's exceptions become conversion errors.
template <class T, class = void>
struct has_adl_from_json : std::false_type {};
template <class T>
struct has_adl_from_json<T, std::void_t<decltype(from_json(std::declval<const json&>(), std::declval<T&>()))>>
    : std::true_type {};

template <class T>
struct io<T, std::enable_if_t<!is_described<T>::value && !is_qapi_union<T>::value && has_adl_from_json<T>::value>> {
    static void read(json_reader& r, T& v) {
        json j;
        io<json>::read(r, j);
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

/// Typed conversion straight from JSON text (no tree is built for
/// described types): every member checked for type, and integers for
/// range, sign and integrality; a member repeated in an object refused.
/// Errors come back as codes (missing_member, invalid_result,
/// malformed_message, ...) with the member's path in `diag`, and `out`
/// unchanged.
template <class R>
std::error_code convert_text(std::string_view text, R& out, diagnostics* diag = nullptr);

/// The same for a value already in a tree (the tree's text is read, so the
/// rules are the text's; a tree holds every number it has exactly).
template <class R>
std::error_code convert(const json& j, R& out, diagnostics* diag = nullptr) {
    if constexpr (std::is_same_v<R, json>) {
        (void)diag;
        out = j;
        return {};
    } else {
        std::string text;
        try {
            text = j.dump();
        } catch (const json::exception& e) {  // a string that is not UTF-8
            detail::fill_diag(diag, e.what());
            return make_error_code(error::invalid_result);
        }
        return convert_text(text, out, diag);
    }
}

template <class R>
std::error_code convert_text(std::string_view text, R& out, diagnostics* diag) {
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

/// ADL hooks for described types: `json j = cmd;`, `j.get<T>()` (which
/// throws conversion_error, as nlohmann's own conversions throw).
template <class T, std::enable_if_t<detail::is_described<T>::value, int> = 0>
void from_json(const json& j, T& v) {
    diagnostics d;
    if (auto ec = convert(j, v, &d)) throw conversion_error(ec, {}, d.message);
}
template <class T, std::enable_if_t<detail::is_described<T>::value, int> = 0>
void to_json(json& j, const T& v) {
    detail::io<T>::write(j, v);
}

}  // namespace qmp
