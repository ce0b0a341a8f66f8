// qmp::testing's connection state: one connection to a peer as the stream
// sees it (bytes for the client, its pending read, its fault counts). Used
// by testing/peer.hpp and testing/stream.hpp only.
#pragma once

#include <qmp/protocol/framer.hpp>
#include <qmp/testing/rule.hpp>

#include <asio/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace qmp::testing {

namespace detail {

/// One connection to the peer, as the stream sees it: bytes for the client,
/// its pending read, its fault counters.
struct connection : std::enable_shared_from_this<connection> {
    struct read_waiter {
        virtual ~read_waiter() = default;
        virtual void complete(std::error_code ec, std::size_t n) = 0;
        void* data = nullptr;
        std::size_t size = 0;
    };
    /// Runs `fn` after `d` on the client's executor (set by the stream).
    std::function<void(std::chrono::milliseconds d, std::function<void()> fn)> schedule;

    std::size_t number = 0;   ///< the connect attempt that made it (1: the first)
    std::string instance;     ///< what transport<stream>::peer_instance says
    faults f;
    std::string to_client;    ///< bytes not read yet
    bool ended = false;       ///< the peer hung up: EOF once to_client is read
    bool client_closed = false;
    std::size_t reads = 0, writes = 0, delivered = 0;
    qmp::framer from_client;
    std::unique_ptr<read_waiter> waiting;

    /// Completes the pending read if it can (called with the peer's lock held;
    /// the completion is posted, never run here).
    void deliver() {
        if (!waiting) return;
        if (reads > f.fail_read_after) return take()->complete(asio::error::connection_reset, 0);
        if (delivered >= f.cut_after_bytes) {
            ended = true;
            to_client.clear();
        }
        if (to_client.empty()) {
            if (ended) take()->complete(asio::error::eof, 0);
            return;
        }
        auto w = take();
        std::size_t n = std::min(to_client.size(), w->size);
        if (f.read_limit) n = std::min(n, f.read_limit);
        if (f.cut_after_bytes != faults::never) n = std::min(n, f.cut_after_bytes - delivered);
        std::memcpy(w->data, to_client.data(), n);
        to_client.erase(0, n);
        delivered += n;
        w->complete({}, n);
    }
    /// The pending read, taken: each completes once.
    std::unique_ptr<read_waiter> take() { return std::move(waiting); }
    void send(const std::string& bytes) {
        if (ended || client_closed) return;
        to_client += bytes;
        deliver();
    }
};

}  // namespace detail

}  // namespace qmp::testing
