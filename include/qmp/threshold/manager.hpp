// The blocking threshold manager, for scripts and the CLI: arm a write
// threshold on `vda` or `vda[N]` in bytes, percent, ppm or as a margin
// below capacity; get BLOCK_WRITE_THRESHOLD back as `vda[N]`; re-arm by
// policy; never miss an event: after a reconnect, an "events lost" marker or
// a restart from saved state, a resync reports what fired while nobody
// listened. It is a thin wrapper over the asynchronous threshold service
// (threshold/service.hpp): a sync client runs the service's io_context on
// the calling thread while a call waits, so every decision is the
// threshold_tracker's and every I/O path is the service's. Not thread-safe.
// threshold_manager speaks over a unix socket, tcp_threshold_manager over
// TCP; both are basic_threshold_manager<Stream>.
#pragma once

#include <qmp/block/graph_query.hpp>
#include <qmp/client/backoff.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/service.hpp>
#include <qmp/threshold/tracker.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace qmp {

struct threshold_manager_options {
    /// The service the manager runs: the tracker's options (catalog,
    /// verification), the journal, the callbacks. `resync_on_connect`:
    /// connect() and poll() resync when a session begins and return what
    /// it finds (marked reported); off for a one-shot tool that arms and
    /// leaves (the watcher, not it, should report those).
    threshold_service_options service;
    client_options client;
    /// Waits between reconnection attempts in poll() (its total is poll's timeout).
    backoff reconnect{std::chrono::milliseconds(50), std::chrono::milliseconds(2000), 0.2, {}};
};

template <class Stream>
class basic_threshold_manager {
public:
    using client_type = basic_sync_client<Stream>;
    using service_type = basic_threshold_service<typename client_type::async_client_type>;
    using endpoint_type = typename transport<Stream>::endpoint_type;

    /// `stream_args` go to the client's stream after its executor (for a
    /// TLS stream: the asio::ssl::context).
    template <class... StreamArgs>
    explicit basic_threshold_manager(endpoint_type ep, threshold_manager_options opts = {}, StreamArgs&&... stream_args)
        : ep_(std::move(ep)),
          opts_(std::move(opts)),
          client_(opts_.client, false, std::forward<StreamArgs>(stream_args)...),
          service_(client_.async_client(), service_options()) {}

    /// Connects (throws qmp_error on failure) and resyncs: events that fired
    /// while this manager was not running (state loaded) come back.
    std::vector<threshold_event> connect() {
        client_.connect(ep_);
        connected_ = true;
        service_.on_connected();
        if (!opts_.service.resync_on_connect) {
            client_.poll();
            return {};
        }
        return resync_after_connect();
    }

    /// Arms `target_text` (`vda`, `vda[N]`). Returns the events this causes
    /// at once (an `immediate` one when the allocation is already past).
    std::vector<threshold_event> arm(std::string_view target_text, threshold_spec spec,
                                     rearm_policy policy = rearm_policy::none, std::uint64_t step = 0) {
        return call<std::vector<threshold_event>>([&](auto h) {
            service_.async_arm(target_text, spec, policy, step, std::move(h));
        });
    }
    /// Disarms what the manager armed on `target_text` (both layers).
    void disarm(std::string_view target_text) {
        diagnostics diag;
        auto [ec] = client_.template run<std::error_code>(
            [&](auto h) { service_.async_disarm(target_text, bind_diagnostics(diag, std::move(h))); });
        check(ec, std::move(diag));
    }
    /// The caller grew the storage of `target_text` to `new_capacity`
    /// bytes: fired thresholds with the on_extend policy are re-armed.
    std::vector<threshold_event> extended(std::string_view target_text, std::uint64_t new_capacity) {
        return call<std::vector<threshold_event>>([&](auto h) {
            service_.async_extended(target_text, new_capacity, std::move(h));
        });
    }
    /// Checks every armed element against QEMU now; reports what fired
    /// unseen (recovered) and what left the chain (gone).
    std::vector<threshold_event> resync() {
        return call<std::vector<threshold_event>>([&](auto h) { service_.async_resync(std::move(h)); });
    }
    /// resync(), reading every write_threshold back too (threshold_tracker::audit).
    std::vector<threshold_event> audit() {
        return call<std::vector<threshold_event>>([&](auto h) { service_.async_audit(std::move(h)); });
    }
    /// Every disk and chain element with capacity, allocation, current
    /// thresholds per layer and what the manager armed there.
    std::vector<threshold_report_row> report() {
        return call<std::vector<threshold_report_row>>([&](auto h) { service_.async_report(std::move(h)); });
    }

    /// Waits up to `timeout` for threshold events. Reconnects when the
    /// connection is lost (then resyncs); the service resyncs after an
    /// overflow marker or an unreadable threshold event, and resyncs coalesce.
    std::vector<threshold_event> poll(std::chrono::milliseconds timeout) {
        std::vector<threshold_event> out;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return out;
            if (!connected_) {
                if (!reconnect(deadline)) return out;
                if (opts_.service.resync_on_connect) {
                    try {
                        append(out, resync_after_connect());
                    } catch (const qmp_error&) {
                        continue;  // lost again: the next round reconnects
                    }
                }
                if (!out.empty()) return out;
                continue;
            }
            asio::cancellation_signal cancel;
            cancel_ = &cancel;
            auto [ec, ev] = client_.template run<std::error_code, threshold_event>([&](auto h) {
                service_.async_receive(left, asio::bind_cancellation_slot(cancel.slot(), std::move(h)));
            });
            cancel_ = nullptr;
            if (ec) continue;  // timeout (the loop ends), or the connection went (it reconnects)
            out.push_back(std::move(ev));
            // Whatever else has arrived comes along.
            client_.poll();
            while (auto more = service_.try_receive()) out.push_back(std::move(*more));
            return out;
        }
    }

    bool connected() const noexcept { return connected_; }
    /// "Events lost" markers received (each overflow of the event queue);
    /// each leads to a resync, and resyncs coalesce.
    std::uint64_t loss_markers() const noexcept { return service_.stats().loss_markers; }
    /// Why the connection was last lost (or could not be made again).
    std::error_code last_error() const noexcept { return last_error_; }

    const std::vector<armed_threshold>& armed() const noexcept { return service_.armed(); }
    const resolver& chains() const noexcept { return service_.chains(); }
    const threshold_tracker& tracker() const noexcept { return service_.tracker(); }
    const threshold_state& state() const noexcept { return service_.state(); }
    service_type& service() noexcept { return service_; }
    /// The client the manager connects: its own (a QMP monitor serves one
    /// client at a time; give the manager a monitor of its own, or run your
    /// commands through this client between the manager's calls).
    client_type& client() noexcept { return client_; }

    /// Replaces the state before connect() (see threshold_service::load).
    void load(threshold_state s) { service_.load(std::move(s)); }
    /// Loads the journal of the options (see threshold_service::load_journal).
    std::error_code load_journal(diagnostics* diag = nullptr) { return service_.load_journal(diag); }

private:
    // Cheap when the journal vouches for this QEMU, an audit when it cannot.
    std::vector<threshold_event> resync_after_connect() {
        client_.poll();  // the service takes on_connected() in
        return service_.tracker().audit_owed() ? audit() : resync();
    }

    threshold_service_options service_options() {
        threshold_service_options s = opts_.service;
        s.resync_on_connect = false;  // connect() and poll() ask for it, and return what it finds
        s.on_connection = [this](bool up, std::error_code why) {
            if (!up) lost_connection(why);
        };
        return s;
    }

    static void append(std::vector<threshold_event>& to, std::vector<threshold_event> from) {
        for (auto& e : from) to.push_back(std::move(e));
    }

    // Runs one request of the service to its end; throws qmp_error when it failed.
    template <class R, class Start>
    R call(Start start) {
        diagnostics diag;
        auto [ec, r] = client_.template run<std::error_code, R>(
            [&](auto h) { start(bind_diagnostics(diag, std::move(h))); });
        check(ec, std::move(diag));
        return std::move(r);
    }

    void check(std::error_code ec, diagnostics diag) {
        if (!ec) return;
        if (is_connection_error(ec)) lost_connection(ec);
        throw qmp_error(ec, std::move(diag));
    }

    static bool is_connection_error(std::error_code ec) {
        return ec == error::connection_closed || ec == error::not_connected || ec == error::timeout ||
               ec == error::out_of_sync;
    }

    void lost_connection(std::error_code why) {
        if (cancel_) cancel_->emit(asio::cancellation_type::all);  // a poll stops waiting
        if (!connected_) return;
        connected_ = false;
        last_error_ = why;
        client_.async_client().close();
        if (opts_.service.on_connection) opts_.service.on_connection(false, why);
    }

    bool reconnect(std::chrono::steady_clock::time_point deadline) {
        backoff policy = opts_.reconnect;
        policy.total = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (policy.total.count() <= 0) return false;
        backoff_series waits(policy);
        for (;;) {
            std::error_code ec;
            client_.connect(ep_, ec);
            if (!ec) {
                connected_ = true;
                last_error_.clear();
                if (opts_.service.on_connection) opts_.service.on_connection(true, {});
                service_.on_connected();
                client_.poll();
                return true;
            }
            last_error_ = ec;
            auto wait = waits.next();
            if (!wait) return false;
            std::this_thread::sleep_for(*wait);
        }
    }

    endpoint_type ep_;
    threshold_manager_options opts_;
    client_type client_;
    service_type service_;
    bool connected_ = false;
    std::error_code last_error_;
    asio::cancellation_signal* cancel_ = nullptr;
};

/// Over a unix socket, the usual QMP transport.
using threshold_manager = basic_threshold_manager<asio::local::stream_protocol::socket>;
/// Over a TCP monitor.
using tcp_threshold_manager = basic_threshold_manager<asio::ip::tcp::socket>;

}  // namespace qmp
