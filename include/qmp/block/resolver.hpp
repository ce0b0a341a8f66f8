// The resolver: `vda[2]` to the nodes behind it, and a node name (what
// BLOCK_WRITE_THRESHOLD carries) back to `vda[2]`, always against the graph
// as it is now. A disk catalog says which disk a name means; the index
// registry keeps the numbers stable across snapshots, commits and pivots.
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/block/error.hpp>
#include <qmp/block/index_registry.hpp>
#include <qmp/block/target.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qmp {

/// Names for disks. An entry maps a target name (`vda`) to what identifies
/// the disk: a qdev id (`virtio-disk0` or the full qdev path), a backend
/// device name, or the root node name. Names without an entry match those
/// directly. Ambiguity is an error, never a guess.
struct disk_catalog {
    std::map<std::string, std::string> entries;
};

/// A resolved chain element.
struct resolved_element {
    std::string disk;
    chain_element element;
    bool active = false;  ///< the disk's active layer
    target canonical() const { return {disk, element.index}; }
};

/// Where a node sits.
struct node_location {
    resolved_element where;
    layer node_layer = layer::format;
};

class resolver {
public:
    explicit resolver(disk_catalog catalog = {}) : catalog_(std::move(catalog)) {}

    /// Rebuilds the disks from `g` and assigns indexes through `registry`.
    void update(const block_graph& g, index_registry& registry) {
        disks_ = disks_of(g, [&](const disk_chain& d) { return display_name(d); });
        // A stable order, so first-sight numbering does not depend on QEMU's.
        std::stable_sort(disks_.begin(), disks_.end(),
                         [](const disk_chain& a, const disk_chain& b) { return a.name < b.name; });
        registry.assign(disks_);
    }

    const std::vector<disk_chain>& disks() const noexcept { return disks_; }
    const disk_catalog& catalog() const noexcept { return catalog_; }

    /// The disk `name` means.
    const disk_chain* find_disk(std::string_view name, std::error_code& ec) const {
        ec.clear();
        std::string key(name);
        auto entry = catalog_.entries.find(key);
        const std::string& wanted = entry != catalog_.entries.end() ? entry->second : key;
        const disk_chain* found = nullptr;
        for (const auto& d : disks_) {
            if (!answers_to(d, wanted) && d.name != key) continue;
            if (found) {
                ec = block_error::ambiguous_disk;
                return nullptr;
            }
            found = &d;
        }
        if (!found) ec = block_error::unknown_disk;
        return found;
    }

    /// `vda`, `vda[0]`: the active layer; `vda[N]`: the element with index
    /// N in the disk's chain or its mirror chain.
    /// Failures: block_error::unknown_disk, ambiguous_disk or unknown_index,
    /// with a sentence naming the disk in `diag`.
    std::optional<resolved_element> resolve(const target& t, std::error_code& ec, diagnostics* diag = nullptr) const {
        const disk_chain* d = find_disk(t.disk, ec);
        std::uint32_t index = t.index;
        if (!d && ec == block_error::unknown_disk) {
            // `/machine/peripheral-anon/device[0]` names a disk itself (its
            // active layer) where no disk is called `.../device`.
            std::error_code whole;
            if ((d = find_disk(t.indexed(), whole))) {
                ec.clear();
                index = 0;
            }
        }
        if (!d) {
            if (diag)
                *diag = {{}, (ec == block_error::ambiguous_disk ? "more than one disk matches '" : "no disk named '") +
                                 t.disk + "'"};
            return std::nullopt;
        }
        if (d->elements.empty()) {
            ec = block_error::unknown_index;
            if (diag) *diag = {{}, "disk '" + t.disk + "' has no chain"};
            return std::nullopt;
        }
        if (index == 0) return resolved_element{d->name, d->elements.front(), true};
        for (const auto* chain : {&d->elements, &d->mirror})
            for (const auto& el : *chain)
                if (el.index == index) return resolved_element{d->name, el, &el == &d->elements.front()};
        ec = block_error::unknown_index;
        if (diag) *diag = {{}, "disk '" + t.disk + "' has no element with index " + std::to_string(t.index)};
        return std::nullopt;
    }

    /// Parses, then resolves; block_error::invalid_target when it does not parse.
    std::optional<resolved_element> resolve(std::string_view text, std::error_code& ec, diagnostics* diag = nullptr) const {
        auto t = parse_target(text, ec, diag);
        if (!t) return std::nullopt;
        return resolve(*t, ec, diag);
    }

    /// Throwing forms: qmp_error with the same code and sentence.
    resolved_element resolve(const target& t) const {
        return detail::value_or_throw([&](std::error_code& ec, diagnostics* d) { return resolve(t, ec, d); });
    }
    resolved_element resolve(std::string_view text) const {
        return detail::value_or_throw([&](std::error_code& ec, diagnostics* d) { return resolve(text, ec, d); });
    }

    /// The element at `depth` (0 = active layer) of the disk's chain.
    std::optional<resolved_element> at_depth(std::string_view disk, std::size_t depth, std::error_code& ec) const {
        const disk_chain* d = find_disk(disk, ec);
        if (!d) return std::nullopt;
        if (depth >= d->elements.size()) {
            ec = block_error::unknown_index;
            return std::nullopt;
        }
        return resolved_element{d->name, d->elements[depth], depth == 0};
    }

    /// Which disk element (and layer) node `node` belongs to, or
    /// block_error::not_in_chain.
    std::optional<node_location> locate(std::string_view node, std::error_code& ec) const {
        ec.clear();
        for (const auto& d : disks_)
            for (const auto* chain : {&d.elements, &d.mirror})
                for (const auto& el : *chain) {
                    bool fmt = !el.format_node.empty() && el.format_node == node;
                    if (fmt || el.storage_node == node) {
                        node_location loc;
                        loc.where = resolved_element{d.name, el, &el == &d.elements.front()};
                        loc.node_layer = fmt ? layer::format : layer::storage;
                        return loc;
                    }
                }
        ec = block_error::not_in_chain;
        return std::nullopt;
    }

private:
    // A disk answers to its device name, its qdev (path or id), its root
    // node, and the node below the root's filters: while a job runs, its
    // filter becomes the root, and the disk must keep its name.
    static bool answers_to(const disk_chain& d, const std::string& name) {
        const auto& b = d.backend;
        if ((!b.device.empty() && b.device == name) || (!b.qdev.empty() && (b.qdev == name || qdev_id(b.qdev) == name)) ||
            b.root_node == name)
            return true;
        return !d.elements.empty() && d.elements.front().node() == name;
    }

    std::string display_name(const disk_chain& d) const {
        for (const auto& [name, what] : catalog_.entries)
            if (answers_to(d, what)) return name;
        const auto& b = d.backend;
        if (!b.device.empty()) return b.device;
        if (!b.qdev.empty()) return qdev_id(b.qdev);
        // A root QEMU named itself ('#block123': the filter a mirror or an
        // active commit puts on top while it runs) is no name to keep: the
        // disk goes by its top element, as it did before the job.
        if (b.root_node.rfind('#', 0) == 0 && !d.elements.empty()) return d.elements.front().node();
        return b.root_node;
    }

    disk_catalog catalog_;
    std::vector<disk_chain> disks_;
};

}  // namespace qmp
