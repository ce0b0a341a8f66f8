// Typed run-state commands: whether the guest runs, and stopping and
// resuming it (an agent resumes a VM that QEMU paused on a full volume).
#pragma once

#include <qmp/protocol/command.hpp>

#include <string>
#include <string_view>
#include <tuple>

namespace qmp {

/// `StatusInfo`: `status` is QEMU's RunState as text ("running", "paused",
/// "io-error", ...), so states a newer QEMU adds stay readable.
struct status_info {
    bool running = false;
    std::string status{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("running", &status_info::running),
                               wire::required("status", &status_info::status));
    }
};

/// `query-status`.
struct query_status {
    static constexpr std::string_view name = "query-status";
    using result_type = status_info;
};

/// `stop`: pauses the guest.
struct stop {
    static constexpr std::string_view name = "stop";
    using result_type = empty_result;
};

/// `cont`: resumes the guest (after `stop`, or a pause on an I/O error).
struct cont {
    static constexpr std::string_view name = "cont";
    using result_type = empty_result;
};

}  // namespace qmp
