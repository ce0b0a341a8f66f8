// What a threshold service is told (the tracker's options, the journal,
// callbacks, limits) and what it counts.
#pragma once

#include <qmp/client/diagnostics.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/threshold/journal.hpp>
#include <qmp/threshold/tracker.hpp>
#include <qmp/threshold/types.hpp>

#include <asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace qmp {

/// A resync that finished (threshold_service_options::on_resync).
struct threshold_resync_info {
    std::chrono::steady_clock::duration took{};  ///< first graph query out to last decision carried out
    bool audit = false;                          ///< it read every write_threshold back (the expensive query)
    bool requested = false;                      ///< asked for (async_resync, async_audit), not the service's own
};

struct threshold_service_options {
    tracker_options tracker;
    /// Resync on each on_connected(): what fired while nobody listened
    /// arrives as `recovered` events. Off for a tool that only arms.
    bool resync_on_connect = true;
    /// An audit of the service's own (write_threshold read back, see
    /// threshold_tracker::audit) this often while connected; 0: never (the
    /// default: an audit stalls QEMU's main loop for as long as QEMU takes
    /// to describe every node). At most one is queued at a time.
    std::chrono::milliseconds audit_interval{0};
    /// Graph queries for the tracker's own work (whatever a peer's events
    /// ask for: a resync after a loss, a job's end, an unknown node) start
    /// at most this often; what asks in between is coalesced into the next
    /// one. Failed queries back off from here up to 30 s. A request's
    /// query (arm, extended, report, resync asked for) is never held back.
    std::chrono::milliseconds min_refresh_interval{200};
    /// Capacity of the service's subscription (events it needs, held until
    /// it takes them); beyond it a loss marker leads to a resync.
    std::size_t event_capacity = event_queue::default_capacity;
    /// The service stops taking events from its subscription while the
    /// tracker has this much work waiting, or this many threshold events
    /// wait to be received: memory stays bounded whatever a peer sends, and
    /// what overflows the subscription is recovered by a resync.
    std::size_t max_backlog = 256;
    std::size_t max_queued_events = 4096;
    /// Where the state goes: saved before any threshold reaches QEMU and
    /// before any firing is reported (see tracker_actions::save_state),
    /// merged with what other processes wrote to the same file. A failed
    /// save stops a request before QEMU hears of it. Without one the state
    /// lives in memory only.
    std::shared_ptr<threshold_journal> journal;
    /// Where the journal's file work (lock, write, fsync) runs, e.g. an
    /// asio::thread_pool: a service on the thread of many VMs never waits
    /// for a disk. Without one it runs on the service's executor.
    asio::any_io_executor journal_executor;
    /// Told when the connection is lost (with the reason) and when
    /// on_connected() says it is back.
    std::function<void(bool connected, std::error_code why)> on_connection;
    /// Told when an event the service needs could not be read (a resync follows).
    std::function<void(const std::string& event, const diagnostics& why)> on_decode_error;
    /// Told when a resync (an audit included) has finished, with how long it
    /// took from its first graph query to its last decision carried out:
    /// for a histogram of resync durations.
    std::function<void(const threshold_resync_info&)> on_resync;
};

/// What a service has seen, for metrics.
struct threshold_service_stats {
    std::uint64_t events_in = 0;         ///< events taken from its subscription
    std::uint64_t loss_markers = 0;      ///< "events lost" markers among them
    std::uint64_t reported = 0;          ///< threshold events handed out (requests and receivers)
    std::uint64_t graph_queries = 0;     ///< block graph snapshots taken
    std::uint64_t graph_failures = 0;    ///< graph queries that failed
    /// query-named-block-nodes answered, the one query that stalls QEMU on deep
    /// chains: audits, sizes an arm needs, drivers of nodes first seen.
    std::uint64_t details_queries = 0;
    std::uint64_t commands = 0;          ///< block-set-write-threshold sent
    std::uint64_t connections = 0;       ///< on_connected() calls
    std::uint64_t saves = 0;             ///< journal saves
    std::uint64_t save_failures = 0;     ///< journal saves that failed (the last one's reason: last_save_failure())
    std::uint64_t taken_from_disk = 0;   ///< times another writer's changes to the journal were taken in
};

}  // namespace qmp
