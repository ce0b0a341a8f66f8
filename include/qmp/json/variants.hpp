// The two QAPI shapes with a choice in them, as the generated headers model
// them:
// - an alternate is a std::variant whose alternative follows the JSON type
//   of the value (a string, a number, an object...): the first alternative
//   that takes that JSON type is read;
// - a flat union is a struct of its base members plus `branch`, a variant
//   of the branch types that the discriminator member picks (see
//   detail::is_qapi_union); a tag it does not know keeps the branch's
//   members as a `json` object, so they go back out as they came in.
// And `null`, as std::nullptr_t.
#pragma once

#include <qmp/json/open_enum.hpp>
#include <qmp/json/parse.hpp>
#include <qmp/json/wire.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace qmp {
namespace detail {

template <>
struct io<std::nullptr_t> {
    static void read(json_reader& r, std::nullptr_t& v) {
        if (r.current() != json_token::null) fail_type("null", token_name(r.current()));
        v = nullptr;
    }
    static void write(json& j, std::nullptr_t) { j = nullptr; }
};

// Which JSON type an alternative takes.
template <class T>
struct takes_vector : std::false_type {};
template <class T>
struct takes_vector<std::vector<T>> : std::true_type {};
template <class T>
struct takes_open_enum : std::false_type {};
template <class E>
struct takes_open_enum<open_enum<E>> : std::true_type {};

template <class T>
bool alternative_takes(json_token t) {
    if constexpr (std::is_same_v<T, json>) {
        return true;
    } else if constexpr (std::is_same_v<T, bool>) {
        return t == json_token::boolean;
    } else if constexpr (std::is_arithmetic_v<T>) {
        return t == json_token::number;
    } else if constexpr (std::is_same_v<T, std::string> || takes_open_enum<T>::value) {
        return t == json_token::string;
    } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
        return t == json_token::null;
    } else if constexpr (takes_vector<T>::value) {
        return t == json_token::begin_array;
    } else {
        return t == json_token::begin_object;
    }
}

template <class... Ts>
struct io<std::variant<Ts...>> {
    template <std::size_t I = 0>
    static void read_alternative(json_reader& r, std::variant<Ts...>& v) {
        if constexpr (I == sizeof...(Ts)) {
            fail_type("one of the alternatives", token_name(r.current()));
        } else {
            using A = std::variant_alternative_t<I, std::variant<Ts...>>;
            if (!alternative_takes<A>(r.current())) return read_alternative<I + 1>(r, v);
            A a{};
            io<A>::read(r, a);
            v.template emplace<I>(std::move(a));
        }
    }
    static void read(json_reader& r, std::variant<Ts...>& v) { read_alternative(r, v); }
    static void write(json& j, const std::variant<Ts...>& v) {
        std::visit([&](const auto& a) { io<std::decay_t<decltype(a)>>::write(j, a); }, v);
    }
};

template <class T>
struct io<T, std::enable_if_t<is_qapi_union<T>::value>> {
    using branch_type = decltype(T::branch);

    // The object's text is read three times, each by a reader of its own: the
    // base members, then the tag, then the branch's members (each reader
    // skips the members that are not its own).
    static void read(json_reader& r, T& v) {
        if (r.current() != json_token::begin_object) fail_type("an object", token_name(r.current()));
        const std::size_t b = r.begin_offset();
        if (!r.skip_value()) throw conversion_error(r.error(), {}, r.error_message());
        const std::string_view text = r.text().substr(b, r.end_offset() - b);
        read_text(text, v);
    }

    static void read_text(std::string_view text, T& v) {
        {
            json_reader base(text);
            base.next();
            described_io<T>::read(base, v);
        }
        const std::size_t index = T::branch_of(read_tag(text));
        if (index != 0) return read_branch(text, index, v.branch);
        // Kept whole, less the base members (they are in v).
        json tree;
        if (auto ec = parse_json(text, tree)) throw conversion_error(ec, {}, "invalid JSON");
        described_io<T>::for_each_name([&](std::string_view n) { tree.erase(std::string(n)); });
        v.branch.template emplace<0>(std::move(tree));
    }

    // The discriminator's text (the base members were read: it is a string).
    static std::string read_tag(std::string_view text) {
        json_reader r(text);
        r.next();
        std::string key;
        for (;;) {
            const json_token t = r.next();
            if (t != json_token::key) return {};
            r.string_value(key);
            r.next();
            if (key == T::discriminator && r.current() == json_token::string) return r.string_value();
            if (!r.skip_value()) return {};
        }
    }

    template <std::size_t I = 1>
    static void read_branch(std::string_view text, std::size_t index, branch_type& out) {
        if constexpr (I < std::variant_size_v<branch_type>) {
            if (index != I) return read_branch<I + 1>(text, index, out);
            using B = std::variant_alternative_t<I, branch_type>;
            B b{};
            json_reader br(text);
            br.next();
            io<B>::read(br, b);
            out.template emplace<I>(std::move(b));
        }
    }

    static void write(json& j, const T& v) {
        described_io<T>::write(j, v);
        json members;
        std::visit([&](const auto& b) { io<std::decay_t<decltype(b)>>::write(members, b); }, v.branch);
        if (!members.is_object()) return;
        for (auto& [k, x] : members.items())
            if (!j.contains(k)) j[k] = std::move(x);
    }
};

}  // namespace detail

/// ADL hooks for unions, as for described structs: `json j = cmd;`.
template <class T, std::enable_if_t<detail::is_qapi_union<T>::value, int> = 0>
void from_json(const json& j, T& v) {
    diagnostics d;
    if (auto ec = convert(j, v, &d)) throw conversion_error(ec, {}, d.message);
}
template <class T, std::enable_if_t<detail::is_qapi_union<T>::value, int> = 0>
void to_json(json& j, const T& v) {
    detail::io<T>::write(j, v);
}

}  // namespace qmp
