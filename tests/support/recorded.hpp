// Test support: what a real QEMU answered to the queries the library makes
// (tests/data/qemu-7.2 and qemu-10.0, recorded by scripts/record-replies.sh),
// for fake monitors: a VM with virtio-disk0 (vda-2 over vda-1 over vda-0,
// under a throttle node) and virtio-disk1.
#pragma once

#include <qmp/protocol/message.hpp>
#include <qmp/testing/peer.hpp>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#ifdef QMP_TEST_DATA_DIR

namespace qmp_test {

/// The recorded reply file `name` of QEMU `version` ("7.2", "10.0"), as text.
inline const std::string& recorded_text(const std::string& version, const std::string& name) {
    static std::map<std::string, std::string> cache;
    auto& t = cache[version + "/" + name];
    if (t.empty()) {
        std::ifstream f(std::string(QMP_TEST_DATA_DIR) + "/qemu-" + version + "/" + name + ".json");
        std::stringstream s;
        s << f.rdbuf();
        t = s.str();
    }
    return t;
}

/// The recorded `return` text for a command the library sends (its
/// queries, and {} for block-set-write-threshold); nullopt for any other.
inline std::optional<std::string> recorded_reply(const std::string& cmd, const qmp::json& args,
                                                 const std::string& version = "10.0") {
    if (cmd == "query-commands" || cmd == "x-debug-query-block-graph" || cmd == "query-version")
        return recorded_text(version, cmd);
    if (cmd == "query-blockstats") {
        const bool nodes = args.is_object() && args.contains("query-nodes") && args["query-nodes"] == true;
        return recorded_text(version, nodes ? "query-blockstats-nodes" : "query-blockstats");
    }
    if (cmd == "query-named-block-nodes") {
        const bool flat = args.is_object() && args.contains("flat") && args["flat"] == true;
        return recorded_text(version, flat ? "query-named-block-nodes-flat" : "query-named-block-nodes");
    }
    if (cmd == "block-set-write-threshold") return std::string("{}");
    return std::nullopt;
}

/// Rules on `qemu` that answer the library's queries as QEMU `version`
/// did (recorded_reply), and block-set-write-threshold with {}.
inline void answer_as_recorded(qmp::testing::peer& qemu, const std::string& version = "10.0") {
    for (const char* cmd : {"query-commands", "x-debug-query-block-graph", "query-version"})
        qemu.on(cmd).reply(recorded_text(version, cmd));
    auto flag = [](const char* name) {
        return [name](const qmp::json& args) {
            const auto it = args.find(name);
            return it != args.end() && *it == true;
        };
    };
    qemu.on("query-blockstats").when(flag("query-nodes")).reply(recorded_text(version, "query-blockstats-nodes"));
    qemu.on("query-blockstats").reply(recorded_text(version, "query-blockstats"));
    qemu.on("query-named-block-nodes").when(flag("flat")).reply(recorded_text(version, "query-named-block-nodes-flat"));
    qemu.on("query-named-block-nodes").reply(recorded_text(version, "query-named-block-nodes"));
    qemu.on("block-set-write-threshold").reply("{}");
}

}  // namespace qmp_test

#endif
