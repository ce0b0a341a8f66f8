// qmp::testing::stream: the in-memory stream that connects a client to a
// qmp::testing::peer. Every client type takes it:
//
//   qmp::testing::peer qemu;
//   qemu.on("query-status").reply(R"({"status": "running", "running": true})");
//
//   qmp::basic_client<qmp::testing::stream> async_client(io);      // callbacks, futures, coroutines
//   async_client.async_connect(qemu.endpoint(), handler);
//
//   qmp::basic_sync_client<qmp::testing::stream> blocking;         // the blocking client
//   blocking.connect(qemu.endpoint());
//
// It is a stream like a socket (AsyncReadStream, AsyncWriteStream, close,
// connect through qmp::transport), with no descriptor, no system call and
// no thread: reads complete when the peer has bytes for them, as a posted
// handler on their executor, and a pending read counts as outstanding work
// until it completes or its execution context shuts down.
#pragma once

#include <qmp/client/transport.hpp>
#include <qmp/testing/peer.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/query.hpp>
#include <asio/steady_timer.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace qmp::testing {

namespace detail {

// Like a socket's reactor, the execution context owns what waits: when it
// shuts down, pending reads are destroyed (never run), so a handler that
// holds its client cannot keep it alive past the context.
class pending_reads : public asio::execution_context::service {
public:
    using key_type = pending_reads;
    inline static asio::execution_context::id id;
    explicit pending_reads(asio::execution_context& c) : service(c) {}
    void track(const endpoint& ep, const std::shared_ptr<connection>& c) {
        std::lock_guard<std::mutex> lk(m_);
        tracked_.push_back({ep, c});
    }

private:
    void shutdown() override {
        std::vector<std::pair<endpoint, std::weak_ptr<connection>>> all;
        {
            std::lock_guard<std::mutex> lk(m_);
            all.swap(tracked_);
        }
        for (auto& [ep, w] : all) {
            if (auto c = w.lock()) {
                std::unique_ptr<connection::read_waiter> gone;
                {
                    auto lk = peer::lock(ep);
                    gone = std::move(c->waiting);
                }
            }
        }
    }
    std::mutex m_;
    std::vector<std::pair<endpoint, std::weak_ptr<connection>>> tracked_;
};

}  // namespace detail

/// The stream (see the top of this file), on executor type `Executor`.
template <class Executor = asio::any_io_executor>
class basic_stream {
public:
    using executor_type = Executor;
    template <class Other>
    struct rebind_executor {
        using other = basic_stream<Other>;
    };

    /// Not connected: the client connects it to a peer's endpoint().
    explicit basic_stream(const executor_type& ex) : ex_(ex) {}
    /// Connected to `p` at once (for async_handshake).
    basic_stream(const executor_type& ex, const peer& p) : ex_(ex) {
        if (!connect(p.endpoint())) throw std::system_error(asio::error::connection_refused, "qmp::testing::stream");
    }

    basic_stream(basic_stream&&) noexcept = default;
    basic_stream& operator=(basic_stream&&) noexcept = default;

    executor_type get_executor() const { return ex_; }

    /// Connects to the peer at `ep`; false when it refuses (faults::refuse_connect).
    bool connect(const endpoint& ep) {
        std::error_code ignored;
        close(ignored);
        auto c = peer::connect(ep);
        if (!c) return false;
        ep_ = ep;
        conn_ = c;
        asio::use_service<detail::pending_reads>(asio::query(ex_, asio::execution::context)).track(ep_, conn_);
        // Delays run on this stream's executor; a timer still waiting when
        // the context shuts down is destroyed with it, never run.
        auto ex = ex_;
        auto lk = peer::lock(ep_);
        c->schedule = [ex](std::chrono::milliseconds d, std::function<void()> fn) {
            auto t = std::make_shared<asio::steady_timer>(ex, d);
            t->async_wait([t, fn = std::move(fn)](std::error_code ec) {
                if (!ec) fn();
            });
        };
        return true;
    }

    template <class Token>
    auto async_connect(const endpoint& ep, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code)>(
            [this](auto handler, const endpoint& e) {
                const std::error_code ec = connect(e) ? std::error_code() : make_error_code(asio::error::connection_refused);
                auto hex = asio::get_associated_executor(handler, ex_);
                asio::post(hex, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
            },
            token, ep);
    }

    bool is_open() const { return conn_ != nullptr; }

    /// Closes this end: a pending read ends with operation_aborted.
    void close(std::error_code& ec) {
        ec.clear();
        if (!conn_) return;
        std::unique_ptr<detail::connection::read_waiter> w;
        {
            auto lk = peer::lock(ep_);
            conn_->client_closed = true;
            w = std::move(conn_->waiting);
            if (w) w->complete(asio::error::operation_aborted, 0);
        }
        conn_.reset();
    }

    /// What transport<stream>::peer_instance tells: the same for every
    /// connection until peer::restart().
    std::optional<std::string> instance() const {
        if (!conn_) return std::nullopt;
        auto lk = peer::lock(ep_);
        return conn_->instance;
    }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& bufs, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, asio::mutable_buffer b) {
                using H = decltype(handler);
                struct waiter final : detail::connection::read_waiter {
                    H h;
                    asio::any_io_executor ex;
                    waiter(H&& hh, const executor_type& e)
                        : h(std::move(hh)),
                          ex(asio::prefer(asio::get_associated_executor(h, e), asio::execution::outstanding_work.tracked)) {}
                    void complete(std::error_code ec, std::size_t n) override {
                        asio::post(ex, [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
                    }
                };
                auto w = std::make_unique<waiter>(std::move(handler), ex_);
                if (!conn_) return w->complete(asio::error::not_connected, 0);
                w->data = b.data();
                w->size = b.size();
                auto lk = peer::lock(ep_);
                ++conn_->reads;
                conn_->waiting = std::move(w);
                conn_->deliver();
            },
            token, asio::mutable_buffer(*asio::buffer_sequence_begin(bufs)));
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& bufs, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, asio::const_buffer b) {
                std::error_code ec;
                std::size_t n = 0;
                if (!conn_)
                    ec = asio::error::not_connected;
                else if (!peer::write(ep_, *conn_, static_cast<const char*>(b.data()), b.size()))
                    ec = asio::error::broken_pipe;
                else
                    n = b.size();
                auto hex = asio::get_associated_executor(handler, ex_);
                asio::post(hex, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
            },
            token, asio::const_buffer(*asio::buffer_sequence_begin(bufs)));
    }

private:
    executor_type ex_;
    endpoint ep_;
    std::shared_ptr<detail::connection> conn_;
};

/// The stream on any executor.
using stream = basic_stream<>;

}  // namespace qmp::testing

namespace qmp {

/// The client connects, closes and tells the peer's instance through the
/// stream itself.
template <class Executor>
struct transport<testing::basic_stream<Executor>> {
    using Stream = testing::basic_stream<Executor>;
    using endpoint_type = testing::endpoint;

    static constexpr bool can_connect = true;
    static constexpr bool can_pass_fds = false;
    static constexpr bool renews = false;

    template <class Handler>
    static void async_connect(Stream& s, const endpoint_type& ep, Handler&& h) {
        s.async_connect(ep, std::forward<Handler>(h));
    }
    static void close(Stream& s) {
        std::error_code ignored;
        s.close(ignored);
    }
    static bool is_open(Stream& s) { return s.is_open(); }
    static std::optional<std::string> peer_instance(Stream& s) { return s.instance(); }
    static std::size_t send_with_fds(Stream&, const char*, std::size_t, const std::vector<int>&, std::error_code& ec) {
        ec = asio::error::operation_not_supported;
        return 0;
    }
    template <class Handler>
    static void async_wait_writable(Stream&, Handler&&) {}
};

}  // namespace qmp
