// The vocabulary of the threshold layer: re-arm policies, one armed
// threshold and its life cycle, the events reported to the application,
// and the saved state (versioned JSON, enums as strings, validated on load:
// a bad file is a clear error naming the field, never undefined behaviour).
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/block/index_registry.hpp>
#include <qmp/block/target.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/json/wire.hpp>
#include <qmp/threshold/spec.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace qmp {

enum class rearm_policy {
    none,       ///< the caller re-arms
    on_extend,  ///< re-arm with the same spec when the caller reports growth (extended())
    step,       ///< re-arm at the old threshold plus a fixed step, at once
};

/// Where the capacity a share or margin was computed from came from.
enum class capacity_source {
    stated,        ///< given with the spec (an LV size the agent knows)
    storage,       ///< the storage node's fixed size: a block device, a size-limited raw node
    virtual_size,  ///< the element's virtual size (the storage grows with the image: a regular file)
    none,          ///< a byte spec needs none
};

inline const char* to_string(capacity_source c) {
    switch (c) {
    case capacity_source::stated: return "stated";
    case capacity_source::storage: return "storage";
    case capacity_source::virtual_size: return "virtual-size";
    case capacity_source::none: return "none";
    }
    return "none";
}

/// One threshold the tracker armed, and where it is in its life.
struct armed_threshold {
    enum class status {
        arming,     ///< sent (or about to be): recorded first, so a crash in between is recovered
        armed,      ///< QEMU confirmed it
        fired,      ///< reported (live, recovered or immediate); waits for a re-arm
        gone,       ///< the element left the chain (committed or streamed away)
        disarming,  ///< a disarm was sent (or is about to be)
    };
    target where;  ///< disk and index (never 0: the element's own index)
    std::string node;
    layer node_layer = layer::storage;
    threshold_spec spec;
    rearm_policy policy = rearm_policy::none;
    std::uint64_t step = 0;
    std::uint64_t threshold = 0;               ///< bytes set (or being set) in QEMU
    std::optional<std::uint64_t> mark_at_arm;  ///< the node's wr_highest_offset when armed
    status state = status::armed;

    static constexpr auto wire_members() {
        using T = armed_threshold;
        return std::make_tuple(wire::required("target", &T::where), wire::required("node", &T::node),
                               wire::required("layer", &T::node_layer), wire::required("spec", &T::spec),
                               wire::required("policy", &T::policy), wire::optional("step", &T::step),
                               wire::required("threshold", &T::threshold),
                               wire::optional("mark_at_arm", &T::mark_at_arm), wire::required("state", &T::state));
    }
    friend bool operator==(const armed_threshold& a, const armed_threshold& b) {
        return a.where == b.where && a.node == b.node && a.node_layer == b.node_layer && a.spec == b.spec &&
               a.policy == b.policy && a.step == b.step && a.threshold == b.threshold &&
               a.mark_at_arm == b.mark_at_arm && a.state == b.state;
    }

    static std::string wire_check(const armed_threshold& a) {
        if (a.node.empty()) return "node: empty";
        if (a.where.index == 0) return "target: " + a.where.str() + " has no index";
        if (a.spec.on != a.node_layer) return "spec.layer: differs from layer";
        if (a.policy == rearm_policy::step && a.step == 0) return "step: 0 with the step policy";
        if (a.threshold == 0 && a.state != status::gone) return "threshold: 0 would disarm";
        return {};
    }
};

template <>
struct wire_enum<rearm_policy> {
    static constexpr std::array<std::pair<rearm_policy, std::string_view>, 3> values{
        {{rearm_policy::none, "none"}, {rearm_policy::on_extend, "on-extend"}, {rearm_policy::step, "step"}}};
};

template <>
struct wire_enum<armed_threshold::status> {
    using S = armed_threshold::status;
    static constexpr std::array<std::pair<S, std::string_view>, 5> values{{{S::arming, "arming"},
                                                                          {S::armed, "armed"},
                                                                          {S::fired, "fired"},
                                                                          {S::gone, "gone"},
                                                                          {S::disarming, "disarming"}}};
};

inline const char* to_string(armed_threshold::status s) {
    for (const auto& [v, name] : wire_enum<armed_threshold::status>::values)
        if (v == s) return name.data();
    return "armed";
}

/// A threshold event as the application sees it.
struct threshold_event {
    enum class origin {
        live,       ///< QEMU's event, as it happened
        recovered,  ///< found by a resync: fired while nobody listened
        immediate,  ///< armed below the current allocation: reported at once
        gone,       ///< the armed element left the chain (committed away): not a firing
    };
    origin how = origin::live;
    target where;           ///< `vda[N]`; disk empty when the node is in no chain
    bool resolved = false;  ///< the node belongs to a disk's chain
    bool active = false;    ///< the element is the disk's active layer
    std::string node;
    layer node_layer = layer::storage;
    std::uint64_t threshold = 0;
    std::uint64_t amount_exceeded = 0;  ///< recovered: at least this much (from the high-water mark), or 0 if unknown
    timestamp time;                     ///< QEMU's (live only)
    /// The tracker's state lists the threshold: armed through it, or through
    /// another writer of its journal. Else it is someone else's.
    bool tracked = false;
    bool recovered() const { return how == origin::recovered; }
};

/// The event of armed threshold `a` (resolved, tracked), as the tracker
/// reports it: `exceeded` is by how much, when known.
inline threshold_event event_of(const armed_threshold& a, threshold_event::origin how, std::uint64_t exceeded = 0) {
    threshold_event e;
    e.how = how;
    e.where = a.where;
    e.resolved = true;
    e.node = a.node;
    e.node_layer = a.node_layer;
    e.threshold = a.threshold;
    e.amount_exceeded = exceeded;
    e.tracked = true;
    return e;
}

inline const char* to_string(threshold_event::origin o) {
    switch (o) {
    case threshold_event::origin::live: return "live";
    case threshold_event::origin::recovered: return "recovered";
    case threshold_event::origin::immediate: return "immediate";
    case threshold_event::origin::gone: return "gone";
    }
    return "live";
}

/// One row of the bulk report: a chain element and what is armed on it.
struct threshold_report_row {
    std::string disk;
    chain_element element;
    bool active = false;
    std::optional<armed_threshold> armed;
    /// What a share or margin on this element computes against, and its source.
    std::optional<std::uint64_t> capacity;
    capacity_source capacity_from = capacity_source::none;
};

/// Everything a tracker needs to pick up after a restart: the index
/// registry, the armed thresholds, and which QEMU process they were armed in.
struct threshold_state {
    static constexpr std::string_view format_name = "qmp-threshold-state";
    static constexpr std::uint32_t current_version = 1;

    std::string format{format_name};
    std::uint32_t version = current_version;
    /// The QEMU process the thresholds live in (see threshold_tracker's
    /// on_connected); a different one after a restart means they are gone.
    std::optional<std::string> instance;
    index_registry registry;
    std::vector<armed_threshold> armed;

    static constexpr auto wire_members() {
        using T = threshold_state;
        return std::make_tuple(wire::required("format", &T::format), wire::required("version", &T::version),
                               wire::optional("instance", &T::instance), wire::required("registry", &T::registry),
                               wire::required("armed", &T::armed));
    }
    friend bool operator==(const threshold_state& a, const threshold_state& b) {
        return a.format == b.format && a.version == b.version && a.instance == b.instance &&
               a.registry == b.registry && a.armed == b.armed;
    }
    friend bool operator!=(const threshold_state& a, const threshold_state& b) { return !(a == b); }

    static std::string wire_check(const threshold_state& s) {
        if (s.format != format_name) return "format: '" + s.format + "' is not " + std::string(format_name);
        if (s.version != current_version)
            return "version: " + std::to_string(s.version) + " is not the version this library reads (" +
                   std::to_string(current_version) + ")";
        std::set<std::string> nodes;
        for (std::size_t i = 0; i < s.armed.size(); ++i)
            if (!nodes.insert(s.armed[i].node).second)
                return "armed[" + std::to_string(i) + "].node: " + s.armed[i].node + " is armed twice";
        return {};
    }
};

/// Three-way merge of a state file changed by two processes since `base`
/// (what `mine` last read or wrote): for each armed node, the side that
/// changed it wins (mine when both did); the registries are united, and an
/// index both handed out to different nodes is renumbered on mine's side.
inline threshold_state merge_states(const threshold_state& base, const threshold_state& mine,
                                    const threshold_state& theirs) {
    auto by_node = [](const threshold_state& s) {
        std::map<std::string, const armed_threshold*> m;
        for (const auto& a : s.armed) m.emplace(a.node, &a);
        return m;
    };
    const auto b = by_node(base), m = by_node(mine), t = by_node(theirs);
    auto find = [](const std::map<std::string, const armed_threshold*>& in, const std::string& node) {
        auto it = in.find(node);
        return it == in.end() ? nullptr : it->second;
    };
    // Mine's order first, then what only the others have (merging a state
    // with itself gives it back unchanged).
    std::vector<std::string> nodes;
    std::set<std::string> listed;
    for (const auto* s : {&mine, &theirs, &base})
        for (const auto& a : s->armed)
            if (listed.insert(a.node).second) nodes.push_back(a.node);
    threshold_state out = mine;
    out.armed.clear();
    for (const auto& node : nodes) {
        const armed_threshold* bs = find(b, node);
        const armed_threshold* ms = find(m, node);
        const bool mine_changed = (bs == nullptr) != (ms == nullptr) || (bs && ms && !(*bs == *ms));
        const armed_threshold* pick = mine_changed ? ms : find(t, node);
        if (pick) out.armed.push_back(*pick);
    }
    if (mine.instance == base.instance) out.instance = theirs.instance;
    out.registry = index_registry::merged(mine.registry, theirs.registry);
    return out;
}

}  // namespace qmp
