// Runs the queries a block_graph is built from, cheapest first, over any
// client with a typed async_execute (basic_client, or anything shaped like
// it): x-debug-query-block-graph (structure and roles, 3-4 ms on 256 nodes),
// query-blockstats (backends, and each device's tree of nodes with their
// write high-water marks; 6-9 ms), and with query-nodes (the same for every
// node, 8-9 ms) only when some node is in no device's tree. The expensive query-named-block-nodes (30 ms on a
// 128-deep chain, 650 ms when its images name their backing files
// relatively, as oVirt's do) runs only when details are asked for, or when
// a driver_cache meets a node that is a filter or not by its driver only.
// QEMU has no cheap query that names a format node's driver, but most
// nodes need none: the graph's shape settles storage, format nodes with a
// backing file and job filters, and the per-device query-blockstats shows
// each filter of a device's tree (block_graph::filter_known). The rest (a
// base image's format node outside any device, a filter over storage)
// have their drivers learned once and kept.
//
// Which of these a QEMU has is read from the QEMU itself (query-commands,
// 6 KB, under a millisecond), once per connection when a driver_cache is
// given: never from its version number. The one argument that came later
// than its command, query-named-block-nodes' `flat` (5.0), is sent and, if
// QEMU refuses it, not sent again on that connection: the refusal costs
// an old QEMU one short round trip, where reading query-qmp-schema (200 KB)
// would cost every QEMU about 20 ms of its own time (docs/resolver.md).
#pragma once

#include <qmp/block/error.hpp>
#include <qmp/block/graph.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/qapi/schema.hpp>

#include <asio/compose.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace qmp {

/// Where a block_query_offers came from.
enum class offers_source {
    assumed,   ///< nothing said: every query is tried (a peer without query-commands)
    commands,  ///< query-commands: which commands exist; `flat` until QEMU refuses it
    schema,    ///< query-qmp-schema: commands and their arguments
};

/// The block queries a QEMU offers (QEMU versions in the comments are for
/// orientation only; nothing here compares them).
struct block_query_offers {
    bool graph_command = true;      ///< x-debug-query-block-graph (4.0)
    bool named_block_nodes = true;  ///< query-named-block-nodes (2.0)
    bool flat = true;               ///< its `flat` argument (5.0); false once QEMU refused it
    bool query_nodes = true;        ///< query-blockstats' `query-nodes` argument (2.3)
    offers_source source = offers_source::assumed;
};

/// From a query-qmp-schema reply.
inline block_query_offers offers_from_schema(const schema_probe& schema) {
    block_query_offers o;
    o.graph_command = schema.has_command(x_debug_query_block_graph::name);
    o.named_block_nodes = schema.has_command(query_named_block_nodes::name);
    o.flat = schema.command_has_argument(query_named_block_nodes::name, "flat");
    o.query_nodes = schema.command_has_argument(query_blockstats::name, "query-nodes");
    o.source = offers_source::schema;
    return o;
}

/// From a query-commands reply, which names commands but not their
/// arguments: `flat` is tried (the graph query stops sending it once QEMU
/// refuses it); `query-nodes` came with block-set-write-threshold, so it is
/// there exactly when that command is.
inline block_query_offers offers_from_commands(const std::vector<command_info>& commands) {
    auto has = [&commands](std::string_view n) {
        for (const auto& c : commands)
            if (c.name == n) return true;
        return false;
    };
    block_query_offers o;
    o.graph_command = has(x_debug_query_block_graph::name);
    o.named_block_nodes = has(query_named_block_nodes::name);
    o.flat = o.named_block_nodes;
    o.query_nodes = has("block-set-write-threshold");
    o.source = offers_source::commands;
    return o;
}

/// What query-named-block-nodes said of each node, kept across snapshots
/// while the node exists: its driver, and its details (filename, sizes;
/// write_threshold is never kept, it is live). And what the QEMU offers
/// (probed once per connection). Share one per QEMU; not thread-safe.
///
/// A node is known by its name: a node deleted and created again under
/// the same name between two snapshots keeps the old details (QEMU gives
/// no cheap way to tell), and sizes are as of the last read: a caller that
/// grew a node's storage asks for fresh details (details_need::fresh), or
/// forget()s the node.
struct driver_cache {
    std::unordered_map<std::string, std::string> drivers;
    std::unordered_map<std::string, node_details> details;
    std::uint64_t refreshes = 0;  ///< how often the expensive query ran
    std::optional<block_query_offers> offers;  ///< as probed on connection `offers_connection`
    std::uint64_t offers_connection = 0;       ///< the client's stats().connections then
    std::uint64_t probes = 0;                  ///< how often the offers were probed

    /// True when some driver node of `g` is a filter or not by its driver
    /// only (block_graph::filter_known), and that driver is not known.
    bool misses(const block_graph& g) const {
        for (std::size_t i = 0; i < g.nodes().size(); ++i) {
            const auto& n = g.nodes()[i];
            if (n.kind == node_kind::driver && !n.driver && !n.name.empty() && !drivers.count(n.name) &&
                !g.filter_known(i))
                return true;
        }
        return false;
    }
    /// True when some named driver node of `g` has no details here.
    bool lacks_details(const block_graph& g) const {
        for (const auto& n : g.nodes())
            if (n.kind == node_kind::driver && !n.name.empty() && !details.count(n.name)) return true;
        return false;
    }
    /// Takes in a full query-named-block-nodes reply (what it does not list is gone).
    void learn(const block_graph& g) {
        ++refreshes;
        drivers.clear();  // names of deleted nodes may be reused later
        details.clear();
        for (const auto& n : g.nodes()) {
            if (n.kind != node_kind::driver || n.name.empty()) continue;
            if (n.driver) drivers[n.name] = *n.driver;
            if (n.details) {
                node_details d = *n.details;
                d.write_threshold.reset();
                details.emplace(n.name, std::move(d));
            }
        }
    }
    /// Drops what is kept of nodes `g` no longer has.
    void keep_only(const block_graph& g) {
        for (auto* m : {&details}) {
            for (auto it = m->begin(); it != m->end();)
                it = g.find(it->first) ? std::next(it) : m->erase(it);
        }
    }
    /// Forgets `node`'s details (its storage grew): the next snapshot that
    /// needs details reads them.
    void forget(const std::string& node) { details.erase(node); }
};

struct graph_query_options {
    /// Per-node details (filename, sizes, write_threshold, driver): none,
    /// known (kept ones from the driver_cache where it has them; the query
    /// only when a node lacks them, and without a cache always), or fresh.
    details_need details = details_need::none;
    /// Use these instead of asking the QEMU (e.g. to keep off the unstable
    /// x-debug-query-block-graph: graph_command = false).
    std::optional<block_query_offers> offers{};
};

/// Checks that `r` can name the nodes of the chains: with no graph command,
/// the blockstats fallback needs QEMU's node names (QEMU gives them since
/// 2.3, the version block-set-write-threshold came with).
inline std::error_code check_graph_replies(const graph_replies& r, diagnostics* diag = nullptr) {
    if (r.graph || !r.backend_stats) return {};
    for (const auto& s : *r.backend_stats)
        if (!s.node_name || s.node_name->empty()) {
            if (diag)
                diag->message = "QEMU names no block nodes: it has no x-debug-query-block-graph, and query-blockstats "
                                "gives device '" +
                                s.device.value_or("") + "' no node-name";
            return block_error::unnamed_nodes;
        }
    return {};
}

namespace detail {

// The client's count of successful negotiations identifies its connection
// (0 for clients that do not count them: then the offers are probed once).
template <class Client>
auto connection_number(Client& c, int) -> decltype(c.stats().connections, std::uint64_t()) {
    return c.stats().connections;
}
template <class Client>
std::uint64_t connection_number(Client&, long) {
    return 0;
}

// True when every named driver node of the graph command's reply is in
// some device's query-blockstats tree (without the graph command, the
// trees are the graph).
inline bool devices_cover(const graph_replies& r) {
    if (!r.graph) return true;
    std::unordered_set<std::string_view> seen;
    auto walk = [&seen](const block_stats& s, auto& self) -> void {
        if (s.node_name) seen.insert(*s.node_name);
        if (s.parent) self(*s.parent, self);
        if (s.backing) self(*s.backing, self);
    };
    if (r.backend_stats)
        for (const auto& s : *r.backend_stats) walk(s, walk);
    for (const auto& n : r.graph->nodes)
        if (n.type == "block-driver" && !n.name.empty() && !seen.count(n.name)) return false;
    return true;
}

template <class Client>
struct graph_query_op {
    Client* client;
    graph_query_options opts;
    driver_cache* cache;
    diagnostics* diag;
    std::unique_ptr<diagnostics> own_diag;  // diag, when the caller gave no place for it
    std::unique_ptr<graph_replies> replies = std::make_unique<graph_replies>();
    block_query_offers offers{};
    // Which query-blockstats a reply answers: the per-device one comes
    // first, the per-node one only for nodes of no device.
    enum class stats_query { per_device, per_node } stats = stats_query::per_device;
    std::uint64_t connection = 0;

    struct probed {};

    template <class Self>
    void operator()(Self& self) {
        connection = connection_number(*client, 0);
        if (opts.offers) {
            offers = *opts.offers;
        } else if (cache && cache->offers && cache->offers_connection == connection) {
            offers = *cache->offers;
        } else {
            return client->async_execute(query_commands{}, bind(std::move(self)));
        }
        (*this)(self, probed{});
    }

    // Every query's diagnostics go where the caller wants them.
    template <class Self>
    auto bind(Self&& self) {
        return bind_diagnostics(*diag, std::forward<Self>(self));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, std::vector<command_info> commands) {
        // Every QEMU has query-commands; a peer without it (a stand-in)
        // gets every query tried, a missing graph command still falling
        // back on CommandNotFound.
        if (ec == server_error::command_not_found) {
            diag->clear();
            remember(block_query_offers{});
        } else if (ec) {
            return fail(self, ec, "query-commands");
        } else {
            remember(offers_from_commands(commands));
        }
        (*this)(self, probed{});
    }

    void remember(const block_query_offers& o) {
        offers = o;
        if (!cache) return;
        cache->offers = o;
        cache->offers_connection = connection;
        ++cache->probes;
    }

    template <class Self>
    void operator()(Self& self, probed) {
        if (offers.graph_command) return client->async_execute(x_debug_query_block_graph{}, bind(std::move(self)));
        stats_queries(self);
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, x_dbg_block_graph g) {
        // No graph command after all: the blockstats fallback builds the chains.
        if (ec == server_error::command_not_found) {
            ec.clear();
            diag->clear();
        } else if (ec) {
            return fail(self, ec, "x-debug-query-block-graph");
        } else {
            replies->graph = std::move(g);
        }
        stats_queries(self);
    }

    // The per-device query-blockstats first: its trees carry each of their
    // nodes' high-water mark and storage driver, so the per-node one (as
    // costly again on a deep chain) is asked only for nodes of no device
    // (a storage daemon's exports, a mirror's target).
    template <class Self>
    void stats_queries(Self& self) {
        stats = stats_query::per_device;
        client->async_execute(query_blockstats{}, bind(std::move(self)));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, std::vector<block_stats> reply) {
        if (ec) return fail(self, ec, "query-blockstats");
        if (stats == stats_query::per_device) {
            replies->backend_stats = std::move(reply);
            if (auto bad = check_graph_replies(*replies, diag)) return self.complete(bad, block_graph{});
            if (offers.query_nodes && !devices_cover(*replies)) {
                stats = stats_query::per_node;
                return client->async_execute(query_blockstats{true}, bind(std::move(self)));
            }
        } else {
            replies->node_stats = std::move(reply);
        }
        if (opts.details != details_need::fresh && cache) {
            block_graph g = build_block_graph(*replies, &cache->drivers, &cache->details);
            cache->keep_only(g);
            // Drivers it has not seen, or details it lacks when they are
            // needed, send it to the details query (the graph is built again with them).
            const bool wanting = opts.details == details_need::known && cache->lacks_details(g);
            if (!(offers.named_block_nodes && (cache->misses(g) || wanting))) return self.complete(ec, std::move(g));
        } else if (opts.details == details_need::none) {
            return self.complete(ec, build_block_graph(*replies));
        }
        if (!offers.named_block_nodes) {
            diag->message = "QEMU has no query-named-block-nodes: no node details (sizes, filenames, thresholds)";
            return self.complete(make_error_code(block_error::no_details), block_graph{});
        }
        details_query(self);
    }

    template <class Self>
    void details_query(Self& self) {
        query_named_block_nodes q;
        if (offers.flat) q.flat = true;
        client->async_execute(q, bind(std::move(self)));
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, std::vector<block_device_info> details) {
        if (ec == server_error::generic_error && offers.flat && diag->message.find("flat") != std::string::npos) {
            // A QEMU before 5.0 refuses the argument ("Parameter 'flat' is
            // unexpected"): ask again without it, and not again on this connection.
            diag->clear();
            offers.flat = false;
            if (cache && cache->offers && cache->offers_connection == connection) cache->offers->flat = false;
            return details_query(self);
        }
        if (ec) return fail(self, ec, "query-named-block-nodes");
        replies->details = std::move(details);
        block_graph g = build_block_graph(*replies, cache ? &cache->drivers : nullptr);
        if (cache) cache->learn(g);
        self.complete(ec, std::move(g));
    }

    template <class Self>
    void fail(Self& self, std::error_code ec, const char* query) {
        diag->message = std::string(query) + ": " + (diag->message.empty() ? ec.message() : diag->message);
        self.complete(ec, block_graph{});
    }
};

}  // namespace detail

namespace detail {
template <class Client>
struct initiate_graph_query {
    Client* client;
    template <class Handler>
    void operator()(Handler&& handler, graph_query_options opts, driver_cache* cache, diagnostics* diag) const {
        // Where the failing query and QEMU's text go: the caller's, the
        // handler's (bind_diagnostics, with_diagnostics), or the op's own.
        std::unique_ptr<diagnostics> own;
        if (!diag) diag = get_associated_diagnostics(handler);
        if (!diag) diag = (own = std::make_unique<diagnostics>()).get();
        asio::async_compose<std::decay_t<Handler>, void(std::error_code, block_graph)>(
            graph_query_op<Client>{client, opts, cache, diag, std::move(own)}, handler, client->get_executor());
    }
};
}  // namespace detail

/// Builds a block_graph from the live QEMU behind `client`, which must
/// outlive the operation, as must `cache` (may be null: then drivers come
/// only from details or blockstats, and filters are recognised by shape)
/// and `diag` (which query failed, and QEMU's text). Completes with
/// (error_code, block_graph).
template <class Client, class CompletionToken = asio::default_completion_token_t<typename Client::executor_type>>
auto async_query_block_graph(Client& client, graph_query_options opts, driver_cache* cache, diagnostics& diag,
                             CompletionToken&& token = CompletionToken{}) {
    return asio::async_initiate<CompletionToken, void(std::error_code, block_graph)>(
        detail::initiate_graph_query<Client>{&client}, token, opts, cache, &diag);
}
template <class Client, class CompletionToken = asio::default_completion_token_t<typename Client::executor_type>,
          class = std::enable_if_t<!std::is_same_v<std::decay_t<CompletionToken>, diagnostics>>>
auto async_query_block_graph(Client& client, graph_query_options opts = {}, driver_cache* cache = nullptr,
                             CompletionToken&& token = CompletionToken{}) {
    return detail::initiate_with_text<CompletionToken, void(std::error_code, block_graph)>(
        detail::initiate_graph_query<Client>{&client}, token, opts, cache, static_cast<diagnostics*>(nullptr));
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
