// threshold_tracker's bodies: the work queue and its phases, then the
// decisions one piece of work makes.
#pragma once

#include <qmp/threshold/tracker.hpp>

#include <algorithm>

namespace qmp {

// ---- the work queue --------------------------------------------------------------

inline detail::tracker_work threshold_tracker::make(detail::work_kind k, std::string_view target) const {
    detail::tracker_work w;
    w.kind = k;
    w.target_text = std::string(target);
    w.epoch = epoch_now();
    return w;
}

// A graph is fresh for work when QEMU answered its query after the work
// began. The reply to a query already sent was possibly answered before:
// it does not count (a job may have filled a volume in between, and an arm
// decided on that graph would miss it).
inline std::uint64_t threshold_tracker::epoch_now() const {
    return graph_epoch_ + (phase_ == phase::graph && !query_in_out_ ? 1 : 0);
}

inline tracker_request threshold_tracker::enqueue(detail::tracker_work w) {
    // Requests get an id; events and chain checks are internal work.
    tracker_request id = 0;
    if (w.kind == detail::work_kind::arm || w.kind == detail::work_kind::disarm ||
        w.kind == detail::work_kind::extended || w.kind == detail::work_kind::report ||
        w.kind == detail::work_kind::resync)
        id = w.request = next_request_++;
    queue_.push_back(std::move(w));
    pump();
    return id;
}

// Resyncs coalesce: one waiting is enough, whoever asked (an audit asked
// for makes it an audit); and a running one whose graph query has not been
// handed out yet covers what happened so far.
inline void threshold_tracker::schedule_resync(bool audit) {
    graph_valid_ = false;
    if (phase_ == phase::graph && query_in_out_ && queue_.front().kind == detail::work_kind::resync &&
        (queue_.front().audit || !audit))
        return;
    for (std::size_t i = (phase_ == phase::idle ? 0 : 1); i < queue_.size(); ++i) {
        auto& q = queue_[i];
        if (q.kind != detail::work_kind::resync || (audit && !q.audit && q.request)) continue;
        q.audit = q.audit || audit;  // one of its own becomes an audit
        return;
    }
    detail::tracker_work w = make(detail::work_kind::resync, {});
    w.audit = audit;
    queue_.push_back(std::move(w));
    pump();
}

// Something QEMU should hold for us (an audit has something to check).
inline bool threshold_tracker::holds_any() const {
    for (const auto& a : state_.armed)
        if (a.state != armed_threshold::status::gone && a.state != armed_threshold::status::fired) return true;
    return false;
}

// QEMU restarted: every threshold it held is gone; the next resync re-arms.
inline void threshold_tracker::restarted() {
    ++stats_.restarts;
    auto& v = state_.armed;
    v.erase(std::remove_if(v.begin(), v.end(), [](const armed_threshold& a) { return a.state == armed_threshold::status::disarming; }),
            v.end());
    for (auto& a : v)
        if (a.state == armed_threshold::status::armed || a.state == armed_threshold::status::arming) {
            a.state = armed_threshold::status::arming;
            a.mark_at_arm.reset();
        }
    dirty_ = true;
}

// What each kind of work needs of the graph: the one place that says so.
inline detail::graph_need threshold_tracker::need_of(const detail::tracker_work& w) const {
    using K = detail::work_kind;
    using N = detail::graph_need;
    switch (w.kind) {
    case K::arm: {
        // A share or margin computes against a size; the format layer's node needs the details' driver.
        const bool share = w.spec.type != threshold_spec::kind::bytes && !w.spec.capacity;
        return share || w.spec.on == layer::format ? N::fresh_known : N::fresh;
    }
    case K::disarm: return N::any;  // the target is resolved on the graph at hand
    case K::extended: return N::fresh_known;  // the caller says the new size
    case K::resync: return w.audit ? N::fresh_details : N::fresh;
    case K::report: return w.fresh_sizes ? N::fresh_details : N::fresh_known;
    case K::live_event: return w.retried_graph ? N::fresh : N::any;
    case K::chain_check: return N::fresh;
    }
    return N::fresh;
}

inline bool threshold_tracker::graph_ready(const detail::tracker_work& w) const {
    using N = detail::graph_need;
    const N need = need_of(w);
    if (!graph_valid_) return false;
    if (need != N::any && graph_epoch_ <= w.epoch) return false;
    if (need == N::fresh_details) return graph_details_;
    return need != N::fresh_known || graph_known_;
}

inline void threshold_tracker::pump() {
    while (phase_ == phase::idle && !queue_.empty()) {
        detail::tracker_work& w = queue_.front();
        if (!graph_ready(w)) {
            const detail::graph_need need = need_of(w);
            const details_need details = need == detail::graph_need::fresh_details ? details_need::fresh
                                         : need == detail::graph_need::fresh_known ? details_need::known
                                                                                    : details_need::none;
            out_.push_back(tracker_actions::query_graph{details, w.request != 0, w.kind == detail::work_kind::resync});
            query_in_out_ = true;
            ++stats_.graph_queries;
            phase_ = phase::graph;
            return;
        }
        decide_head();
    }
}

inline void threshold_tracker::decide_head() {
    detail::tracker_work& w = queue_.front();
    before_ = state_.armed;
    head_error_.clear();
    head_diag_ = {};
    head_rows_.clear();
    deferred_ = false;
    using K = detail::work_kind;
    switch (w.kind) {
    case K::arm: decide_arm(w); break;
    case K::disarm: decide_disarm(w); break;
    case K::extended: decide_extended(w); break;
    case K::resync: decide_resync(w.audit); break;
    case K::report: decide_report(); break;
    case K::live_event: deferred_ = !decide_live(w); break;
    case K::chain_check: check_chain(); break;
    }
    if (deferred_) return;  // pump() asks for the graph it wants
    if (dirty_) {
        dirty_ = false;
        out_.push_back(tracker_actions::save_state{});
        phase_ = phase::decide_save;
        return;
    }
    emit_decisions();
}

inline void threshold_tracker::emit_decisions() {
    const tracker_request by = queue_.empty() ? 0 : queue_.front().request;
    for (auto& e : pending_reports_) out_.push_back(tracker_actions::report{std::move(e), by});
    pending_reports_.clear();
    for (auto& c : pending_sends_) {
        out_.push_back(tracker_actions::set_threshold{c.id, c.node, c.value});
        sent_.emplace(c.id, std::move(c));
    }
    pending_sends_.clear();
    if (!sent_.empty()) {
        phase_ = phase::sent;
        return;
    }
    finalize();
}

inline void threshold_tracker::finalize() {
    if (dirty_) {
        dirty_ = false;
        out_.push_back(tracker_actions::save_state{});
        phase_ = phase::final_save;
        return;
    }
    complete_head();
}

inline void threshold_tracker::finish_head(std::error_code ec, diagnostics diag) {
    head_error_ = ec;
    head_diag_ = std::move(diag);
    complete_head();
}

inline void threshold_tracker::complete_head() {
    phase_ = phase::idle;
    if (queue_.empty()) return;
    detail::tracker_work w = std::move(queue_.front());
    queue_.pop_front();
    if (w.kind == detail::work_kind::resync) out_.push_back(tracker_actions::resync_done{w.audit, w.request});
    if (w.request)
        out_.push_back(tracker_actions::request_done{w.request, head_error_, head_diag_, std::move(head_rows_)});
    head_rows_.clear();
    pump();
}

inline void threshold_tracker::fail_head(std::error_code ec, std::string message) {
    head_error_ = ec;
    head_diag_ = diagnostics{{}, std::move(message)};
}

inline void threshold_tracker::settle(const detail::sent_command& c, std::error_code ec, const diagnostics& diag) {
    armed_threshold* a = find_entry(c.node);
    if (c.disarm) {
        // Disarmed, or the node is gone: either way nothing is armed there.
        if (!ec || ec == server_error::generic_error || ec == server_error::device_not_found) {
            if (a && a->state == armed_threshold::status::disarming) {
                state_.armed.erase(state_.armed.begin() + (a - state_.armed.data()));
                dirty_ = true;
            }
        } else if (queue_.front().request) {
            head_error_ = ec;
            head_diag_ = diag;
        }
        return;
    }
    if (!ec) {
        if (a && a->state == armed_threshold::status::arming && a->threshold == c.value) {
            a->state = armed_threshold::status::armed;
            dirty_ = true;
        }
        return;
    }
    const detail::tracker_work& w = queue_.front();
    if (w.kind == detail::work_kind::arm && w.request) {
        head_error_ = ec;
        head_diag_ = diag;
        // Lost on the way (the connection went): QEMU may have it. The
        // intent stays, and the next resync settles it.
        if (ec.category() != server_category()) return;
        // Refused: what was there before comes back.
        auto& v = state_.armed;
        v.erase(std::remove_if(v.begin(), v.end(), [&](const armed_threshold& x) { return x.node == c.node; }), v.end());
        for (const auto& old : before_)
            if (old.node == c.node) v.push_back(old);
        dirty_ = true;
    }
    // An internal re-arm that failed stays `arming`: the next resync retries it.
}

// ---- helpers ----------------------------------------------------------------------------

inline armed_threshold* threshold_tracker::find_entry(const std::string& node) {
    for (auto& a : state_.armed)
        if (a.node == node) return &a;
    return nullptr;
}

inline std::optional<std::uint64_t> threshold_tracker::mark_of(const std::string& node) const {
    auto it = marks_.find(node);
    if (it == marks_.end()) return std::nullopt;
    return it->second;
}

inline std::optional<resolved_element> threshold_tracker::resolve(const std::string& text) {
    std::error_code ec;
    diagnostics why;
    auto el = resolver_.resolve(text, ec, &why);
    if (!el) fail_head(ec, std::move(why.message));
    return el;
}

// Where a share or margin computes against: a stated capacity; else the
// storage's fixed size (block device, size-limited raw node, network
// block device); else, for storage that grows with the image (a file),
// the element's virtual size.
inline std::pair<std::optional<std::uint64_t>, capacity_source> threshold_tracker::capacity_for(
    const chain_element& el, const threshold_spec& spec) const {
    if (spec.capacity) return {spec.capacity, capacity_source::stated};
    if (spec.on == layer::format) return {el.virtual_size, capacity_source::virtual_size};
    const std::string drv = el.storage_driver.value_or("");
    const bool grows = drv == "file" || drv == "nfs" || drv == "gluster" || drv == "ssh";
    if (auto cap = storage_capacity(el); !grows && cap) return {cap, capacity_source::storage};
    return {el.virtual_size, el.virtual_size ? capacity_source::virtual_size : capacity_source::none};
}

// The storage's size: what extended() was last told, else QEMU's (as last read).
inline std::optional<std::uint64_t> threshold_tracker::storage_capacity(const chain_element& el) const {
    auto it = stated_capacity_.find(el.storage_node);
    return it != stated_capacity_.end() ? std::optional<std::uint64_t>(it->second) : el.capacity;
}

// The capacity a spec computes against. A byte offset on storage that grows
// with the image is not bounded by the virtual size (host offsets include
// metadata), so there it has none.
inline std::optional<std::uint64_t> threshold_tracker::bound_for(const chain_element& el,
                                                                 const threshold_spec& spec) const {
    auto [cap, src] = capacity_for(el, spec);
    if (spec.type == threshold_spec::kind::bytes && spec.on == layer::storage && src == capacity_source::virtual_size)
        return std::nullopt;
    return cap;
}

inline void threshold_tracker::send(const std::string& node, std::uint64_t value, bool disarm) {
    pending_sends_.push_back({next_command_++, node, value, disarm});
}

// Arms `a` at a.threshold, or reports at once when the allocation is past it
// (QEMU would only fire on the next write beyond it).
inline void threshold_tracker::arm_entry(armed_threshold& a, std::optional<std::uint64_t> mark) {
    a.mark_at_arm = mark;
    dirty_ = true;
    if (mark && *mark > a.threshold) {
        a.state = armed_threshold::status::fired;
        pending_reports_.push_back(make_event(threshold_event::origin::immediate, a, *mark - a.threshold));
        return;
    }
    a.state = armed_threshold::status::arming;
    send(a.node, a.threshold, false);
}

inline threshold_event threshold_tracker::make_event(threshold_event::origin how, const armed_threshold& a,
                                                     std::uint64_t exceeded) const {
    threshold_event e = event_of(a, how, exceeded);
    std::error_code ec;
    if (auto loc = resolver_.locate(a.node, ec)) e.active = loc->where.active;
    return e;
}

inline void threshold_tracker::fire(armed_threshold& a, threshold_event::origin how, std::uint64_t exceeded,
                                    timestamp ts) {
    a.state = armed_threshold::status::fired;
    dirty_ = true;
    threshold_event e = make_event(how, a, exceeded);
    e.time = ts;
    pending_reports_.push_back(std::move(e));
    after_fire(a, a.threshold + exceeded);
}

// The step policy re-arms at once, a step further (never past the capacity:
// then the caller must grow the storage).
inline void threshold_tracker::after_fire(armed_threshold& a, std::optional<std::uint64_t> end) {
    if (a.policy != rearm_policy::step || a.step == 0) return;
    std::error_code ec;
    auto el = resolver_.resolve(a.where, ec);
    if (!el) return;
    auto cap = bound_for(el->element, a.spec);
    if (a.threshold > UINT64_MAX - a.step) return;
    const std::uint64_t next = a.threshold + a.step;
    if (cap && next > *cap) return;
    a.threshold = next;
    auto mark = mark_of(a.node);
    if (end && (!mark || *end > *mark)) mark = end;
    arm_entry(a, mark);
}

}  // namespace qmp

#include <qmp/threshold/impl/tracker_decide.hpp>
