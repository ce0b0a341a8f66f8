// Typed conversions, part 2 of 3 (see json/wire.hpp): optionals,
// shared pointers, vectors, enumerations and string-keyed maps.
#pragma once

#include <qmp/json/detail/wire_core.hpp>

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

// ---- containers -------------------------------------------------------------

template <class T>
struct io<std::optional<T>> {
    static void read(json_reader& r, std::optional<T>& v) {
        if (r.current() == json_token::null) {
            v.reset();
            return;
        }
        v.emplace();
        io<T>::read(r, *v);
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
    static void read(json_reader& r, std::shared_ptr<T>& v) {
        if (r.current() == json_token::null) {
            v.reset();
            return;
        }
        auto p = std::make_shared<T>();
        io<T>::read(r, *p);
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
    static void write(json& j, const std::map<std::string, T>& v) {
        j = json::object();
        for (const auto& [k, e] : v) io<T>::write(j[k], e);
    }
};

}  // namespace detail
}  // namespace qmp
