// What a session is configured with, what it counts, and what it tells its
// driver: the vocabulary of protocol/session.hpp.
#pragma once

#include <qmp/error.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/message.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <system_error>

namespace qmp {

/// What a trace hook is told about.
enum class trace_kind {
    received,  ///< one complete message from the server, as received
    sent,      ///< one message put in the write queue, exactly as it will be sent (a held-back command when it leaves the hold)
    state,     ///< a state change ("connecting", "ready", "closed: ...")
};

/// Called where the session runs (the client's executor). Unset (the
/// default) costs one branch: nothing is formatted for a hook that is not there.
using trace_hook = std::function<void(trace_kind, std::string_view)>;

/// QEMU's monitor reads at most this many descriptors with one message.
inline constexpr std::size_t max_fds_per_request = 16;

struct session_options {
    framer_limits limits;                   ///< message size and depth caps
    bool enable_oob = true;                 ///< enable `oob` when the server offers it
    std::size_t max_inband_in_flight = 8;   ///< with oob on: QEMU's request queue length
    /// An in-band command alone in flight goes without an id: QEMU answers
    /// in-band commands in order, so the next reply without an id is its
    /// own. Any other command in flight (or an abandoned one not answered
    /// yet), and every `exec-oob`, takes an id. Shorter commands cost QEMU
    /// less (it reads its input a byte or two per system call).
    bool idless_commands = true;
    /// A `json` built from a reply's value during on_reply (convert_text,
    /// the clients' results) gives back the pages of text it has passed, so
    /// a big reply's text and tree are not both held whole (Linux; see
    /// json/detail/spent_text.hpp). A handler that wants the text as well
    /// reads it before building the tree, or turns this off.
    bool give_back_reply_text = true;
    trace_hook trace;
};

/// Per-request settings the session cares about.
struct request_options {
    bool oob = false;           ///< send as `exec-oob`
    std::size_t fd_count = 0;   ///< descriptors that go with the command
};

/// What a session counts (over every connection of the client).
struct session_stats {
    std::uint64_t messages_received = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t commands_sent = 0;
    std::uint64_t idless_sent = 0;         ///< of them, sent without an id (alone in flight)
    std::uint64_t unknown_ids = 0;         ///< replies whose id matched nothing (dropped)
    std::uint64_t late_replies = 0;        ///< replies to abandoned requests (consumed)
    std::uint64_t events_received = 0;
    std::uint64_t connections = 0;         ///< successful negotiations
    std::uint64_t repeated_greetings = 0;  ///< copies of the greeting (each ended a session: greeted_twice)
};

/// Receives what a session produces, during the call that produced it.
class session_handler {
public:
    virtual ~session_handler() = default;
    /// The outcome of request `id`: ec clear and the `return` value's text
    /// (valid only during this call; see give_back_reply_text), or a QMP error class (`diag` has
    /// QEMU's class and desc), or the reason the session ended.
    virtual void on_reply(std::uint64_t id, std::error_code ec, std::string_view value, const diagnostics& diag) = 0;
    virtual void on_event(event&& ev) = 0;
    /// Negotiation is done: requests may be submitted.
    virtual void on_ready() = 0;
    /// The session ended (every open request was answered before this);
    /// when QEMU refused negotiation, `diag` has its class and desc.
    virtual void on_closed(std::error_code reason, const diagnostics& diag) = 0;
};

}  // namespace qmp
