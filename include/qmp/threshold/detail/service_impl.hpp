// The threshold service's machinery: the type-erased
// completions of its requests and receives, and the shared state that its
// pending operations keep alive (so the service may go first).
#pragma once

#include <qmp/block/graph_query.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/client/detail/ops.hpp>
#include <qmp/client/subscription.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/service_options.hpp>
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

}  // namespace qmp
