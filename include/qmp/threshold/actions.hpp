// What a threshold_tracker asks its runner to do: the tracker is sans-io,
// so every query, command, save and report leaves it as one of these, in
// the order the runner must carry them out.
#pragma once

#include <qmp/block/graph.hpp>
#include <qmp/error.hpp>
#include <qmp/threshold/types.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace qmp {

using tracker_request = std::uint64_t;

namespace tracker_actions {

/// Query the block graph and hand it to on_graph() (or on_graph_failed()).
/// `details`: per-node details too: `known` for sizes (shares, margins,
/// reports; kept ones serve), `fresh` for the current write_threshold (an
/// audit) or sizes that just changed; see graph_query_options.
struct query_graph {
    details_need details = details_need::none;
    /// A request waits for it (the application asked); otherwise the
    /// tracker's own work wants it (an event, a loss, a reconnection), and
    /// a runner may space such queries out.
    bool requested = false;
    /// It is for a resync (an audit included): a runner that times resyncs
    /// starts the clock when it goes out; resync_done stops it.
    bool resync = false;
};

/// Send block-set-write-threshold; hand the outcome to on_command_result().
struct set_threshold {
    std::uint64_t command = 0;
    std::string node;
    std::uint64_t value = 0;  ///< 0 disarms
};

/// Persist state() now, then call on_saved(). Comes before any command or
/// report that depends on it: an intent is on disk before QEMU hears of it,
/// and a firing is on disk before the application does.
struct save_state {};

/// Hand this event to the application. `request` is the request whose
/// decision caused it (an arm below the allocation, a resync asked for), or
/// 0 for the tracker's own work (a live event, a resync after a loss or a
/// reconnection): a runner gives the former to the request's caller and the
/// latter to whoever receives events.
struct report {
    threshold_event event;
    tracker_request request = 0;
};

/// An event the tracker needed could not be read (a BLOCK_WRITE_THRESHOLD
/// with a member that does not convert): tell someone; a resync follows.
struct decode_error {
    std::string event;
    diagnostics diag;
};

/// A resync (asked for, or the tracker's own after a reconnection or a
/// loss) finished: its decisions are carried out (commands answered, state
/// saved). Comes before its request_done, if it was asked for.
struct resync_done {
    bool audit = false;  ///< it read every write_threshold back (the expensive query)
    tracker_request request = 0;
};

/// A request (arm, disarm, extended, resync, report) finished.
struct request_done {
    tracker_request request = 0;
    std::error_code ec;
    diagnostics diag;
    std::vector<threshold_report_row> rows;  ///< report requests only
};

}  // namespace tracker_actions

using tracker_action =
    std::variant<tracker_actions::query_graph, tracker_actions::set_threshold, tracker_actions::save_state,
                 tracker_actions::report, tracker_actions::decode_error, tracker_actions::resync_done,
                 tracker_actions::request_done>;

}  // namespace qmp
