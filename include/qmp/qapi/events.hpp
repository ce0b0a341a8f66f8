// Typed block events and a decoder that turns any received event into one
// of them, or leaves it as the untyped qmp::event when the name is not one
// of ours (QEMU has many more events; none is an error).
#pragma once

#include <qmp/client/command.hpp>
#include <qmp/qapi/detail/convert.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace qmp {

struct block_write_threshold_event {
    static constexpr std::string_view name = "BLOCK_WRITE_THRESHOLD";
    std::string node_name{};
    std::uint64_t amount_exceeded = 0;  ///< end of the write minus the threshold
    std::uint64_t write_threshold = 0;  ///< the threshold that was crossed (now disarmed)
};
inline void from_json(const json& j, block_write_threshold_event& v) {
    j.at("node-name").get_to(v.node_name);
    j.at("amount-exceeded").get_to(v.amount_exceeded);
    j.at("write-threshold").get_to(v.write_threshold);
}

/// Shared by BLOCK_JOB_COMPLETED, _READY and _CANCELLED.
struct block_job_event_data {
    std::string type{};    ///< JobType: "commit", "stream", "mirror", ...
    std::string device{};  ///< the job id
    std::int64_t len = 0;
    std::int64_t offset = 0;
    std::int64_t speed = 0;
    std::optional<std::string> error{};  ///< COMPLETED only, on failure
};
inline void from_json(const json& j, block_job_event_data& v) {
    j.at("type").get_to(v.type);
    j.at("device").get_to(v.device);
    j.at("len").get_to(v.len);
    j.at("offset").get_to(v.offset);
    j.at("speed").get_to(v.speed);
    detail::get_opt(j, "error", v.error);
}

struct block_job_completed_event : block_job_event_data {
    static constexpr std::string_view name = "BLOCK_JOB_COMPLETED";
};
inline void from_json(const json& j, block_job_completed_event& v) { from_json(j, static_cast<block_job_event_data&>(v)); }

struct block_job_ready_event : block_job_event_data {
    static constexpr std::string_view name = "BLOCK_JOB_READY";
};
inline void from_json(const json& j, block_job_ready_event& v) { from_json(j, static_cast<block_job_event_data&>(v)); }

struct block_job_cancelled_event : block_job_event_data {
    static constexpr std::string_view name = "BLOCK_JOB_CANCELLED";
};
inline void from_json(const json& j, block_job_cancelled_event& v) { from_json(j, static_cast<block_job_event_data&>(v)); }

struct block_job_error_event {
    static constexpr std::string_view name = "BLOCK_JOB_ERROR";
    std::string device{};
    std::string operation{};  ///< "read" | "write"
    std::string action{};     ///< "ignore" | "report" | "stop"
};
inline void from_json(const json& j, block_job_error_event& v) {
    j.at("device").get_to(v.device);
    j.at("operation").get_to(v.operation);
    j.at("action").get_to(v.action);
}

struct job_status_change_event {
    static constexpr std::string_view name = "JOB_STATUS_CHANGE";
    std::string id{};
    std::string status{};  ///< JobStatus as a string: values QEMU adds stay readable
};
inline void from_json(const json& j, job_status_change_event& v) {
    j.at("id").get_to(v.id);
    j.at("status").get_to(v.status);
}

/// Converts `ev` to the typed event E when the names match. Returns
/// std::nullopt when the name differs; on a name match with bad data, sets
/// `ec` (missing_member / invalid_result) and returns std::nullopt.
template <class E>
std::optional<E> event_as(const event& ev, std::error_code& ec, diagnostics* diag = nullptr) {
    ec.clear();
    if (ev.name != E::name) return std::nullopt;
    E out{};
    const json& data = ev.data.is_null() ? json::object() : ev.data;
    if ((ec = convert(data, out, diag))) return std::nullopt;
    return out;
}

/// Every event this library types, plus the untyped fallback.
using block_event = std::variant<event, block_write_threshold_event, block_job_completed_event, block_job_ready_event,
                                 block_job_cancelled_event, block_job_error_event, job_status_change_event>;

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
