// Settings of a client, per-call execution options, and the counters a
// client keeps. Every default is listed in docs/limits.md.
#pragma once

#include <qmp/client/backoff.hpp>
#include <qmp/error.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/session_types.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qmp {

/// A client's settings: the session's (message caps, oob, the in-band
/// cap, the trace hook: session_options) and the waits and queue the
/// client adds.
struct client_options : session_options {
    /// Capacity of async_receive_event's queue (every other subscription
    /// names its own).
    std::size_t event_queue_capacity = event_queue::default_capacity;
    std::chrono::milliseconds connect_timeout{10000};       ///< 0 = unbounded
    std::chrono::milliseconds greeting_timeout{10000};      ///< greeting + negotiation; 0 = unbounded
    std::chrono::milliseconds command_timeout{30000};       ///< default per command; 0 = unbounded
};

/// Per-call settings of async_execute.
struct exec_options {
    /// Send as `exec-oob` (needs oob negotiated and a command QEMU allows OOB).
    bool oob = false;
    /// -1 ms: the client's command_timeout; 0: unbounded.
    std::chrono::milliseconds timeout{-1};
    /// File descriptors to pass with the command (SCM_RIGHTS, unix sockets
    /// only), for `getfd` and `add-fd`. The client duplicates them when the
    /// operation is initiated, so the caller may close its own at once; at
    /// most max_fds_per_command. Independent of oob; not with `oob`.
    std::vector<int> fds{};
};

/// QEMU's monitor reads at most this many descriptors with one message.
inline constexpr std::size_t max_fds_per_command = max_fds_per_request;

/// Counters kept by a client (copied out: read them anywhere).
struct client_stats : session_stats {
    std::uint64_t events_dropped = 0;  ///< dropped by async_receive_event's queue on overflow
};

}  // namespace qmp
