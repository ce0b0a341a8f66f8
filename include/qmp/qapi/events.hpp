// Typed block events and a decoder that turns any received event into one
// of them, or leaves it as the untyped qmp::event when the name is not one
// of ours (QEMU has many more events; none is an error).
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/protocol/event_router.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>

namespace qmp {

struct block_write_threshold_event {
    static constexpr std::string_view name = "BLOCK_WRITE_THRESHOLD";
    std::string node_name{};
    std::uint64_t amount_exceeded = 0;  ///< end of the write minus the threshold
    std::uint64_t write_threshold = 0;  ///< the threshold that was crossed (now disarmed)
    static constexpr auto wire_members() {
        using T = block_write_threshold_event;
        return std::make_tuple(wire::required("node-name", &T::node_name),
                               wire::required("amount-exceeded", &T::amount_exceeded),
                               wire::required("write-threshold", &T::write_threshold));
    }
};

/// Shared by BLOCK_JOB_COMPLETED, _READY and _CANCELLED.
struct block_job_event_data {
    std::string type{};    ///< JobType: "commit", "stream", "mirror", ...
    std::string device{};  ///< the job id
    std::int64_t len = 0;
    std::int64_t offset = 0;
    std::int64_t speed = 0;
    std::optional<std::string> error{};  ///< COMPLETED only, on failure
    static constexpr auto wire_members() {
        using T = block_job_event_data;
        return std::make_tuple(wire::required("type", &T::type), wire::required("device", &T::device),
                               wire::required("len", &T::len), wire::required("offset", &T::offset),
                               wire::required("speed", &T::speed), wire::optional("error", &T::error));
    }
};

struct block_job_completed_event : block_job_event_data {
    static constexpr std::string_view name = "BLOCK_JOB_COMPLETED";
};

struct block_job_ready_event : block_job_event_data {
    static constexpr std::string_view name = "BLOCK_JOB_READY";
};

struct block_job_cancelled_event : block_job_event_data {
    static constexpr std::string_view name = "BLOCK_JOB_CANCELLED";
};

struct block_job_error_event {
    static constexpr std::string_view name = "BLOCK_JOB_ERROR";
    std::string device{};
    std::string operation{};  ///< "read" | "write"
    std::string action{};     ///< "ignore" | "report" | "stop"
    static constexpr auto wire_members() {
        using T = block_job_error_event;
        return std::make_tuple(wire::required("device", &T::device), wire::required("operation", &T::operation),
                               wire::required("action", &T::action));
    }
};

struct job_status_change_event {
    static constexpr std::string_view name = "JOB_STATUS_CHANGE";
    std::string id{};
    std::string status{};  ///< JobStatus as a string: values QEMU adds stay readable
    static constexpr auto wire_members() {
        using T = job_status_change_event;
        return std::make_tuple(wire::required("id", &T::id), wire::required("status", &T::status));
    }
};

/// DEVICE_DELETED: a device (and the block backend it owned) is gone.
struct device_deleted_event {
    static constexpr std::string_view name = "DEVICE_DELETED";
    std::optional<std::string> device{};  ///< the device's id, when it had one
    std::string path{};                   ///< its QOM path
    static constexpr auto wire_members() {
        using T = device_deleted_event;
        return std::make_tuple(wire::optional("device", &T::device), wire::required("path", &T::path));
    }
};

/// BLOCK_IO_ERROR: a guest request failed; with `action` "stop" the VM is
/// paused (status io-error), and `nospace` says the storage was full.
struct block_io_error_event {
    static constexpr std::string_view name = "BLOCK_IO_ERROR";
    std::optional<std::string> qom_path{};   ///< the device's QOM path (sent by 10.0, not by 7.2)
    std::string device{};                    ///< "" for a device without a legacy drive name
    std::optional<std::string> node_name{};  ///< the node the request failed on
    std::string operation{};                 ///< "read" | "write"
    std::string action{};                    ///< "ignore" | "report" | "stop"
    std::optional<bool> nospace{};           ///< true: the storage ran out of space (ENOSPC)
    std::string reason{};
    static constexpr auto wire_members() {
        using T = block_io_error_event;
        return std::make_tuple(wire::optional("qom-path", &T::qom_path), wire::required("device", &T::device),
                               wire::optional("node-name", &T::node_name), wire::required("operation", &T::operation),
                               wire::required("action", &T::action), wire::optional("nospace", &T::nospace),
                               wire::required("reason", &T::reason));
    }
};

/// Converts `ev` to the typed event E when the names match. Returns
/// std::nullopt when the name differs; on a name match with bad data, sets
/// `ec` (missing_member / invalid_result) and returns std::nullopt.
template <class E>
std::optional<E> event_as(const event& ev, std::error_code& ec, diagnostics* diag = nullptr) {
    ec.clear();
    if (ev.name != E::name) return std::nullopt;
    E out{};
    // The data's own text when the tree could not hold it (a number beyond
    // 64 bits: refused clearly); the tree's text otherwise, exact.
    if (ev.undecoded.empty())
        ec = convert(ev.data.is_null() ? json::object() : ev.data, out, diag);
    else
        ec = convert_text(ev.undecoded, out, diag);
    if (ec) {
        if (diag) diag->message = std::string(E::name) + ": " + diag->message;
        return std::nullopt;
    }
    return out;
}

/// A subscription's filter (basic_client::subscribe) that takes the events
/// of the typed events E... (any generated `*_event` or one of these), each
/// read back with event_as<E>:
///   auto jobs = client.subscribe(qmp::filter_for<qmp::block_job_ready_event, qmp::block_job_error_event>(), 64);
/// `predicate`, when given, is applied after the names (event_filter).
template <class... E>
event_filter filter_for(std::function<bool(const event&)> predicate = {}) {
    static_assert(sizeof...(E) > 0, "filter_for needs at least one event type");
    return event_filter{{std::string(E::name)...}, std::move(predicate)};
}

/// Every event this library types, plus the untyped fallback.
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
