// query-qmp-schema and a small probe over it: does a command exist, does it
// take a given argument. Callers ask "is `flat` accepted" instead of
// comparing version numbers.
#pragma once

#include <qmp/protocol/command.hpp>

#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace qmp {

/// `query-qmp-schema`, kept as JSON (about 120 KB; its shape is introspection data).
struct query_qmp_schema {
    static constexpr std::string_view name = "query-qmp-schema";
    using result_type = json;
};

/// One entry of `query-commands` (every QEMU has it; the schema came in 2.5).
struct command_info {
    std::string name{};
    static constexpr auto wire_members() { return std::make_tuple(wire::required("name", &command_info::name)); }
};

/// `query-commands`: the names of the commands this QEMU has, nothing of
/// their arguments.
struct query_commands {
    static constexpr std::string_view name = "query-commands";
    using result_type = std::vector<command_info>;
};

/// Indexes a query-qmp-schema reply (it keeps what it needs; the reply may go).
class schema_probe {
public:
    schema_probe() = default;
    explicit schema_probe(const json& schema) {
        if (!schema.is_array()) return;
        for (const auto& e : schema) {
            if (!e.is_object()) continue;
            auto n = e.find("name");
            auto mt = e.find("meta-type");
            if (n == e.end() || mt == e.end() || !n->is_string() || !mt->is_string()) continue;
            entity& ent = entities_[n->get<std::string>()];
            ent.meta_type = mt->get<std::string>();
            if (auto at = e.find("arg-type"); at != e.end() && at->is_string()) ent.arg_type = at->get<std::string>();
            if (auto ms = e.find("members"); ms != e.end() && ms->is_array())
                for (const auto& m : *ms)
                    if (m.is_object())
                        if (auto mn = m.find("name"); mn != m.end() && mn->is_string())
                            ent.members.push_back(mn->get<std::string>());
        }
    }

    bool has_command(std::string_view command) const { return is(command, "command"); }
    bool has_event(std::string_view ev) const { return is(ev, "event"); }

    /// True when `command` exists and its argument type has member `argument`.
    bool command_has_argument(std::string_view command, std::string_view argument) const {
        const entity* cmd = find(command);
        if (!cmd || cmd->meta_type != "command") return false;
        const entity* args = find(cmd->arg_type);
        if (!args) return false;
        for (const auto& m : args->members)
            if (m == argument) return true;
        return false;
    }

    std::size_t size() const noexcept { return entities_.size(); }

private:
    struct entity {
        std::string meta_type;
        std::string arg_type;
        std::vector<std::string> members;
    };

    const entity* find(std::string_view name) const {
        auto it = entities_.find(std::string(name));
        return it == entities_.end() ? nullptr : &it->second;
    }
    bool is(std::string_view name, std::string_view meta) const {
        const entity* e = find(name);
        return e && e->meta_type == meta;
    }

    std::unordered_map<std::string, entity> entities_{};
};

}  // namespace qmp
