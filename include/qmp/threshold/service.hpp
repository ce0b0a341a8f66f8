// The asynchronous threshold service: a threshold_tracker driven over a
// basic_client that it does not own. It subscribes to the events it needs
// (BLOCK_WRITE_THRESHOLD, the end of block jobs, DEVICE_DELETED) and leaves
// every other event to the application's own subscriptions on the same
// connection. Requests (arm, disarm, extended, resync, report) and the
// threshold events take completion tokens: callbacks, asio::use_awaitable,
// asio::use_future, asio::deferred.
//
// Threading: like the client, a service lives on the client's executor.
// Initiating functions may be called from anywhere (they dispatch there);
// accessors (state(), armed(), stats()) are read where the executor runs.
// Many services, one per VM, share one io_context thread.
//
// Connections: the service never connects. Call on_connected() once the
// client is connected, and again after every reconnection (a
// basic_reconnector does both and backs off without blocking): the tracker
// checks what fired meanwhile, and a restarted QEMU is re-armed. A loss
// of the connection fails the requests in progress (their commands fail)
// and is told to options.on_connection; a receive waiting for a threshold
// event keeps waiting across reconnections.
//
// The client must outlive the service; the service may go first (what is
// pending then completes with asio::error::operation_aborted). Destroy it
// where the executor runs, or while nothing runs it, as any asio object.
#pragma once

#include <qmp/threshold/detail/service_impl.hpp>

#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qmp {


template <class Client>
class basic_threshold_service {
    using impl_type = detail::threshold_service_impl<Client>;

public:
    using client_type = Client;
    using executor_type = typename Client::executor_type;

    /// Subscribes on `client` now (no event it needs is missed from here
    /// on); call on_connected() once the client is connected.
    explicit basic_threshold_service(Client& client, threshold_service_options opts = {})
        : im_(std::make_shared<impl_type>(client, std::move(opts))) {}
    basic_threshold_service(basic_threshold_service&&) noexcept = default;
    basic_threshold_service& operator=(basic_threshold_service&& o) noexcept {
        if (this != &o) {
            stop();
            im_ = std::move(o.im_);
        }
        return *this;
    }
    basic_threshold_service(const basic_threshold_service&) = delete;
    basic_threshold_service& operator=(const basic_threshold_service&) = delete;
    ~basic_threshold_service() { stop(); }

    executor_type get_executor() const { return im_->get_executor(); }

    /// The client is connected (first time or again): the service starts
    /// taking events and, unless options say otherwise, resyncs.
    void on_connected() {
        asio::dispatch(get_executor(), [im = im_] { im->on_connected(); });
    }

    // ---- requests ------------------------------------------------------------------
    // Targets are copied at once (a string_view may end with the call).
    // Each completes once the tracker finished it: QEMU holds the threshold,
    // the state was journalled. Events the request itself caused (an arm
    // below the current allocation, what a resync found) come with its
    // completion; everything else comes through async_receive.

    /// Arms `target` (`vda`, `vda[N]`). Completes with (error_code, events).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_arm(std::string_view target, threshold_spec spec, rearm_policy policy, std::uint64_t step,
                   CompletionToken&& token = CompletionToken{}) {
        return initiate<std::vector<threshold_event>>(
            [target = std::string(target), spec, policy, step](threshold_tracker& t) {
                return t.arm(target, spec, policy, step);
            },
            std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_arm(std::string_view target, threshold_spec spec, CompletionToken&& token = CompletionToken{}) {
        return async_arm(target, spec, rearm_policy::none, 0, std::forward<CompletionToken>(token));
    }

    /// Disarms what was armed on `target` (both layers). Completes with (error_code).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_disarm(std::string_view target, CompletionToken&& token = CompletionToken{}) {
        return initiate<>(
            [target = std::string(target)](threshold_tracker& t) { return t.disarm(target); },
            std::forward<CompletionToken>(token));
    }

    /// The storage of `target` grew to `new_capacity` bytes: thresholds
    /// with the on_extend policy are re-armed. Completes with (error_code, events).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_extended(std::string_view target, std::uint64_t new_capacity, CompletionToken&& token = CompletionToken{}) {
        return initiate<std::vector<threshold_event>>(
            [target = std::string(target), new_capacity](threshold_tracker& t) { return t.extended(target, new_capacity); },
            std::forward<CompletionToken>(token));
    }

    /// Checks every armed element against QEMU now, from the journal and
    /// the high-water marks (cheap; see threshold_tracker::resync).
    /// Completes with (error_code, events): what fired unseen (recovered),
    /// what left the chain (gone).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_resync(CompletionToken&& token = CompletionToken{}) {
        return initiate<std::vector<threshold_event>>(
            [](threshold_tracker& t) { return t.resync(); }, std::forward<CompletionToken>(token));
    }

    /// A resync that also reads every write_threshold back from QEMU
    /// (threshold_tracker::audit: expensive on deep chains). Completes as async_resync.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_audit(CompletionToken&& token = CompletionToken{}) {
        return initiate<std::vector<threshold_event>>(
            [](threshold_tracker& t) { return t.audit(); }, std::forward<CompletionToken>(token));
    }

    /// Every chain element with capacity (and its source), allocation and
    /// what is armed (see threshold_tracker::report: sizes kept from the
    /// last read, QEMU's thresholds not read). Completes with (error_code, rows).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_report(CompletionToken&& token = CompletionToken{}) {
        return async_report(false, std::forward<CompletionToken>(token));
    }
    /// The same; `fresh_sizes`: every node's sizes read now (see threshold_tracker::report).
    template <class CompletionToken>
    auto async_report(bool fresh_sizes, CompletionToken&& token) {
        return initiate<std::vector<threshold_report_row>>(
            [fresh_sizes](threshold_tracker& t) { return t.report(fresh_sizes); }, std::forward<CompletionToken>(token));
    }

    // ---- threshold events ----------------------------------------------------------

    /// The next threshold event (live, recovered, gone) not handed to a
    /// request. Events wait in the service until taken (there is one per
    /// firing: nothing is dropped). One receiver at a time; a second gets
    /// invalid_argument. `timeout` 0 waits forever, else error::timeout.
    /// Cancellable (the handler's cancellation slot). Completes with
    /// (error_code, threshold_event).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive(std::chrono::milliseconds timeout, CompletionToken&& token = CompletionToken{}) {
        return asio::async_initiate<CompletionToken, void(std::error_code, threshold_event)>(
            [im = im_, timeout](auto handler) {
                detail::completion<std::error_code, threshold_event> op(std::move(handler), im->get_executor());
                asio::dispatch(im->get_executor(), [im, op = std::move(op), timeout]() mutable {
                    const std::uint64_t id = ++im->receive_ids;
                    op.on_cancel([wim = std::weak_ptr<impl_type>(im), id](asio::cancellation_type) {
                        if (auto s = wim.lock()) asio::dispatch(s->get_executor(), [s, id] { s->cancel_receive(id); });
                    });
                    im->receive(std::move(op), id, timeout);
                });
            },
            token);
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive(CompletionToken&& token = CompletionToken{}) {
        return async_receive(std::chrono::milliseconds(0), std::forward<CompletionToken>(token));
    }
    /// The next event if one is waiting (on the executor).
    std::optional<threshold_event> try_receive() { return im_->try_receive(); }
    /// Events waiting to be received.
    std::size_t queued() const noexcept { return im_->events.size(); }

    // ---- state (read on the executor) --------------------------------------------

    bool connected() const noexcept { return im_->connected; }
    /// Why the connection was last lost.
    std::error_code last_error() const noexcept { return im_->last_error; }
    /// Why the journal's last failed save failed (empty when none did).
    const diagnostics& last_save_failure() const noexcept { return im_->last_save_failure; }
    /// True while requests or the tracker's own work are in progress.
    bool busy() const noexcept { return im_->tracker.busy() || !im_->requests.empty() || im_->saving; }
    const threshold_service_stats& stats() const noexcept { return im_->counters; }
    const threshold_tracker& tracker() const noexcept { return im_->tracker; }
    const threshold_state& state() const noexcept { return im_->tracker.state(); }
    const std::vector<armed_threshold>& armed() const noexcept { return im_->tracker.armed(); }
    const resolver& chains() const noexcept { return im_->tracker.chains(); }

    /// Replaces the state before on_connected() (a state read elsewhere and
    /// validated, e.g. by threshold_journal::load or convert_text); the
    /// resync after connecting checks what it lists against QEMU. With a
    /// journal in the options, load from the journal instead: load_journal().
    void load(threshold_state s) { im_->tracker.load(std::move(s)); }
    /// Loads the options' journal (strictly; a bad file is
    /// threshold_error::invalid_state or the system's error, the state is
    /// unchanged and `diag` says why).
    std::error_code load_journal(diagnostics* diag = nullptr) {
        if (!im_->opts.journal) return {};
        threshold_state s;
        if (auto ec = im_->opts.journal->load(s, diag)) return ec;
        im_->tracker.load(std::move(s));
        return {};
    }

    /// Ends the service: its subscription ends, pending operations complete
    /// with operation_aborted. The destructor does it too.
    /// Call it where the executor runs, or while it does not run (as for
    /// any asio object).
    void stop() {
        if (im_) im_->stop();  // the accessors stay valid: they read the state as it was
    }

private:
    template <class... Results, class Start, class CompletionToken>
    auto initiate(Start start, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(std::error_code, Results...)>(
            [im = im_, start = std::move(start)](auto handler) mutable {
                detail::threshold_request_completion op{
                    detail::completion<std::error_code, Results...>(std::move(handler), im->get_executor())};
                asio::dispatch(im->get_executor(), [im, op = std::move(op), start = std::move(start)]() mutable {
                    if (im->stopped) return impl_type::complete(op, asio::error::operation_aborted, {}, {}, true);
                    const tracker_request id = start(im->tracker);
                    im->request(id, std::move(op));
                });
            },
            token);
    }

    std::shared_ptr<impl_type> im_;
};

/// Over the usual async client (unix socket), and over TCP.
using threshold_service = basic_threshold_service<unix_client>;
using tcp_threshold_service = basic_threshold_service<tcp_client>;

}  // namespace qmp
