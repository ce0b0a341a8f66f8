// The blocking threshold manager, for scripts and the CLI: arm a write
// threshold on `vda` or `vda[N]` in bytes, percent, ppm or as a margin
// below capacity; get BLOCK_WRITE_THRESHOLD back as `vda[N]`; re-arm by
// policy; never miss an event: after a reconnect, an "events lost" marker or
// a restart from saved state, a resync reports what fired while nobody
// listened. Every decision is the threshold_tracker's; this drives it over a
// sync client, one call at a time. Not thread-safe.
// threshold_manager speaks over a unix socket, tcp_threshold_manager over
// TCP; both are basic_threshold_manager<Stream>.
#pragma once

#include <qmp/block/graph_query.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/tracker.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace qmp {

struct threshold_manager_options {
    disk_catalog catalog;
    client_options client;
    /// See tracker_options::verify_uncrossed.
    bool verify_uncrossed = true;
    /// Resync when a session begins (what fired while nobody listened is
    /// reported, and marked reported). Off for a one-shot tool that arms and
    /// leaves: the watcher, not it, should report those.
    bool resync_on_connect = true;
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    /// Resyncs caused by lost events are at most this often: a sustained
    /// flood of events costs one resync per interval, not one per marker.
    std::chrono::milliseconds min_resync_interval{1000};
    /// Persists the state; called before any threshold reaches QEMU and
    /// before any firing is reported (see tracker_actions::save_state). An
    /// error stops a request before QEMU hears of it.
    std::function<std::error_code(const threshold_state&, diagnostics&)> journal;
    /// Told when the connection is lost (with the reason) and when it is back.
    std::function<void(bool connected, std::error_code why)> on_connection;
    /// Told when an event the manager needs could not be read (a resync follows).
    std::function<void(const std::string& event, const diagnostics& why)> on_decode_error;
};

template <class Stream>
class basic_threshold_manager {
public:
    using client_type = basic_sync_client<Stream>;
    using endpoint_type = typename transport<Stream>::endpoint_type;

    /// `stream_args` go to the client's stream after its executor (for a
    /// TLS stream: the asio::ssl::context).
    template <class... StreamArgs>
    explicit basic_threshold_manager(endpoint_type ep, threshold_manager_options opts = {}, StreamArgs&&... stream_args)
        : ep_(std::move(ep)),
          opts_(std::move(opts)),
          client_(opts_.client, false, std::forward<StreamArgs>(stream_args)...),
          tracker_(tracker_options{opts_.catalog, opts_.verify_uncrossed}) {}

    /// Connects (throws qmp_error on failure) and resyncs: events that fired
    /// while this manager was not running (state loaded) come back.
    std::vector<threshold_event> connect() {
        client_.connect(ep_);
        connected_ = true;
        tracker_.on_connected(client_.peer_instance(), opts_.resync_on_connect);
        return run();
    }

    /// Arms `target_text` (`vda`, `vda[N]`). Returns the events this causes
    /// at once (an `immediate` one when the allocation is already past).
    std::vector<threshold_event> arm(std::string_view target_text, threshold_spec spec,
                                     rearm_policy policy = rearm_policy::none, std::uint64_t step = 0) {
        return run(tracker_.arm(target_text, spec, policy, step));
    }
    /// Disarms what the manager armed on `target_text` (both layers).
    void disarm(std::string_view target_text) { run(tracker_.disarm(target_text)); }
    /// The caller grew the storage of `target_text` to `new_capacity`
    /// bytes: fired thresholds with the on_extend policy are re-armed.
    std::vector<threshold_event> extended(std::string_view target_text, std::uint64_t new_capacity) {
        return run(tracker_.extended(target_text, new_capacity));
    }
    /// Checks every armed element against QEMU now; reports what fired
    /// unseen (recovered) and what left the chain (gone).
    std::vector<threshold_event> resync() { return run(tracker_.resync()); }
    /// Every disk and chain element with capacity, allocation, current
    /// thresholds per layer and what the manager armed there.
    std::vector<threshold_report_row> report() {
        run(tracker_.report());
        return std::move(rows_);
    }

    /// Waits up to `timeout` for threshold events. Reconnects when the
    /// connection is lost (then resyncs), resyncs after an overflow marker
    /// or an unreadable threshold event; resyncs coalesce.
    std::vector<threshold_event> poll(std::chrono::milliseconds timeout) {
        std::vector<threshold_event> out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return out;
            if (!connected_) {
                if (!reconnect(deadline)) return out;
                append(out, run());
                if (!out.empty()) return out;
                continue;
            }
            std::error_code ec;
            if (loss_pending_) left = std::min(left, loss_wait());
            event ev = client_.receive_event(left, ec);
            if (ec == error::timeout) {
                if (release_loss()) {
                    append(out, run());
                    if (!out.empty()) return out;
                }
                continue;
            }
            if (ec) {
                lost_connection(ec);
                continue;
            }
            take(ev);
            // Whatever else has arrived goes in before the tracker decides,
            // so a burst of markers makes one resync.
            client_.poll();
            while (client_.queued_events() > 0) {
                event more = client_.receive_event(std::chrono::milliseconds(1), ec);
                if (ec) break;
                take(more);
            }
            release_loss();
            append(out, run());
            if (!out.empty()) return out;  // hand over as soon as there is something
        }
    }

    bool connected() const noexcept { return connected_; }
    /// "Events lost" markers received (each overflow of the event queue);
    /// they cost at most one resync per min_resync_interval.
    std::uint64_t loss_markers() const noexcept { return loss_markers_; }
    /// Why the connection was last lost (or could not be made again).
    std::error_code last_error() const noexcept { return last_error_; }

    const std::vector<armed_threshold>& armed() const noexcept { return tracker_.armed(); }
    const resolver& chains() const noexcept { return tracker_.chains(); }
    index_registry& registry() noexcept { return tracker_.registry(); }
    threshold_tracker& tracker() noexcept { return tracker_; }
    client_type& client() noexcept { return client_; }

    /// Everything needed to pick up after a restart (threshold_state as JSON).
    json save_state() const { return json(tracker_.state()); }
    /// Loads saved state (strictly validated); on error the state is
    /// unchanged, the code is threshold_error::invalid_state and `diag`
    /// names the member that is wrong.
    std::error_code load_state(const json& j, diagnostics* diag = nullptr) {
        threshold_state s;
        if (convert(j, s, diag)) return threshold_error::invalid_state;
        tracker_.load(std::move(s));
        return {};
    }
    /// The same from the file's text (also refuses repeated members and
    /// text that is no JSON).
    std::error_code load_state_text(std::string_view text, diagnostics* diag = nullptr) {
        threshold_state s;
        if (convert_text(text, s, diag)) return threshold_error::invalid_state;
        tracker_.load(std::move(s));
        return {};
    }

private:
    // Loss markers are held back while a loss-triggered resync ran less
    // than min_resync_interval ago; everything else goes to the tracker.
    void take(const event& ev) {
        if (ev.lost) {
            loss_pending_ = true;
            ++loss_markers_;
        } else
            tracker_.on_event(ev);
    }
    std::chrono::milliseconds loss_wait() const {
        auto due = last_loss_resync_ + opts_.min_resync_interval - std::chrono::steady_clock::now();
        return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(due));
    }
    bool release_loss() {
        if (!loss_pending_) return false;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_loss_resync_ < opts_.min_resync_interval) return false;
        loss_pending_ = false;
        last_loss_resync_ = now;
        tracker_.on_events_lost(1);
        return true;
    }

    static void append(std::vector<threshold_event>& to, std::vector<threshold_event> from) {
        for (auto& e : from) to.push_back(std::move(e));
    }

    // Carries out the tracker's actions until `request` is done (or, with
    // 0, until the tracker has nothing left to do). Throws qmp_error when
    // the request failed.
    std::vector<threshold_event> run(tracker_request request = 0) {
        std::vector<threshold_event> events;
        std::error_code failed;
        diagnostics failed_diag;
        bool done = request == 0;
        while (auto a = tracker_.next_action()) {
            std::visit(
                [&](auto& act) {
                    using A = std::decay_t<decltype(act)>;
                    if constexpr (std::is_same_v<A, tracker_actions::query_graph>) {
                        graph_query_options o;
                        o.details = act.details;
                        std::error_code ec;
                        diagnostics d;
                        block_graph g = query_block_graph(client_, o, &drivers_, ec, d);
                        if (ec)
                            tracker_.on_graph_failed(ec, diagnostics{d.error_class, "cannot read the block graph: " + d.message});
                        else
                            tracker_.on_graph(g);
                    } else if constexpr (std::is_same_v<A, tracker_actions::set_threshold>) {
                        std::error_code ec;
                        diagnostics d;
                        client_.execute(block_set_write_threshold{act.node, act.value}, ec, d);
                        tracker_.on_command_result(act.command, ec, d);
                    } else if constexpr (std::is_same_v<A, tracker_actions::save_state>) {
                        std::error_code ec;
                        diagnostics d;
                        if (opts_.journal) ec = opts_.journal(tracker_.state(), d);
                        tracker_.on_saved(ec, d);
                    } else if constexpr (std::is_same_v<A, tracker_actions::report>) {
                        events.push_back(std::move(act.event));
                    } else if constexpr (std::is_same_v<A, tracker_actions::decode_error>) {
                        if (opts_.on_decode_error) opts_.on_decode_error(act.event, act.diag);
                    } else {
                        if (act.request == request) {
                            done = true;
                            failed = act.ec;
                            failed_diag = act.diag;
                            rows_ = std::move(act.rows);
                        }
                    }
                },
                *a);
        }
        if (!done) throw qmp_error(threshold_error::unfinished);
        if (failed) {
            if (is_connection_error(failed)) lost_connection(failed);
            throw qmp_error(failed, std::move(failed_diag));
        }
        return events;
    }

    static bool is_connection_error(std::error_code ec) {
        return ec == error::connection_closed || ec == error::not_connected || ec == error::timeout ||
               ec == error::out_of_sync;
    }

    void lost_connection(std::error_code why) {
        if (!connected_) return;
        connected_ = false;
        last_error_ = why;
        client_.close();
        if (opts_.on_connection) opts_.on_connection(false, why);
    }

    bool reconnect(std::chrono::steady_clock::time_point deadline) {
        auto wait = opts_.reconnect_min;
        for (;;) {
            std::error_code ec;
            client_.connect(ep_, ec);
            if (!ec) {
                connected_ = true;
                last_error_.clear();
                loss_pending_ = false;  // the resync after connecting covers it
                if (opts_.on_connection) opts_.on_connection(true, {});
                tracker_.on_connected(client_.peer_instance(), opts_.resync_on_connect);
                return true;
            }
            last_error_ = ec;
            if (std::chrono::steady_clock::now() + wait > deadline) return false;
            std::this_thread::sleep_for(wait);
            wait = std::min(wait * 2, opts_.reconnect_max);
        }
    }

    endpoint_type ep_;
    threshold_manager_options opts_;
    client_type client_;
    threshold_tracker tracker_;
    driver_cache drivers_;
    std::vector<threshold_report_row> rows_;
    bool connected_ = false;
    std::error_code last_error_;
    bool loss_pending_ = false;
    std::uint64_t loss_markers_ = 0;
    std::chrono::steady_clock::time_point last_loss_resync_{};
};

/// Over a unix socket, the usual QMP transport.
using threshold_manager = basic_threshold_manager<asio::local::stream_protocol::socket>;
/// Over a TCP monitor.
using tcp_threshold_manager = basic_threshold_manager<asio::ip::tcp::socket>;

}  // namespace qmp
