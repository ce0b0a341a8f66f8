// Fuzz target: a query-qmp-schema reply as a hostile peer might send it.
// The input is split at the first form feed: the schema's JSON, then the
// arguments of a command to check against it. Indexing, checking,
// describing and listing never crash, and a refusal always names a reason.
#include <qmp/protocol/peer_schema.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto cut = in.find('\f');
    qmp::json schema, args;
    if (qmp::parse_json(in.substr(0, cut), schema)) return 0;
    if (cut != std::string_view::npos && qmp::parse_json(in.substr(cut + 1), args)) args = nullptr;
    const qmp::peer_schema s(schema);
    // Every command and event the input declares, and one it does not.
    std::vector<std::string> names{"no-such-command"};
    if (schema.is_array())
        for (const auto& e : schema)
            if (e.is_object())
                if (auto n = e.find("name"); n != e.end() && n->is_string()) names.push_back(n->get<std::string>());
    for (const auto& n : names) {
        const std::string why = s.refusal(n, args);
        if (!s.has_command(n) && why.empty()) std::abort();
        (void)s.describe(n);
        (void)s.members_of(n, "x");
        (void)s.command_has_argument(n, "a");
    }
    return 0;
}
