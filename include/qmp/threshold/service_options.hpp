// What a threshold service is told (catalog, journal, callbacks, limits)
// and what it counts.
#pragma once

#include <qmp/block/resolver.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/threshold/types.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>

namespace qmp {

struct threshold_service_options {
    disk_catalog catalog;
    /// See tracker_options::verify_uncrossed.
    bool verify_uncrossed = true;
    /// Resync on each on_connected(): what fired while nobody listened
    /// arrives as `recovered` events. Off for a tool that only arms.
    bool resync_on_connect = true;
    /// Resyncs caused by lost events are at most this often: a flood costs
    /// one resync per interval, not one per marker.
    std::chrono::milliseconds min_resync_interval{1000};
    /// Capacity of the service's subscription (events it needs, held until
    /// it takes them); beyond it a loss marker leads to a resync.
    std::size_t event_capacity = event_queue::default_capacity;
    /// Persists the state before any threshold reaches QEMU and before any
    /// firing is reported (see tracker_actions::save_state). An error stops
    /// a request before QEMU hears of it. Runs on the executor: keep it short
    /// (one small file write).
    std::function<std::error_code(const threshold_state&, diagnostics&)> journal;
    /// Told when the connection is lost (with the reason) and when
    /// on_connected() says it is back.
    std::function<void(bool connected, std::error_code why)> on_connection;
    /// Told when an event the service needs could not be read (a resync follows).
    std::function<void(const std::string& event, const diagnostics& why)> on_decode_error;
};

/// What a service has seen, for metrics.
struct threshold_service_stats {
    std::uint64_t events_in = 0;         ///< events taken from its subscription
    std::uint64_t loss_markers = 0;      ///< "events lost" markers among them
    std::uint64_t reported = 0;          ///< threshold events handed out (requests and receivers)
    std::uint64_t graph_queries = 0;     ///< block graph snapshots taken
    std::uint64_t commands = 0;          ///< block-set-write-threshold sent
    std::uint64_t connections = 0;       ///< on_connected() calls
};

}  // namespace qmp
