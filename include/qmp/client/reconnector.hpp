// Keeps a basic_client connected: connects, tells the application the link
// is up (where threshold services and other consumers call on_connected()),
// notices when it ends, waits with exponential backoff on a timer (never
// blocking the thread) and connects again, until stop(). Many reconnectors,
// one per VM, share one io_context thread; one that cannot reach its QEMU
// delays no other.
//
// It learns that a session ended from a subscription that matches no event:
// its receive completes only when the connection closes.
#pragma once

#include <qmp/client/backoff.hpp>
#include <qmp/client/basic_client.hpp>
#include <qmp/client/subscription.hpp>

#include <asio/basic_waitable_timer.hpp>
#include <asio/dispatch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

namespace qmp {

struct reconnect_options {
    /// Waits between attempts (its `total` is ignored: a reconnector tries
    /// until stopped). Some jitter keeps a fleet of VMs whose QEMUs went
    /// together (a host's restart) from coming back in lock step.
    backoff retry{std::chrono::milliseconds(50), std::chrono::milliseconds(5000), 0.2, {}};
    /// A session that lasted at least this long starts the waits anew (a
    /// QEMU that accepts and drops at once backs off).
    std::chrono::milliseconds stable_after{10000};
};

/// What a reconnector saw: `up` after each successful connect, else the
/// reason the session ended or an attempt failed.
struct reconnect_status {
    bool up = false;
    std::error_code ec;
    std::uint64_t attempts = 0;  ///< failed attempts since the last success
};

template <class Client, class Endpoint>
class basic_reconnector {
    struct state;

public:
    using executor_type = typename Client::executor_type;

    /// `on_change` runs on the client's executor: up (connected, consumers
    /// may resync now) or down (with the reason). It may call stop().
    basic_reconnector(Client& client, Endpoint endpoint, reconnect_options opts,
                      std::function<void(const reconnect_status&)> on_change)
        : st_(std::make_shared<state>(client, std::move(endpoint), opts, std::move(on_change))) {}
    basic_reconnector(basic_reconnector&&) noexcept = default;
    basic_reconnector& operator=(basic_reconnector&&) = delete;
    basic_reconnector(const basic_reconnector&) = delete;
    ~basic_reconnector() { stop(); }

    /// Starts connecting (returns at once).
    void start() {
        asio::dispatch(st_->client->get_executor(), [s = st_] {
            if (s->running || s->stopped) return;
            s->running = true;
            s->connect();
        });
    }
    /// Stops trying and closes the client. Call it where the executor runs,
    /// or while it does not run.
    void stop() {
        if (!st_) return;
        auto s = std::move(st_);
        s->stopped = true;
        s->timer.cancel();
        s->watch.reset();
        s->client->close();
    }

    /// Sessions begun, and failed attempts in a row (read on the executor).
    std::uint64_t sessions() const noexcept { return st_ ? st_->sessions : 0; }
    std::uint64_t failures() const noexcept { return st_ ? st_->failures : 0; }

private:
    struct state : std::enable_shared_from_this<state> {
        using timer_type = asio::basic_waitable_timer<std::chrono::steady_clock,
                                                      asio::wait_traits<std::chrono::steady_clock>, executor_type>;
        state(Client& c, Endpoint e, reconnect_options o, std::function<void(const reconnect_status&)> f)
            : client(&c), endpoint(std::move(e)), opts(o), on_change(std::move(f)), timer(c.get_executor()),
              waits(without_total(o.retry)) {
            event_filter nothing;
            nothing.predicate = [](const event&) { return false; };
            watch = c.subscribe(std::move(nothing), 1);
        }

        void connect() {
            client->async_connect(endpoint, [self = this->shared_from_this()](std::error_code ec) {
                if (self->stopped) return;
                if (ec) return self->failed(ec);
                ++self->sessions;
                self->failures = 0;
                self->since = std::chrono::steady_clock::now();
                self->tell(true, {});
                if (self->stopped) return;  // on_change may call stop()
                self->watch_session();
            });
        }

        void watch_session() {
            watch.async_receive([self = this->shared_from_this()](std::error_code ec, event) {
                if (self->stopped) return;
                if (!ec) return self->watch_session();  // cannot happen: it matches nothing
                if (std::chrono::steady_clock::now() - self->since >= self->opts.stable_after) self->waits.reset();
                self->tell(false, ec);
                if (!self->stopped) self->retry_later();
            });
        }

        void failed(std::error_code ec) {
            ++failures;
            tell(false, ec);
            if (!stopped) retry_later();
        }

        static backoff without_total(backoff b) {
            b.total = {};
            return b;
        }

        void retry_later() {
            timer.expires_after(waits.next().value_or(opts.retry.max));
            timer.async_wait([self = this->shared_from_this()](std::error_code ec) {
                if (ec || self->stopped) return;
                self->connect();
            });
        }

        void tell(bool up, std::error_code ec) {
            if (on_change) on_change(reconnect_status{up, ec, failures});
        }

        Client* client;
        Endpoint endpoint;
        reconnect_options opts;
        std::function<void(const reconnect_status&)> on_change;
        timer_type timer;
        typename Client::subscription watch;
        backoff_series waits;
        std::chrono::steady_clock::time_point since{};
        std::uint64_t sessions = 0;
        std::uint64_t failures = 0;
        bool running = false;
        bool stopped = false;
    };

    std::shared_ptr<state> st_;
};

/// Deduces the endpoint: `make_reconnector(client, ep, opts, on_change)`.
template <class Client, class Endpoint>
basic_reconnector<Client, Endpoint> make_reconnector(Client& client, Endpoint endpoint, reconnect_options opts,
                                                     std::function<void(const reconnect_status&)> on_change) {
    return basic_reconnector<Client, Endpoint>(client, std::move(endpoint), opts, std::move(on_change));
}

}  // namespace qmp
