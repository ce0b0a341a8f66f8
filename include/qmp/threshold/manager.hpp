// The threshold manager: arm a write threshold on `vda` or `vda[N]` in bytes,
// percent, ppm or as a margin below capacity; get BLOCK_WRITE_THRESHOLD back
// as `vda[N]`; re-arm by policy; and never miss an event: after a
// reconnect, an "events lost" marker or a restart from saved state, a resync
// reports what fired while nobody listened.
//
// It is a blocking component over a sync client (its own io thread reads
// events meanwhile): run it on a thread of its own. Not thread-safe.
// threshold_manager speaks over a unix socket, tcp_threshold_manager over
// TCP; both are basic_threshold_manager<Stream>.
#pragma once

#include <qmp/block/graph_query.hpp>
#include <qmp/block/resolver.hpp>
#include <qmp/client/sync_client.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/qapi/events.hpp>
#include <qmp/threshold/spec.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace qmp {

enum class rearm_policy {
    none,       ///< the caller re-arms
    on_extend,  ///< re-arm with the same spec when the caller reports growth (extended())
    step,       ///< re-arm at the old threshold plus a fixed step, at once
};

/// One threshold the manager armed.
struct armed_threshold {
    target where;  ///< disk and index (never 0: the element's own index)
    std::string node;
    layer node_layer = layer::storage;
    threshold_spec spec;
    rearm_policy policy = rearm_policy::none;
    std::uint64_t step = 0;
    std::uint64_t threshold = 0;              ///< bytes set in QEMU
    std::optional<std::uint64_t> mark_at_arm; ///< the node's wr_highest_offset when armed
    enum class status { armed, fired, gone } state = status::armed;
};

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
    bool armed_by_manager = false;
    bool recovered() const { return how == origin::recovered; }
};

/// One row of the bulk report: a chain element and what is armed on it.
struct threshold_report_row {
    std::string disk;
    chain_element element;
    bool active = false;
    std::optional<armed_threshold> armed;
};

struct threshold_manager_options {
    disk_catalog catalog;
    client_options client;
    /// Resync reads write_threshold (query-named-block-nodes) for armed
    /// elements whose high-water mark does not settle the question: it
    /// catches firings by discards and thresholds changed by others, at the
    /// cost of that query (see docs/thresholds.md).
    bool verify_uncrossed = true;
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
};

template <class Stream>
class basic_threshold_manager {
public:
    using client_type = basic_sync_client<Stream>;
    using endpoint_type = typename Stream::protocol_type::endpoint;

    basic_threshold_manager(endpoint_type ep, threshold_manager_options opts = {})
        : ep_(std::move(ep)), opts_(std::move(opts)), client_(opts_.client), resolver_(opts_.catalog) {}

    /// Connects (throws qmp_error on failure) and resyncs: events that fired
    /// while this manager was not running (state loaded) come back.
    std::vector<threshold_event> connect() {
        client_.connect(ep_);
        return resync();
    }

    /// Arms `target_text` (`vda`, `vda[N]`). Returns the events this causes
    /// at once (an `immediate` one when the allocation is already past).
    std::vector<threshold_event> arm(std::string_view target_text, threshold_spec spec,
                                     rearm_policy policy = rearm_policy::none, std::uint64_t step = 0) {
        std::error_code ec;
        std::string why;
        refresh(true);
        auto el = resolver_.resolve(target_text, ec, &why);
        if (!el) throw qmp_error(ec, diagnostics{{}, why});
        armed_threshold a;
        a.where = target{el->disk, el->element.index};
        a.spec = spec;
        a.policy = policy;
        a.step = step;
        a.node_layer = spec.on;
        a.node = spec.on == layer::format ? el->element.format_node : el->element.storage_node;
        if (a.node.empty()) throw qmp_error(error::invalid_argument, diagnostics{{}, a.where.indexed() + " has no format layer"});
        std::vector<threshold_event> out;
        set(a, capacity_of(el->element, spec), out);
        // One entry per element and layer.
        armed_.erase(std::remove_if(armed_.begin(), armed_.end(),
                                    [&](const armed_threshold& x) { return x.node == a.node; }),
                     armed_.end());
        armed_.push_back(std::move(a));
        return out;
    }

    /// Disarms what the manager armed on `target_text` (both layers).
    void disarm(std::string_view target_text) {
        std::error_code ec;
        std::string why;
        refresh(false);
        auto el = resolver_.resolve(target_text, ec, &why);
        if (!el) throw qmp_error(ec, diagnostics{{}, why});
        for (auto it = armed_.begin(); it != armed_.end();) {
            if (it->where.disk == el->disk && it->where.index == el->element.index) {
                if (it->state == armed_threshold::status::armed)
                    client_.execute(block_set_write_threshold{it->node, 0});
                it = armed_.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// The caller grew the storage of `target_text` to `new_capacity`
    /// bytes: fired thresholds with the on_extend policy are re-armed.
    std::vector<threshold_event> extended(std::string_view target_text, std::uint64_t new_capacity) {
        std::error_code ec;
        std::string why;
        refresh(true);
        auto el = resolver_.resolve(target_text, ec, &why);
        if (!el) throw qmp_error(ec, diagnostics{{}, why});
        std::vector<threshold_event> out;
        for (auto& a : armed_) {
            if (a.where.disk != el->disk || a.where.index != el->element.index) continue;
            if (a.spec.capacity) a.spec.capacity = new_capacity;
            if (a.policy == rearm_policy::on_extend && a.state == armed_threshold::status::fired)
                set(a, a.spec.capacity ? a.spec.capacity : std::optional<std::uint64_t>(new_capacity), out);
        }
        return out;
    }

    /// Waits up to `timeout` for threshold events. Reconnects when the
    /// connection is lost (then resyncs), resyncs after an overflow marker.
    std::vector<threshold_event> poll(std::chrono::milliseconds timeout) {
        std::vector<threshold_event> out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return out;
            std::error_code ec;
            event ev = client_.receive_event(left, ec);
            if (ec == error::timeout) return out;
            if (ec == error::events_lost) {
                append(out, resync());
                if (!out.empty()) return out;
                continue;
            }
            if (ec) {
                if (!reconnect(deadline)) return out;
                append(out, resync());
                if (!out.empty()) return out;
                continue;
            }
            if (ev.name == block_write_threshold_event::name) {
                std::error_code dec;
                if (auto t = event_as<block_write_threshold_event>(ev, dec)) append(out, on_event(*t, ev.time));
                if (!out.empty()) return out;  // hand over as soon as there is something
            }
        }
    }

    /// Checks every armed element against QEMU now; reports what fired
    /// unseen (recovered) and what left the chain (gone).
    std::vector<threshold_event> resync() {
        std::vector<threshold_event> out;
        refresh(false);
        std::vector<armed_threshold*> unsure;
        for (auto& a : armed_) {
            if (a.state != armed_threshold::status::armed) continue;
            std::error_code ec;
            auto loc = resolver_.locate(a.node, ec);
            if (!loc || loc->where.element.index != a.where.index) {
                a.state = armed_threshold::status::gone;
                out.push_back(make_event(threshold_event::origin::gone, a, 0));
                continue;
            }
            auto mark = graph_mark(a.node);
            if (mark && a.mark_at_arm && *a.mark_at_arm <= a.threshold && *mark > a.threshold) {
                fired(a, threshold_event::origin::recovered, *mark - a.threshold, out);
                continue;
            }
            unsure.push_back(&a);
        }
        if (!unsure.empty() && opts_.verify_uncrossed) {
            std::map<std::string, std::uint64_t> current;
            for (const auto& n : client_.execute(query_named_block_nodes{true}))
                if (n.node_name) current[*n.node_name] = static_cast<std::uint64_t>(n.write_threshold);
            for (auto* a : unsure) {
                auto it = current.find(a->node);
                if (it == current.end()) continue;
                if (it->second == 0)
                    fired(*a, threshold_event::origin::recovered, 0, out);  // a discard, or a mark we could not see
                else if (it->second != a->threshold)
                    a->threshold = it->second;  // someone else re-armed it: follow QEMU
            }
        }
        return out;
    }

    /// Every disk and chain element with capacity, allocation, current
    /// thresholds per layer and what the manager armed there.
    std::vector<threshold_report_row> report() {
        refresh(true);
        std::vector<threshold_report_row> rows;
        for (const auto& d : resolver_.disks())
            for (const auto* chain : {&d.elements, &d.mirror})
                for (const auto& el : *chain) {
                    threshold_report_row r;
                    r.disk = d.name;
                    r.element = el;
                    r.active = &el == &d.elements.front();
                    for (const auto& a : armed_)
                        if (a.where.disk == d.name && a.where.index == el.index) r.armed = a;
                    rows.push_back(std::move(r));
                }
        return rows;
    }

    const std::vector<armed_threshold>& armed() const noexcept { return armed_; }
    const resolver& chains() const noexcept { return resolver_; }
    index_registry& registry() noexcept { return registry_; }
    client_type& client() noexcept { return client_; }

    /// Everything needed to pick up after a restart: indexes and armed thresholds.
    json save_state() const {
        json arr = json::array();
        for (const auto& a : armed_)
            arr.push_back({{"target", a.where.indexed()},
                           {"node", a.node},
                           {"layer", to_string(a.node_layer)},
                           {"spec", {{"type", static_cast<int>(a.spec.type)}, {"value", a.spec.value},
                                     {"capacity", a.spec.capacity ? json(*a.spec.capacity) : json(nullptr)}}},
                           {"policy", static_cast<int>(a.policy)},
                           {"step", a.step},
                           {"threshold", a.threshold},
                           {"mark_at_arm", a.mark_at_arm ? json(*a.mark_at_arm) : json(nullptr)},
                           {"state", static_cast<int>(a.state)}});
        return {{"registry", registry_.to_json()}, {"armed", arr}};
    }

    /// Loads saved state; returns false (state unchanged) when `j` is not one.
    bool load_state(const json& j) {
        try {
            index_registry reg;
            if (!j.is_object() || !reg.from_json(j.at("registry"))) return false;
            std::vector<armed_threshold> list;
            if (auto it = j.find("armed"); it != j.end())
                for (const auto& e : *it) {
                    armed_threshold a;
                    a.where = parse_target(e.at("target").get<std::string>());
                    a.node = e.at("node").get<std::string>();
                    a.node_layer = e.at("layer").get<std::string>() == "format" ? layer::format : layer::storage;
                    const auto& s = e.at("spec");
                    a.spec.type = static_cast<threshold_spec::kind>(s.at("type").get<int>());
                    a.spec.value = s.at("value").get<std::uint64_t>();
                    if (!s.at("capacity").is_null()) a.spec.capacity = s.at("capacity").get<std::uint64_t>();
                    a.spec.on = a.node_layer;
                    a.policy = static_cast<rearm_policy>(e.at("policy").get<int>());
                    a.step = e.at("step").get<std::uint64_t>();
                    a.threshold = e.at("threshold").get<std::uint64_t>();
                    if (!e.at("mark_at_arm").is_null()) a.mark_at_arm = e.at("mark_at_arm").get<std::uint64_t>();
                    a.state = static_cast<armed_threshold::status>(e.at("state").get<int>());
                    list.push_back(std::move(a));
                }
            registry_ = std::move(reg);
            armed_ = std::move(list);
            return true;
        } catch (const std::exception&) {
            return false;
        }
    }

private:
    static void append(std::vector<threshold_event>& to, std::vector<threshold_event> from) {
        for (auto& e : from) to.push_back(std::move(e));
    }

    void refresh(bool details) {
        graph_query_options o;
        o.details = details;
        graph_ = query_block_graph(client_, o, &drivers_);
        resolver_.update(graph_, registry_);
    }

    std::optional<std::uint64_t> graph_mark(const std::string& node) const {
        const graph_node* n = graph_.find(node);
        return n ? n->wr_highest_offset : std::nullopt;
    }

    // A regular file (driver `file`) grows with every allocation: its length
    // is no capacity. Block devices and size-limited raw nodes have one.
    static std::optional<std::uint64_t> capacity_of(const chain_element& el, const threshold_spec& spec) {
        if (spec.capacity) return spec.capacity;
        if (spec.on == layer::format) return el.virtual_size;
        if (el.storage_driver == std::optional<std::string>("file")) return std::nullopt;
        return el.capacity;
    }

    // Computes and sets the threshold of `a`; reports at once when the
    // allocation is already past it (QEMU would wait for the next write).
    void set(armed_threshold& a, std::optional<std::uint64_t> capacity, std::vector<threshold_event>& out) {
        std::error_code ec;
        std::string why;
        auto v = compute_threshold(a.spec, capacity, ec, &why);
        if (!v) throw qmp_error(ec, diagnostics{{}, a.where.indexed() + ": " + why});
        a.threshold = *v;
        a.mark_at_arm = graph_mark(a.node);
        if (a.mark_at_arm && *a.mark_at_arm > a.threshold) {
            a.state = armed_threshold::status::fired;
            out.push_back(make_event(threshold_event::origin::immediate, a, *a.mark_at_arm - a.threshold));
            return;
        }
        client_.execute(block_set_write_threshold{a.node, a.threshold});
        a.state = armed_threshold::status::armed;
    }

    threshold_event make_event(threshold_event::origin how, const armed_threshold& a, std::uint64_t exceeded) {
        threshold_event e;
        e.how = how;
        e.where = a.where;
        e.resolved = true;
        e.node = a.node;
        e.node_layer = a.node_layer;
        e.threshold = a.threshold;
        e.amount_exceeded = exceeded;
        e.armed_by_manager = true;
        std::error_code ec;
        if (auto loc = resolver_.locate(a.node, ec)) e.active = loc->where.active;
        return e;
    }

    void fired(armed_threshold& a, threshold_event::origin how, std::uint64_t exceeded, std::vector<threshold_event>& out) {
        a.state = armed_threshold::status::fired;
        out.push_back(make_event(how, a, exceeded));
        after_fire(a, out);
    }

    void after_fire(armed_threshold& a, std::vector<threshold_event>& out) {
        if (a.policy != rearm_policy::step || a.step == 0) return;
        armed_threshold next = a;
        next.spec = threshold_spec::bytes(a.threshold + a.step).on_layer(a.node_layer);
        if (a.spec.capacity) next.spec.capacity = a.spec.capacity;
        std::error_code ec;
        auto el = resolver_.resolve(a.where, ec);
        if (!el) return;
        std::optional<std::uint64_t> cap = capacity_of(el->element, a.spec);
        if (cap && a.threshold + a.step > *cap) return;  // no room left: the caller must grow the storage
        set(next, cap, out);
        next.spec = a.spec;  // keep the caller's spec; only the bytes moved
        a = next;
    }

    std::vector<threshold_event> on_event(const block_write_threshold_event& t, timestamp when) {
        std::vector<threshold_event> out;
        refresh(false);  // the chain as it is now
        threshold_event e;
        e.how = threshold_event::origin::live;
        e.node = t.node_name;
        e.threshold = t.write_threshold;
        e.amount_exceeded = t.amount_exceeded;
        e.time = when;
        std::error_code ec;
        if (auto loc = resolver_.locate(t.node_name, ec)) {
            e.resolved = true;
            e.where = loc->where.canonical();
            e.active = loc->where.active;
            e.node_layer = loc->node_layer;
        }
        armed_threshold* mine = nullptr;
        for (auto& a : armed_)
            if (a.node == t.node_name && a.state == armed_threshold::status::armed) mine = &a;
        if (mine) {
            e.armed_by_manager = true;
            if (!e.resolved) {
                e.where = mine->where;
                e.node_layer = mine->node_layer;
            }
            mine->state = armed_threshold::status::fired;
        }
        out.push_back(std::move(e));
        if (mine) after_fire(*mine, out);
        return out;
    }

    bool reconnect(std::chrono::steady_clock::time_point deadline) {
        auto wait = opts_.reconnect_min;
        for (;;) {
            std::error_code ec;
            client_.connect(ep_, ec);
            if (!ec) return true;
            if (std::chrono::steady_clock::now() + wait > deadline) return false;
            std::this_thread::sleep_for(wait);
            wait = std::min(wait * 2, opts_.reconnect_max);
        }
    }

    endpoint_type ep_;
    threshold_manager_options opts_;
    client_type client_;
    resolver resolver_;
    index_registry registry_;
    driver_cache drivers_;
    block_graph graph_;
    std::vector<armed_threshold> armed_;
};

/// Over a unix socket, the usual QMP transport.
using threshold_manager = basic_threshold_manager<asio::local::stream_protocol::socket>;
/// Over a TCP monitor.
using tcp_threshold_manager = basic_threshold_manager<asio::ip::tcp::socket>;

}  // namespace qmp
