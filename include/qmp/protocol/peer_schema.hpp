// What one QEMU offers, from its `query-qmp-schema` reply: every command
// and event, and every member, optionality and enum value of their types
// (the types' names are masked as numbers; they are walked by structure).
// It answers probes ("does this QEMU take `flat`") and checks a command
// with its arguments before it is sent: a command the peer lacks, an
// argument member (at any depth) it does not know, or an enum value it
// does not have is refused with a message naming it. The session holds one
// per connection when the application loads it (session::offer).
//
// The reply is peer data: anything malformed in it is skipped, never
// trusted, and never throws. QEMU 10.0's schema is 212 KB of JSON (7.2's
// 186 KB); the index keeps names and shapes only.
#pragma once

#include <qmp/json/wire.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qmp {

class peer_schema {
public:
    /// One member of an object type, or one argument of a command.
    struct member {
        std::string name;
        std::string type;  ///< a builtin's name ("str", "int", "any"...) or a masked type
        bool optional = false;
        bool deprecated = false;
    };

    /// One entry of the schema. `meta_type` is QEMU's: builtin, enum,
    /// array, object, alternate, command, event.
    struct entity {
        std::string meta_type;
        std::vector<member> members;                            ///< object
        std::string tag;                                        ///< object with variants
        std::vector<std::pair<std::string, std::string>> variants;  ///< (tag value, type)
        std::vector<std::string> values;                        ///< enum
        std::vector<std::string> alternatives;                  ///< alternate: the types
        std::string element_type;                               ///< array
        std::string json_type;                                  ///< builtin
        std::string arg_type, ret_type;                         ///< command; event (arg_type)
        bool allow_oob = false;
        bool deprecated = false;
        bool unstable = false;
    };

    peer_schema() = default;
    /// Indexes `reply` (the `return` of query-qmp-schema); `peer` names the
    /// QEMU in messages ("QEMU 7.2.0"). Keeps what it needs; the reply may go.
    explicit peer_schema(const json& reply, std::string peer = "the peer") : peer_(std::move(peer)) {
        if (!reply.is_array()) return;
        for (const auto& e : reply) add(e);
    }

    const std::string& peer() const noexcept { return peer_; }
    std::size_t size() const noexcept { return entities_.size(); }
    bool empty() const noexcept { return entities_.empty(); }

    /// The entity called `name` (a command, an event, or a masked type), or null.
    const entity* find(std::string_view name) const {
        auto it = entities_.find(std::string(name));
        return it == entities_.end() ? nullptr : &it->second;
    }
    bool has_command(std::string_view command) const { return is(command, "command"); }
    bool has_event(std::string_view ev) const { return is(ev, "event"); }

    /// True when `command` exists and its arguments have the top-level member `argument`.
    bool command_has_argument(std::string_view command, std::string_view argument) const {
        const entity* cmd = find(command);
        if (!cmd || cmd->meta_type != "command") return false;
        for (const member* m : members_of(cmd->arg_type))
            if (m->name == argument) return true;
        return false;
    }

    /// Why `command` with `arguments` (null or an object) cannot go to this
    /// peer, or "" when it can: "QEMU 7.2.0 has no command 'x'", "QEMU 7.2.0:
    /// 'blockdev-add' has no argument 'file.aio-max-batch'", "... argument
    /// 'driver' has no value 'x'". Member values are walked through objects,
    /// unions (by their tag's value), arrays and alternates.
    std::string refusal(std::string_view command, const json& arguments) const {
        const entity* cmd = find(command);
        if (!cmd || cmd->meta_type != "command") return peer_ + " has no command '" + std::string(command) + "'";
        std::string why;
        if (arguments.is_object()) check_value(cmd->arg_type, arguments, "", why, 0);
        if (why.empty()) return why;
        return peer_ + ": '" + std::string(command) + "' " + why;
    }

    /// The members of object type `type`, with those of the variant that
    /// `tag_value` selects (all variants' when it is empty), in order.
    std::vector<const member*> members_of(std::string_view type, std::string_view tag_value = {}) const {
        std::vector<const member*> out;
        collect(type, tag_value, out, 0);
        return out;
    }

    /// A command's arguments and result, or an event's members, as text
    /// (what `qmpctl describe` prints); "" when `name` is neither. Members
    /// end in `?` when optional; objects are expanded in place, a union's
    /// branches under "when TAG is VALUE", an alternate's choices by kind.
    std::string describe(std::string_view name) const {
        const entity* e = find(name);
        if (!e || (e->meta_type != "command" && e->meta_type != "event")) return {};
        std::string out = e->meta_type + " " + std::string(name) + " (" + peer_ + ")" + flags(*e) + "\n";
        const bool cmd = e->meta_type == "command";
        if (cmd && e->allow_oob) out += "allows out-of-band execution\n";
        std::vector<std::string> path;
        out += cmd ? "arguments:" : "data:";
        if (members_of(e->arg_type).empty()) {
            out += " none\n";
        } else {
            out += "\n";
            write_body(e->arg_type, 1, path, out);
        }
        if (!cmd) return out;
        const entity* r = find(e->ret_type);
        if (r && r->meta_type == "object" && members_of(e->ret_type).empty()) return out + "returns: nothing\n";
        out += "returns: " + type_text(e->ret_type) + "\n";
        write_expansion(e->ret_type, 1, path, out);
        return out;
    }

private:
    static constexpr int max_depth = 64;  // masked types may refer to themselves

    static bool has_feature(const json& e, std::string_view f) {
        auto fs = e.find("features");
        if (fs == e.end() || !fs->is_array()) return false;
        for (const auto& x : *fs)
            if (x.is_string() && x.get_ref<const std::string&>() == f) return true;
        return false;
    }
    static std::string text(const json& e, const char* key) {
        auto it = e.find(key);
        return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
    }

    void add(const json& e) {
        if (!e.is_object()) return;
        std::string name = text(e, "name");
        std::string meta = text(e, "meta-type");
        if (name.empty() || meta.empty()) return;
        entity& ent = entities_[std::move(name)];
        ent.meta_type = std::move(meta);
        ent.deprecated = has_feature(e, "deprecated");
        ent.unstable = has_feature(e, "unstable");
        ent.arg_type = text(e, "arg-type");
        ent.ret_type = text(e, "ret-type");
        ent.element_type = text(e, "element-type");
        ent.json_type = text(e, "json-type");
        ent.tag = text(e, "tag");
        if (auto oob = e.find("allow-oob"); oob != e.end() && oob->is_boolean()) ent.allow_oob = oob->get<bool>();
        if (auto ms = e.find("members"); ms != e.end() && ms->is_array()) {
            for (const auto& m : *ms) {
                if (!m.is_object()) continue;
                if (ent.meta_type == "enum") {
                    if (auto n = text(m, "name"); !n.empty()) ent.values.push_back(std::move(n));
                } else if (ent.meta_type == "alternate") {
                    if (auto t = text(m, "type"); !t.empty()) ent.alternatives.push_back(std::move(t));
                } else if (auto n = text(m, "name"); !n.empty()) {
                    ent.members.push_back({std::move(n), text(m, "type"), m.contains("default"),
                                           has_feature(m, "deprecated")});
                }
            }
        }
        // QEMU before 6.0 lists an enum's values only under "values".
        if (auto vs = e.find("values"); ent.values.empty() && vs != e.end() && vs->is_array())
            for (const auto& v : *vs)
                if (v.is_string()) ent.values.push_back(v.get<std::string>());
        if (auto vs = e.find("variants"); vs != e.end() && vs->is_array())
            for (const auto& v : *vs)
                if (v.is_object()) ent.variants.emplace_back(text(v, "case"), text(v, "type"));
    }

    bool is(std::string_view name, std::string_view meta) const {
        const entity* e = find(name);
        return e && e->meta_type == meta;
    }

    void collect(std::string_view type, std::string_view tag_value, std::vector<const member*>& out, int depth) const {
        const entity* t = find(type);
        if (!t || t->meta_type != "object" || depth > max_depth) return;
        for (const auto& m : t->members) out.push_back(&m);
        for (const auto& [value, vtype] : t->variants)
            if (tag_value.empty() || value == tag_value) collect(vtype, {}, out, depth + 1);
    }

    static std::string join(const std::string& path, const std::string& name) {
        return path.empty() ? name : path + "." + name;
    }

    // Sets `why` at the first thing in `v` that type `type` does not have.
    void check_value(const std::string& type, const json& v, const std::string& path, std::string& why,
                     int depth) const {
        const entity* t = find(type);
        if (!t || depth > max_depth) return;  // a builtin, or a type this check cannot see
        if (t->meta_type == "object" && v.is_object()) {
            // The base's members and those of the branch the tag's value names.
            std::string_view tag_value;
            if (!t->tag.empty())
                if (auto tag = v.find(t->tag); tag != v.end() && tag->is_string())
                    tag_value = tag->get_ref<const std::string&>();
            const auto members = members_of(type, tag_value);
            for (auto it = v.begin(); it != v.end() && why.empty(); ++it) {
                const member* m = nullptr;
                for (const member* c : members)
                    if (c->name == it.key()) {
                        m = c;
                        break;
                    }
                if (!m) {
                    why = "has no argument '" + join(path, it.key()) + "'";
                    return;
                }
                check_value(m->type, it.value(), join(path, it.key()), why, depth + 1);
            }
        } else if (t->meta_type == "array" && v.is_array()) {
            std::size_t i = 0;
            for (const auto& x : v) {
                if (!why.empty()) return;
                check_value(t->element_type, x, path + "[" + std::to_string(i++) + "]", why, depth + 1);
            }
        } else if (t->meta_type == "enum" && v.is_string()) {
            for (const auto& value : t->values)
                if (value == v.get_ref<const std::string&>()) return;
            why = "argument '" + path + "' has no value '" + v.get<std::string>() + "'";
        } else if (t->meta_type == "alternate") {
            // The branch a value takes is decided by its JSON type: an
            // object goes to the object branch, a string to the string or
            // enum one (a string any enum branch lacks may still be a str).
            for (const auto& alt : t->alternatives) {
                const entity* a = find(alt);
                if (a && a->meta_type == "object" && v.is_object()) return check_value(alt, v, path, why, depth + 1);
                if (a && a->meta_type == "array" && v.is_array()) return check_value(alt, v, path, why, depth + 1);
            }
        }
    }

    static std::string flags(const entity& e) {
        return std::string(e.deprecated ? " (deprecated)" : "") + (e.unstable ? " (unstable)" : "");
    }

    // A type in one line: a builtin's name, "enum (a, b)", "array of ...",
    // "object", or an alternate's choices.
    std::string type_text(const std::string& type, int depth = 0) const {
        const entity* t = find(type);
        if (!t || depth > 8) return type.empty() ? "?" : type;
        if (t->meta_type == "builtin") return type;
        if (t->meta_type == "array") return "array of " + type_text(t->element_type, depth + 1);
        if (t->meta_type == "object") return "object";
        std::string out = t->meta_type == "enum" ? "enum (" : "one of (";
        const auto& parts = t->meta_type == "enum" ? t->values : t->alternatives;
        for (std::size_t i = 0; i < parts.size(); ++i)
            out += (i ? (t->meta_type == "enum" ? ", " : " | ") : "") +
                   (t->meta_type == "enum" ? parts[i] : type_text(parts[i], depth + 1));
        return out + ")";
    }

    // The members of an object (or of an array's object elements) under it.
    void write_expansion(const std::string& type, int indent, std::vector<std::string>& path, std::string& out) const {
        write_body(element_object(type), indent, path, out);
    }
    // An array's element type, through arrays of arrays.
    std::string element_object(const std::string& type) const {
        std::string at = type;
        for (int i = 0; i < max_depth; ++i) {
            const entity* t = find(at);
            if (!t || t->meta_type != "array") break;
            at = t->element_type;
        }
        return at;
    }

    void write_body(const std::string& type, int indent, std::vector<std::string>& path, std::string& out) const {
        const entity* t = find(type);
        if (!t || t->meta_type != "object") return;
        const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
        for (const auto& p : path)
            if (p == type) {
                out += pad + "(the enclosing object, recursively)\n";
                return;
            }
        if (path.size() > 16) return;
        path.push_back(type);
        for (const auto& m : t->members) {
            out += pad + m.name + (m.optional ? "?" : "") + ": " + type_text(m.type) +
                   (m.deprecated ? " (deprecated)" : "") + "\n";
            write_expansion(m.type, indent + 1, path, out);
        }
        for (const auto& [value, vtype] : t->variants) {
            if (members_of(vtype).empty()) continue;
            out += pad + "when " + t->tag + " is " + value + ":\n";
            write_body(vtype, indent + 1, path, out);
        }
        path.pop_back();
    }

    std::string peer_ = "the peer";
    std::unordered_map<std::string, entity> entities_{};
};

}  // namespace qmp
