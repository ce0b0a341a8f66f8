// Reading received events typed: event_as<E>() for any typed event (every
// generated `*_event`), filter_for<E...>() for subscriptions, and
// decode_event(), which turns an event into one of the block events a
// thin-provisioning agent follows, or leaves it as the untyped qmp::event
// (QEMU has many more events; none is an error). The block events
// themselves are generated (the light parts of block_core and qdev, job.hpp).
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/protocol/typed_event.hpp>  // event_as, filter_for
#include <qmp/qapi/light/block_core.hpp>  // BLOCK_WRITE_THRESHOLD, BLOCK_JOB_*, BLOCK_IO_ERROR
#include <qmp/qapi/job.hpp>         // JOB_STATUS_CHANGE
#include <qmp/qapi/light/qdev.hpp>        // DEVICE_DELETED

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>

namespace qmp {

/// The block events a thin-provisioning agent follows, plus the untyped
/// fallback (decode_event).
using block_event = std::variant<event, block_write_threshold_event, block_job_completed_event, block_job_ready_event,
                                 block_job_cancelled_event, block_job_error_event, job_status_change_event,
                                 device_deleted_event, block_io_error_event>;

namespace detail {
template <std::size_t I = 1>
bool decode_into(const event& ev, block_event& out, std::error_code& ec, diagnostics* diag) {
    if constexpr (I == std::variant_size_v<block_event>) {
        return false;
    } else {
        using E = std::variant_alternative_t<I, block_event>;
        if (auto typed = event_as<E>(ev, ec, diag)) {
            out = std::move(*typed);
            return true;
        }
        if (ec) return false;
        return decode_into<I + 1>(ev, out, ec, diag);
    }
}
}  // namespace detail

/// Types a received event. An event of a known name with malformed data
/// sets `ec` and is returned untyped, so nothing is lost.
inline block_event decode_event(const event& ev, std::error_code& ec, diagnostics* diag = nullptr) {
    block_event out = ev;
    if (!detail::decode_into(ev, out, ec, diag)) out = ev;
    return out;
}

}  // namespace qmp
