// The threshold service's machinery: the shared state that its pending
// operations keep alive (so the service may go first), and how it carries
// out the tracker's actions: graph queries spaced out, the journal's file
// work off the thread when asked, and events taken only as fast as the
// tracker and the application keep up.
#pragma once

#include <qmp/block/graph_query.hpp>
#include <qmp/client/backoff.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/client/detail/completion.hpp>
#include <qmp/client/subscription.hpp>
#include <qmp/qapi/block_query.hpp>
#include <qmp/threshold/service_options.hpp>
#include <qmp/threshold/tracker.hpp>

#include <asio/basic_waitable_timer.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace qmp {

namespace detail {

// A request's completion: arm, extended and resync complete with events,
// disarm with a code only, report with rows.
using threshold_request_completion =
    std::variant<completion<std::error_code, std::vector<threshold_event>>, completion<std::error_code>,
                 completion<std::error_code, std::vector<threshold_report_row>>>;

template <class Client>
class threshold_service_impl : public std::enable_shared_from_this<threshold_service_impl<Client>> {
public:
    using executor_type = typename Client::executor_type;
    using timer_type = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                                                  executor_type>;
    using clock = std::chrono::steady_clock;

    threshold_service_impl(Client& c, threshold_service_options o)
        : client(&c),
          opts(std::move(o)),
          tracker(opts.tracker),
          query_timer(c.get_executor()),
          receive_timer(c.get_executor()),
          audit_timer(c.get_executor()),
          query_waits(backoff{opts.min_refresh_interval, std::chrono::seconds(30), 0.0, {}}) {
        sub = c.subscribe(threshold_tracker::interest(), opts.event_capacity);
    }

    executor_type get_executor() const { return client->get_executor(); }

    // ---- connection --------------------------------------------------------------

    void on_connected() {
        if (stopped) return;
        connected = true;
        ++counters.connections;
        tracker.on_connected(client->peer_instance(), opts.resync_on_connect);
        if (opts.on_connection) opts.on_connection(true, {});
        schedule_audit();
        take_more();
        drive();
    }

    // The periodic audit, when asked for: counted from each connection.
    void schedule_audit() {
        if (opts.audit_interval.count() <= 0 || stopped) return;
        audit_timer.expires_after(opts.audit_interval);
        audit_timer.async_wait([self = this->shared_from_this(), connection = counters.connections](std::error_code ec) {
            if (ec || self->stopped || !self->connected || connection != self->counters.connections) return;
            self->tracker.audit_due();
            self->drive();
            self->schedule_audit();
        });
    }

    void link_lost(std::error_code ec) {
        if (ec == asio::error::operation_aborted) return;
        const bool was = connected;
        connected = false;
        last_error = ec;
        tracker.on_disconnected();
        if (was && opts.on_connection) opts.on_connection(false, ec);
    }

    // ---- events ------------------------------------------------------------------

    // Takes the next event of the subscription unless the tracker or the
    // application is behind: then the subscription's bounded queue holds
    // what comes, and its loss marker (a resync) covers what overflows.
    void take_more() {
        if (stopped || receiving) return;
        if (tracker.backlog() >= opts.max_backlog || events.size() >= opts.max_queued_events) return;
        receiving = true;
        sub.async_receive([self = this->shared_from_this()](std::error_code ec, event ev) {
            self->receiving = false;
            if (self->stopped) return;
            if (ec) return self->link_lost(ec);
            self->take(std::move(ev));
            self->drive();
            self->take_more();
        });
    }

    void take(event ev) {
        ++counters.events_in;
        if (ev.lost) ++counters.loss_markers;
        // A threshold another process armed (through the same journal)
        // is known before its firing is judged.
        if (!ev.lost && ev.name == block_write_threshold_event::name) take_from_disk();
        tracker.on_event(ev);
    }

    void take_from_disk() {
        if (!opts.journal || saving) return;  // a save in progress merges it anyway
        std::optional<threshold_state> theirs;
        threshold_state base;
        if (opts.journal->read_changes(theirs, base) || !theirs) return;
        ++counters.taken_from_disk;
        tracker.take_from_disk(base, *theirs);
    }

    void deliver(threshold_event ev) {
        ++counters.reported;
        if (waiter) {
            auto w = std::move(waiter);
            receive_timer_armed = false;
            receive_timer.cancel();
            return w(false, {}, std::move(ev));
        }
        events.push_back(std::move(ev));
    }

    void receive(completion<std::error_code, threshold_event> op, std::uint64_t id, std::chrono::milliseconds timeout) {
        if (stopped) return op(true, asio::error::operation_aborted, {});
        if (!events.empty()) {
            threshold_event ev = std::move(events.front());
            events.pop_front();
            op(true, {}, std::move(ev));
            return take_more();
        }
        if (waiter) return op(true, error::invalid_argument, {});  // one receiver at a time
        waiter = std::move(op);
        waiter_id = id;
        if (timeout.count() > 0) {
            receive_timer_armed = true;
            receive_timer.expires_after(timeout);
            receive_timer.async_wait([self = this->shared_from_this(), id](std::error_code ec) {
                if (ec || !self->receive_timer_armed || self->waiter_id != id || !self->waiter) return;
                self->receive_timer_armed = false;
                auto op = std::move(self->waiter);
                op(false, error::timeout, {});
            });
        }
    }

    void cancel_receive(std::uint64_t id) {
        if (!waiter || waiter_id != id) return;
        auto op = std::move(waiter);
        receive_timer_armed = false;
        receive_timer.cancel();
        op(false, asio::error::operation_aborted, {});
    }

    std::optional<threshold_event> try_receive() {
        if (events.empty()) return std::nullopt;
        threshold_event ev = std::move(events.front());
        events.pop_front();
        take_more();
        return ev;
    }

    // ---- requests ----------------------------------------------------------------

    void request(tracker_request id, threshold_request_completion op) {
        if (stopped) return complete(op, asio::error::operation_aborted, {}, {}, true);
        requests[id].op = std::move(op);
        drive();
    }

    static diagnostics* diag_of(const threshold_request_completion& op) {
        return std::visit([](const auto& c) { return c.diag(); }, op);
    }

    static void complete(threshold_request_completion& op, std::error_code ec, std::vector<threshold_event> evs,
                         std::vector<threshold_report_row> rows, bool post) {
        std::visit(
            [&](auto& c) {
                using C = std::decay_t<decltype(c)>;
                if constexpr (std::is_same_v<C, completion<std::error_code>>)
                    c(post, ec);
                else if constexpr (std::is_same_v<C, completion<std::error_code, std::vector<threshold_event>>>)
                    c(post, ec, std::move(evs));
                else
                    c(post, ec, std::move(rows));
            },
            op);
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
        take_more();
    }

    // Graph queries of the tracker's own work (whatever a peer's events
    // make it do) are spaced out: at most one per min_refresh_interval
    // (longer after failures); the tracker coalesces what asks meanwhile.
    // A request's query goes at once: the application asked, and waits.
    void carry_out(tracker_actions::query_graph& act) {
        const auto now = clock::now();
        const auto at = last_query + query_gap;
        if (!act.requested && last_query != clock::time_point{} && now < at) {
            query_timer.expires_at(at);
            query_timer.async_wait([self = this->shared_from_this(), details = act.details, resync = act.resync](std::error_code ec) {
                if (ec || self->stopped) return;
                self->query(details, resync);
            });
            return;
        }
        query(act.details, act.resync);
    }

    void query(details_need details, bool for_resync) {
        last_query = clock::now();
        // A resync is timed from its first query out (a failed one is retried) to its end.
        if (for_resync && resync_began == clock::time_point{}) resync_began = last_query;
        ++counters.graph_queries;
        auto d = std::make_shared<diagnostics>();
        graph_query_options o;
        o.details = details;
        async_query_block_graph(*client, o, &drivers, *d,
                                [self = this->shared_from_this(), d](std::error_code ec, block_graph g) {
                                    if (self->stopped) return;
                                    self->counters.details_queries = self->drivers.refreshes;
                                    if (ec) {
                                        ++self->counters.graph_failures;
                                        self->query_gap = self->query_waits.next().value_or(std::chrono::seconds(30));
                                        self->tracker.on_graph_failed(
                                            ec, diagnostics{d->error_class, "cannot read the block graph: " + d->message});
                                    } else {
                                        self->query_waits.reset();
                                        self->query_gap = self->opts.min_refresh_interval;
                                        self->tracker.on_graph(g);
                                    }
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

    // The journal's file work runs on journal_executor when there is one
    // (the fsyncs never hold up this thread), else here. What other
    // writers changed comes back merged.
    void carry_out(tracker_actions::save_state&) {
        if (!opts.journal) return tracker.on_saved();
        ++counters.saves;
        saving = true;
        auto sent = std::make_shared<threshold_state>(tracker.state());
        auto job = std::make_shared<threshold_journal::pending_save>(opts.journal->prepare_save(*sent));
        auto finish = [self = this->shared_from_this(), sent, job] {
            self->saving = false;
            if (self->stopped) return;
            threshold_state written;
            diagnostics d;
            std::error_code ec = self->opts.journal->finish_save(*job, written, &d);
            if (!ec) {
                self->tracker.take_from_disk(*sent, written);
            } else {
                ++self->counters.save_failures;
                self->last_save_failure = d;
            }
            self->tracker.on_saved(ec, d);
        };
        if (!opts.journal_executor) {
            job->run();
            return finish();
        }
        // The work guard keeps this executor's context running meanwhile.
        asio::post(opts.journal_executor, [job, finish = std::move(finish), self = this->shared_from_this(),
                                           work = asio::make_work_guard(get_executor())]() mutable {
            job->run();
            asio::post(work.get_executor(), [finish = std::move(finish), self]() mutable {
                finish();
                self->drive();
            });
            work.reset();
        });
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

    void carry_out(tracker_actions::resync_done& act) {
        const auto began = std::exchange(resync_began, clock::time_point{});
        if (!opts.on_resync || began == clock::time_point{}) return;
        opts.on_resync(threshold_resync_info{clock::now() - began, act.audit, act.request != 0});
    }

    void carry_out(tracker_actions::request_done& act) {
        auto it = requests.find(act.request);
        if (it == requests.end()) return;
        pending p = std::move(it->second);
        requests.erase(it);
        if (auto* d = diag_of(p.op)) *d = act.ec ? act.diag : diagnostics{};
        complete(p.op, act.ec, std::move(p.events), std::move(act.rows), false);
    }

    // ---- the end -----------------------------------------------------------------

    void stop() {
        if (stopped) return;
        stopped = true;
        sub.reset();
        query_timer.cancel();
        receive_timer.cancel();
        audit_timer.cancel();
        auto reqs = std::move(requests);
        requests.clear();
        for (auto& [id, p] : reqs) complete(p.op, asio::error::operation_aborted, {}, {}, true);
        if (waiter) {
            auto w = std::move(waiter);
            w(true, asio::error::operation_aborted, {});
        }
    }

    struct pending {
        threshold_request_completion op;
        std::vector<threshold_event> events;  // reported by the request's own decisions
    };

    Client* client;
    threshold_service_options opts;
    threshold_tracker tracker;
    driver_cache drivers;
    typename Client::subscription sub;
    timer_type query_timer;
    timer_type receive_timer;
    timer_type audit_timer;
    backoff_series query_waits;
    std::chrono::milliseconds query_gap{opts.min_refresh_interval};
    clock::time_point last_query{};
    clock::time_point resync_began{};  // the running resync's first query (none: epoch)
    std::map<tracker_request, pending> requests;
    std::deque<threshold_event> events;
    completion<std::error_code, threshold_event> waiter;
    std::uint64_t waiter_id = 0;
    std::uint64_t receive_ids = 0;
    threshold_service_stats counters;
    std::error_code last_error;
    diagnostics last_save_failure;
    bool connected = false;
    bool receiving = false;
    bool driving = false;
    bool stopped = false;
    bool saving = false;
    bool receive_timer_armed = false;
};

}  // namespace detail

}  // namespace qmp
