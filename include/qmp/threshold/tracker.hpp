// The threshold tracker: every decision about write thresholds, and no I/O.
// Graph snapshots, events, loss markers, connections and requests go in;
// tracker_actions come out (query the graph, send a threshold, save the
// state, report an event, finish a request), in the order its runner must
// carry them out. The asynchronous service and the blocking manager are
// drivers of it; its tests feed it recorded replies, byte for byte.
//
// Rules it keeps:
// - An intent is saved before QEMU hears of it, a firing before the
//   application does (save_state is a barrier); a crash in between is
//   settled by the next resync, never reported twice.
// - A live event costs no graph query while the graph is valid; the graph
//   is refreshed only when the chain may have changed (a job ended, a node
//   it does not know, a loss marker, a (re)connection).
// - A restarted QEMU (another instance, or high-water marks that went
//   down) lost its thresholds: they are re-armed, not reported as fired.
//   So is any threshold QEMU no longer holds while no write went past it
//   (whatever the transport can tell about instances): only allocation
//   past a threshold is reported.
// - Resyncs coalesce: one runs at a time, and markers arriving during it
//   make at most one more.
#pragma once

#include <qmp/block/graph.hpp>
#include <qmp/block/resolver.hpp>
#include <qmp/error.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/qapi/events.hpp>
#include <qmp/threshold/actions.hpp>
#include <qmp/threshold/detail/tracker_work.hpp>
#include <qmp/threshold/spec.hpp>
#include <qmp/threshold/types.hpp>

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qmp {

struct tracker_options {
    disk_catalog catalog;
};

class threshold_tracker {
public:
    explicit threshold_tracker(tracker_options o = {}) : opts_(std::move(o)), resolver_(opts_.catalog) {}

    // ---- requests: each completes with a request_done action -------------------

    /// Arms `target_text` (`vda`, `vda[N]`) with `spec`. An allocation
    /// already past the threshold is reported at once (origin immediate).
    tracker_request arm(std::string_view target_text, threshold_spec spec, rearm_policy policy = rearm_policy::none,
                        std::uint64_t step = 0) {
        detail::tracker_work w = make(detail::work_kind::arm, target_text);
        w.spec = spec;
        w.policy = policy;
        w.step = step;
        return enqueue(std::move(w));
    }
    /// Disarms what was armed on the element (both layers).
    tracker_request disarm(std::string_view target_text) { return enqueue(make(detail::work_kind::disarm, target_text)); }
    /// The storage of `target_text` grew to `new_capacity` bytes: fired
    /// thresholds with the on_extend policy are re-armed.
    tracker_request extended(std::string_view target_text, std::uint64_t new_capacity) {
        detail::tracker_work w = make(detail::work_kind::extended, target_text);
        w.capacity = new_capacity;
        return enqueue(std::move(w));
    }
    /// Checks every armed element against QEMU now, from the journal and
    /// the high-water marks (query-blockstats; cheap): reports what fired
    /// (recovered) and what left the chain (gone), re-sends intents whose
    /// outcome was lost. It cannot see a threshold someone else changed or
    /// cleared: that takes an audit.
    tracker_request resync() { return enqueue(make(detail::work_kind::resync, {})); }
    /// A resync that also reads every node's write_threshold back from QEMU
    /// (query-named-block-nodes: QEMU builds it in its main loop, 650 ms on
    /// a 128-deep chain with relative backing names, stalling the guest's
    /// devices meanwhile): follows a threshold another writer changed, and
    /// re-arms one that was cleared with no write past it.
    tracker_request audit() {
        detail::tracker_work w = make(detail::work_kind::resync, {});
        w.audit = true;
        return enqueue(std::move(w));
    }
    /// Every chain element with capacity, allocation and what is armed.
    /// Sizes and filenames are kept from the last time QEMU described a
    /// node (they cost QEMU's expensive query only for elements not seen
    /// before), and thresholds as QEMU holds them are not read;
    /// `fresh_sizes` reads every node's details now (after growing storage).
    tracker_request report(bool fresh_sizes = false) {
        detail::tracker_work w = make(detail::work_kind::report, {});
        w.fresh_sizes = fresh_sizes;
        return enqueue(std::move(w));
    }

    // ---- what happened --------------------------------------------------------------

    /// A session began. `instance` identifies the QEMU process when the
    /// transport can tell (see basic_client::peer_instance); a different
    /// one than the state recorded means QEMU restarted and its thresholds
    /// are gone (they are re-armed). A resync follows unless `resync` is
    /// false: a cheap one when the state vouches for this QEMU (the same
    /// instance it recorded), an audit when it cannot (an instance the
    /// transport cannot tell, or a state that recorded none) and something
    /// is armed.
    void on_connected(std::optional<std::string> instance, bool resync = true) {
        connected_ = true;
        graph_valid_ = false;
        // The same instance: the journal vouches; another: QEMU restarted,
        // everything is re-armed, nothing of ours is left to check.
        const bool vouched = instance && state_.instance;
        if (vouched && *instance != *state_.instance) restarted();
        if (instance && instance != state_.instance) {
            state_.instance = std::move(instance);
            dirty_ = true;
        }
        audit_owed_ = !vouched && holds_any();
        if (resync) schedule_resync(audit_owed_);
    }

    /// The last on_connected() could not vouch for this QEMU (see there)
    /// and no audit has run since: an owner that resyncs by request after
    /// connecting asks for audit() instead.
    bool audit_owed() const noexcept { return audit_owed_; }

    /// The owner's audit interval passed: one audit of the tracker's own
    /// (coalesced with any waiting; at most one queued at a time).
    void audit_due() {
        if (connected_) schedule_resync(true);
    }

    // ---- which events matter, read typed (the one place that says so) ----------------

    /// What an event is to a tracker.
    enum class event_role {
        none,           ///< nothing it acts on
        threshold,      ///< BLOCK_WRITE_THRESHOLD (decoded by on_event)
        chain_changed,  ///< a block job ended, a device went: the chain may have changed
        unreadable,     ///< one it needs whose data does not decode: said, then a resync
    };

    /// Reads `ev` typed and says what it is to a tracker. Never throws: a
    /// member of the wrong type is `unreadable`, with the reason in `why`.
    static event_role role_of(const event& ev, diagnostics* why = nullptr) {
        if (ev.name == block_write_threshold_event::name) return event_role::threshold;
        if (ev.name == block_job_completed_event::name || ev.name == block_job_cancelled_event::name ||
            ev.name == device_deleted_event::name)
            return event_role::chain_changed;  // whatever the data says
        if (ev.name == job_status_change_event::name) {
            std::error_code ec;
            auto t = event_as<job_status_change_event>(ev, ec, why);
            if (!t) return event_role::unreadable;
            return t->status == "concluded" ? event_role::chain_changed : event_role::none;  // the other states are noise
        }
        return event_role::none;
    }

    /// The subscription a tracker's owner needs: the events role_of()
    /// does not call `none` (the unreadable ones included, so that they
    /// lead to a resync instead of vanishing).
    static event_filter interest() {
        event_filter f;
        f.names = {std::string(block_write_threshold_event::name), std::string(block_job_completed_event::name),
                   std::string(block_job_cancelled_event::name), std::string(job_status_change_event::name),
                   std::string(device_deleted_event::name)};
        f.predicate = [](const event& ev) { return role_of(ev) != event_role::none; };
        return f;
    }

    /// Any event of the session; those role_of() calls `none` are ignored.
    void on_event(const event& ev) {
        if (ev.lost) return on_events_lost(ev.lost);
        diagnostics why;
        switch (role_of(ev, &why)) {
        case event_role::none: return;
        case event_role::chain_changed: return on_chain_may_have_changed();
        case event_role::threshold: {
            std::error_code ec;
            if (auto t = event_as<block_write_threshold_event>(ev, ec, &why)) return on_threshold_event(*t, ev.time);
            break;
        }
        case event_role::unreadable: break;
        }
        // An event we needed and cannot read may hide a firing: said, then a resync.
        ++stats_.malformed_events;
        out_.push_back(tracker_actions::decode_error{ev.name, std::move(why)});
        schedule_resync();
    }

    void on_threshold_event(const block_write_threshold_event& ev, timestamp ts) {
        detail::tracker_work w = make(detail::work_kind::live_event, {});
        w.ev = ev;
        w.time = ts;
        enqueue(std::move(w));
    }

    /// The event queue overflowed: something may have been missed.
    void on_events_lost(std::uint64_t) { schedule_resync(); }

    /// A block job ended, a node was deleted: refresh the graph before the
    /// next decision, and report armed elements that left the chain.
    void on_chain_may_have_changed() {
        graph_valid_ = false;
        for (const auto& w : queue_)
            if (w.kind == detail::work_kind::chain_check && &w != &queue_.front()) return;
        enqueue(make(detail::work_kind::chain_check, {}));
    }

    // ---- answers to actions --------------------------------------------------------------

    void on_graph(const block_graph& g) {
        const index_registry before = state_.registry;
        resolver_.update(g, state_.registry);
        if (state_.registry != before) dirty_ = true;  // new numbers are kept
        marks_.clear();
        current_.clear();
        for (const auto& n : g.nodes()) {
            if (n.kind != node_kind::driver || n.name.empty()) continue;
            if (n.wr_highest_offset) marks_[n.name] = *n.wr_highest_offset;
            if (n.details && n.details->write_threshold) current_[n.name] = *n.details->write_threshold;
        }
        graph_valid_ = true;
        graph_details_ = g.has_details();
        graph_known_ = g.details_known();
        // Sizes read now supersede what callers stated; a node that went takes its own along.
        for (auto it = stated_capacity_.begin(); it != stated_capacity_.end();)
            it = graph_details_ || !g.find(it->first) ? stated_capacity_.erase(it) : std::next(it);
        ++graph_epoch_;
        if (phase_ == phase::graph) phase_ = phase::idle;
        pump();
    }

    /// The session ended: a resync of the tracker's own that cannot run
    /// now waits for on_connected(), which schedules one anyway.
    void on_disconnected() {
        connected_ = false;
        graph_valid_ = false;
    }

    void on_graph_failed(std::error_code ec, diagnostics diag = {}) {
        if (phase_ != phase::graph) return;
        phase_ = phase::idle;
        detail::tracker_work& w = queue_.front();
        if (w.kind == detail::work_kind::live_event) {
            // No event is lost for want of a graph: it is decided on the
            // one at hand (a node that is not in it is reported unresolved).
            w.retried_graph = true;
            return decide_head();
        }
        const bool own_resync = w.kind == detail::work_kind::resync && !w.request;
        finish_head(ec, std::move(diag));
        // A resync of its own (after a loss, a reconnection) is owed until
        // one ran: it is tried again while connected (the owner spaces
        // graph queries out).
        if (own_resync && connected_) schedule_resync();
    }

    void on_command_result(std::uint64_t command, std::error_code ec, const diagnostics& diag = {}) {
        auto it = sent_.find(command);
        if (it == sent_.end()) return;
        detail::sent_command c = std::move(it->second);
        sent_.erase(it);
        settle(c, ec, diag);
        if (phase_ == phase::sent && sent_.empty()) finalize();
    }

    void on_saved(std::error_code ec = {}, diagnostics diag = {}) {
        if (phase_ == phase::decide_save) {
            phase_ = phase::idle;
            if (ec && queue_.front().request) {
                // A request whose intent cannot be recorded does not reach QEMU.
                state_.armed = std::move(before_);
                pending_reports_.clear();
                pending_sends_.clear();
                return finish_head(ec, std::move(diag));
            }
            return emit_decisions();
        }
        if (phase_ == phase::final_save) {
            phase_ = phase::idle;
            complete_head();
        }
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// The next thing to do, or nothing while waiting for an answer.
    std::optional<tracker_action> next_action() {
        if (out_.empty()) return std::nullopt;
        tracker_action a = std::move(out_.front());
        out_.pop_front();
        if (std::holds_alternative<tracker_actions::query_graph>(a)) query_in_out_ = false;
        return a;
    }

    /// True while requests or internal work are pending.
    bool busy() const noexcept { return !queue_.empty() || !out_.empty(); }

    // ---- state ------------------------------------------------------------------------------

    const threshold_state& state() const noexcept { return state_; }
    /// Replaces the state (a loaded file). Thresholds it lists are checked
    /// against QEMU by the resync that follows the next on_connected().
    void load(threshold_state s) {
        state_ = std::move(s);
        dirty_ = false;
    }
    /// Takes in what another writer of the state's file changed: `theirs`
    /// is the file now, `base` what this tracker's state was when it last
    /// agreed with the file (merge_states: each side keeps what it changed).
    void take_from_disk(const threshold_state& base, const threshold_state& theirs) {
        if (theirs == base) return;
        state_ = merge_states(base, state_, theirs);
    }
    const std::vector<armed_threshold>& armed() const noexcept { return state_.armed; }
    const resolver& chains() const noexcept { return resolver_; }
    /// Pieces of work waiting (requests, events, resyncs): what an owner
    /// watches to stop taking events while the tracker is behind.
    std::size_t backlog() const noexcept { return queue_.size(); }

    struct counters {
        std::uint64_t resyncs = 0;           ///< resyncs run (audits included)
        std::uint64_t audits = 0;            ///< of which audits (write_threshold read back)
        std::uint64_t graph_queries = 0;     ///< query_graph actions emitted
        std::uint64_t malformed_events = 0;  ///< needed events that could not be read (each led to a resync)
        std::uint64_t restarts = 0;          ///< QEMU restarts noticed (another instance)
        std::uint64_t rearmed_unexplained = 0;  ///< gone from QEMU with no write past them: re-armed
    };
    const counters& stats() const noexcept { return stats_; }

private:
    enum class phase { idle, graph, decide_save, sent, final_save };

    detail::tracker_work make(detail::work_kind k, std::string_view target) const;
    std::uint64_t epoch_now() const;
    tracker_request enqueue(detail::tracker_work w);
    void schedule_resync(bool audit = false);
    bool holds_any() const;
    void restarted();
    void pump();
    detail::graph_need need_of(const detail::tracker_work& w) const;
    bool graph_ready(const detail::tracker_work& w) const;
    void decide_head();
    void emit_decisions();
    void finalize();
    void finish_head(std::error_code ec, diagnostics diag);
    void complete_head();
    void settle(const detail::sent_command& c, std::error_code ec, const diagnostics& diag);

    void decide_arm(detail::tracker_work& w);
    void decide_disarm(detail::tracker_work& w);
    void decide_extended(detail::tracker_work& w);
    void decide_resync(bool audit);
    void decide_report();
    bool decide_live(detail::tracker_work& w);
    void check_chain();

    std::optional<resolved_element> resolve(const std::string& text);
    std::pair<std::optional<std::uint64_t>, capacity_source> capacity_for(const chain_element& el,
                                                                          const threshold_spec& spec) const;
    std::optional<std::uint64_t> storage_capacity(const chain_element& el) const;
    std::optional<std::uint64_t> bound_for(const chain_element& el, const threshold_spec& spec) const;
    void arm_entry(armed_threshold& a, std::optional<std::uint64_t> mark);
    void send(const std::string& node, std::uint64_t value, bool disarm);
    void fire(armed_threshold& a, threshold_event::origin how, std::uint64_t exceeded, timestamp ts = {});
    void after_fire(armed_threshold& a, std::optional<std::uint64_t> end);
    threshold_event make_event(threshold_event::origin how, const armed_threshold& a, std::uint64_t exceeded) const;
    armed_threshold* find_entry(const std::string& node);
    std::optional<std::uint64_t> mark_of(const std::string& node) const;
    void fail_head(std::error_code ec, std::string message);

    tracker_options opts_;
    resolver resolver_;
    threshold_state state_;
    std::map<std::string, std::uint64_t> marks_;    // node -> wr_highest_offset
    std::map<std::string, std::uint64_t> current_;  // node -> write_threshold (graphs with details)
    // storage node -> the size extended() was told, until QEMU's sizes are read again
    std::map<std::string, std::uint64_t> stated_capacity_;
    bool graph_valid_ = false;
    bool graph_details_ = false;  // details read now (write_threshold current)
    bool graph_known_ = false;    // every node's details known (read now or kept)
    bool connected_ = false;
    bool audit_owed_ = false;
    std::uint64_t graph_epoch_ = 0;
    std::deque<detail::tracker_work> queue_;
    std::deque<tracker_action> out_;
    phase phase_ = phase::idle;
    bool dirty_ = false;
    bool deferred_ = false;      // the head asked for a fresher graph before it can decide
    bool query_in_out_ = false;  // a query_graph waits in out_, not yet handed to the runner
    std::vector<armed_threshold> before_;  // the entries before the head's decisions (undone if unsaved)
    std::vector<threshold_event> pending_reports_;
    std::vector<detail::sent_command> pending_sends_;
    std::map<std::uint64_t, detail::sent_command> sent_;
    std::uint64_t next_command_ = 1;
    tracker_request next_request_ = 1;
    std::error_code head_error_;
    diagnostics head_diag_;
    std::vector<threshold_report_row> head_rows_;
    counters stats_;
};

}  // namespace qmp

#include <qmp/threshold/impl/tracker.hpp>
