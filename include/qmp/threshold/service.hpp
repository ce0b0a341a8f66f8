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

#include <qmp/block/graph_query.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/client/detail/ops.hpp>
#include <qmp/client/subscription.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/tracker.hpp>

#include <asio/async_result.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/dispatch.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qmp {

struct threshold_service_options {
    disk_catalog catalog;
    /// See tracker_options::verify_uncrossed.
    bool verify_uncrossed = true;
    /// Resync on each on_connected(): what fired while nobody listened
    /// arrives as `recovered` events. Off for a tool that only arms.
    bool resync_on_connect = true;
    /// Resyncs caused by lost events are at most this often: a flood costs
    /// one resync per interval, not one per marker.
    std::chrono::milliseconds min_resync_interval{1000};
    /// Capacity of the service's subscription (events it needs, held until
    /// it takes them); beyond it a loss marker leads to a resync.
    std::size_t event_capacity = event_queue::default_capacity;
    /// Persists the state before any threshold reaches QEMU and before any
    /// firing is reported (see tracker_actions::save_state). An error stops
    /// a request before QEMU hears of it. Runs on the executor: keep it short
    /// (one small file write).
    std::function<std::error_code(const threshold_state&, diagnostics&)> journal;
    /// Told when the connection is lost (with the reason) and when
    /// on_connected() says it is back.
    std::function<void(bool connected, std::error_code why)> on_connection;
    /// Told when an event the service needs could not be read (a resync follows).
    std::function<void(const std::string& event, const diagnostics& why)> on_decode_error;
};

/// What a service has seen, for metrics.
struct threshold_service_stats {
    std::uint64_t events_in = 0;         ///< events taken from its subscription
    std::uint64_t loss_markers = 0;      ///< "events lost" markers among them
    std::uint64_t reported = 0;          ///< threshold events handed out (requests and receivers)
    std::uint64_t graph_queries = 0;     ///< block graph snapshots taken
    std::uint64_t commands = 0;          ///< block-set-write-threshold sent
    std::uint64_t connections = 0;       ///< on_connected() calls
};

namespace detail {

// A request's completion, type-erased: arm, extended and resync complete
// with events, disarm with a code only, report with rows.
class threshold_request_base {
public:
    virtual ~threshold_request_base() = default;
    virtual void complete(std::error_code ec, std::vector<threshold_event> events,
                          std::vector<threshold_report_row> rows) = 0;
    diagnostics* diag = nullptr;
};

enum class request_shape { events, code, rows };

template <class Handler, class Executor, request_shape Shape>
class threshold_request final : public threshold_request_base {
public:
    threshold_request(Handler h, const Executor& ex) : h_(std::move(h), ex) { diag = get_associated_diagnostics(h_.get()); }
    // Always posted: a request may finish inside its initiation.
    void complete(std::error_code ec, std::vector<threshold_event> events,
                  std::vector<threshold_report_row> rows) override {
        if constexpr (Shape == request_shape::events)
            h_.run(true, ec, std::move(events));
        else if constexpr (Shape == request_shape::code)
            h_.run(true, ec);
        else
            h_.run(true, ec, std::move(rows));
    }

private:
    handler_holder<Handler, Executor> h_;
};

class threshold_receive_base {
public:
    virtual ~threshold_receive_base() = default;
    virtual void complete(bool post, std::error_code ec, threshold_event ev) = 0;
};

template <class Handler, class Executor>
class threshold_receive final : public threshold_receive_base {
public:
    threshold_receive(Handler h, const Executor& ex) : h_(std::move(h), ex) {}
    template <class F>
    void on_cancel(F&& f) {
        h_.on_cancel(std::forward<F>(f));
    }
    void complete(bool post, std::error_code ec, threshold_event ev) override { h_.run(post, ec, std::move(ev)); }

private:
    handler_holder<Handler, Executor> h_;
};

// Everything the service does, shared with its pending operations so that
// the service may go first.
template <class Client>
class threshold_service_impl : public std::enable_shared_from_this<threshold_service_impl<Client>> {
public:
    using executor_type = typename Client::executor_type;
    using timer_type = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                                                  executor_type>;

    threshold_service_impl(Client& c, threshold_service_options o)
        : client(&c),
          opts(std::move(o)),
          tracker(tracker_options{opts.catalog, opts.verify_uncrossed}),
          loss_timer(c.get_executor()),
          receive_timer(c.get_executor()) {
        event_filter f;
        f.names = {std::string(block_write_threshold_event::name), std::string(block_job_completed_event::name),
                   std::string(block_job_cancelled_event::name), std::string(job_status_change_event::name),
                   "DEVICE_DELETED"};
        // Of the job status changes only the end matters (others are noise).
        f.predicate = [](const event& ev) {
            return ev.name != job_status_change_event::name ||
                   (ev.data.is_object() && ev.data.value("status", "") == "concluded");
        };
        sub = c.subscribe(std::move(f), opts.event_capacity);
    }

    executor_type get_executor() const { return client->get_executor(); }

    // ---- connection --------------------------------------------------------------

    void on_connected() {
        if (stopped) return;
        connected = true;
        ++counters.connections;
        loss_pending = false;  // the resync after connecting covers it
        loss_timer.cancel();
        tracker.on_connected(client->peer_instance(), opts.resync_on_connect);
        if (opts.on_connection) opts.on_connection(true, {});
        if (!receiving) receive_next();
        drive();
    }

    void receive_next() {
        receiving = true;
        sub.async_receive([self = this->shared_from_this()](std::error_code ec, event ev) {
            self->receiving = false;
            if (self->stopped) return;
            if (ec) return self->link_lost(ec);
            self->take(std::move(ev));
            self->drive();
            if (!self->stopped && !self->receiving) self->receive_next();
        });
    }

    void link_lost(std::error_code ec) {
        if (ec == asio::error::operation_aborted) return;
        const bool was = connected;
        connected = false;
        last_error = ec;
        if (was && opts.on_connection) opts.on_connection(false, ec);
    }

    // ---- events ------------------------------------------------------------------

    void take(event ev) {
        ++counters.events_in;
        if (!ev.lost) return tracker.on_event(ev);
        ++counters.loss_markers;
        // At most one loss-caused resync per interval; later markers wait.
        const auto now = std::chrono::steady_clock::now();
        if (!loss_pending && (last_loss_resync == std::chrono::steady_clock::time_point{} ||
                              now - last_loss_resync >= opts.min_resync_interval)) {
            last_loss_resync = now;
            return tracker.on_events_lost(ev.lost);
        }
        if (loss_pending) return;
        loss_pending = true;
        loss_timer.expires_at(last_loss_resync + opts.min_resync_interval);
        loss_timer.async_wait([self = this->shared_from_this()](std::error_code ec) {
            if (ec || self->stopped || !self->loss_pending) return;
            self->loss_pending = false;
            self->last_loss_resync = std::chrono::steady_clock::now();
            self->tracker.on_events_lost(1);
            self->drive();
        });
    }

    void deliver(threshold_event ev) {
        ++counters.reported;
        if (waiter) {
            auto w = std::move(waiter);
            receive_timer_armed = false;
            receive_timer.cancel();
            return w->complete(false, {}, std::move(ev));
        }
        events.push_back(std::move(ev));
    }

    void receive(std::unique_ptr<threshold_receive_base> op, std::chrono::milliseconds timeout) {
        if (stopped) return op->complete(true, asio::error::operation_aborted, {});
        if (!events.empty()) {
            threshold_event ev = std::move(events.front());
            events.pop_front();
            return op->complete(true, {}, std::move(ev));
        }
        if (waiter) return op->complete(true, error::invalid_argument, {});  // one receiver at a time
        waiter = std::move(op);
        if (timeout.count() > 0) {
            receive_timer_armed = true;
            receive_timer.expires_after(timeout);
            receive_timer.async_wait([self = this->shared_from_this(), w = waiter.get()](std::error_code ec) {
                if (ec || !self->receive_timer_armed || self->waiter.get() != w) return;
                self->receive_timer_armed = false;
                auto op = std::move(self->waiter);
                op->complete(false, error::timeout, {});
            });
        }
    }

    void cancel_receive(const threshold_receive_base* target) {
        if (!waiter || waiter.get() != target) return;
        auto op = std::move(waiter);
        receive_timer_armed = false;
        receive_timer.cancel();
        op->complete(false, asio::error::operation_aborted, {});
    }

    // ---- requests ----------------------------------------------------------------

    void request(tracker_request id, std::unique_ptr<threshold_request_base> op) {
        if (stopped) return op->complete(asio::error::operation_aborted, {}, {});
        requests[id].op = std::move(op);
        drive();
    }

    // ---- carrying out the tracker's actions -------------------------------------

    void drive() {
        if (driving || stopped) return;  // a handler called back in: the loop below goes on
        driving = true;
        auto self = this->shared_from_this();
        while (!stopped) {
            auto a = tracker.next_action();
            if (!a) break;
            std::visit([&](auto& act) { carry_out(act); }, *a);
        }
        driving = false;
    }

    void carry_out(tracker_actions::query_graph& act) {
        ++counters.graph_queries;
        auto d = std::make_shared<diagnostics>();
        graph_query_options o;
        o.details = act.details;
        async_query_block_graph(*client, o, &drivers, *d,
                                [self = this->shared_from_this(), d](std::error_code ec, block_graph g) {
                                    if (self->stopped) return;
                                    if (ec)
                                        self->tracker.on_graph_failed(
                                            ec, diagnostics{d->error_class, "cannot read the block graph: " + d->message});
                                    else
                                        self->tracker.on_graph(g);
                                    self->drive();
                                });
    }

    void carry_out(tracker_actions::set_threshold& act) {
        ++counters.commands;
        auto d = std::make_shared<diagnostics>();
        client->async_execute(block_set_write_threshold{act.node, act.value},
                              bind_diagnostics(*d, [self = this->shared_from_this(), d, id = act.command](
                                                       std::error_code ec, empty_result) {
                                  if (self->stopped) return;
                                  self->tracker.on_command_result(id, ec, *d);
                                  self->drive();
                              }));
    }

    void carry_out(tracker_actions::save_state&) {
        std::error_code ec;
        diagnostics d;
        if (opts.journal) ec = opts.journal(tracker.state(), d);
        tracker.on_saved(ec, d);
    }

    void carry_out(tracker_actions::report& act) {
        if (act.request) {
            auto it = requests.find(act.request);
            if (it != requests.end()) {
                ++counters.reported;
                it->second.events.push_back(std::move(act.event));
                return;
            }
        }
        deliver(std::move(act.event));
    }

    void carry_out(tracker_actions::decode_error& act) {
        if (opts.on_decode_error) opts.on_decode_error(act.event, act.diag);
    }

    void carry_out(tracker_actions::request_done& act) {
        auto it = requests.find(act.request);
        if (it == requests.end()) return;
        pending p = std::move(it->second);
        requests.erase(it);
        if (!p.op) return;
        if (p.op->diag) *p.op->diag = act.ec ? act.diag : diagnostics{};
        p.op->complete(act.ec, std::move(p.events), std::move(act.rows));
    }

    // ---- the end -----------------------------------------------------------------

    void stop() {
        if (stopped) return;
        stopped = true;
        sub.reset();
        loss_timer.cancel();
        receive_timer.cancel();
        auto reqs = std::move(requests);
        requests.clear();
        for (auto& [id, p] : reqs)
            if (p.op) p.op->complete(asio::error::operation_aborted, {}, {});
        if (waiter) {
            auto w = std::move(waiter);
            w->complete(true, asio::error::operation_aborted, {});
        }
    }

    struct pending {
        std::unique_ptr<threshold_request_base> op;
        std::vector<threshold_event> events;  // reported by the request's own decisions
    };

    Client* client;
    threshold_service_options opts;
    threshold_tracker tracker;
    driver_cache drivers;
    typename Client::subscription sub;
    timer_type loss_timer;
    timer_type receive_timer;
    std::map<tracker_request, pending> requests;
    std::deque<threshold_event> events;
    std::unique_ptr<threshold_receive_base> waiter;
    threshold_service_stats counters;
    std::error_code last_error;
    std::chrono::steady_clock::time_point last_loss_resync{};
    bool connected = false;
    bool receiving = false;
    bool driving = false;
    bool stopped = false;
    bool loss_pending = false;
    bool receive_timer_armed = false;
};

}  // namespace detail

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
        return initiate<detail::request_shape::events, void(std::error_code, std::vector<threshold_event>)>(
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
        return initiate<detail::request_shape::code, void(std::error_code)>(
            [target = std::string(target)](threshold_tracker& t) { return t.disarm(target); },
            std::forward<CompletionToken>(token));
    }

    /// The storage of `target` grew to `new_capacity` bytes: thresholds
    /// with the on_extend policy are re-armed. Completes with (error_code, events).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_extended(std::string_view target, std::uint64_t new_capacity, CompletionToken&& token = CompletionToken{}) {
        return initiate<detail::request_shape::events, void(std::error_code, std::vector<threshold_event>)>(
            [target = std::string(target), new_capacity](threshold_tracker& t) { return t.extended(target, new_capacity); },
            std::forward<CompletionToken>(token));
    }

    /// Checks every armed element against QEMU now. Completes with
    /// (error_code, events): what fired unseen (recovered), what left the chain (gone).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_resync(CompletionToken&& token = CompletionToken{}) {
        return initiate<detail::request_shape::events, void(std::error_code, std::vector<threshold_event>)>(
            [](threshold_tracker& t) { return t.resync(); }, std::forward<CompletionToken>(token));
    }

    /// Every chain element with capacity (and its source), allocation,
    /// thresholds and what is armed. Completes with (error_code, rows).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_report(CompletionToken&& token = CompletionToken{}) {
        return initiate<detail::request_shape::rows, void(std::error_code, std::vector<threshold_report_row>)>(
            [](threshold_tracker& t) { return t.report(); }, std::forward<CompletionToken>(token));
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
                using H = std::decay_t<decltype(handler)>;
                auto op = std::make_unique<detail::threshold_receive<H, executor_type>>(std::move(handler),
                                                                                      im->get_executor());
                auto* raw = op.get();
                asio::dispatch(im->get_executor(), [im, op = std::move(op), raw, timeout]() mutable {
                    op->on_cancel([im, raw](asio::cancellation_type) { im->cancel_receive(raw); });
                    im->receive(std::move(op), timeout);
                });
            },
            token);
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive(CompletionToken&& token = CompletionToken{}) {
        return async_receive(std::chrono::milliseconds(0), std::forward<CompletionToken>(token));
    }
    /// The next event if one is waiting (on the executor).
    std::optional<threshold_event> try_receive() {
        if (im_->events.empty()) return std::nullopt;
        threshold_event ev = std::move(im_->events.front());
        im_->events.pop_front();
        return ev;
    }
    /// Events waiting to be received.
    std::size_t queued() const noexcept { return im_->events.size(); }

    // ---- state (read on the executor) --------------------------------------------

    bool connected() const noexcept { return im_->connected; }
    /// Why the connection was last lost.
    std::error_code last_error() const noexcept { return im_->last_error; }
    /// True while requests or the tracker's own work are in progress.
    bool busy() const noexcept { return im_->tracker.busy() || !im_->requests.empty(); }
    const threshold_service_stats& stats() const noexcept { return im_->counters; }
    const threshold_tracker& tracker() const noexcept { return im_->tracker; }
    const threshold_state& state() const noexcept { return im_->tracker.state(); }
    const std::vector<armed_threshold>& armed() const noexcept { return im_->tracker.armed(); }
    const resolver& chains() const noexcept { return im_->tracker.chains(); }
    index_registry& registry() noexcept { return im_->tracker.registry(); }

    /// Everything needed to pick up after a restart (threshold_state as JSON).
    json save_state() const { return json(im_->tracker.state()); }
    /// Loads saved state (strictly validated) before on_connected(); on
    /// error the state is unchanged, the code is threshold_error::invalid_state
    /// and `diag` names the member that is wrong.
    std::error_code load_state(const json& j, diagnostics* diag = nullptr) {
        threshold_state s;
        if (convert(j, s, diag)) return threshold_error::invalid_state;
        im_->tracker.load(std::move(s));
        return {};
    }
    /// The same from the file's text (also refuses repeated members).
    std::error_code load_state_text(std::string_view text, diagnostics* diag = nullptr) {
        threshold_state s;
        if (convert_text(text, s, diag)) return threshold_error::invalid_state;
        im_->tracker.load(std::move(s));
        return {};
    }
    /// Replaces the state with one already validated.
    void load(threshold_state s) { im_->tracker.load(std::move(s)); }

    /// Ends the service: its subscription ends, pending operations complete
    /// with operation_aborted. The destructor does it too.
    /// Call it where the executor runs, or while it does not run (as for
    /// any asio object).
    void stop() {
        if (!im_) return;
        auto im = std::move(im_);
        im->stop();
    }

private:
    template <detail::request_shape Shape, class Signature, class Start, class CompletionToken>
    auto initiate(Start start, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, Signature>(
            [im = im_, start = std::move(start)](auto handler) mutable {
                using H = std::decay_t<decltype(handler)>;
                std::unique_ptr<detail::threshold_request_base> op =
                    std::make_unique<detail::threshold_request<H, executor_type, Shape>>(std::move(handler),
                                                                                        im->get_executor());
                asio::dispatch(im->get_executor(), [im, op = std::move(op), start = std::move(start)]() mutable {
                    if (im->stopped) return op->complete(asio::error::operation_aborted, {}, {});
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
