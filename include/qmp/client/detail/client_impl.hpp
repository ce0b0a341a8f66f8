// The shared state behind a basic_client: the stream, the sans-io protocol
// pieces, the pending commands and the event queue. Every member function
// runs on the client's executor; asynchronous operations keep the state
// alive through a shared_ptr, so destroying the client never leaves a
// dangling handler.
#pragma once

#include <qmp/client/detail/fd_passing.hpp>
#include <qmp/client/options.hpp>
#include <qmp/protocol/error.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/handshake.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/protocol/pending_table.hpp>

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <utility>

namespace qmp::detail {

template <class Executor>
using timer_for = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                                             Executor>;

/// Something an asynchronous operation waits for. The operation waits on
/// `timer` (expiring at its deadline, or never); whoever completes it sets
/// `done` and cancels the timer.
template <class Executor>
struct waiter {
    explicit waiter(const Executor& ex) : timer(ex) {}
    timer_for<Executor> timer;
    bool done = false;
    bool abandoned = false;  // the operation gave up (timeout, cancellation)
    std::error_code ec;

    void arm(std::chrono::milliseconds timeout) {
        if (timeout.count() > 0)
            timer.expires_after(timeout);
        else
            timer.expires_at(std::chrono::steady_clock::time_point::max());
    }
    void finish(std::error_code e) {
        if (done) return;
        done = true;
        ec = e;
        timer.cancel();
    }
};

template <class Executor>
struct pending_cmd : waiter<Executor> {
    using waiter<Executor>::waiter;
    std::string id;
    std::string wire;
    bool oob = false;
    bool sent = false;
    owned_fds fds;  // sent with the command's first byte
    bool carried_fds = false;
    std::string result;  // the `return` value's exact text
    diagnostics diag;
};

template <class Executor>
struct event_waiter : waiter<Executor> {
    using waiter<Executor>::waiter;
    event ev;
};

enum class conn_state { idle, connecting, handshaking, ready, closed };

template <class Stream>
class client_impl : public std::enable_shared_from_this<client_impl<Stream>> {
public:
    using executor_type = typename Stream::executor_type;
    using cmd_ptr = std::shared_ptr<pending_cmd<executor_type>>;
    using ev_waiter_ptr = std::shared_ptr<event_waiter<executor_type>>;
    using waiter_ptr = std::shared_ptr<waiter<executor_type>>;

    template <class... Args>
    client_impl(client_options opts, Args&&... stream_args)
        : stream(std::forward<Args>(stream_args)...),
          options(std::move(opts)),
          framer_(options.limits),
          hs_(options.enable_oob),
          events_(options.event_queue_capacity),
          watchdog_(stream.get_executor()) {}

    executor_type get_executor() { return stream.get_executor(); }

    Stream stream;
    client_options options;
    client_stats stats;
    conn_state state = conn_state::idle;
    std::error_code close_reason;
    bool connect_timed_out = false;

    const struct greeting& server_greeting() const noexcept { return hs_.server_greeting(); }

    /// A read or a write failed. The peer going away is connection_closed
    /// whichever of the two noticed first (EOF, ECONNRESET, EPIPE, ...).
    void fail_io(std::error_code ec) {
        if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
            ec == asio::error::connection_aborted || ec == asio::error::not_connected ||
            ec == asio::error::shut_down) {
            if (options.trace) trace(trace_kind::state, "transport: " + ec.message());
            ec = error::connection_closed;
        }
        fail(ec);
    }
    bool oob_enabled() const noexcept { return state == conn_state::ready && hs_.oob_enabled(); }
    std::size_t pending_count() const noexcept { return pending_.size() + waiting_.size(); }

    void trace(trace_kind k, std::string_view text) {
        if (options.trace) options.trace(k, text);
    }

    // ---- session start ---------------------------------------------------

    /// Arms the watchdog for the phase that begins now.
    void start_watchdog(std::chrono::milliseconds timeout, conn_state phase) {
        if (timeout.count() <= 0) {
            watchdog_.cancel();
            return;
        }
        watchdog_.expires_after(timeout);
        watchdog_.async_wait([self = this->shared_from_this(), gen = generation_, phase](std::error_code ec) {
            if (ec || gen != self->generation_ || self->state != phase) return;
            if (phase == conn_state::connecting) {
                self->connect_timed_out = true;
                std::error_code ignored;
                self->stream.close(ignored);
            } else {
                self->fail(error::greeting_timeout);
            }
        });
    }

    /// A new transport attempt begins (before connect or handshake).
    void begin_attempt(conn_state phase) {
        ++generation_;
        state = phase;
        close_reason.clear();
        connect_timed_out = false;
        framer_.reset();
        hs_ = handshake(options.enable_oob);
        out_queue_.clear();
        out_writing_ = out_chunk{};
        writing_ = false;
        inband_in_flight_ = 0;
        fds_in_flight_ = false;
        trace(trace_kind::state, phase == conn_state::connecting ? "connecting" : "handshaking");
    }

    /// The transport connection could not be made.
    void connect_failed(std::error_code ec) {
        state = conn_state::closed;
        close_reason = ec;
        watchdog_.cancel();
        trace(trace_kind::state, "connect failed");
    }

    /// The stream is connected: read the greeting and negotiate. `w` is
    /// finished when the session is ready or failed.
    void begin_handshake(waiter_ptr w) {
        state = conn_state::handshaking;
        hs_waiter_ = std::move(w);
        start_watchdog(options.greeting_timeout, conn_state::handshaking);
        start_read();
    }

    // ---- commands ---------------------------------------------------------

    /// Queues or sends a command. Returns an error (nothing sent) when the
    /// session cannot take it.
    std::error_code submit(const cmd_ptr& c, std::string_view name, const json& args, bool oob) {
        if (state != conn_state::ready) return close_reason ? close_reason : make_error_code(error::not_connected);
        if (oob && !hs_.oob_enabled()) return error::oob_not_negotiated;
        if (!c->fds.empty()) {
            if (!can_pass_fds<Stream>::value) return error::fd_passing_unsupported;
            if (oob || c->fds.size() > max_fds_per_command) {
                c->diag.message = oob ? "descriptors cannot go with exec-oob"
                                      : "at most " + std::to_string(max_fds_per_command) + " descriptors per command";
                return error::invalid_argument;
            }
        }
        c->id = pending_.next_id();
        c->oob = oob;
        try {
            json req = json::object();
            req[oob ? "exec-oob" : "execute"] = name;
            if (!args.is_null()) req["arguments"] = args;
            req["id"] = c->id;
            c->wire = req.dump();
        } catch (const json::exception& e) {
            c->diag.message = e.what();
            return error::invalid_argument;
        }
        if (!oob && (!waiting_.empty() || held_back(*c)))
            waiting_.push_back(c);
        else
            transmit(c);
        return {};
    }

    /// The operation waiting for `c` gave up. An unsent command is never
    /// sent; a sent one stays in the table so its late reply is consumed.
    void abandon(const cmd_ptr& c) {
        c->abandoned = true;
        if (!c->sent) {
            for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
                if (*it == c) {
                    waiting_.erase(it);
                    break;
                }
        }
    }

    // ---- events -----------------------------------------------------------

    /// Returns true and fills `w` at once when an event (or a marker) is
    /// queued, or when the session is closed and nothing is queued.
    bool try_receive(const ev_waiter_ptr& w) {
        if (!events_.empty()) {
            take_event(*w);
            return true;
        }
        if (state == conn_state::closed || state == conn_state::idle) {
            w->done = true;
            w->ec = close_reason ? close_reason : make_error_code(error::not_connected);
            return true;
        }
        ev_waiters_.push_back(w);
        return false;
    }

    void abandon(const ev_waiter_ptr& w) {
        w->abandoned = true;
        for (auto it = ev_waiters_.begin(); it != ev_waiters_.end(); ++it)
            if (*it == w) {
                ev_waiters_.erase(it);
                break;
            }
    }

    std::size_t queued_events() const noexcept { return events_.size(); }

    // ---- teardown -----------------------------------------------------------

    /// Ends the session: every pending operation completes with `ec` now.
    void fail(std::error_code ec) {
        if (state == conn_state::closed || state == conn_state::idle) return;
        state = conn_state::closed;
        close_reason = ec;
        ++generation_;
        std::error_code ignored;
        stream.close(ignored);
        watchdog_.cancel();
        writing_ = false;
        out_queue_.clear();
        out_writing_.fds.reset();  // the bytes may still be under a cancelled write
        if (options.trace) trace(trace_kind::state, "closed: " + ec.message());

        pending_.drain([&](cmd_ptr& c) { c->finish(ec); });
        for (auto& c : waiting_) c->finish(ec);
        waiting_.clear();
        if (hs_waiter_) {
            hs_waiter_->finish(ec);
            hs_waiter_.reset();
        }
        // Queued events stay receivable; waiters exist only when none are.
        auto ws = std::move(ev_waiters_);
        ev_waiters_.clear();
        for (auto& w : ws) w->finish(ec);
    }

    /// What QEMU said when it refused negotiation.
    diagnostics negotiation_diagnostics() const { return diagnostics{hs_.error_class(), hs_.error_desc()}; }

private:
    // An in-band command waits while QEMU's queue is full (oob on), and a
    // command with descriptors waits for the reply to the previous one:
    // QEMU keeps only the descriptors of the last message that carried any,
    // and with oob on it reads ahead of the command that takes them.
    bool held_back(const pending_cmd<executor_type>& c) const {
        if (hs_.oob_enabled() && inband_in_flight_ >= options.max_inband_in_flight) return true;
        return !c.fds.empty() && fds_in_flight_;
    }

    void transmit(const cmd_ptr& c) {
        c->sent = true;
        if (!c->oob) ++inband_in_flight_;
        ++stats.commands_sent;
        pending_.insert(c->id, c);
        if (!c->fds.empty()) {
            fds_in_flight_ = true;
            c->carried_fds = true;
        }
        send(c->wire, std::move(c->fds));
        std::string().swap(c->wire);
    }

    void pump_waiting() {
        while (!waiting_.empty() && !held_back(*waiting_.front())) {
            cmd_ptr c = std::move(waiting_.front());
            waiting_.pop_front();
            transmit(c);
        }
    }

    /// Bytes to write, with the descriptors that go with their first byte.
    struct out_chunk {
        std::string bytes;
        owned_fds fds;
    };

    void send(const std::string& text, owned_fds fds = {}) {
        trace(trace_kind::sent, text);
        if (fds.empty() && !out_queue_.empty())
            out_queue_.back().bytes += text;
        else
            out_queue_.push_back(out_chunk{text, std::move(fds)});
        if (!writing_) start_write();
    }

    void start_write() {
        std::swap(out_writing_, out_queue_.front());
        out_queue_.pop_front();
        writing_ = true;
        if (!out_writing_.fds.empty()) return write_fds();
        write_from(0);
    }

    void write_from(std::size_t offset) {
        asio::async_write(stream, asio::buffer(out_writing_.bytes.data() + offset, out_writing_.bytes.size() - offset),
                          [self = this->shared_from_this(), gen = generation_](std::error_code ec, std::size_t) {
                              if (gen != self->generation_) return;
                              self->writing_ = false;
                              self->out_writing_.bytes.clear();
                              if (ec) return self->fail_io(ec);
                              if (!self->out_queue_.empty()) self->start_write();
                          });
    }

    void write_fds() {
#if defined(ASIO_HAS_LOCAL_SOCKETS)
        if constexpr (can_pass_fds<Stream>::value) {
            std::error_code ec;
            std::size_t n = send_with_fds(stream, out_writing_.bytes.data(), out_writing_.bytes.size(),
                                          out_writing_.fds.get(), ec);
            if (ec == asio::error::would_block) {
                stream.async_wait(Stream::wait_write, [self = this->shared_from_this(),
                                                       gen = generation_](std::error_code wec) {
                    if (gen != self->generation_) return;
                    if (wec) return self->fail_io(wec);
                    self->write_fds();
                });
                return;
            }
            if (ec) return fail_io(ec);
            out_writing_.fds.reset();  // QEMU has its own copies now
            return write_from(n);
        }
#endif
        fail(error::fd_passing_unsupported);  // submit refuses this earlier
    }

    void start_read() {
        if (!rbuf_) rbuf_.reset(new char[read_size]);
        stream.async_read_some(asio::buffer(rbuf_.get(), read_size),
                               [self = this->shared_from_this(), gen = generation_](std::error_code ec, std::size_t n) {
                                   self->on_read(gen, ec, n);
                               });
    }

    void on_read(std::uint64_t gen, std::error_code ec, std::size_t n) {
        if (gen != generation_) return;
        if (ec) return fail_io(ec);
        stats.bytes_received += n;
        framer_.feed(rbuf_.get(), n);
        for (;;) {
            std::string_view text;
            std::error_code fe;
            auto st = framer_.next(text, fe);
            if (st == framer::status::need_more) break;
            if (st == framer::status::failed) return fail(fe);
            handle(text);
            if (gen != generation_) return;  // the message ended the session
        }
        start_read();
    }

    void handle(std::string_view text) {
        ++stats.messages_received;
        trace(trace_kind::received, text);
        message msg;
        if (auto ec = classify(text, msg, options.limits.max_depth)) return fail(ec);

        if (state == conn_state::handshaking) {
            std::string to_send;
            bool handled = false;
            auto repeats = hs_.extra_greetings();
            auto ec = hs_.on_message(msg, to_send, handled);
            if (ec) return fail(ec);
            stats.repeated_greetings += hs_.extra_greetings() - repeats;
            if (!to_send.empty()) send(to_send);
            if (hs_.current() == handshake::state::ready) {
                state = conn_state::ready;
                watchdog_.cancel();
                ++stats.connections;
                trace(trace_kind::state, hs_.oob_enabled() ? "ready (oob)" : "ready");
                if (hs_waiter_) {
                    hs_waiter_->finish({});
                    hs_waiter_.reset();
                }
            }
            if (!handled && msg.kind == message_kind::event) push_event(std::move(msg.event));
            return;
        }

        switch (msg.kind) {
        case message_kind::greeting: {
            // Only a copy of the first greeting is tolerated (see handshake).
            std::string unused;
            bool handled = false;
            if (auto ec = hs_.on_message(msg, unused, handled)) return fail(ec);
            ++stats.repeated_greetings;
            return;
        }
        case message_kind::event: return push_event(std::move(msg.event));
        case message_kind::success:
        case message_kind::failure: break;
        }
        if (!msg.has_id) {
            // An id-less error answers input QEMU could not parse: our
            // stream and QEMU's parser disagree, nothing can be trusted.
            if (msg.kind == message_kind::failure) return fail(error::out_of_sync);
            ++stats.unknown_ids;
            return;
        }
        auto entry = pending_.take(msg);
        if (!entry) {
            ++stats.unknown_ids;
            return;
        }
        cmd_ptr c = std::move(*entry);
        if (!c->oob && inband_in_flight_ > 0) --inband_in_flight_;
        if (c->carried_fds) fds_in_flight_ = false;
        if (c->abandoned) {
            ++stats.late_replies;
        } else if (msg.kind == message_kind::success) {
            c->result.assign(msg.value.data(), msg.value.size());
            c->finish({});
        } else {
            c->diag.error_class = msg.error_class;
            c->diag.message = msg.error_desc;
            c->finish(server_error_from_class(msg.error_class));
        }
        pump_waiting();
    }

    void push_event(event ev) {
        ++stats.events_received;
        events_.push(std::move(ev));
        stats.events_dropped = events_.dropped();
        while (!ev_waiters_.empty() && !events_.empty()) {
            ev_waiter_ptr w = std::move(ev_waiters_.front());
            ev_waiters_.pop_front();
            take_event(*w);
            w->timer.cancel();
        }
    }

    void take_event(event_waiter<executor_type>& w) {
        w.ev = events_.pop();
        w.done = true;
        w.ec = w.ev.lost ? make_error_code(error::events_lost) : std::error_code();
    }

    static constexpr std::size_t read_size = 64 * 1024;

    framer framer_;
    handshake hs_;
    pending_table<cmd_ptr> pending_;
    std::deque<cmd_ptr> waiting_;  // in-band commands held back by the in-flight limit
    std::size_t inband_in_flight_ = 0;
    event_queue events_;
    std::deque<ev_waiter_ptr> ev_waiters_;
    waiter_ptr hs_waiter_;
    timer_for<executor_type> watchdog_;
    std::unique_ptr<char[]> rbuf_;
    std::deque<out_chunk> out_queue_;
    out_chunk out_writing_;
    bool writing_ = false;
    bool fds_in_flight_ = false;  // a command that carried descriptors awaits its reply
    std::uint64_t generation_ = 0;
};

}  // namespace qmp::detail
