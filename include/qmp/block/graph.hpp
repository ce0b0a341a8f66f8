// The block graph: a consistent snapshot of QEMU's block layer built from
// query results. Nodes (driver nodes, backends, jobs), edges with their
// roles, and the backends with their device name, qdev and root node.
//
// Building is sans-io (build_block_graph takes the replies), so it is tested
// on recorded replies; async_query_block_graph (graph_query.hpp) runs the
// queries.
#pragma once

#include <qmp/qapi/block_query.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qmp {

enum class node_kind { driver, backend, job };

/// What an edge is to its parent.
enum class edge_role {
    file,       ///< a format node's storage child, or a filter's filtered child
    backing,    ///< the backing child (a job filter's filtered child too)
    data_file,  ///< qcow2 external data file
    root,       ///< a backend's root node
    job,        ///< a block job's use of a node
    other,      ///< anything else (quorum children, ...)
};

inline edge_role role_from_name(std::string_view name, node_kind parent_kind) {
    if (parent_kind == node_kind::job) return edge_role::job;
    if (parent_kind == node_kind::backend) return edge_role::root;
    if (name == "file") return edge_role::file;
    if (name == "backing") return edge_role::backing;
    if (name == "data-file") return edge_role::data_file;
    return edge_role::other;
}

inline const char* to_string(edge_role r) {
    switch (r) {
    case edge_role::file: return "file";
    case edge_role::backing: return "backing";
    case edge_role::data_file: return "data-file";
    case edge_role::root: return "root";
    case edge_role::job: return "job";
    case edge_role::other: return "other";
    }
    return "other";
}

/// Drivers that only pass requests on: skipped when walking a chain.
inline bool is_filter_driver(std::string_view drv) {
    return drv == "throttle" || drv == "copy-on-read" || drv == "preallocate" || drv == "compress" ||
           drv == "commit_top" || drv == "mirror_top" || drv == "copy-before-write" || drv == "blkreplay";
}

/// Per-node details from query-named-block-nodes: fetched only on request.
/// What query-named-block-nodes says of a node. Kept across snapshots by a
/// driver_cache while the node exists (a node's filename does not change);
/// write_threshold is a live value: present only in a snapshot that read it.
struct node_details {
    std::string filename;
    std::string format;
    std::int64_t virtual_size = 0;
    std::optional<std::int64_t> actual_size;
    std::optional<std::uint64_t> write_threshold;
};

/// How much of the per-node details a snapshot needs.
enum class details_need {
    none,   ///< structure and high-water marks only (no query-named-block-nodes)
    known,  ///< details of every node, kept ones where a cache has them (the query only for nodes it lacks)
    fresh,  ///< details read now (write_threshold included): the query, always
};

struct graph_node {
    std::string name;  ///< node name; backend: device name or qdev path ("" possible); job: job id
    node_kind kind = node_kind::driver;
    std::uint64_t id = 0;  ///< the graph command's id (0 when built from blockstats)
    std::optional<std::string> driver;  ///< known from details, the driver cache, or blockstats
    std::optional<bool> read_only;
    std::optional<std::uint64_t> wr_highest_offset;  ///< from query-blockstats
    /// What the per-device query-blockstats showed of the node: true when
    /// it gave the node's one child as both its `parent` and its `backing`
    /// (how QEMU reports a filter), false when it gave no `backing` or
    /// another node there; absent for nodes of no device.
    std::optional<bool> filter_seen;
    std::optional<node_details> details;
};

struct graph_edge {
    std::size_t parent = 0;  ///< index into nodes
    std::size_t child = 0;
    std::string name;  ///< as QEMU names the child
    edge_role role = edge_role::other;
};

struct graph_backend {
    std::string device;  ///< legacy drive name; "" for -blockdev + -device
    std::string qdev;    ///< e.g. /machine/peripheral/virtio-disk0/virtio-backend
    std::string root_node;
};

enum class graph_source {
    debug_graph,  ///< x-debug-query-block-graph: every node and edge
    blockstats,   ///< fallback: query-blockstats recursion, only chains attached to devices
};

/// The replies a graph is built from. Absent members were not queried.
struct graph_replies {
    std::optional<x_dbg_block_graph> graph;
    std::optional<std::vector<block_stats>> node_stats;     ///< query-blockstats {"query-nodes": true}; asked for nodes of no device
    std::optional<std::vector<block_stats>> backend_stats;  ///< query-blockstats
    std::optional<std::vector<block_device_info>> details;  ///< query-named-block-nodes {"flat": true}
};

namespace detail {
class graph_builder;
}

/// A snapshot of the block layer: nodes, edges with their roles, backends.
/// Read-only once built: it keeps its name index and each node's edges
/// itself, so a lookup by name is one search in an ordered index (no string
/// built for it) and a node's children and parents are its own lists:
/// building and walking a snapshot grow linearly with its size.
class block_graph {
public:
    const std::vector<graph_node>& nodes() const noexcept { return nodes_; }
    const graph_node& node(std::size_t i) const { return nodes_.at(i); }
    const std::vector<graph_edge>& edges() const noexcept { return edges_; }
    const std::vector<graph_backend>& backends() const noexcept { return backends_; }
    graph_source source() const noexcept { return source_; }
    /// Per-node details were read from QEMU for this snapshot
    /// (query-named-block-nodes): write_threshold is current.
    bool has_details() const noexcept { return has_details_; }
    /// Every named driver node has details, read now or kept from an
    /// earlier snapshot (sizes and filenames; write_threshold only if read now).
    bool details_known() const noexcept {
        if (has_details_) return true;
        for (const auto& n : nodes_)
            if (n.kind == node_kind::driver && !n.name.empty() && !n.details) return false;
        return true;
    }

    /// The driver node named `name`, or nullptr.
    const graph_node* find(std::string_view name) const {
        auto i = index_of(name);
        return i ? &nodes_[*i] : nullptr;
    }
    std::optional<std::size_t> index_of(std::string_view name) const {
        auto it = by_name_.find(name);
        if (it == by_name_.end()) return std::nullopt;
        return it->second;
    }

    /// The child of node `i` in `role` (the first one), or nullopt.
    std::optional<std::size_t> child(std::size_t i, edge_role role) const {
        for (std::size_t e : out_.at(i))
            if (edges_[e].role == role) return edges_[e].child;
        return std::nullopt;
    }
    /// The edges from node `i` to its children, and from its parents to it.
    std::vector<const graph_edge*> children(std::size_t i) const { return edges_of(out_.at(i)); }
    std::vector<const graph_edge*> parents(std::size_t i) const { return edges_of(in_.at(i)); }

    /// True when node `i` only passes requests on: filter_known(i) where
    /// that decides; otherwise a guess from the shape: a node whose only
    /// child is `file` and that child has children of its own.
    bool is_filter(std::size_t i) const {
        if (auto known = filter_known(i)) return *known;
        return shape_of(i).filter_guess();
    }

    /// Whether node `i` is a filter, where that is certain without asking
    /// QEMU for its driver: its driver when known; a node without children
    /// (storage), with both `file` and `backing` or `file` and `data-file`
    /// (a format node), or with only `backing` (a job's filter) by its
    /// shape; query-blockstats' report (filter_seen) for the rest, a "no"
    /// only where the shape agrees (a QEMU before 5.2 reports no `backing`
    /// under a filter). nullopt: only the driver can tell.
    std::optional<bool> filter_known(std::size_t i) const {
        const graph_node& n = nodes_.at(i);
        if (n.kind != node_kind::driver) return false;
        if (n.driver) return is_filter_driver(*n.driver);
        const node_shape s = shape_of(i);
        if (!s.file && !s.backing && !s.data_file && !s.other) return false;
        if (s.file && (s.backing || s.data_file)) return false;
        if (s.backing && !s.file && !s.data_file && !s.other) return true;
        if (n.filter_seen && *n.filter_seen) return true;
        if (n.filter_seen && !s.filter_guess()) return false;
        return std::nullopt;
    }

    /// Follows filters down from node `i` to the first non-filter node.
    std::size_t skip_filters(std::size_t i) const {
        for (std::size_t guard = 0; guard < nodes_.size() && is_filter(i); ++guard) {
            auto c = child(i, edge_role::file);
            if (!c) c = child(i, edge_role::backing);
            if (!c) break;
            i = *c;
        }
        return i;
    }

private:
    friend class detail::graph_builder;

    struct node_shape {
        bool file = false, backing = false, data_file = false, other = false;
        bool file_child_has_children = false;
        bool filter_guess() const {
            if (other || data_file) return false;
            if (backing) return !file;
            return file && file_child_has_children;
        }
    };
    node_shape shape_of(std::size_t i) const {
        node_shape s;
        std::optional<std::size_t> file_child;
        for (std::size_t e : out_[i]) {
            switch (edges_[e].role) {
            case edge_role::file:
                s.file = true;
                file_child = edges_[e].child;
                break;
            case edge_role::backing: s.backing = true; break;
            case edge_role::data_file: s.data_file = true; break;
            default: s.other = true; break;
            }
        }
        if (file_child)
            for (std::size_t e : out_[*file_child])
                if (edges_[e].role != edge_role::job) s.file_child_has_children = true;
        return s;
    }
    std::vector<const graph_edge*> edges_of(const std::vector<std::size_t>& list) const {
        std::vector<const graph_edge*> out;
        out.reserve(list.size());
        for (std::size_t e : list) out.push_back(&edges_[e]);
        return out;
    }

    std::vector<graph_node> nodes_;
    std::vector<graph_edge> edges_;
    std::vector<graph_backend> backends_;
    std::vector<std::vector<std::size_t>> out_, in_;  // per node: its edges to children, from parents
    std::map<std::string, std::size_t, std::less<>> by_name_;  // driver nodes with a name
    graph_source source_ = graph_source::debug_graph;
    bool has_details_ = false;
};

namespace detail {

// What builds a block_graph: adds nodes and edges keeping its index and
// adjacency, and fills in what the replies say of each node.
class graph_builder {
public:
    explicit graph_builder(block_graph& g) : g_(g) {}

    std::size_t add_node(std::string name, node_kind kind, std::uint64_t id) {
        graph_node n;
        n.name = std::move(name);
        n.kind = kind;
        n.id = id;
        const std::size_t i = g_.nodes_.size();
        if (kind == node_kind::driver && !n.name.empty()) g_.by_name_.emplace(n.name, i);
        g_.nodes_.push_back(std::move(n));
        g_.out_.emplace_back();
        g_.in_.emplace_back();
        return i;
    }
    /// The named driver node, added when the graph has none of that name.
    std::size_t node_named(const std::string& name) {
        if (!name.empty())
            if (auto i = g_.index_of(name)) return *i;
        return add_node(name, node_kind::driver, 0);
    }
    /// An edge, once: the same parent, child and name again adds nothing.
    void add_edge(std::size_t parent, std::size_t child, std::string name, edge_role role) {
        for (std::size_t e : g_.out_[parent])
            if (g_.edges_[e].child == child && g_.edges_[e].name == name) return;
        g_.out_[parent].push_back(g_.edges_.size());
        g_.in_[child].push_back(g_.edges_.size());
        g_.edges_.push_back({parent, child, std::move(name), role});
    }
    graph_node& node(std::size_t i) { return g_.nodes_[i]; }
    std::vector<graph_backend>& backends() { return g_.backends_; }
    void source(graph_source s) { g_.source_ = s; }
    void has_details(bool d) { g_.has_details_ = d; }
    const block_graph& graph() const { return g_; }

private:
    block_graph& g_;
};

// QEMU (5.2 on) reports a filter's filtered child as its `backing` too: a
// throttle node shows the same node under `parent` and `backing`.
inline bool shows_filter(const block_stats& s) {
    return s.parent && s.backing && s.parent->node_name && s.backing->node_name && !s.parent->node_name->empty() &&
           *s.parent->node_name == *s.backing->node_name;
}

// Fallback: one chain per device from query-blockstats (`backing` and
// `parent` recursion). Nodes of no device are not visible this way.
inline std::size_t add_stats_chain(graph_builder& b, const block_stats& s) {
    const std::size_t idx = b.node_named(s.node_name.value_or(std::string()));
    b.node(idx).wr_highest_offset = static_cast<std::uint64_t>(s.stats.wr_highest_offset);
    if (s.driver) b.node(idx).driver = s.driver;
    if (s.parent) b.add_edge(idx, add_stats_chain(b, *s.parent), "file", edge_role::file);
    if (s.backing && !shows_filter(s)) b.add_edge(idx, add_stats_chain(b, *s.backing), "backing", edge_role::backing);
    return idx;
}

// What a device's query-blockstats tree says of each named node in it:
// whether it is a filter (graph_node::filter_seen), its high-water mark
// (the node's own, also at the top, where the other counters are the
// device's), the storage driver.
inline void note_device_tree(graph_builder& b, const block_stats& s) {
    if (s.node_name && !s.node_name->empty())
        if (auto i = b.graph().index_of(*s.node_name)) {
            graph_node& n = b.node(*i);
            n.filter_seen = shows_filter(s) || (n.filter_seen && *n.filter_seen);
            n.wr_highest_offset = static_cast<std::uint64_t>(s.stats.wr_highest_offset);
            if (s.driver) n.driver = s.driver;
        }
    if (s.parent) note_device_tree(b, *s.parent);
    if (s.backing) note_device_tree(b, *s.backing);
}

}  // namespace detail

/// Builds the graph from whatever replies are present. With `graph` the
/// structure is complete; without it, it comes from `backend_stats`.
/// `known_drivers` (node name -> driver) fills drivers the replies lack;
/// `known_details` (node name -> details kept from an earlier snapshot)
/// fills details where the replies have none.
/// Linear in the replies' size (lookups by name are logarithmic).
inline block_graph build_block_graph(const graph_replies& r,
                                     const std::unordered_map<std::string, std::string>* known_drivers = nullptr,
                                     const std::unordered_map<std::string, node_details>* known_details = nullptr) {
    block_graph g;
    detail::graph_builder b(g);
    if (r.graph) {
        b.source(graph_source::debug_graph);
        std::unordered_map<std::uint64_t, std::size_t> by_id;
        for (const auto& n : r.graph->nodes) {
            node_kind k = n.type == "block-backend" ? node_kind::backend
                          : n.type == "block-job"   ? node_kind::job
                                                    : node_kind::driver;
            by_id[n.id] = b.add_node(n.name, k, n.id);
        }
        for (const auto& e : r.graph->edges) {
            auto p = by_id.find(e.parent);
            auto c = by_id.find(e.child);
            if (p == by_id.end() || c == by_id.end()) continue;  // inconsistent reply: skip the edge
            b.add_edge(p->second, c->second, e.name, role_from_name(e.name, g.node(p->second).kind));
        }
    } else {
        b.source(graph_source::blockstats);
        if (r.backend_stats)
            for (const auto& s : *r.backend_stats) detail::add_stats_chain(b, s);
    }

    if (r.backend_stats)
        for (const auto& s : *r.backend_stats) detail::note_device_tree(b, s);
    if (r.node_stats)
        for (const auto& s : *r.node_stats) {
            if (!s.node_name) continue;
            auto i = g.index_of(*s.node_name);
            if (!i) continue;
            b.node(*i).wr_highest_offset = static_cast<std::uint64_t>(s.stats.wr_highest_offset);
            if (s.driver) b.node(*i).driver = s.driver;
        }

    // Backends: device name, qdev and root node from query-blockstats; in
    // the graph-command case, backends without a device (NBD exports of a
    // storage daemon) come from the graph's root edges.
    auto& backends = b.backends();
    if (r.backend_stats)
        for (const auto& s : *r.backend_stats) {
            graph_backend bk;
            bk.device = s.device.value_or(std::string());
            bk.qdev = s.qdev.value_or(std::string());
            bk.root_node = s.node_name.value_or(std::string());
            backends.push_back(std::move(bk));
        }
    if (r.graph) {
        for (const auto& e : g.edges()) {
            if (e.role != edge_role::root) continue;
            const std::string& root = g.node(e.child).name;
            const std::string& bname = g.node(e.parent).name;
            const bool is_qdev = bname.rfind("/machine/", 0) == 0;
            // query-blockstats names the root below implicit job filters; the
            // graph names the real one (a running mirror's filter included).
            // The graph names a backend by its device name, or where it has
            // none by its device's id (`-device ide-hd,id=vda`: qdev "vda")
            // or canonical path.
            graph_backend* same = nullptr;
            for (auto& bk : backends)
                if ((!bname.empty() && (bk.device == bname || (bk.device.empty() && bk.qdev == bname))) ||
                    (bname.empty() && bk.root_node == root))
                    same = &bk;
            if (same) {
                same->root_node = root;
                continue;
            }
            graph_backend bk;
            (is_qdev ? bk.qdev : bk.device) = bname;
            bk.root_node = root;
            backends.push_back(std::move(bk));
        }
    }

    if (r.details) {
        b.has_details(true);
        for (const auto& d : *r.details) {
            if (!d.node_name) continue;
            auto i = g.index_of(*d.node_name);
            if (!i) continue;
            graph_node& n = b.node(*i);
            n.driver = d.drv;
            n.read_only = d.ro;
            node_details nd;
            nd.filename = d.image.filename.empty() ? d.file : d.image.filename;
            nd.format = d.image.format;
            nd.virtual_size = d.image.virtual_size;
            nd.actual_size = d.image.actual_size;
            nd.write_threshold = static_cast<std::uint64_t>(d.write_threshold);
            n.details = std::move(nd);
        }
    }
    // QEMU 10.1+ lists each node's children in query-named-block-nodes: where
    // the structure came from the blockstats fallback, it adds the edges of
    // nodes no device shows.
    if (r.details && g.source() == graph_source::blockstats) {
        for (const auto& d : *r.details) {
            if (!d.node_name || !d.children) continue;
            const bool known = g.index_of(*d.node_name).has_value();
            const std::size_t p = b.node_named(*d.node_name);
            if (!known) b.node(p).driver = d.drv;
            for (const auto& c : *d.children) {
                if (c.node_name.empty()) continue;
                b.add_edge(p, b.node_named(c.node_name), c.child, role_from_name(c.child, node_kind::driver));
            }
        }
    }
    if (known_drivers)
        for (std::size_t i = 0; i < g.nodes().size(); ++i) {
            graph_node& n = b.node(i);
            if (n.kind != node_kind::driver || n.driver) continue;
            auto it = known_drivers->find(n.name);
            if (it != known_drivers->end()) n.driver = it->second;
        }
    if (known_details && !r.details)
        for (std::size_t i = 0; i < g.nodes().size(); ++i) {
            graph_node& n = b.node(i);
            if (n.kind != node_kind::driver || n.details) continue;
            auto it = known_details->find(n.name);
            if (it != known_details->end()) n.details = it->second;
        }
    return g;
}

}  // namespace qmp
