// Test support: the node names of a chain walked from `start` down the
// backing links, filters skipped (what the tests assert chains against).
#pragma once

#include <qmp/block/graph.hpp>

#include <string>
#include <vector>

namespace qmp_test {

inline std::vector<std::string> walk(const qmp::block_graph& g, std::size_t start) {
    std::vector<std::string> out;
    std::optional<std::size_t> cur = g.skip_filters(start);
    while (cur) {
        out.push_back(g.nodes()[*cur].name);
        auto next = g.child(*cur, qmp::edge_role::backing);
        if (!next) break;
        cur = g.skip_filters(*next);
    }
    return out;
}

}  // namespace qmp_test
