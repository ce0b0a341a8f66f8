// Test support: a pretend QEMU block layer for the sans-io threshold tracker.
// Disks of qcow2 elements (format node `<disk>-<i>-fmt` over storage node
// `<disk>-<i>-file`, `<disk>-0` the base), their high-water marks and
// armed thresholds, as a block_graph built the way graph_query builds it,
// and a driver that answers the tracker's actions the way QEMU would.
#pragma once

#include <qmp/block/graph.hpp>
#include <qmp/threshold/tracker.hpp>

#include <doctest/doctest.h>

#include <map>
#include <unordered_map>
#include <string>
#include <variant>
#include <vector>

namespace qmp_test {

struct fake_block_layer {
    struct disk {
        std::string qdev_id;  // virtio-disk0
        int depth = 1;
        std::string stem;     // node names: <stem>-<i>-fmt / -file
    };
    std::vector<disk> disks;
    std::map<std::string, std::uint64_t> marks;       // wr_highest_offset per node
    std::map<std::string, std::uint64_t> thresholds;  // write_threshold per node
    std::uint64_t virtual_size = 64u << 20;
    std::string storage_driver = "host_device";       // "file" to model storage that grows
    std::uint64_t storage_size = 64u << 20;

    /// A snapshot; without details, `kept` (as a driver_cache keeps them) fills in what it has.
    qmp::block_graph graph(bool details, const std::unordered_map<std::string, qmp::node_details>* kept = nullptr) const {
        qmp::graph_replies r;
        r.graph.emplace();
        r.node_stats.emplace();
        r.backend_stats.emplace();
        if (details) r.details.emplace();
        std::uint64_t id = 1;
        auto node = [&](const std::string& name, const std::string& type) {
            r.graph->nodes.push_back({id, type, name});
            return id++;
        };
        for (const auto& d : disks) {
            std::uint64_t below = 0;
            std::string top;
            for (int i = 0; i < d.depth; ++i) {
                const std::string n = d.stem + "-" + std::to_string(i);
                auto file = node(n + "-file", "block-driver");
                auto fmt = node(n + "-fmt", "block-driver");
                r.graph->edges.push_back({fmt, file, "file", {}, {}});
                if (below) r.graph->edges.push_back({fmt, below, "backing", {}, {}});
                below = fmt;
                top = n + "-fmt";
                for (const auto& [nm, drv, size] : {std::tuple<std::string, std::string, std::uint64_t>{n + "-file", storage_driver, storage_size},
                                                    {n + "-fmt", "qcow2", virtual_size}}) {
                    qmp::block_stats s;
                    s.node_name = nm;
                    s.driver = drv;
                    auto m = marks.find(nm);
                    s.stats.wr_highest_offset = m == marks.end() ? 0 : static_cast<std::int64_t>(m->second);
                    r.node_stats->push_back(s);
                    if (details) {
                        qmp::block_device_info info;
                        info.node_name = nm;
                        info.drv = drv;
                        info.file = "/images/" + n;
                        info.image.filename = info.file;
                        info.image.virtual_size = static_cast<std::int64_t>(size);
                        auto t = thresholds.find(nm);
                        info.write_threshold = t == thresholds.end() ? 0 : static_cast<std::int64_t>(t->second);
                        r.details->push_back(info);
                    }
                }
            }
            const std::string qdev = "/machine/peripheral/" + d.qdev_id + "/virtio-backend";
            auto backend = node(qdev, "block-backend");
            r.graph->edges.push_back({backend, below, "root", {}, {}});
            qmp::block_stats b;
            b.qdev = qdev;
            b.device = "";
            b.node_name = top;
            r.backend_stats->push_back(b);
        }
        return qmp::build_block_graph(r, nullptr, kept);
    }

    /// A write through the node: raises its mark; returns the event QEMU
    /// would send when it crosses an armed threshold (and disarms it).
    std::optional<qmp::block_write_threshold_event> write(const std::string& node, std::uint64_t end) {
        auto& m = marks[node];
        if (end > m) m = end;
        auto t = thresholds.find(node);
        if (t == thresholds.end() || t->second == 0 || end <= t->second) return std::nullopt;
        qmp::block_write_threshold_event ev{node, end - t->second, t->second};
        t->second = 0;
        return ev;
    }
};

/// Answers a tracker's actions like QEMU and a state file would, and keeps
/// what went out.
struct scripted_driver {
    explicit scripted_driver(fake_block_layer& q) : qemu(q) {}
    fake_block_layer& qemu;
    std::vector<std::string> log;  // "graph", "graph+known", "graph+details", "set NODE VALUE", "save", "report ...", "done N"
    std::vector<qmp::threshold_event> events;
    std::vector<qmp::tracker_request> event_requests;  // per event: the request that caused it, or 0
    std::vector<qmp::tracker_actions::request_done> done;
    std::vector<qmp::tracker_actions::resync_done> resyncs_done;  // in order
    std::size_t resync_queries = 0;  // graph queries made for a resync
    std::vector<qmp::threshold_state> saved;
    std::error_code fail_saves;         // when set, every save fails
    std::error_code fail_set;           // when set, every set_threshold fails
    bool connection_cut_after_set = false;  // the set reaches QEMU, its reply never comes
    std::unordered_map<std::string, qmp::node_details> kept;  // details as a driver_cache keeps them

    int count(const std::string& prefix) const {
        int n = 0;
        for (const auto& l : log) n += l.rfind(prefix, 0) == 0;
        return n;
    }

    void run(qmp::threshold_tracker& t) {
        while (auto a = t.next_action()) {
            std::visit(
                [&](auto& act) {
                    using A = std::decay_t<decltype(act)>;
                    if constexpr (std::is_same_v<A, qmp::tracker_actions::query_graph>) {
                        if (act.resync) ++resync_queries;
                        log.push_back(act.details == qmp::details_need::fresh   ? "graph+details"
                                      : act.details == qmp::details_need::known ? "graph+known"
                                                                                : "graph");
                        // As graph_query with a driver_cache: kept details serve `known`
                        // when they cover every node; otherwise QEMU is asked, and they are kept.
                        auto g = qemu.graph(act.details == qmp::details_need::fresh, &kept);
                        if (act.details == qmp::details_need::known && !g.details_known()) g = qemu.graph(true);
                        if (g.has_details()) {
                            kept.clear();
                            for (const auto& n : g.nodes())
                                if (n.details) {
                                    kept[n.name] = *n.details;
                                    kept[n.name].write_threshold.reset();
                                }
                        }
                        t.on_graph(g);
                    } else if constexpr (std::is_same_v<A, qmp::tracker_actions::set_threshold>) {
                        log.push_back("set " + act.node + " " + std::to_string(act.value));
                        if (fail_set) return t.on_command_result(act.command, fail_set, {"GenericError", "refused"});
                        qemu.thresholds[act.node] = act.value;
                        if (connection_cut_after_set)
                            return t.on_command_result(act.command, qmp::error::connection_closed);
                        t.on_command_result(act.command, {});
                    } else if constexpr (std::is_same_v<A, qmp::tracker_actions::save_state>) {
                        log.push_back("save");
                        if (fail_saves) return t.on_saved(fail_saves, {{}, "read-only"});
                        saved.push_back(t.state());
                        t.on_saved();
                    } else if constexpr (std::is_same_v<A, qmp::tracker_actions::decode_error>) {
                        log.push_back("decode-error " + act.event + ": " + act.diag.message);
                    } else if constexpr (std::is_same_v<A, qmp::tracker_actions::resync_done>) {
                        resyncs_done.push_back(act);
                    } else if constexpr (std::is_same_v<A, qmp::tracker_actions::report>) {
                        log.push_back(std::string("report ") + qmp::to_string(act.event.how) + " " +
                                      act.event.where.indexed());
                        events.push_back(act.event);
                        event_requests.push_back(act.request);
                    } else {
                        log.push_back("done " + std::to_string(act.request) + (act.ec ? " " + act.ec.message() : ""));
                        done.push_back(act);
                    }
                },
                *a);
        }
    }
};

}  // namespace qmp_test
