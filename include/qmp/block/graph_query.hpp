// Runs the queries a block_graph is built from, cheapest first:
// x-debug-query-block-graph (structure and roles, 4-5 ms on 256 nodes),
// query-blockstats with and without query-nodes (write high-water marks,
// backends; 9-15 ms). The expensive query-named-block-nodes (1.2-2 s on a
// 128-deep chain) runs only when details are asked for, or when a
// driver_cache meets node names it has not seen: QEMU has no cheap query
// that names a node's driver, and the driver is what tells a filter from a
// format node in every case, so it is learned once per node and kept.
#pragma once

#include <qmp/block/graph.hpp>
#include <qmp/client/basic_client.hpp>

#include <asio/compose.hpp>

#include <future>
#include <memory>
#include <string>
#include <unordered_map>

namespace qmp {

/// Node name -> driver, learned from query-named-block-nodes and kept
/// across snapshots. Share one per QEMU; not thread-safe.
struct driver_cache {
    std::unordered_map<std::string, std::string> drivers;
    std::uint64_t refreshes = 0;  ///< how often the expensive query ran

    /// True when some driver node of `g` has no known driver.
    bool misses(const block_graph& g) const {
        for (const auto& n : g.nodes)
            if (n.kind == node_kind::driver && !n.driver && !n.name.empty() && !drivers.count(n.name)) return true;
        return false;
    }
    void learn(const std::vector<block_device_info>& details) {
        ++refreshes;
        drivers.clear();  // names of deleted nodes may be reused later
        for (const auto& d : details)
            if (d.node_name) drivers[*d.node_name] = d.drv;
    }
};

struct graph_query_options {
    /// Also fetch per-node details (filename, sizes, write_threshold, driver).
    bool details = false;
};

namespace detail {

template <class Client>
struct graph_query_op {
    Client* client;
    graph_query_options opts;
    driver_cache* cache;
    std::unique_ptr<graph_replies> replies = std::make_unique<graph_replies>();
    int step = 0;

    template <class Self>
    void operator()(Self& self) {
        step = 1;
        client->async_execute("x-debug-query-block-graph", nullptr, std::move(self));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, json result) {
        diagnostics diag;
        switch (step) {
        case 1:
            if (ec == server_error::command_not_found || ec == server_error::generic_error) {
                ec.clear();  // missing or failing graph command: fall back to blockstats
            } else if (ec) {
                return self.complete(ec, block_graph{});
            } else {
                replies->graph.emplace();
                if ((ec = convert(result, *replies->graph, &diag))) return self.complete(ec, block_graph{});
            }
            step = 2;
            return client->async_execute("query-blockstats", {{"query-nodes", true}}, std::move(self));
        case 2:
            if (ec) return self.complete(ec, block_graph{});
            replies->node_stats.emplace();
            if ((ec = convert(result, *replies->node_stats, &diag))) return self.complete(ec, block_graph{});
            step = 3;
            return client->async_execute("query-blockstats", json::object(), std::move(self));
        case 3: {
            if (ec) return self.complete(ec, block_graph{});
            replies->backend_stats.emplace();
            if ((ec = convert(result, *replies->backend_stats, &diag))) return self.complete(ec, block_graph{});
            bool need = opts.details;
            if (!need && cache) need = cache->misses(build_block_graph(*replies, &cache->drivers));
            if (!need) return self.complete(ec, build_block_graph(*replies, cache ? &cache->drivers : nullptr));
            step = 4;
            return client->async_execute("query-named-block-nodes", {{"flat", true}}, std::move(self));
        }
        default:
            if (ec) return self.complete(ec, block_graph{});
            replies->details.emplace();
            if ((ec = convert(result, *replies->details, &diag))) return self.complete(ec, block_graph{});
            if (cache) cache->learn(*replies->details);
            block_graph g = build_block_graph(*replies, cache ? &cache->drivers : nullptr);
            if (!opts.details) {
                g.has_details = false;
                for (auto& n : g.nodes) n.details.reset();
            }
            return self.complete(ec, std::move(g));
        }
    }
};

}  // namespace detail

/// Builds a block_graph from the live QEMU behind `client`, which must
/// outlive the operation. `cache` may be null (then drivers come only from
/// details or blockstats, and filters are recognised by shape).
template <class AsyncStream, class CompletionToken = asio::default_completion_token_t<
                                 typename basic_client<AsyncStream>::executor_type>>
auto async_query_block_graph(basic_client<AsyncStream>& client, graph_query_options opts, driver_cache* cache,
                             CompletionToken&& token = CompletionToken{}) {
    return asio::async_compose<CompletionToken, void(std::error_code, block_graph)>(
        detail::graph_query_op<basic_client<AsyncStream>>{&client, opts, cache}, token, client.get_executor());
}

/// Blocking form over a sync client.
template <class SyncClient>
block_graph query_block_graph(SyncClient& client, graph_query_options opts, driver_cache* cache,
                              std::error_code& ec) {
    std::promise<std::pair<std::error_code, block_graph>> p;
    auto f = p.get_future();
    async_query_block_graph(client.async_client(), opts, cache, [&p](std::error_code e, block_graph g) {
        p.set_value({e, std::move(g)});
    });
    auto r = f.get();
    ec = r.first;
    return std::move(r.second);
}

template <class SyncClient>
block_graph query_block_graph(SyncClient& client, graph_query_options opts = {}, driver_cache* cache = nullptr) {
    std::error_code ec;
    auto g = query_block_graph(client, opts, cache, ec);
    if (ec) throw qmp_error(ec);
    return g;
}

}  // namespace qmp
