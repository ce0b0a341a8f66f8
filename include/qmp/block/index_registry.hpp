// Indexes: the N of `vda[N]`. Like libvirt's `index` attribute they are
// identities, not depths: one counter per VM, unique across its disks, kept
// while the element exists, never reused. Node names in libvirt's convention
// (`libvirt-<N>-format`, `libvirt-<N>-storage`) carry their index; any other
// element gets the next free number on first sight. The registry persists
// as JSON so a restarted program keeps the same names.
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/protocol/message.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace qmp {

class index_registry {
public:
    /// The index a libvirt-style node name carries, if it is one.
    static std::optional<std::uint32_t> libvirt_index(std::string_view node) {
        const std::string_view prefix = "libvirt-";
        if (node.substr(0, prefix.size()) != prefix) return std::nullopt;
        node.remove_prefix(prefix.size());
        std::uint64_t v = 0;
        std::size_t i = 0;
        while (i < node.size() && node[i] >= '0' && node[i] <= '9') {
            v = v * 10 + static_cast<std::uint64_t>(node[i] - '0');
            if (v >= UINT32_MAX) return std::nullopt;  // 2^32 - 1 is no index (the registry's end)
            ++i;
        }
        if (i == 0 || v == 0) return std::nullopt;
        node.remove_prefix(i);
        if (node != "-format" && node != "-storage") return std::nullopt;
        return static_cast<std::uint32_t>(v);
    }

    /// Gives every element of every disk (mirror chains included) its index:
    /// libvirt-named elements their own, known elements the one they had,
    /// new ones the next free number, in the order given (disks as listed,
    /// each chain top to base). Elements no longer present are forgotten;
    /// their numbers are not handed out again.
    void assign(std::vector<disk_chain>& disks) {
        std::map<std::string, std::uint32_t> live;
        // libvirt's numbers first, so a fresh number never collides with one.
        for (auto& d : disks)
            for (auto* chain : {&d.elements, &d.mirror})
                for (auto& el : *chain)
                    if (auto n = libvirt_of(el)) next_ = std::max(next_, *n + 1);
        for (auto& d : disks)
            for (auto* chain : {&d.elements, &d.mirror})
                for (auto& el : *chain) {
                    const std::string& key = el.node();
                    if (auto n = libvirt_of(el)) {
                        el.index = *n;
                    } else if (auto it = by_node_.find(key); it != by_node_.end()) {
                        el.index = it->second;
                    } else if (next_ < UINT32_MAX) {
                        el.index = next_++;
                    } else {
                        // 2^32 - 2 numbers handed out: none is left, and none is
                        // ever handed out twice. The element keeps index 0 (no
                        // index): it cannot be named `vda[N]` or armed.
                        el.index = 0;
                        continue;
                    }
                    live[key] = el.index;
                }
        by_node_ = std::move(live);
    }

    friend bool operator==(const index_registry& a, const index_registry& b) {
        return a.next_ == b.next_ && a.by_node_ == b.by_node_;
    }
    friend bool operator!=(const index_registry& a, const index_registry& b) { return !(a == b); }

    std::optional<std::uint32_t> find(const std::string& node) const {
        auto it = by_node_.find(node);
        if (it == by_node_.end()) return std::nullopt;
        return it->second;
    }
    std::uint32_t next() const noexcept { return next_; }
    std::size_t size() const noexcept { return by_node_.size(); }

    /// Both registries' numbers in one: where they gave the same number to
    /// different nodes, `a`'s node is renumbered (a number is never shared).
    static index_registry merged(const index_registry& a, const index_registry& b) {
        index_registry out = b;
        out.next_ = std::max(a.next_, b.next_);
        std::map<std::uint32_t, std::string> owner;
        for (const auto& [node, index] : b.by_node_) owner[index] = node;
        for (const auto& [node, index] : a.by_node_) {
            if (b.by_node_.count(node)) continue;
            auto o = owner.find(index);
            std::uint32_t n = index;
            if (o != owner.end() && o->second != node) {
                if (out.next_ == UINT32_MAX) continue;
                n = out.next_++;
            }
            out.by_node_[node] = n;
            owner[n] = node;
        }
        return out;
    }

    /// Saved as `{"next": N, "nodes": {"node-name": index, ...}}`; loading
    /// checks that indexes are in [1, 2^32 - 2], unique, and below `next`.
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("next", &index_registry::next_),
                               wire::required("nodes", &index_registry::by_node_));
    }
    static std::string wire_check(const index_registry& r) {
        if (r.next_ == 0) return "next: 0 is no index (indexes start at 1)";
        std::set<std::uint32_t> used;
        for (const auto& [node, index] : r.by_node_) {
            if (index == 0 || index == UINT32_MAX) return "nodes." + node + ": " + std::to_string(index) + " is no index";
            if (!used.insert(index).second) return "nodes." + node + ": index " + std::to_string(index) + " is used twice";
            if (index >= r.next_)
                return "nodes." + node + ": index " + std::to_string(index) + " is not below next (" +
                       std::to_string(r.next_) + "): it would be handed out again";
        }
        return {};
    }

private:
    static std::optional<std::uint32_t> libvirt_of(const chain_element& el) {
        if (!el.format_node.empty())
            if (auto n = libvirt_index(el.format_node)) return n;
        return libvirt_index(el.storage_node);
    }

    std::map<std::string, std::uint32_t> by_node_;
    std::uint32_t next_ = 1;
};


}  // namespace qmp
