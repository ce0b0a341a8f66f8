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
struct node_details {
    std::string filename;
    std::string format;
    std::int64_t virtual_size = 0;
    std::optional<std::int64_t> actual_size;
    std::uint64_t write_threshold = 0;
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

class block_graph {
public:
    std::vector<graph_node> nodes;
    std::vector<graph_edge> edges;
    std::vector<graph_backend> backends;
    graph_source source = graph_source::debug_graph;
    bool has_details = false;

    /// The driver node named `name`, or nullptr.
    const graph_node* find(std::string_view name) const {
        auto it = by_name_.find(std::string(name));
        return it == by_name_.end() ? nullptr : &nodes[it->second];
    }
    std::optional<std::size_t> index_of(std::string_view name) const {
        auto it = by_name_.find(std::string(name));
        if (it == by_name_.end()) return std::nullopt;
        return it->second;
    }

    /// The child of node `i` in `role` (the first one), or nullopt.
    std::optional<std::size_t> child(std::size_t i, edge_role role) const {
        for (const auto& e : edges)
            if (e.parent == i && e.role == role) return e.child;
        return std::nullopt;
    }
    std::vector<const graph_edge*> children(std::size_t i) const {
        std::vector<const graph_edge*> out;
        for (const auto& e : edges)
            if (e.parent == i) out.push_back(&e);
        return out;
    }
    std::vector<const graph_edge*> parents(std::size_t i) const {
        std::vector<const graph_edge*> out;
        for (const auto& e : edges)
            if (e.child == i) out.push_back(&e);
        return out;
    }

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
        const graph_node& n = nodes[i];
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
        for (std::size_t guard = 0; guard < nodes.size() && is_filter(i); ++guard) {
            auto c = child(i, edge_role::file);
            if (!c) c = child(i, edge_role::backing);
            if (!c) break;
            i = *c;
        }
        return i;
    }

    /// Rebuilds the name index (after editing nodes by hand).
    void reindex() {
        by_name_.clear();
        for (std::size_t i = 0; i < nodes.size(); ++i)
            if (nodes[i].kind == node_kind::driver && !nodes[i].name.empty()) by_name_.emplace(nodes[i].name, i);
    }

private:
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
        for (const auto& e : edges) {
            if (e.parent != i) continue;
            switch (e.role) {
            case edge_role::file:
                s.file = true;
                file_child = e.child;
                break;
            case edge_role::backing: s.backing = true; break;
            case edge_role::data_file: s.data_file = true; break;
            default: s.other = true; break;
            }
        }
        if (file_child)
            for (const auto& e : edges)
                if (e.parent == *file_child && e.role != edge_role::job) s.file_child_has_children = true;
        return s;
    }

    std::unordered_map<std::string, std::size_t> by_name_;
};

namespace detail {

inline std::size_t add_node(block_graph& g, std::string name, node_kind kind, std::uint64_t id) {
    graph_node n;
    n.name = std::move(name);
    n.kind = kind;
    n.id = id;
    g.nodes.push_back(std::move(n));
    return g.nodes.size() - 1;
}

// QEMU (5.2 on) reports a filter's filtered child as its `backing` too: a
// throttle node shows the same node under `parent` and `backing`.
inline bool shows_filter(const block_stats& s) {
    return s.parent && s.backing && s.parent->node_name && s.backing->node_name && !s.parent->node_name->empty() &&
           *s.parent->node_name == *s.backing->node_name;
}

// Fallback: one chain per device from query-blockstats (`backing` and
// `parent` recursion). Nodes of no device are not visible this way.
inline std::size_t add_stats_chain(block_graph& g, const block_stats& s) {
    std::string name = s.node_name.value_or(std::string());
    std::size_t idx;
    if (auto existing = g.index_of(name); existing && !name.empty()) {
        idx = *existing;
    } else {
        idx = add_node(g, name, node_kind::driver, 0);
        if (!name.empty()) g.reindex();
    }
    g.nodes[idx].wr_highest_offset = static_cast<std::uint64_t>(s.stats.wr_highest_offset);
    if (s.driver) g.nodes[idx].driver = s.driver;
    if (s.parent) g.edges.push_back({idx, add_stats_chain(g, *s.parent), "file", edge_role::file});
    if (s.backing && !shows_filter(s))
        g.edges.push_back({idx, add_stats_chain(g, *s.backing), "backing", edge_role::backing});
    return idx;
}

// What a device's query-blockstats tree says of each named node in it:
// whether it is a filter (graph_node::filter_seen), its high-water mark
// (the node's own, also at the top, where the other counters are the
// device's), the storage driver.
inline void note_device_tree(block_graph& g, const block_stats& s) {
    if (s.node_name && !s.node_name->empty())
        if (auto i = g.index_of(*s.node_name)) {
            graph_node& n = g.nodes[*i];
            n.filter_seen = shows_filter(s) || (n.filter_seen && *n.filter_seen);
            n.wr_highest_offset = static_cast<std::uint64_t>(s.stats.wr_highest_offset);
            if (s.driver) n.driver = s.driver;
        }
    if (s.parent) note_device_tree(g, *s.parent);
    if (s.backing) note_device_tree(g, *s.backing);
}

}  // namespace detail

/// Builds the graph from whatever replies are present. With `graph` the
/// structure is complete; without it, it comes from `backend_stats`.
/// `known_drivers` (node name -> driver) fills drivers the replies lack.
inline block_graph build_block_graph(const graph_replies& r,
                                     const std::unordered_map<std::string, std::string>* known_drivers = nullptr) {
    block_graph g;
    if (r.graph) {
        g.source = graph_source::debug_graph;
        std::unordered_map<std::uint64_t, std::size_t> by_id;
        for (const auto& n : r.graph->nodes) {
            node_kind k = n.type == "block-backend" ? node_kind::backend
                          : n.type == "block-job"   ? node_kind::job
                                                    : node_kind::driver;
            by_id[n.id] = detail::add_node(g, n.name, k, n.id);
        }
        for (const auto& e : r.graph->edges) {
            auto p = by_id.find(e.parent);
            auto c = by_id.find(e.child);
            if (p == by_id.end() || c == by_id.end()) continue;  // inconsistent reply: skip the edge
            g.edges.push_back({p->second, c->second, e.name, role_from_name(e.name, g.nodes[p->second].kind)});
        }
        g.reindex();
    } else {
        g.source = graph_source::blockstats;
        if (r.backend_stats)
            for (const auto& s : *r.backend_stats) detail::add_stats_chain(g, s);
        g.reindex();
    }

    if (r.backend_stats)
        for (const auto& s : *r.backend_stats) detail::note_device_tree(g, s);
    if (r.node_stats)
        for (const auto& s : *r.node_stats) {
            if (!s.node_name) continue;
            auto i = g.index_of(*s.node_name);
            if (!i) continue;
            g.nodes[*i].wr_highest_offset = static_cast<std::uint64_t>(s.stats.wr_highest_offset);
            if (s.driver) g.nodes[*i].driver = s.driver;
        }

    // Backends: device name, qdev and root node from query-blockstats; in
    // the graph-command case, backends without a device (NBD exports of a
    // storage daemon) come from the graph's root edges.
    if (r.backend_stats)
        for (const auto& s : *r.backend_stats) {
            graph_backend b;
            b.device = s.device.value_or(std::string());
            b.qdev = s.qdev.value_or(std::string());
            b.root_node = s.node_name.value_or(std::string());
            g.backends.push_back(std::move(b));
        }
    if (r.graph) {
        for (const auto& e : g.edges) {
            if (e.role != edge_role::root) continue;
            const std::string& root = g.nodes[e.child].name;
            const std::string& bname = g.nodes[e.parent].name;
            const bool is_qdev = bname.rfind("/machine/", 0) == 0;
            // query-blockstats names the root below implicit job filters; the
            // graph names the real one (a running mirror's filter included).
            // The graph names a backend by its device name, or where it has
            // none by its device's id (`-device ide-hd,id=vda`: qdev "vda")
            // or canonical path.
            graph_backend* same = nullptr;
            for (auto& b : g.backends)
                if ((!bname.empty() && (b.device == bname || (b.device.empty() && b.qdev == bname))) ||
                    (bname.empty() && b.root_node == root))
                    same = &b;
            if (same) {
                same->root_node = root;
                continue;
            }
            graph_backend b;
            (is_qdev ? b.qdev : b.device) = bname;
            b.root_node = root;
            g.backends.push_back(std::move(b));
        }
    }

    if (r.details) {
        g.has_details = true;
        for (const auto& d : *r.details) {
            if (!d.node_name) continue;
            auto i = g.index_of(*d.node_name);
            if (!i) continue;
            graph_node& n = g.nodes[*i];
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
    if (r.details && g.source == graph_source::blockstats) {
        for (const auto& d : *r.details) {
            if (!d.node_name || !d.children) continue;
            auto p = g.index_of(*d.node_name);
            if (!p) {
                p = detail::add_node(g, *d.node_name, node_kind::driver, 0);
                g.nodes[*p].driver = d.drv;
                g.reindex();
            }
            for (const auto& c : *d.children) {
                if (c.node_name.empty()) continue;
                auto ci = g.index_of(c.node_name);
                if (!ci) {
                    ci = detail::add_node(g, c.node_name, node_kind::driver, 0);
                    g.reindex();
                }
                bool present = false;
                for (const auto& e : g.edges) present = present || (e.parent == *p && e.child == *ci && e.name == c.child);
                if (!present) g.edges.push_back({*p, *ci, c.child, role_from_name(c.child, node_kind::driver)});
            }
        }
    }
    if (known_drivers)
        for (auto& n : g.nodes)
            if (n.kind == node_kind::driver && !n.driver) {
                auto it = known_drivers->find(n.name);
                if (it != known_drivers->end()) n.driver = it->second;
            }
    return g;
}

}  // namespace qmp
