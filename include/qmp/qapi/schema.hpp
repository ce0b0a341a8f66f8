// query-qmp-schema and query-commands. What a reply of the first says is
// indexed by peer_schema (protocol/peer_schema.hpp): does a command exist,
// does it take a given argument (callers ask "is `flat` accepted" instead of
// comparing version numbers), would a command with these arguments be taken.
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/protocol/peer_schema.hpp>
#include <qmp/qapi/control.hpp>  // query_commands, command_info (generated)

#include <string_view>

namespace qmp {

/// `query-qmp-schema`, kept as JSON (about 200 KB; peer_schema indexes it).
struct query_qmp_schema {
    static constexpr std::string_view name = "query-qmp-schema";
    using result_type = json;
};

/// The index of a query-qmp-schema reply that answers probes
/// (has_command, command_has_argument) and checks commands before they are
/// sent (protocol/peer_schema.hpp; a client loads one with async_load_schema).
using schema_probe = peer_schema;

}  // namespace qmp
