// Indexes: the N of `vda[N]`. Like libvirt's `index` attribute they are
// identities, not depths: one counter per VM, unique across its disks, kept
// while the element exists, never reused. Node names in libvirt's convention
// (`libvirt-<N>-format`, `libvirt-<N>-storage`) carry their index; any other
// element gets the next free number on first sight. The registry persists
// as JSON so a restarted program keeps the same names.
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/protocol/message.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
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
            if (v > UINT32_MAX) return std::nullopt;
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
                    } else {
                        el.index = next_++;
                    }
                    live[key] = el.index;
                }
        by_node_ = std::move(live);
    }

    std::optional<std::uint32_t> find(const std::string& node) const {
        auto it = by_node_.find(node);
        if (it == by_node_.end()) return std::nullopt;
        return it->second;
    }
    std::uint32_t next() const noexcept { return next_; }
    std::size_t size() const noexcept { return by_node_.size(); }

    json to_json() const {
        json nodes = json::object();
        for (const auto& [k, v] : by_node_) nodes[k] = v;
        return {{"next", next_}, {"nodes", nodes}};
    }

    /// Loads a saved registry; returns false (and stays empty) when `j` is
    /// not one.
    bool from_json(const json& j) {
        by_node_.clear();
        next_ = 1;
        if (!j.is_object()) return false;
        auto n = j.find("next");
        auto nodes = j.find("nodes");
        if (n == j.end() || !n->is_number_unsigned() || nodes == j.end() || !nodes->is_object()) return false;
        std::uint32_t next = 1;
        std::map<std::string, std::uint32_t> m;
        for (auto it = nodes->begin(); it != nodes->end(); ++it) {
            if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0 || it->get<std::uint64_t>() > UINT32_MAX)
                return false;
            auto v = it->get<std::uint32_t>();
            m[it.key()] = v;
            next = std::max(next, v + 1);
        }
        if (n->get<std::uint64_t>() > UINT32_MAX) return false;
        next_ = std::max(next, n->get<std::uint32_t>());
        by_node_ = std::move(m);
        return true;
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
