// A blocking facade over basic_client for scripts, tests and the CLI. It
// owns an io_context run by one background thread, so events keep being
// read (into the bounded queue) between calls. Every call exists twice: with
// `std::error_code&` + diagnostics, and throwing qmp_error, which carries
// the server's text. Do not call it from inside its own io thread.
#pragma once

#include <qmp/client/basic_client.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <future>
#include <thread>
#include <tuple>

namespace qmp {

template <class AsyncStream>
class basic_sync_client {
public:
    using async_client_type =
        basic_client<typename AsyncStream::template rebind_executor<asio::io_context::executor_type>::other>;

    explicit basic_sync_client(client_options opts = {})
        : work_(asio::make_work_guard(ctx_)), client_(ctx_.get_executor(), std::move(opts)) {
        thread_ = std::thread([this] { ctx_.run(); });
    }

    ~basic_sync_client() {
        client_.close();
        work_.reset();
        thread_.join();
    }

    basic_sync_client(const basic_sync_client&) = delete;
    basic_sync_client& operator=(const basic_sync_client&) = delete;

    /// Connects and negotiates; when QEMU refuses, `diag` has its reason.
    template <class Endpoint>
    void connect(const Endpoint& ep, std::error_code& ec, diagnostics& diag) {
        std::tie(ec) = wait<std::error_code>([&](auto h) { client_.async_connect(ep, diag, std::move(h)); });
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

    json execute(std::string_view name, json arguments, std::error_code& ec, diagnostics& diag,
                 exec_options opts = {}) {
        opts.diag = &diag;
        json out;
        std::tie(ec, out) = wait<std::error_code, json>(
            [&](auto h) { client_.async_execute(name, std::move(arguments), opts, std::move(h)); });
        return out;
    }
    json execute(std::string_view name, json arguments = nullptr, exec_options opts = {}) {
        std::error_code ec;
        diagnostics diag;
        json out = execute(name, std::move(arguments), ec, diag, opts);
        if (ec) throw qmp_error(ec, std::move(diag));
        return out;
    }

    template <class Command, class = std::enable_if_t<is_command<Command>::value>>
    typename Command::result_type execute(const Command& cmd, std::error_code& ec, diagnostics& diag,
                                          exec_options opts = {}) {
        opts.diag = &diag;
        typename Command::result_type out{};
        std::tie(ec, out) = wait<std::error_code, typename Command::result_type>(
            [&](auto h) { client_.async_execute(cmd, opts, std::move(h)); });
        return out;
    }
    template <class Command, class = std::enable_if_t<is_command<Command>::value>>
    typename Command::result_type execute(const Command& cmd, exec_options opts = {}) {
        std::error_code ec;
        diagnostics diag;
        auto out = execute(cmd, ec, diag, opts);
        if (ec) throw qmp_error(ec, std::move(diag));
        return out;
    }

    /// Next event; `timeout` 0 waits forever. A lost-events marker comes back
    /// as error::events_lost with `lost` set.
    event receive_event(std::chrono::milliseconds timeout, std::error_code& ec) {
        event ev;
        std::tie(ec, ev) = wait<std::error_code, event>(
            [&](auto h) { client_.async_receive_event(timeout, std::move(h)); });
        return ev;
    }
    event receive_event(std::chrono::milliseconds timeout) {
        std::error_code ec;
        event ev = receive_event(timeout, ec);
        if (ec) throw qmp_error(ec);
        return ev;
    }

    /// Closes the session and waits until the close has taken effect.
    void close() {
        on_executor([&] { client_.close(); });
    }

    greeting server_greeting() {
        return on_executor([&] { return client_.server_greeting(); });
    }
    bool oob_enabled() {
        return on_executor([&] { return client_.oob_enabled(); });
    }
    bool is_open() {
        return on_executor([&] { return client_.is_open(); });
    }
    client_stats stats() {
        return on_executor([&] { return client_.stats(); });
    }
    std::size_t queued_events() {
        return on_executor([&] { return client_.queued_events(); });
    }
    /// See basic_client::peer_instance.
    std::optional<std::string> peer_instance() {
        return on_executor([&] { return client_.peer_instance(); });
    }

    /// The asynchronous client underneath (its executor is the io thread).
    async_client_type& async_client() noexcept { return client_; }

private:
    template <class... Args, class Initiate>
    std::tuple<Args...> wait(Initiate&& init) {
        std::promise<std::tuple<Args...>> p;
        auto fut = p.get_future();
        init([&p](Args... a) { p.set_value(std::tuple<Args...>(std::move(a)...)); });
        return fut.get();
    }

    template <class F>
    auto on_executor(F&& f) -> decltype(f()) {
        using R = decltype(f());
        std::promise<R> p;
        auto fut = p.get_future();
        asio::post(ctx_, [&] {
            if constexpr (std::is_void_v<R>) {
                f();
                p.set_value();
            } else {
                p.set_value(f());
            }
        });
        return fut.get();
    }

    asio::io_context ctx_{1};
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    async_client_type client_;
    std::thread thread_;
};

using sync_client = basic_sync_client<asio::local::stream_protocol::socket>;
using sync_tcp_client = basic_sync_client<asio::ip::tcp::socket>;

}  // namespace qmp
