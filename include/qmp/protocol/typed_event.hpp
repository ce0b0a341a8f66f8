// Typed events: event_as<E>() reads a received event as the typed event E
// (every generated `*_event`), and filter_for<E...>() builds a
// subscription's filter from typed events. Every generated header that
// declares an event includes this one.
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/protocol/event_router.hpp>

#include <functional>
#include <optional>
#include <string>
#include <system_error>

namespace qmp {

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
/// of the typed events E... (any generated `*_event`), each
/// read back with event_as<E>:
///   auto jobs = client.subscribe(qmp::filter_for<qmp::block_job_ready_event, qmp::block_job_error_event>(), 64);
/// `predicate`, when given, is applied after the names (event_filter).
template <class... E>
event_filter filter_for(std::function<bool(const event&)> predicate = {}) {
    static_assert(sizeof...(E) > 0, "filter_for needs at least one event type");
    return event_filter{{std::string(E::name)...}, std::move(predicate)};
}

}  // namespace qmp
