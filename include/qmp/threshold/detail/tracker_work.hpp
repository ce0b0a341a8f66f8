// The tracker's internal bookkeeping: one queued piece of work (a request,
// an event, a resync) and one command sent on its behalf.
#pragma once

#include <qmp/protocol/message.hpp>
#include <qmp/qapi/events.hpp>
#include <qmp/threshold/actions.hpp>
#include <qmp/threshold/types.hpp>

#include <cstdint>
#include <string>

namespace qmp::detail {

enum class work_kind { arm, disarm, extended, resync, report, live_event, chain_check };

/// What a piece of work needs of the graph before it can decide.
enum class graph_need {
    any,            ///< a valid graph (taken before the chain may have changed)
    fresh,          ///< one queried after the work was queued (current high-water marks)
    fresh_known,    ///< the same, with every node's details (sizes; kept ones serve)
    fresh_details,  ///< the same, with per-node details read now (sizes, write_threshold)
};

struct tracker_work {
    work_kind kind = work_kind::resync;
    tracker_request request = 0;  ///< 0: internal work, nobody waits for it
    std::string target_text;
    threshold_spec spec;
    rearm_policy policy = rearm_policy::none;
    std::uint64_t step = 0;
    std::uint64_t capacity = 0;        ///< extended: the new size
    block_write_threshold_event ev{};  ///< live_event
    timestamp time;
    std::uint64_t epoch = 0;  ///< the graph epoch when queued
    bool retried_graph = false;  ///< live_event: the graph was refreshed once for an unknown node
    bool audit = false;          ///< resync: read write_threshold back too
    bool fresh_sizes = false;    ///< report: sizes read now (storage just grew)
};

/// A block-set-write-threshold the tracker is waiting for.
struct sent_command {
    std::uint64_t id = 0;
    std::string node;
    std::uint64_t value = 0;
    bool disarm = false;
};

}  // namespace qmp::detail
