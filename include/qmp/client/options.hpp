// Settings of a client session, per-call execution options, the trace hook
// and the counters a client keeps. Every default is listed in docs/limits.md.
#pragma once

#include <qmp/protocol/error.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/framer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace qmp {

/// What a trace hook is told about.
enum class trace_kind {
    received,  ///< one complete message from the server, as received
    sent,      ///< one message written to the server, as sent
    state,     ///< a state change ("connecting", "ready", "closed: ...")
};

/// Called on the client's executor. Unset (the default) costs one branch:
/// nothing is formatted for a hook that is not there.
using trace_hook = std::function<void(trace_kind, std::string_view)>;

struct client_options {
    framer_limits limits;                                   ///< message size and depth caps
    std::size_t event_queue_capacity = event_queue::default_capacity;
    bool enable_oob = true;                                 ///< enable `oob` when the server offers it
    std::size_t max_inband_in_flight = 8;                   ///< with oob on: QEMU's request queue length
    std::chrono::milliseconds connect_timeout{10000};       ///< 0 = unbounded
    std::chrono::milliseconds greeting_timeout{10000};      ///< greeting + negotiation; 0 = unbounded
    std::chrono::milliseconds command_timeout{30000};       ///< default per command; 0 = unbounded
    trace_hook trace;
};

/// Per-call settings of async_execute.
struct exec_options {
    /// Send as `exec-oob` (needs oob negotiated and a command QEMU allows OOB).
    bool oob = false;
    /// -1 ms: the client's command_timeout; 0: unbounded.
    std::chrono::milliseconds timeout{-1};
    /// Receives the server's class and desc (or the conversion message) on
    /// failure. Must outlive the operation.
    diagnostics* diag = nullptr;
    /// File descriptors to pass with the command (SCM_RIGHTS, unix sockets
    /// only), for `getfd` and `add-fd`. The client duplicates them when the
    /// operation is initiated, so the caller may close its own at once; at
    /// most max_fds_per_command. Independent of oob; not with `oob`.
    std::vector<int> fds{};
};

/// QEMU's monitor reads at most this many descriptors with one message.
inline constexpr std::size_t max_fds_per_command = 16;

/// Counters kept by a client; read them on the client's executor.
struct client_stats {
    std::uint64_t messages_received = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t commands_sent = 0;
    std::uint64_t unknown_ids = 0;      ///< replies whose id matched nothing (dropped)
    std::uint64_t late_replies = 0;     ///< replies to cancelled or timed-out commands (consumed)
    std::uint64_t events_received = 0;
    std::uint64_t events_dropped = 0;   ///< dropped by queue overflow
    std::uint64_t connections = 0;      ///< successful handshakes
    std::uint64_t repeated_greetings = 0;  ///< copies of the greeting QEMU sent twice (ignored)
};

}  // namespace qmp
