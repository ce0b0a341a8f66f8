// threshold_tracker's decisions: what one piece of work does with the graph
// it has. Each fills pending reports and commands and marks the state dirty;
// the work queue (impl/tracker.hpp) turns that into ordered actions.
#pragma once

#include <qmp/threshold/tracker.hpp>

#include <algorithm>

namespace qmp {

inline void threshold_tracker::decide_arm(detail::tracker_work& w) {
    auto el = resolve(w.target_text);
    if (!el) return;
    if (el->element.index == 0)
        return fail_head(block_error::registry_full,
                         w.target_text + ": the element has no index (every index was handed out), so it cannot be armed");
    armed_threshold a;
    a.where = target{el->disk, el->element.index};
    a.spec = w.spec;
    a.policy = w.policy;
    a.step = w.step;
    a.node_layer = w.spec.on;
    a.node = w.spec.on == layer::format ? el->element.format_node : el->element.storage_node;
    if (a.node.empty()) return fail_head(threshold_error::no_format_layer, a.where.indexed() + " has no format layer");
    if (a.policy == rearm_policy::step && a.step == 0)
        return fail_head(threshold_error::invalid_policy, "the step policy needs a step above 0");
    std::error_code ec;
    diagnostics why;
    auto v = compute_threshold(a.spec, bound_for(el->element, a.spec), ec, &why);
    if (!v) return fail_head(ec, a.where.indexed() + ": " + why.message);
    a.threshold = *v;
    // One entry per node: a new spec replaces the old one.
    bool old_in_qemu = false;
    auto& list = state_.armed;
    for (auto it = list.begin(); it != list.end(); ++it)
        if (it->node == a.node) {
            old_in_qemu = it->state == armed_threshold::status::armed || it->state == armed_threshold::status::arming;
            list.erase(it);
            break;
        }
    arm_entry(a, mark_of(a.node));
    // Reported at once: a value left in QEMU from before would fire later for nothing.
    if (a.state == armed_threshold::status::fired && old_in_qemu) send(a.node, 0, true);
    list.push_back(std::move(a));
}

inline void threshold_tracker::decide_disarm(detail::tracker_work& w) {
    auto el = resolve(w.target_text);
    if (!el) return;
    auto& list = state_.armed;
    for (auto it = list.begin(); it != list.end();) {
        if (it->where.disk != el->disk || it->where.index != el->element.index) {
            ++it;
            continue;
        }
        dirty_ = true;
        if (it->state == armed_threshold::status::armed || it->state == armed_threshold::status::arming ||
            it->state == armed_threshold::status::disarming) {
            it->state = armed_threshold::status::disarming;  // recorded first, like an arming
            send(it->node, 0, true);
            ++it;
        } else {
            it = list.erase(it);
        }
    }
}

inline void threshold_tracker::decide_extended(detail::tracker_work& w) {
    auto el = resolve(w.target_text);
    if (!el) return;
    // The caller's word for the new size stands until QEMU's sizes are read again.
    if (!el->element.storage_node.empty()) stated_capacity_[el->element.storage_node] = w.capacity;
    for (auto& a : state_.armed) {
        if (a.where.disk != el->disk || a.where.index != el->element.index) continue;
        if (a.spec.capacity) {
            a.spec.capacity = w.capacity;
            dirty_ = true;
        }
        if (a.policy != rearm_policy::on_extend || a.state != armed_threshold::status::fired) continue;
        // The caller's word for the new size, unless the spec computes on the format layer.
        std::optional<std::uint64_t> cap = a.spec.capacity ? a.spec.capacity : std::optional<std::uint64_t>(w.capacity);
        if (a.spec.on == layer::format) cap = capacity_for(el->element, a.spec).first;
        std::error_code ec;
        diagnostics why;
        auto v = compute_threshold(a.spec, cap, ec, &why);
        if (!v) {
            fail_head(ec, a.where.indexed() + ": " + why.message);
            continue;
        }
        a.threshold = *v;
        arm_entry(a, mark_of(a.node));
    }
}

// What QEMU holds for each armed element now, decided from the journal and
// the high-water marks; an audit reads write_threshold too, for what the
// marks cannot tell (a threshold changed or cleared by someone else).
inline void threshold_tracker::decide_resync(bool audit) {
    ++stats_.resyncs;
    if (audit) {
        ++stats_.audits;
        audit_owed_ = false;
    }
    using S = armed_threshold::status;
    auto& list = state_.armed;
    // Gone entries were reported when they went; they are not kept forever.
    const auto before = list.size();
    list.erase(std::remove_if(list.begin(), list.end(), [](const armed_threshold& a) { return a.state == S::gone; }),
               list.end());
    if (list.size() != before) dirty_ = true;
    check_chain();
    // Thresholds read now (an audit's graph, or any fresh one with details).
    const bool verified = graph_details_;
    for (std::size_t i = 0; i < list.size(); ++i) {
        armed_threshold& a = list[i];
        if (a.state == S::gone || a.state == S::fired) continue;
        const auto mark = mark_of(a.node);
        const auto cur_it = current_.find(a.node);
        const std::optional<std::uint64_t> current =
            verified && cur_it != current_.end() ? std::optional<std::uint64_t>(cur_it->second) : std::nullopt;
        if (a.state == S::disarming) {
            if (current && *current == 0) {
                list.erase(list.begin() + static_cast<std::ptrdiff_t>(i--));
                dirty_ = true;
            } else {
                send(a.node, 0, true);
            }
            continue;
        }
        // A mark below the one at arming: the node (or QEMU) was re-created,
        // its threshold went with it. Re-arm; nothing fired.
        if (mark && a.mark_at_arm && *mark < *a.mark_at_arm) {
            a.state = S::arming;
            arm_entry(a, mark);
            continue;
        }
        // The mark passed the threshold: it fired (QEMU fires on the same end offset).
        if (mark && (!a.mark_at_arm || *a.mark_at_arm <= a.threshold) && *mark > a.threshold) {
            fire(a, threshold_event::origin::recovered, *mark - a.threshold);
            continue;
        }
        if (a.state == S::arming) {
            if (current && *current == a.threshold) {
                a.state = S::armed;  // it reached QEMU before the connection went
                dirty_ = true;
            } else if (current && *current != 0) {
                a.threshold = *current;  // someone else re-armed it: follow QEMU
                a.state = S::armed;
                dirty_ = true;
            } else {
                send(a.node, a.threshold, false);  // setting it again is harmless
            }
            continue;
        }
        if (!current) continue;  // not verified: the mark said nothing
        if (*current == 0) {
            // QEMU no longer holds it, yet no write went past it: a restarted
            // QEMU (or node), a discard (which frees space), or someone
            // cleared it. Nothing was allocated past it: re-armed, not reported.
            ++stats_.rearmed_unexplained;
            a.state = S::arming;
            arm_entry(a, mark);
        } else if (*current != a.threshold) {
            a.threshold = *current;  // someone else re-armed it: follow QEMU
            dirty_ = true;
        }
    }
}

// Armed elements that left the chain (committed or streamed away, or now
// another element's node) are reported once as gone.
inline void threshold_tracker::check_chain() {
    for (auto& a : state_.armed) {
        if (a.state == armed_threshold::status::gone || a.state == armed_threshold::status::disarming) continue;
        std::error_code ec;
        auto loc = resolver_.locate(a.node, ec);
        if (loc && loc->where.element.index == a.where.index) continue;
        a.state = armed_threshold::status::gone;
        dirty_ = true;
        threshold_event e = make_event(threshold_event::origin::gone, a, 0);
        e.active = false;
        pending_reports_.push_back(std::move(e));
    }
}

inline void threshold_tracker::decide_report() {
    for (const auto& d : resolver_.disks())
        for (const auto* chain : {&d.elements, &d.mirror})
            for (const auto& el : *chain) {
                threshold_report_row r;
                r.disk = d.name;
                r.element = el;
                r.element.capacity = storage_capacity(el);
                r.active = &el == &d.elements.front();
                threshold_spec spec = threshold_spec::margin(1);
                for (const auto& a : state_.armed)
                    if (a.where.disk == d.name && a.where.index == el.index) {
                        r.armed = a;
                        spec = a.spec;
                    }
                std::tie(r.capacity, r.capacity_from) = capacity_for(el, spec);
                head_rows_.push_back(std::move(r));
            }
}

// A live BLOCK_WRITE_THRESHOLD. Returns false to ask for a fresher graph
// first (a node the graph does not know: the chain changed under us).
inline bool threshold_tracker::decide_live(detail::tracker_work& w) {
    const auto& ev = w.ev;
    std::error_code ec;
    auto loc = resolver_.locate(ev.node_name, ec);
    if (!loc && !w.retried_graph) {
        w.retried_graph = true;
        w.epoch = epoch_now();
        return false;
    }
    armed_threshold* a = find_entry(ev.node_name);
    using S = armed_threshold::status;
    if (a && a->state == S::fired && a->threshold == ev.write_threshold) return true;  // a resync reported it already
    if (a && (a->state == S::armed || a->state == S::arming)) {
        // One-shot: whatever was armed on the node is disarmed now.
        if (a->threshold != ev.write_threshold) a->threshold = ev.write_threshold;
        fire(*a, threshold_event::origin::live, ev.amount_exceeded, w.time);
        return true;
    }
    threshold_event e;
    e.how = threshold_event::origin::live;
    e.node = ev.node_name;
    e.threshold = ev.write_threshold;
    e.amount_exceeded = ev.amount_exceeded;
    e.time = w.time;
    if (loc && loc->where.element.index != 0) {  // an element without an index has no name to report
        e.resolved = true;
        e.where = loc->where.canonical();
        e.active = loc->where.active;
        e.node_layer = loc->node_layer;
    }
    pending_reports_.push_back(std::move(e));
    return true;
}

}  // namespace qmp
