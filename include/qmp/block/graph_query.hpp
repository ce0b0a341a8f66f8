// Runs the queries a block_graph is built from, cheapest first, over any
// client with a typed async_execute (basic_client, or anything shaped like
// it): x-debug-query-block-graph (structure and roles, 4-5 ms on 256 nodes),
// query-blockstats with and without query-nodes (write high-water marks,
// backends; 9-15 ms). The expensive query-named-block-nodes (1.2-2 s on a
// 128-deep chain) runs only when details are asked for, or when a
// driver_cache meets node names it has not seen: QEMU has no cheap query
// that names a node's driver, and the driver is what tells a filter from a
// format node in every case, so it is learned once per node and kept.
#pragma once

#include <qmp/block/graph.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/qapi/block_query.hpp>

#include <asio/compose.hpp>

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
    diagnostics* diag;
    std::unique_ptr<graph_replies> replies = std::make_unique<graph_replies>();
    int step = 0;

    template <class Self>
    void operator()(Self& self) {
        step = 1;
        client->async_execute(x_debug_query_block_graph{}, bind(std::move(self)));
    }

    // Every query's diagnostics go where the caller wants them.
    template <class Self>
    auto bind(Self&& self) {
        return bind_diagnostics(*diag, std::forward<Self>(self));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, x_dbg_block_graph g) {
        // No graph command (an old QEMU): the blockstats fallback builds the chains.
        if (ec == server_error::command_not_found) {
            ec.clear();
        } else if (ec) {
            return fail(self, ec, "x-debug-query-block-graph");
        } else {
            replies->graph = std::move(g);
        }
        step = 2;
        client->async_execute(query_blockstats{true}, bind(std::move(self)));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, std::vector<block_stats> stats) {
        if (ec) return fail(self, ec, "query-blockstats");
        if (step == 2) {
            replies->node_stats = std::move(stats);
            step = 3;
            return client->async_execute(query_blockstats{}, bind(std::move(self)));
        }
        replies->backend_stats = std::move(stats);
        bool need = opts.details;
        if (!need && cache) need = cache->misses(build_block_graph(*replies, &cache->drivers));
        if (!need) return self.complete(ec, build_block_graph(*replies, cache ? &cache->drivers : nullptr));
        step = 4;
        client->async_execute(query_named_block_nodes{true}, bind(std::move(self)));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, std::vector<block_device_info> details) {
        if (ec) return fail(self, ec, "query-named-block-nodes");
        replies->details = std::move(details);
        if (cache) cache->learn(*replies->details);
        block_graph g = build_block_graph(*replies, cache ? &cache->drivers : nullptr);
        if (!opts.details) {
            g.has_details = false;
            for (auto& n : g.nodes) n.details.reset();
        }
        self.complete(ec, std::move(g));
    }

    template <class Self>
    void fail(Self& self, std::error_code ec, const char* query) {
        diag->message = std::string(query) + ": " + (diag->message.empty() ? ec.message() : diag->message);
        self.complete(ec, block_graph{});
    }
};

}  // namespace detail

/// Builds a block_graph from the live QEMU behind `client`, which must
/// outlive the operation, as must `cache` (may be null: then drivers come
/// only from details or blockstats, and filters are recognised by shape)
/// and `diag` (which query failed, and QEMU's text).
template <class Client, class CompletionToken = asio::default_completion_token_t<typename Client::executor_type>>
auto async_query_block_graph(Client& client, graph_query_options opts, driver_cache* cache, diagnostics& diag,
                             CompletionToken&& token = CompletionToken{}) {
    return asio::async_compose<CompletionToken, void(std::error_code, block_graph)>(
        detail::graph_query_op<Client>{&client, opts, cache, &diag}, token, client.get_executor());
}

/// Blocking form over a sync client.
template <class SyncClient>
block_graph query_block_graph(SyncClient& client, graph_query_options opts, driver_cache* cache, std::error_code& ec,
                              diagnostics& diag) {
    block_graph g;
    std::tie(ec, g) = client.template run<std::error_code, block_graph>(
        [&](auto h) { async_query_block_graph(client.async_client(), opts, cache, diag, std::move(h)); });
    return g;
}

template <class SyncClient>
block_graph query_block_graph(SyncClient& client, graph_query_options opts = {}, driver_cache* cache = nullptr) {
    std::error_code ec;
    diagnostics diag;
    auto g = query_block_graph(client, opts, cache, ec, diag);
    if (ec) throw qmp_error(ec, std::move(diag));
    return g;
}

}  // namespace qmp
