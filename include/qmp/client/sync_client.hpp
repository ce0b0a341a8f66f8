// A blocking facade over basic_client for scripts, tests and the CLI. By
// default it hands no call to another thread: it owns an io_context and runs
// it on the calling thread while a call waits, so a round trip costs what
// the asynchronous client's does. Nothing is read between calls then:
// events wait in the socket (and in QEMU) and reach the bounded queue with
// the next call, so none is lost while the caller is busy elsewhere.
//
// With `keep_reading`, a thread of its own runs the io_context all the
// time: events keep flowing into the bounded queue (dropped, and counted,
// when it is full) even while the caller is stuck, so QEMU never has to
// hold them. Each call then costs a hand-off to that thread and back. For
// event consumers that may stall (qmpctl events on a blocked stdout).
//
// One calling thread at a time; close() may also come from any other
// thread (a watchdog ending a call that takes too long).
//
// Every call exists twice: with `std::error_code&` + diagnostics, and
// throwing qmp_error, which carries QEMU's class and desc in what().
#pragma once

#include <qmp/client/basic_client.hpp>

#include <asio/io_context.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

namespace qmp {

namespace detail {

// The stream type on `Executor`: the stream's own rebind where it has one,
// else the stream as it is (its executor must then convert from Executor).
template <class S, class Executor, class = void>
struct rebound_stream {
    using type = S;
};
template <class S, class Executor>
struct rebound_stream<S, Executor, std::void_t<typename S::template rebind_executor<Executor>::other>> {
    using type = typename S::template rebind_executor<Executor>::other;
};
template <class S, class Executor>
using rebound_stream_t = typename rebound_stream<S, Executor>::type;

// The endpoint a blocking client's stream connects to, or a placeholder.
struct no_sync_endpoint {};
template <class S>
struct sync_endpoint {
    using type = std::conditional_t<std::is_void_v<typename transport<S>::endpoint_type>, no_sync_endpoint,
                                    typename transport<S>::endpoint_type>;
};

}  // namespace detail

template <class AsyncStream>
class basic_sync_client {
public:
    using async_client_type = basic_client<detail::rebound_stream_t<AsyncStream, asio::io_context::executor_type>>;
    /// What connect() takes without a template of its own: the socket's
    /// endpoint (a placeholder for streams without one, such as TLS).
    using endpoint_type = typename detail::sync_endpoint<typename async_client_type::stream_type>::type;

    /// A client on its own io_context (with `keep_reading`: and its own
    /// thread running it).
    explicit basic_sync_client(client_options opts = {}, bool keep_reading = false);
    /// `stream_args` go to the stream after the executor (for a TLS stream:
    /// the asio::ssl::context).
    template <class StreamArg, class... StreamArgs>
    basic_sync_client(client_options opts, bool keep_reading, StreamArg&& stream_arg, StreamArgs&&... stream_args)
        : client_(ctx_.get_executor(), std::move(opts), std::forward<StreamArg>(stream_arg),
                  std::forward<StreamArgs>(stream_args)...) {
        start(keep_reading);
    }

    ~basic_sync_client();

    basic_sync_client(const basic_sync_client&) = delete;
    basic_sync_client& operator=(const basic_sync_client&) = delete;

    /// Connects and negotiates; when QEMU refuses, `diag` has its reason.
    template <class Endpoint>
    void connect(const Endpoint& ep, std::error_code& ec, diagnostics& diag) {
        if constexpr (std::is_convertible_v<const Endpoint&, endpoint_type>)
            ec = connect_to(ep, nullptr, diag);
        else
            std::tie(ec) = run<std::error_code>([&](auto h) { client_.async_connect(ep, diag, std::move(h)); });
    }
    template <class Endpoint>
    void connect(const Endpoint& ep, std::error_code& ec) {
        diagnostics diag;
        connect(ep, ec, diag);
    }
    template <class Endpoint>
    void connect(const Endpoint& ep) {
        std::error_code ec;
        diagnostics diag;
        connect(ep, ec, diag);
        if (ec) throw qmp_error(ec, std::move(diag));
    }
    /// Keeps trying while QEMU starts, as `retry` says (see
    /// basic_client::async_connect); a failure's `diag` tells the attempts.
    template <class Endpoint>
    void connect(const Endpoint& ep, const backoff& retry, std::error_code& ec, diagnostics& diag) {
        if constexpr (std::is_convertible_v<const Endpoint&, endpoint_type>)
            ec = connect_to(ep, &retry, diag);
        else
            std::tie(ec) = run<std::error_code>([&](auto h) { client_.async_connect(ep, retry, diag, std::move(h)); });
    }
    template <class Endpoint>
    void connect(const Endpoint& ep, const backoff& retry) {
        std::error_code ec;
        diagnostics diag;
        connect(ep, retry, ec, diag);
        if (ec) throw qmp_error(ec, std::move(diag));
    }

    /// Takes a stream that is connected already, reads the greeting and
    /// negotiates. A socket of the same protocol on any executor will do
    /// (a connected asio::local::stream_protocol::socket, say): the client
    /// takes over its descriptor on its own context.
    template <class Connected>
    void handshake(Connected&& connected, std::error_code& ec, diagnostics& diag) {
        using stream_type = typename async_client_type::stream_type;
        std::optional<stream_type> s;
        if constexpr (std::is_constructible_v<stream_type, Connected&&>) {
            s.emplace(std::forward<Connected>(connected));
        } else {
            s.emplace(ctx_);
            auto protocol = connected.local_endpoint(ec).protocol();
            if (!ec) {
                const auto fd = connected.release(ec);
                if (!ec) s->assign(protocol, fd, ec);
            }
            if (ec) return;
        }
        std::tie(ec) = run<std::error_code>([&](auto h) { client_.async_handshake(std::move(*s), diag, std::move(h)); });
    }
    template <class Connected>
    void handshake(Connected&& connected) {
        std::error_code ec;
        diagnostics diag;
        handshake(std::forward<Connected>(connected), ec, diag);
        if (ec) throw qmp_error(ec, std::move(diag));
    }

    json execute(std::string_view name, json arguments, std::error_code& ec, diagnostics& diag,
                 exec_options opts = {}) {
        return execute(dynamic_command<json>{std::string(name), std::move(arguments)}, ec, diag, std::move(opts));
    }
    json execute(std::string_view name, json arguments = nullptr, exec_options opts = {}) {
        return execute(dynamic_command<json>{std::string(name), std::move(arguments)}, std::move(opts));
    }

    /// Every command goes through execute_erased, which is not a template:
    /// here only the arguments and the result's conversion are compiled.
    template <class Command, class = std::enable_if_t<is_command<Command>::value>>
    typename Command::result_type execute(Command cmd, std::error_code& ec, diagnostics& diag, exec_options opts = {}) {
        typename Command::result_type out{};
        detail::erased_command erased{std::string(cmd.name), nullptr, nullptr};
        diagnostics why;
        if ((ec = detail::arguments_of(cmd, erased.arguments, &why))) {
            diag = std::move(why);
            return out;
        }
        detail::result_into<typename Command::result_type> sink(out);
        erased.sink = &sink;
        ec = execute_erased(std::move(erased), diag, std::move(opts));
        return out;
    }
    template <class Command, class = std::enable_if_t<is_command<Command>::value>>
    typename Command::result_type execute(Command cmd, exec_options opts = {}) {
        std::error_code ec;
        diagnostics diag;
        auto out = execute(std::move(cmd), ec, diag, std::move(opts));
        if (ec) throw qmp_error(ec, std::move(diag));
        return out;
    }

    /// Runs query-qmp-schema and checks every later command of this
    /// connection against it before sending (basic_client::async_load_schema):
    /// a command, argument member or value the peer lacks fails with
    /// error::not_offered naming it. Returns the index.
    std::shared_ptr<const peer_schema> load_schema(std::error_code& ec, diagnostics& diag);
    std::shared_ptr<const peer_schema> load_schema() {
        std::error_code ec;
        diagnostics diag;
        auto s = load_schema(ec, diag);
        if (ec) throw qmp_error(ec, std::move(diag));
        return s;
    }

    /// Next event; `timeout` 0 waits forever. An "events lost" marker comes
    /// back as an event with `lost` > 0 (not an error: nothing to catch).
    event receive_event(std::chrono::milliseconds timeout, std::error_code& ec);
    event receive_event(std::chrono::milliseconds timeout) {
        std::error_code ec;
        event ev = receive_event(timeout, ec);
        if (ec) throw qmp_error(ec);
        return ev;
    }

    /// Closes the session; a call in progress ends with connection_closed.
    /// Safe from any thread: from a thread other than the caller's it hands
    /// the close to whoever runs the client now, or runs it itself when
    /// nobody does.
    void close() {
        if (thread_.joinable()) return (void)on_executor([&] { client_.close(); });
        asio::post(ctx_, [this] { client_.close(); });
        if (auto turn = try_take_turn()) {
            ctx_.restart();
            ctx_.poll();
        }
    }

    greeting server_greeting() { return on_executor([&] { return client_.server_greeting(); }); }
    bool oob_enabled() { return on_executor([&] { return client_.oob_enabled(); }); }
    bool is_open() { return on_executor([&] { return client_.is_open(); }); }
    client_stats stats() { return on_executor([&] { return client_.stats(); }); }
    /// Events read and waiting in the queue (without reading more).
    std::size_t queued_events() { return on_executor([&] { return client_.queued_events(); }); }
    std::optional<std::string> peer_instance() { return on_executor([&] { return client_.peer_instance(); }); }

    /// The asynchronous client underneath: its operations make progress
    /// while this client waits in a call, or in wait() and poll().
    async_client_type& async_client() noexcept { return client_; }
    asio::io_context& context() noexcept { return ctx_; }

    /// Runs the client until `f` (from an operation with asio::use_future)
    /// is ready, then returns its value (or throws its exception).
    template <class T>
    T wait(std::future<T> f) {
        if (thread_.joinable()) return f.get();
        auto turn = take_turn();
        ctx_.restart();
        while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ctx_.run_one_for(std::chrono::milliseconds(10));
        return f.get();
    }
    /// Reads what has arrived (events into the queue) without waiting.
    void poll() {
        if (thread_.joinable()) return;
        auto turn = take_turn();
        ctx_.restart();
        ctx_.poll();
    }

    /// Starts an operation with `init(handler)` and runs the client until it
    /// completes; returns its completion's arguments.
    template <class... Args, class Initiate>
    std::tuple<Args...> run(Initiate&& init) {
        if (thread_.joinable()) {
            std::promise<std::tuple<Args...>> p;
            auto f = p.get_future();
            init([&p](Args... a) { p.set_value(std::tuple<Args...>(std::move(a)...)); });
            return f.get();
        }
        auto turn = take_turn();
        std::optional<std::tuple<Args...>> result;
        // No one else runs the context now: the command starts in place
        // (written at once), not through a posted handler.
        {
            struct in_place {
                async_client_type& c;
                ~in_place() { c.run_here(false); }
            } scope{client_};
            client_.run_here(true);
            init([&result](Args... a) { result.emplace(std::move(a)...); });
        }
        ctx_.restart();
        while (!result) ctx_.run_one();
        return std::move(*result);
    }

    /// The one way every command goes (execute above): not a template, so
    /// compiled once where <qmp/src.hpp> is with separate compilation.
    std::error_code execute_erased(detail::erased_command cmd, diagnostics& diag, exec_options opts);
    /// connect() to an endpoint of the stream's own type (with `retry`
    /// when not null), likewise.
    std::error_code connect_to(const endpoint_type& ep, const backoff* retry, diagnostics& diag);

private:
    void start(bool keep_reading) {
        if (keep_reading) {
            work_.emplace(ctx_.get_executor());
            thread_ = std::thread([this] { ctx_.run(); });
        }
    }

    // Who runs the context now: the calling thread in a call, or close()
    // from another thread when no call runs. A call waits (briefly) for a
    // close() that is running the context; a close() never waits for a call.
    struct turn {
        std::atomic<bool>* flag;
        explicit operator bool() const noexcept { return flag != nullptr; }
        turn(std::atomic<bool>* f) noexcept : flag(f) {}
        turn(turn&& o) noexcept : flag(std::exchange(o.flag, nullptr)) {}
        turn(const turn&) = delete;
        ~turn() {
            if (flag) flag->store(false, std::memory_order_release);
        }
    };
    turn try_take_turn() noexcept {
        bool idle = false;
        return turn(running_.compare_exchange_strong(idle, true, std::memory_order_acquire) ? &running_ : nullptr);
    }
    turn take_turn() noexcept {
        for (;;) {
            if (auto t = try_take_turn()) return t;
            std::this_thread::yield();
        }
    }

    // Reads state where the client runs: here, or on the reading thread.
    template <class F>
    auto on_executor(F&& f) -> decltype(f()) {
        if (!thread_.joinable()) return f();
        std::promise<decltype(f())> p;
        auto fut = p.get_future();
        asio::post(ctx_, [&] {
            if constexpr (std::is_void_v<decltype(f())>) {
                f();
                p.set_value();
            } else {
                p.set_value(f());
            }
        });
        return fut.get();
    }

    std::atomic<bool> running_{false};
    asio::io_context ctx_{1};
    async_client_type client_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::thread thread_;
};

// The members below are defined outside the class: not inline, so a
// translation unit that sees them declared `extern template` (separate
// compilation, <qmp/src.hpp>) leaves them to the one that instantiates them.

template <class S>
basic_sync_client<S>::basic_sync_client(client_options opts, bool keep_reading)
    : client_(ctx_.get_executor(), std::move(opts)) {
    start(keep_reading);
}

template <class S>
basic_sync_client<S>::~basic_sync_client() {
    if (thread_.joinable()) {
        asio::post(ctx_, [this] { client_.close(); });
        work_.reset();
        thread_.join();
    } else {
        auto turn = take_turn();
        client_.close();
        ctx_.restart();
        ctx_.poll();
    }
}

template <class S>
std::error_code basic_sync_client<S>::execute_erased(detail::erased_command cmd, diagnostics& diag, exec_options opts) {
    std::error_code ec;
    std::tie(ec, std::ignore) = run<std::error_code, detail::sunk_result>([&](auto h) {
        client_.async_execute(std::move(cmd), opts, bind_diagnostics(diag, std::move(h)));
    });
    return ec;
}

template <class S>
std::error_code basic_sync_client<S>::connect_to(const endpoint_type& ep, const backoff* retry, diagnostics& diag) {
    if constexpr (std::is_same_v<endpoint_type, detail::no_sync_endpoint>) {
        (void)ep, (void)retry, (void)diag;
        return make_error_code(error::invalid_argument);
    } else {
        std::error_code ec;
        if (retry)
            std::tie(ec) = run<std::error_code>([&](auto h) { client_.async_connect(ep, *retry, diag, std::move(h)); });
        else
            std::tie(ec) = run<std::error_code>([&](auto h) { client_.async_connect(ep, diag, std::move(h)); });
        return ec;
    }
}

template <class S>
std::shared_ptr<const peer_schema> basic_sync_client<S>::load_schema(std::error_code& ec, diagnostics& diag) {
    std::shared_ptr<const peer_schema> out;
    std::tie(ec, out) = run<std::error_code, std::shared_ptr<const peer_schema>>(
        [&](auto h) { client_.async_load_schema(diag, std::move(h)); });
    return out;
}

template <class S>
event basic_sync_client<S>::receive_event(std::chrono::milliseconds timeout, std::error_code& ec) {
    event ev;
    std::tie(ec, ev) = run<std::error_code, event>([&](auto h) { client_.async_receive_event(timeout, std::move(h)); });
    return ev;
}

}  // namespace qmp
