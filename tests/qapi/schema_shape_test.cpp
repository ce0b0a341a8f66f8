// The generated types against what QEMU says of itself: every command and
// event of QEMU 10.0's recorded query-qmp-schema has a type with the same
// members, optionality and shapes (type names in the schema are masked as
// numbers, so shapes are followed, not names); and the types read what
// QEMU 7.2's schema says its replies and events hold.
#include "../support/recorded.hpp"

#include <qmp/qapi/catalog.hpp>

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

// Each C++ type is described once, at run time, by a small template
// (shape_of<T>); the comparison with the schema is plain code. (Walking the
// types with templates alone made this file take 40 s and 3.4 GB to
// compile.)
struct shape;
using shape_fn = const shape& (*)();
struct member_shape {
    std::string name;
    bool optional;
    shape_fn type;
};
struct shape {
    std::string kind;  // int, number, boolean, string, null, value, array, alternate, object
    bool is_enum = false, is_union = false, is_empty_result = false;
    std::set<std::string> values, conditional_values;  // an enum
    shape_fn element = nullptr;                        // an array
    std::vector<shape_fn> alternatives;                // an alternate
    std::vector<member_shape> members;                 // an object (a union's base)
    std::set<std::string> conditional, later;          // members only some builds have; absent in 7.2
    std::string discriminator;                         // a union
    std::size_t (*branch_of)(std::string_view) = nullptr;
    std::vector<shape_fn> branches;  // index 0: the json alternative
    bool described = false;
};

template <class T>
struct is_vec : std::false_type {};
template <class T>
struct is_vec<std::vector<T>> : std::true_type {};
template <class T>
struct held {
    using type = T;
};
template <class T>
struct held<std::optional<T>> {
    using type = T;
};
template <class T>
struct held<std::shared_ptr<T>> {
    using type = T;
};
template <class T>
struct is_open : std::false_type {};
template <class E>
struct is_open<qmp::open_enum<E>> {
    static constexpr bool value = true;
    using enum_type = E;
};
template <class T>
struct is_var : std::false_type {};
template <class... Ts>
struct is_var<std::variant<Ts...>> : std::true_type {};

template <class T, class = void>
struct has_conditional : std::false_type {};
template <class T>
struct has_conditional<T, std::void_t<decltype(T::wire_conditional)>> : std::true_type {};
template <class T, class = void>
struct has_later : std::false_type {};
template <class T>
struct has_later<T, std::void_t<decltype(T::wire_not_in_oldest)>> : std::true_type {};
template <class E, class = void>
struct has_conditional_values : std::false_type {};
template <class E>
struct has_conditional_values<E, std::void_t<decltype(qmp::wire_enum<E>::conditional)>> : std::true_type {};

template <class T>
const shape& shape_of();

template <class V, std::size_t... I>
void add_alternatives(std::vector<shape_fn>& out, std::index_sequence<I...>) {
    (out.push_back(&shape_of<typename held<std::variant_alternative_t<I, V>>::type>), ...);
}

template <class T>
void add_members(shape& s) {
    s.described = true;
    qmp::detail::for_each_field(T::wire_members(), [&](const auto& f, std::size_t) {
        if (!f.inner.empty()) return;  // one member of an object member (hand-written)
        using M = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<T&>().*(f.member))>>;
        s.members.push_back({std::string(f.name), f.how == qmp::wire::presence::optional,
                             &shape_of<typename held<M>::type>});
    });
    if constexpr (has_conditional<T>::value)
        for (auto c : T::wire_conditional) s.conditional.insert(std::string(c));
    if constexpr (has_later<T>::value)
        for (auto c : T::wire_not_in_oldest) s.later.insert(std::string(c));
}

template <class T>
const shape& shape_of() {
    static const shape s = [] {
        shape s;
        if constexpr (std::is_same_v<T, qmp::json>) {
            s.kind = "value";
        } else if constexpr (std::is_same_v<T, bool>) {
            s.kind = "boolean";
        } else if constexpr (std::is_integral_v<T>) {
            s.kind = "int";
        } else if constexpr (std::is_floating_point_v<T>) {
            s.kind = "number";
        } else if constexpr (std::is_same_v<T, std::string>) {
            s.kind = "string";
        } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
            s.kind = "null";
        } else if constexpr (is_open<T>::value) {
            using E = typename is_open<T>::enum_type;
            s.kind = "string";
            s.is_enum = true;
            for (const auto& [v, n] : qmp::wire_enum<E>::values) s.values.insert(std::string(n));
            if constexpr (has_conditional_values<E>::value)
                for (auto c : qmp::wire_enum<E>::conditional) s.conditional_values.insert(std::string(c));
        } else if constexpr (is_vec<T>::value) {
            s.kind = "array";
            s.element = &shape_of<typename held<typename T::value_type>::type>;
        } else if constexpr (is_var<T>::value) {
            s.kind = "alternate";
            add_alternatives<T>(s.alternatives, std::make_index_sequence<std::variant_size_v<T>>{});
        } else if constexpr (std::is_same_v<T, qmp::empty_result>) {
            s.kind = "object";
            s.is_empty_result = true;
        } else {
            s.kind = "object";
            if constexpr (qmp::detail::is_qapi_union<T>::value) {
                s.is_union = true;
                s.discriminator = std::string(T::discriminator);
                s.branch_of = &T::branch_of;
                add_alternatives<decltype(T::branch)>(
                    s.branches, std::make_index_sequence<std::variant_size_v<decltype(T::branch)>>{});
                add_members<T>(s);
            } else if constexpr (qmp::detail::is_described<T>::value) {
                add_members<T>(s);
            }
        }
        return s;
    }();
    return s;
}

// Strict: the type and the schema agree both ways (the schema the headers
// were generated from). Read: the type reads what the schema describes (an
// older QEMU's results and events: members the type lacks are ignored,
// enum values it lacks are kept).
enum class mode { strict, read };

struct checker {
    std::map<std::string, qmp::json> types;
    mode how;
    std::vector<std::string> problems;
    std::set<std::pair<const shape*, std::string>> visited;

    checker(const qmp::json& schema, mode m) : how(m) {
        for (const auto& e : schema) types[e.at("name").get<std::string>()] = e;
    }

    void problem(const std::string& path, const std::string& what) { problems.push_back(path + ": " + what); }

    // What JSON a schema type is.
    std::string kind(const std::string& name) const {
        const auto& e = types.at(name);
        const std::string meta = e.at("meta-type");
        if (meta == "builtin") return e.at("json-type");
        if (meta == "enum") return "string";
        if (meta == "array") return "array";
        if (meta == "alternate") return "alternate";
        return "object";
    }

    void type(const shape& c, const std::string& name, const std::string& path) {
        if (!visited.insert({&c, name}).second) return;
        const auto& e = types.at(name);
        const std::string k = kind(name);
        if (c.kind == "value") return;  // `any` takes everything
        // QAPI's `number` takes integers too.
        if (c.kind != k && !(c.kind == "number" && k == "int")) return problem(path, "is " + c.kind + ", QEMU's is " + k);
        if (c.is_enum) return enum_values(c, e, path);
        if (c.kind == "array") return type(c.element(), e.at("element-type"), path + "[]");
        if (c.kind == "alternate") return alternate(c, e, path);
        if (c.is_empty_result) {
            if (!e.at("members").empty()) problem(path, "has no members, QEMU's has");
            return;
        }
        if (c.described) members(c, e, path);
        if (c.is_union) branches(c, e, path);
    }

    void enum_values(const shape& c, const qmp::json& e, const std::string& path) {
        if (how != mode::strict) return;
        std::set<std::string> theirs;
        for (const auto& v : e.at("values")) theirs.insert(v.get<std::string>());
        for (const auto& v : theirs)
            if (!c.values.count(v)) problem(path, "lacks enum value " + v);
        for (const auto& v : c.values)
            if (!theirs.count(v) && !c.conditional_values.count(v)) problem(path, "has enum value " + v + " QEMU has not");
    }

    void alternate(const shape& c, const qmp::json& e, const std::string& path) {
        for (const auto& m : e.at("members")) {
            const std::string t = m.at("type");
            bool found = false;
            for (auto a : c.alternatives)
                if (!found && a().kind == kind(t)) {
                    found = true;
                    type(a(), t, path + "|" + kind(t));
                }
            if (!found) problem(path, "has no alternative for " + kind(t));
        }
    }

    void members(const shape& c, const qmp::json& e, const std::string& path) {
        std::map<std::string, const qmp::json*> theirs;
        for (const auto& m : e.at("members")) theirs[m.at("name")] = &m;
        std::set<std::string> ours;
        for (const auto& m : c.members) {
            ours.insert(m.name);
            auto it = theirs.find(m.name);
            if (it == theirs.end()) {
                if ((how == mode::strict && !c.conditional.count(m.name)) || !m.optional)
                    problem(path + "." + m.name, "QEMU has no such member");
                continue;
            }
            const bool their_optional = it->second->contains("default");
            if (how == mode::strict && m.optional != their_optional && !(m.optional && c.later.count(m.name)))
                problem(path + "." + m.name, m.optional ? "optional, QEMU's is required" : "required, QEMU's is optional");
            if (how == mode::read && !m.optional && their_optional)
                problem(path + "." + m.name, "required, but QEMU may leave it out");
            type(m.type(), it->second->at("type"), path + "." + m.name);
        }
        if (how == mode::strict)
            for (const auto& [n, m] : theirs)
                if (!ours.count(n)) problem(path + "." + n, "missing (QEMU has it)");
    }

    void branches(const shape& c, const qmp::json& e, const std::string& path) {
        if (how == mode::read) {
            tags_without_branch(c, e, path);
            // An older QEMU's plain struct that became a union: its members
            // were checked, and so were the branches its tag can pick.
            if (!e.contains("tag")) return;
        }
        if (e.value("tag", "") != c.discriminator) return problem(path, "discriminator differs");
        for (const auto& v : e.at("variants")) {
            const std::string tag = v.at("case"), t = v.at("type");
            const std::size_t i = c.branch_of(tag);
            if (i == 0) {
                if (!types.at(t).at("members").empty() && how == mode::strict)
                    problem(path + "(" + tag + ")", "members kept as json only");
                continue;
            }
            members(c.branches[i](), types.at(t), path + "(" + tag + ")");
        }
    }

    // A tag value the older QEMU sends without a branch of its own (a plain
    // struct then, or a value it had no branch for): the type still picks
    // its branch by that value, so the branch's required members must be
    // members QEMU sends (7.2's BlockJobInfo, a struct with `type` as text:
    // a mirror job's reply has no `actively-synced`).
    void tags_without_branch(const shape& c, const qmp::json& e, const std::string& path) {
        std::set<std::string> theirs, cases;
        for (const auto& m : e.at("members")) theirs.insert(m.at("name").get<std::string>());
        if (e.contains("variants"))
            for (const auto& v : e.at("variants")) cases.insert(v.at("case").get<std::string>());
        const qmp::json* tag = nullptr;
        for (const auto& m : e.at("members"))
            if (m.at("name") == c.discriminator) tag = &m;
        const member_shape* ours = nullptr;
        for (const auto& m : c.members)
            if (m.name == c.discriminator) ours = &m;
        if (!tag || !ours) return;
        const auto& tag_type = types.at(tag->at("type").get<std::string>());
        const bool any_value = tag_type.at("meta-type") != "enum";
        std::set<std::string> sent;
        if (!any_value)
            for (const auto& v : tag_type.at("values")) sent.insert(v.get<std::string>());
        for (const auto& value : ours->type().values) {
            if (cases.count(value) || (!any_value && !sent.count(value))) continue;
            const std::size_t i = c.branch_of(value);
            if (i == 0) continue;
            for (const auto& m : c.branches[i]().members)
                if (!m.optional && !theirs.count(m.name))
                    problem(path + "(" + value + ")." + m.name, "required, but QEMU sends this tag without it");
        }
    }
};

qmp::json load_schema(const std::string& version) {
    auto j = qmp::json::parse(qmp_test::recorded_text(version, "query-qmp-schema"));
    return j.is_object() && j.contains("return") ? j["return"] : j;
}

// Every command and event type of the catalog, as shapes.
struct call {
    std::string name;
    bool command, generated;
    shape_fn args, result;  // result: commands only
};
const std::vector<call>& catalog() {
    static const std::vector<call> all = [] {
        std::vector<call> out;
        qmp::qapi::for_each_command([&](auto tag, bool gen) {
            using T = typename decltype(tag)::type;
            out.push_back({std::string(T::name), true, gen, &shape_of<T>, &shape_of<typename T::result_type>});
        });
        qmp::qapi::for_each_event([&](auto tag, bool gen) {
            using T = typename decltype(tag)::type;
            out.push_back({std::string(T::name), false, gen, &shape_of<T>, nullptr});
        });
        return out;
    }();
    return all;
}

// The schema's commands and events by name.
std::map<std::string, qmp::json> calls_of(const qmp::json& schema, bool commands) {
    std::map<std::string, qmp::json> out;
    for (const auto& e : schema)
        if (e.at("meta-type") == (commands ? "command" : "event")) out[e.at("name")] = e;
    return out;
}

}  // namespace

TEST_CASE("generated: every command and event of QEMU 10.0's schema, member by member" *
          doctest::test_suite("qapi")) {
    const auto schema = load_schema("10.0");
    checker c(schema, mode::strict);
    // Hand-written types keep the members they chose (and some of QEMU's
    // newer ones, optional): they must read QEMU 10.0's replies.
    checker hand(schema, mode::read);
    const auto commands = calls_of(schema, true), events = calls_of(schema, false);
    std::set<std::string> typed;
    int generated = 0, handwritten = 0;
    for (const auto& t : catalog()) {
        typed.insert(t.name);
        const auto& in = t.command ? commands : events;
        auto it = in.find(t.name);
        if (it == in.end()) continue;  // of a build option Debian's QEMU does not have
        (t.generated ? generated : handwritten)++;
        checker& k = t.generated ? c : hand;
        if (it->second.contains("arg-type")) k.type(t.args(), it->second.at("arg-type"), t.name);
        if (t.command) k.type(t.result(), it->second.at("ret-type"), t.name + " ->");
    }
    std::vector<std::string> untyped;
    for (const auto* in : {&commands, &events})
        for (const auto& [n, e] : *in)
            if (!typed.count(n)) untyped.push_back(n);
    MESSAGE("QEMU 10.0: " << commands.size() << " commands and " << events.size() << " events; " << generated
                          << " generated types and " << handwritten << " hand-written ones checked");
    CHECK(untyped.empty());
    for (const auto& u : untyped) MESSAGE("no type: " << u);
    CHECK(c.problems.empty());
    for (const auto& p : c.problems) MESSAGE(p);
    CHECK(hand.problems.empty());
    for (const auto& p : hand.problems) MESSAGE("hand-written: " << p);
    CHECK(generated + handwritten == static_cast<int>(commands.size() + events.size()));
}

TEST_CASE("generated: the types read what QEMU 7.2's schema says its replies and events hold" *
          doctest::test_suite("qapi")) {
    const auto schema = load_schema("7.2");
    checker c(schema, mode::read);
    const auto commands = calls_of(schema, true), events = calls_of(schema, false);
    int checked = 0;
    std::set<std::string> typed;
    for (const auto& t : catalog()) {
        typed.insert(t.name);
        const auto& in = t.command ? commands : events;
        auto it = in.find(t.name);
        if (it == in.end() || !t.generated) continue;
        ++checked;
        if (t.command)
            c.type(t.result(), it->second.at("ret-type"), t.name + " ->");
        else if (it->second.contains("arg-type"))
            c.type(t.args(), it->second.at("arg-type"), t.name);
    }
    std::string gone;
    int gone_count = 0;
    for (const auto* in : {&commands, &events})
        for (const auto& [n, e] : *in)
            if (!typed.count(n)) {
                gone += " " + n;
                ++gone_count;
            }
    MESSAGE("QEMU 7.2: " << checked << " generated command results and events read 7.2's shapes; " << gone_count
                         << " of 7.2's are gone from 10.0:" << gone);
    CHECK(checked > 200);
    CHECK(c.problems.empty());
    for (const auto& p : c.problems) MESSAGE(p);
}
