// The disks of a block graph and the backing chain of each: from the active
// layer down to the base, filters skipped, each element with its format node
// and its storage node (the format node's `file` child; a raw image may have
// only a storage node). The destination of a running mirror or block copy is
// kept as the disk's mirror chain.
#pragma once

#include <qmp/block/graph.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qmp {

/// The two nodes of a chain element: the format node (guest offsets) and
/// the storage node below it (host offsets; what thin storage runs out of).
enum class layer { format, storage };

inline const char* to_string(layer l) { return l == layer::format ? "format" : "storage"; }

template <>
struct wire_enum<layer> {
    static constexpr std::array<std::pair<layer, std::string_view>, 2> values{
        {{layer::format, "format"}, {layer::storage, "storage"}}};
};

struct chain_element {
    std::uint32_t index = 0;  ///< identity (index_registry); 0 until assigned
    std::size_t depth = 0;    ///< 0 = active layer (mirror chain: 0 = its top)
    std::string format_node;  ///< empty: no format layer
    std::string storage_node;
    bool mirror = false;  ///< part of a running mirror/copy destination

    // From the graph (details only when the graph was queried with them).
    std::optional<std::string> driver;       ///< format driver, or the storage driver without format
    std::optional<std::string> storage_driver;  ///< the storage node's driver (file, host_device, raw, ...)
    /// What holds the element's data, as users and libvirt name it: the
    /// filename of the protocol node at the bottom of the storage (the
    /// image file or device; a protocol node that has no filename, such as
    /// iSCSI or NBD, gives its `json:` description). Not the format node's
    /// filename, which QEMU makes a `json:` pseudo-filename for LUKS, for
    /// raw windows over a file, and for every image whose backing was named
    /// relatively or overridden.
    std::optional<std::string> filename;
    std::optional<std::string> format_filename;  ///< the format node's own filename, as QEMU gives it
    std::optional<std::uint64_t> capacity;   ///< the storage size: the storage node's size as QEMU reports it (not the capacity a threshold spec computes against: threshold_report_row::capacity)
    std::optional<std::uint64_t> virtual_size;  ///< the format node's guest-visible size
    std::optional<std::uint64_t> allocation; ///< storage node's wr_highest_offset
    std::optional<std::uint64_t> format_threshold;
    std::optional<std::uint64_t> storage_threshold;

    /// The node that identifies the element: the format node, else storage.
    const std::string& node() const { return format_node.empty() ? storage_node : format_node; }
};

struct disk_chain {
    std::string name;  ///< the name it is listed under (catalog name, device, qdev id or root node)
    graph_backend backend;
    std::vector<chain_element> elements;  ///< active layer first
    std::vector<chain_element> mirror;    ///< a running mirror's destination chain, top first
};

/// `/machine/peripheral/virtio-disk0/virtio-backend` -> `virtio-disk0`.
inline std::string qdev_id(const std::string& qdev) {
    const std::string prefix = "/machine/peripheral/";
    if (qdev.rfind(prefix, 0) != 0) return qdev;
    auto rest = qdev.substr(prefix.size());
    return rest.substr(0, rest.find('/'));
}

namespace detail {

inline chain_element make_element(const block_graph& g, std::size_t i) {
    chain_element el;
    const graph_node& n = g.nodes()[i];
    auto file = g.child(i, edge_role::file);
    std::optional<std::size_t> storage;
    if (file) {
        el.format_node = n.name;
        storage = *file;
    } else {
        storage = i;
    }
    const graph_node& s = g.nodes()[*storage];
    el.storage_node = s.name;
    el.driver = n.driver;
    el.storage_driver = s.driver;
    el.allocation = s.wr_highest_offset;
    if (n.details && file) {
        el.format_filename = n.details->filename;
        el.virtual_size = static_cast<std::uint64_t>(n.details->virtual_size);
        el.format_threshold = n.details->write_threshold;
    }
    // The filename: the protocol node below the storage node (a raw window
    // over a file, a filter between: down their `file` children).
    std::size_t leaf = *storage;
    for (std::size_t guard = 0; guard < g.nodes().size(); ++guard) {
        auto below = g.child(leaf, edge_role::file);
        if (!below) break;
        leaf = *below;
    }
    if (g.nodes()[leaf].details) el.filename = g.nodes()[leaf].details->filename;
    if (s.details) {
        if (!el.filename) el.filename = s.details->filename;
        el.capacity = static_cast<std::uint64_t>(s.details->virtual_size);
        el.storage_threshold = s.details->write_threshold;
        if (!file) el.virtual_size = el.capacity;
    }
    return el;
}

// Elements from node `start` down the backing links, skipping filters.
inline std::vector<chain_element> walk_chain(const block_graph& g, std::size_t start, const std::set<std::size_t>& stop,
                                             bool mirror) {
    std::vector<chain_element> out;
    std::set<std::size_t> seen;
    std::optional<std::size_t> cur = g.skip_filters(start);
    while (cur && !seen.count(*cur) && !stop.count(*cur)) {
        seen.insert(*cur);
        chain_element el = make_element(g, *cur);
        el.depth = out.size();
        el.mirror = mirror;
        out.push_back(std::move(el));
        auto next = g.child(*cur, edge_role::backing);
        if (!next) break;
        cur = g.skip_filters(*next);
    }
    return out;
}

// Nodes a job uses as its `target` (its own backend there is no disk).
inline std::set<std::size_t> job_targets(const block_graph& g) {
    std::set<std::size_t> t;
    for (const auto& e : g.edges())
        if (e.role == edge_role::job && e.name == "target") t.insert(e.child);
    return t;
}

}  // namespace detail

/// Every disk (backend with a root node that is not a block job's own) and
/// its chain. `name_of(const disk_chain&)` picks the name each disk is
/// listed under (called once backend and chains are filled in).
template <class NameOf>
std::vector<disk_chain> disks_of(const block_graph& g, NameOf&& name_of) {
    std::vector<disk_chain> disks;
    const auto targets = detail::job_targets(g);
    for (const auto& b : g.backends()) {
        auto root = g.index_of(b.root_node);
        if (!root) continue;
        if (b.device.empty() && b.qdev.empty()) {
            if (targets.count(*root)) continue;  // a job's backend
            // An unnamed backend (an NBD export, say) on a device's root is
            // another way into the same disk, not a disk of its own.
            bool shadow = false;
            for (const auto& other : g.backends())
                shadow = shadow || ((!other.device.empty() || !other.qdev.empty()) && other.root_node == b.root_node);
            if (shadow) continue;
        }
        disk_chain d;
        d.backend = b;
        d.elements = detail::walk_chain(g, *root, {}, false);
        // Chain nodes, filters included, to find jobs working on this disk.
        std::set<std::size_t> chain_nodes;
        for (std::optional<std::size_t> cur = *root; cur;) {
            if (chain_nodes.count(*cur)) break;
            chain_nodes.insert(*cur);
            auto next = g.is_filter(*cur) ? g.child(*cur, edge_role::file) : std::nullopt;
            if (!next) next = g.child(*cur, edge_role::backing);
            cur = next;
        }
        for (std::size_t j = 0; j < g.nodes().size() && d.mirror.empty(); ++j) {
            if (g.nodes()[j].kind != node_kind::job) continue;
            bool touches = false;
            std::optional<std::size_t> target;
            for (const auto* e : g.children(j)) {
                if (e->name == "target") target = e->child;
                else if (chain_nodes.count(e->child)) touches = true;
            }
            if (touches && target && !chain_nodes.count(*target))
                d.mirror = detail::walk_chain(g, *target, chain_nodes, true);
        }
        d.name = name_of(d);
        disks.push_back(std::move(d));
    }
    return disks;
}

}  // namespace qmp
