// The state behind a basic_client: a thin asio runner of the sans-io
// session. It reads into the session, writes what the session queues,
// keeps the pending operations (one table, one deadline timer), routes
// events to subscriptions, and completes handlers after each session call
// (never from inside one). Every member runs on the client's executor;
// operations keep the state alive through a shared_ptr.
#pragma once

#include <qmp/client/detail/ops.hpp>
#include <qmp/client/options.hpp>
#include <qmp/client/transport.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/protocol/session.hpp>

#include <asio/error.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qmp::detail {

template <class Executor>
using timer_for = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor>;

enum class link_state { idle, connecting, negotiating, ready, closed };

template <class Stream>
class client_impl : public std::enable_shared_from_this<client_impl<Stream>>, private session_handler {
public:
    using executor_type = typename Stream::executor_type;
    using stream_type = Stream;
    using tr = transport<Stream>;

    template <class... StreamArgs>
    client_impl(client_options opts, StreamArgs&&... args)
        : sp_(std::make_shared<Stream>(std::forward<StreamArgs>(args)...)),
          options_(std::move(opts)),
          sess_(static_cast<const session_options&>(options_)),
          everything_(router_.add({}, options_.event_queue_capacity)),
          deadline_timer_(sp_->get_executor()),
          watchdog_(sp_->get_executor()) {}

    executor_type get_executor() { return sp_->get_executor(); }

    /// Runs `f` where the client runs: at once when the caller is there
    /// (inside a handler of the executor, or a blocking facade that runs
    /// the context itself and lets no one else run it: run_here), else
    /// posted.
    template <class F>
    void enter(F&& f) {
        if (run_here_)
            std::forward<F>(f)();
        else
            asio::dispatch(get_executor(), std::forward<F>(f));
    }
    /// A blocking facade that runs the context on the calling thread and
    /// lets no one else run it says so while it does.
    void run_here(bool on) noexcept { run_here_ = on; }

    // ---- what the client's front and its operations read ---------------------

    const client_options& options() const noexcept { return options_; }
    bool ready() const noexcept { return state_ == link_state::ready; }
    greeting server_greeting() const { return sess_.server_greeting(); }
    /// Installs what the peer of session `gen` offers; false when that
    /// session is over.
    bool offer(std::shared_ptr<const peer_schema> schema, std::uint64_t gen) {
        if (gen != generation_ || !ready()) return false;
        sess_.offer(std::move(schema));
        return true;
    }
    std::shared_ptr<const peer_schema> offered() const { return sess_.offered(); }
    bool oob_enabled() const noexcept { return sess_.oob_enabled(); }
    /// Why the last session ended (empty while connected or never connected).
    std::error_code close_reason() const noexcept { return close_reason_; }
    /// close() was called since the last connect began.
    bool user_closed() const noexcept { return user_closed_; }
    /// async_receive_event's subscription.
    event_router::subscription_id everything() const noexcept { return everything_; }
    /// A subscription's queue (nullptr once it ended).
    event_queue* queue(event_router::subscription_id sub) { return router_.queue(sub); }

    Stream& stream() noexcept { return *sp_; }
    /// What an operation on the stream captures to keep it alive (nothing
    /// for streams that are never renewed).
    auto held() const noexcept {
        if constexpr (transport_renews<Stream>::value)
            return sp_;
        else
            return nullptr;
    }
    /// The session's counters, and the losses of async_receive_event's queue.
    client_stats stats() {
        client_stats s;
        static_cast<session_stats&>(s) = sess_.stats();
        if (event_queue* q = router_.queue(everything_)) s.events_dropped = q->dropped();
        return s;
    }

    // ---- connecting ------------------------------------------------------------

    /// Begins a session on a connected stream; `op` completes when ready or failed.
    void begin_session(std::unique_ptr<connect_op_base> op) {
        connect_op_ = std::move(op);
        user_closed_ = false;
        sess_.start();
        state_ = link_state::negotiating;
        close_reason_.clear();
        ++generation_;
        arm_watchdog(options_.greeting_timeout, error::greeting_timeout);
        trace(trace_kind::state, "negotiating");
        start_read();
        flush();
    }

    /// A connect attempt starts: the old stream goes, a watchdog bounds it.
    /// `target`: what is being connected to, for the message of a failure.
    void begin_connect(std::unique_ptr<connect_op_base> op, std::string target) {
        connect_op_ = std::move(op);
        connect_target_ = std::move(target);
        user_closed_ = false;
        tr::close(*sp_);
        if constexpr (transport_renews<Stream>::value) sp_ = tr::renew(*sp_);
        state_ = link_state::connecting;
        close_reason_.clear();
        ++generation_;
        arm_watchdog(options_.connect_timeout, error::connect_timeout);
        trace(trace_kind::state, "connecting");
    }

    /// The transport connection attempt ended.
    void connected(std::uint64_t gen, std::error_code ec) {
        if (gen != generation_ || state_ != link_state::connecting) return;
        if (ec) return end_connect(ec, {});
        begin_session(std::move(connect_op_));
    }

    bool busy_connecting() const { return state_ == link_state::connecting || state_ == link_state::negotiating; }

    /// A stream its owner connected, for the next handshake; ignored while
    /// a session runs (the handshake then fails with already_connected).
    void adopt(std::shared_ptr<Stream> s) {
        if (busy_connecting() || state_ == link_state::ready) return;
        tr::close(*sp_);
        sp_ = std::move(s);
    }

    // ---- commands --------------------------------------------------------------

    /// Queues a command for `op`, or completes it (posted) when refused.
    void submit(std::unique_ptr<execute_op_base> op, std::string_view name, std::string_view args,
                const exec_options& o, owned_fds fds) {
        std::error_code ec;
        diagnostics diag;
        if (!fds.empty() && !tr::can_pass_fds) {
            ec = error::fd_passing_unsupported;
        } else {
            request_options ro;
            ro.oob = o.oob;
            ro.fd_count = fds.size();
            op->id = sess_.submit_text(name, args, ro, ec, diag);
        }
        if (ec) {
            static_cast<execute_op_base&>(*op).set(ec, {}, diag);
            return op->complete(true);
        }
        if (!fds.empty()) fds_.emplace(op->id, std::move(fds));
        add_deadline(*op, o.timeout.count() < 0 ? options_.command_timeout : o.timeout);
        execs_.emplace(op->id, std::move(op));
        flush();
    }

    /// The caller cancelled the command `target` (if it is still pending).
    void cancel_execute_op(const op_base* target) {
        // `target` may be gone already (completed before the cancellation
        // ran): it is compared, never read. Only cancellations pay this scan.
        auto it = execs_.begin();
        while (it != execs_.end() && it->second.get() != target) ++it;
        if (it == execs_.end()) return;
        const std::uint64_t id = it->first;
        sess_.abandon(id);
        fds_.erase(id);
        auto op = std::move(it->second);
        execs_.erase(it);
        drop_deadline(*op);
        op->fail(asio::error::operation_aborted);
        op->complete(false);
    }

    // ---- events ----------------------------------------------------------------

    /// `op` takes the next event of subscription `sub` now, or waits.
    void receive(std::unique_ptr<receive_op_base> op, event_router::subscription_id sub, std::chrono::milliseconds timeout) {
        op->id = sub;
        event_queue* q = router_.queue(sub);
        if (q && !q->empty()) {
            op->set(q->pop());
            return op->complete(true);
        }
        if (!q || state_ == link_state::closed || state_ == link_state::idle) {
            op->fail(!q ? make_error_code(error::invalid_argument)
                        : close_reason_ ? close_reason_ : make_error_code(error::not_connected));
            return op->complete(true);
        }
        add_deadline(*op, timeout);
        waiters_[sub].push_back(std::move(op));
    }

    void cancel_receive(event_router::subscription_id sub, const op_base* target) {
        auto it = waiters_.find(sub);
        if (it == waiters_.end()) return;
        for (auto w = it->second.begin(); w != it->second.end(); ++w)
            if (w->get() == target) {
                auto op = std::move(*w);
                it->second.erase(w);
                drop_deadline(*op);
                op->fail(asio::error::operation_aborted);
                return op->complete(false);
            }
    }

    event_router::subscription_id subscribe(event_filter f, std::size_t capacity) { return router_.add(std::move(f), capacity); }

    void unsubscribe(event_router::subscription_id sub) {
        router_.remove(sub);
        auto it = waiters_.find(sub);
        if (it == waiters_.end()) return;
        auto ws = std::move(it->second);
        waiters_.erase(it);
        for (auto& w : ws) {
            drop_deadline(*w);
            w->fail(asio::error::operation_aborted);
            w->complete(false);
        }
    }

    std::size_t queued_events(event_router::subscription_id sub) {
        event_queue* q = router_.queue(sub);
        return q ? q->size() : 0;
    }
    std::size_t pending_commands() const { return execs_.size(); }

    // ---- teardown --------------------------------------------------------------

    /// Ends the session; every operation completes now with `ec`.
    void close(std::error_code ec) {
        user_closed_ = true;
        if (state_ == link_state::connecting) return end_connect(ec, {});
        if (state_ == link_state::negotiating || state_ == link_state::ready) sess_.close(ec, {}, *this);
        dispatch_ready();
    }

    void trace(trace_kind k, std::string_view text) {
        if (options_.trace) options_.trace(k, text);
    }

    std::uint64_t generation() const noexcept { return generation_; }

private:
    // The stream lives apart: a transport that must renew it for another
    // connection (TLS: a fresh SSL object) replaces it, and the operations
    // still running on the old one keep that alive (held()).
    std::shared_ptr<Stream> sp_;
    client_options options_;
    session sess_;
    event_router router_;
    const event_router::subscription_id everything_;  // async_receive_event's subscription
    link_state state_ = link_state::idle;
    std::error_code close_reason_;
    std::string connect_target_;  // what begin_connect connects to, for messages
    bool user_closed_ = false;
    bool run_here_ = false;

    // ---- what the session says -------------------------------------------------

    void on_reply(std::uint64_t id, std::error_code ec, std::string_view value, const diagnostics& diag) override {
        fds_.erase(id);
        auto it = execs_.find(id);
        if (it == execs_.end()) return;
        auto op = std::move(it->second);
        execs_.erase(it);
        drop_deadline(*op);
        static_cast<execute_op_base&>(*op).set(ec, value, diag);  // converts while the text exists
        ready_.push_back(std::move(op));
    }

    void on_event(event&& ev) override {
        router_.push(std::move(ev));
        wake_waiters();
    }

    void on_ready() override {
        state_ = link_state::ready;
        watchdog_.cancel();
        if (connect_op_) {
            connect_op_->set({}, {});
            ready_.push_back(std::move(connect_op_));
        }
    }

    void on_closed(std::error_code reason, const diagnostics& diag) override {
        if (options_.trace) trace(trace_kind::state, "closed: " + reason.message());
        link_down(reason, diag);
        fds_.clear();
        // Queued events stay receivable; waiters exist only where none are.
        for (auto& [sub, ws] : waiters_)
            for (auto& w : ws) {
                drop_deadline(*w);
                w->fail(reason);
                ready_.push_back(std::move(w));
            }
        waiters_.clear();
    }

    void end_connect(std::error_code ec, const diagnostics& diag) {
        trace(trace_kind::state, "connect failed");
        if (diag.message.empty() && !connect_target_.empty()) {
            // The socket refused, was missing, or nothing answered in time:
            // name it (the code says why).
            diagnostics named = diag;
            named.message = "cannot connect to " + connect_target_;
            link_down(ec, named);
        } else {
            link_down(ec, diag);
        }
        dispatch_ready();
    }

    // The link is down for `ec`: stale completions are ignored from now on,
    // the stream is closed, no timer runs, and a connect in progress
    // completes with `ec` and `diag`.
    void link_down(std::error_code ec, const diagnostics& diag) {
        state_ = link_state::closed;
        close_reason_ = ec;
        ++generation_;
        // A write still in flight belongs to this link: its completion
        // comes stale and is ignored, so it must not hold up the next one.
        writing_ = false;
        tr::close(*sp_);
        watchdog_.cancel();
        stop_timer();
        if (connect_op_) {
            connect_op_->set(ec, diag);
            ready_.push_back(std::move(connect_op_));
        }
    }

    // Subscriptions with queued events give them to their waiters.
    void wake_waiters() {
        for (auto it = waiters_.begin(); it != waiters_.end();) {
            event_queue* q = router_.queue(it->first);
            auto& ws = it->second;
            while (q && !q->empty() && !ws.empty()) {
                auto op = std::move(ws.front());
                ws.pop_front();
                drop_deadline(*op);
                static_cast<receive_op_base&>(*op).set(q->pop());
                ready_.push_back(std::move(op));
            }
            it = ws.empty() ? waiters_.erase(it) : std::next(it);
        }
    }

    // Handlers run once the session call is over (they may call back in).
    void dispatch_ready() {
        if (ready_.empty()) return;
        auto done = std::move(ready_);
        ready_.clear();
        for (auto& op : done) op->complete(false);
    }

    // ---- deadlines: one timer for every operation ------------------------------

    void add_deadline(op_base& op, std::chrono::milliseconds timeout) {
        if (timeout.count() <= 0) return;
        const auto at = clock::now() + timeout;
        op.deadline = deadlines_.emplace(at, &op);
        op.has_deadline = true;
        // The timer moves only when this deadline comes first: with one
        // timeout for all commands that is never, so no system call per command.
        if (!timer_armed_ || at < timer_at_) arm_timer(at);
    }

    void drop_deadline(op_base& op) {
        if (!op.has_deadline) return;
        deadlines_.erase(op.deadline);
        op.has_deadline = false;
    }

    // A session that ended keeps no timer: an io_context's run() returns
    // once its work is done.
    void stop_timer() {
        if (!timer_armed_) return;
        timer_armed_ = false;
        deadline_timer_.cancel();
    }

    void arm_timer(clock::time_point at) {
        timer_at_ = at;
        timer_armed_ = true;
        deadline_timer_.expires_at(at);
        deadline_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
            if (ec == asio::error::operation_aborted) return;  // re-armed earlier
            self->timer_armed_ = false;
            self->expire();
        });
    }

    void expire() {
        const auto now = clock::now();
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
            op_base* target = deadlines_.begin()->second;
            drop_deadline(*target);
            if (target->what == op_base::kind::execute) {
                auto it = execs_.find(target->id);
                if (it == execs_.end()) continue;
                sess_.abandon(target->id);  // a late reply is consumed
                fds_.erase(target->id);
                auto op = std::move(it->second);
                execs_.erase(it);
                op->fail(error::timeout);
                ready_.push_back(std::move(op));
            } else {
                auto it = waiters_.find(target->id);
                if (it == waiters_.end()) continue;
                for (auto w = it->second.begin(); w != it->second.end(); ++w)
                    if (w->get() == target) {
                        (*w)->fail(error::timeout);
                        ready_.push_back(std::move(*w));
                        it->second.erase(w);
                        break;
                    }
                if (it->second.empty()) waiters_.erase(it);
            }
        }
        if (!deadlines_.empty()) arm_timer(deadlines_.begin()->first);
        dispatch_ready();
    }

    void arm_watchdog(std::chrono::milliseconds timeout, error what) {
        watchdog_.cancel();
        if (timeout.count() <= 0) return;
        watchdog_.expires_after(timeout);
        watchdog_.async_wait([self = this->shared_from_this(), gen = generation_, what](std::error_code ec) {
            if (ec || gen != self->generation_) return;
            if (self->state_ == link_state::connecting) return self->end_connect(what, {});
            if (self->state_ == link_state::negotiating) {
                self->sess_.close(what, {}, *self);
                self->dispatch_ready();
            }
        });
    }

    // ---- reading and writing (client/detail/client_io.hpp) --------------------

    void start_read();
    void on_read(std::uint64_t gen, std::error_code ec, std::size_t n);
    static bool peer_gone(std::error_code ec);
    // Writes what the session queued, one chunk at a time.
    void flush();
    void write_from(std::string_view bytes, std::size_t offset, std::uint64_t gen);
    void on_written(std::uint64_t gen, std::error_code ec, bool nudge = false);
    void write_nudge(std::uint64_t gen);
    void write_with_fds(std::string_view bytes, owned_fds fds, std::uint64_t gen);

    static constexpr std::size_t read_size = 64 * 1024;

    std::unordered_map<std::uint64_t, std::unique_ptr<op_base>> execs_;
    std::unordered_map<std::uint64_t, owned_fds> fds_;  // descriptors of commands not written yet
    std::unordered_map<event_router::subscription_id, std::deque<std::unique_ptr<op_base>>> waiters_;
    std::unique_ptr<connect_op_base> connect_op_;
    std::vector<std::unique_ptr<op_base>> ready_;
    deadline_map deadlines_;
    timer_for<executor_type> deadline_timer_;
    clock::time_point timer_at_{};
    bool timer_armed_ = false;
    timer_for<executor_type> watchdog_;
    std::unique_ptr<char[]> rbuf_;
    bool writing_ = false;
    // Turns of the loop as the client sees them (a read or a write
    // completed, a gathered flush ran): a second write in one turn waits
    // for a posted flush, so commands issued together leave together.
    std::uint64_t turn_ = 1;
    std::uint64_t written_turn_ = 0;
    bool flush_posted_ = false;
    std::uint64_t generation_ = 0;
};

}  // namespace qmp::detail

#include <qmp/client/detail/client_io.hpp>
