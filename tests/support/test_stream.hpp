// Test support: an in-memory stream, in the manner of Beast's test stream.
// The client reads what the test feeds and writes where the test reads it;
// reads can be made short, the remote end can close, a write can fail. It
// has only what AsyncReadStream and AsyncWriteStream require (plus close),
// so the client drives it like any other stream: no sockets, no threads.
#pragma once

#include <asio/any_io_executor.hpp>
#include <algorithm>
#include <cstring>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution_context.hpp>
#include <asio/query.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <system_error>
#include <utility>

namespace qmp_test {

class test_stream {
public:
    using executor_type = asio::any_io_executor;

    /// The remote end, as the test sees it.
    struct remote {
        std::string written;           ///< everything the client wrote
        std::size_t read_limit = 0;    ///< 0: reads take what is there; else at most this many bytes
        std::size_t fail_write_after = static_cast<std::size_t>(-1);  ///< writes that succeed, then EPIPE

        /// Bytes for the client to read.
        void feed(const std::string& bytes) {
            incoming += bytes;
            deliver();
        }
        /// The remote end closes: the client's read gets EOF.
        void close() {
            closed = true;
            deliver();
        }

        // What the stream keeps for a pending read.
        struct read_waiter {
            virtual ~read_waiter() = default;
            virtual void complete(std::error_code ec, std::size_t n) = 0;
            asio::mutable_buffer buf;
        };
        std::string incoming;
        bool closed = false;
        std::unique_ptr<read_waiter> waiting;
        std::size_t writes = 0;

        void deliver() {
            if (!waiting || (incoming.empty() && !closed)) return;
            auto w = std::move(waiting);
            if (incoming.empty()) return w->complete(asio::error::eof, 0);
            std::size_t n = std::min(incoming.size(), w->buf.size());
            if (read_limit) n = std::min(n, read_limit);
            std::memcpy(w->buf.data(), incoming.data(), n);
            incoming.erase(0, n);
            w->complete({}, n);
        }
    };

    // Like a socket's reactor, the execution context owns what waits: when
    // it shuts down, pending reads are destroyed (never run), so a handler
    // that holds its client cannot keep it alive past the context.
    class pending_reads : public asio::execution_context::service {
    public:
        using key_type = pending_reads;
        inline static asio::execution_context::id id;
        explicit pending_reads(asio::execution_context& c) : service(c) {}
        void track(const std::shared_ptr<remote>& r) {
            std::lock_guard<std::mutex> lk(m_);
            remotes_.push_back(r);
        }

    private:
        void shutdown() override {
            std::vector<std::weak_ptr<remote>> all;
            {
                std::lock_guard<std::mutex> lk(m_);
                all.swap(remotes_);
            }
            for (auto& w : all)
                if (auto r = w.lock()) r->waiting.reset();
        }
        std::mutex m_;
        std::vector<std::weak_ptr<remote>> remotes_;
    };

    test_stream(const executor_type& ex, std::shared_ptr<remote> r) : ex_(ex), r_(std::move(r)) {
        asio::use_service<pending_reads>(asio::query(ex_, asio::execution::context)).track(r_);
    }

    executor_type get_executor() const { return ex_; }
    std::shared_ptr<remote> peer() const { return r_; }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& bufs, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, asio::mutable_buffer b) {
                using H = decltype(handler);
                // A pending read is outstanding work, as it is on a socket.
                struct waiter final : remote::read_waiter {
                    H h;
                    executor_type ex;
                    waiter(H&& hh, const executor_type& e)
                        : h(std::move(hh)), ex(asio::prefer(e, asio::execution::outstanding_work.tracked)) {}
                    void complete(std::error_code ec, std::size_t n) override {
                        asio::post(ex, [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
                    }
                };
                auto w = std::make_unique<waiter>(std::move(handler), ex_);
                w->buf = b;
                r_->waiting = std::move(w);
                r_->deliver();
            },
            token, asio::mutable_buffer(*asio::buffer_sequence_begin(bufs)));
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& bufs, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, asio::const_buffer b) {
                std::error_code ec;
                std::size_t n = 0;
                if (r_->closed || r_->writes++ >= r_->fail_write_after) {
                    ec = asio::error::broken_pipe;
                } else {
                    r_->written.append(static_cast<const char*>(b.data()), b.size());
                    n = b.size();
                }
                asio::post(ex_, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
            },
            token, asio::const_buffer(*asio::buffer_sequence_begin(bufs)));
    }

    /// Closing ends a pending read with operation_aborted.
    void close(std::error_code& ec) {
        ec.clear();
        if (auto w = std::move(r_->waiting)) w->complete(asio::error::operation_aborted, 0);
    }

private:
    executor_type ex_;
    std::shared_ptr<remote> r_;
};

}  // namespace qmp_test
