// What a caller asks for when arming a write threshold: an absolute byte
// offset, a share of the element's capacity (percent or parts per million),
// or a free-space margin below the capacity (threshold = capacity - margin).
// Computed in unsigned 64-bit integers; 0 is "disarm" in QEMU, so a spec
// that computes to 0, or past the capacity, is an error, never an accident.
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/protocol/error.hpp>
#include <qmp/protocol/wire.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace qmp {

struct threshold_spec {
    enum class kind { bytes, ppm, margin };
    kind type = kind::bytes;
    std::uint64_t value = 0;  ///< bytes: the offset; ppm: parts per million (0..1'000'000); margin: bytes
    /// The capacity to compute against (an LV size the agent knows); by
    /// default the storage node's size as QEMU reports it.
    std::optional<std::uint64_t> capacity;
    /// Which node of the element: storage (host allocation, the default) or format.
    layer on = layer::storage;

    static threshold_spec bytes(std::uint64_t offset) { return {kind::bytes, offset, std::nullopt, layer::storage}; }
    static threshold_spec ppm(std::uint64_t parts) { return {kind::ppm, parts, std::nullopt, layer::storage}; }
    /// `percent` of the capacity: the same as ppm(percent * 10'000).
    static threshold_spec percent(std::uint64_t pct) {
        // Above 100% is refused when computed; saturate so it cannot wrap into range.
        return {kind::ppm, pct > 100000000u ? UINT64_MAX : pct * 10000u, std::nullopt, layer::storage};
    }
    static threshold_spec margin(std::uint64_t free_bytes) { return {kind::margin, free_bytes, std::nullopt, layer::storage}; }

    threshold_spec& with_capacity(std::uint64_t c) {
        capacity = c;
        return *this;
    }
    threshold_spec& on_layer(layer l) {
        on = l;
        return *this;
    }

    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("kind", &threshold_spec::type), wire::required("value", &threshold_spec::value),
                               wire::optional("capacity", &threshold_spec::capacity),
                               wire::required("layer", &threshold_spec::on));
    }
    static std::string wire_check(const threshold_spec& s) {
        if (s.type == kind::ppm && s.value > 1000000u) return "value: " + std::to_string(s.value) + " ppm is above 100%";
        if (s.type == kind::bytes && s.value == 0) return "value: a threshold of 0 bytes would disarm";
        if (s.capacity && *s.capacity == 0) return "capacity: 0";
        return {};
    }

    std::string str() const {
        std::string s;
        switch (type) {
        case kind::bytes: s = std::to_string(value); break;
        case kind::ppm: s = value % 10000 == 0 ? std::to_string(value / 10000) + "%" : std::to_string(value) + "ppm"; break;
        case kind::margin: s = "end-" + std::to_string(value); break;
        }
        return s;
    }
};

template <>
struct wire_enum<threshold_spec::kind> {
    static constexpr std::array<std::pair<threshold_spec::kind, std::string_view>, 3> values{
        {{threshold_spec::kind::bytes, "bytes"}, {threshold_spec::kind::ppm, "ppm"}, {threshold_spec::kind::margin, "margin"}}};
};

/// floor(capacity * parts / 1'000'000), exact for every 64-bit capacity
/// (split so no intermediate overflows).
inline std::uint64_t ppm_of(std::uint64_t capacity, std::uint64_t parts) {
    const std::uint64_t q = capacity / 1000000u, r = capacity % 1000000u;
    return q * parts + (r * parts) / 1000000u;
}

/// The byte value a spec means for `capacity` (nullopt: unknown). Errors:
/// invalid_argument with `why` set.
inline std::optional<std::uint64_t> compute_threshold(const threshold_spec& s, std::optional<std::uint64_t> capacity,
                                                      std::error_code& ec, std::string* why = nullptr) {
    auto fail = [&](const std::string& w) -> std::optional<std::uint64_t> {
        ec = error::invalid_argument;
        if (why) *why = w;
        return std::nullopt;
    };
    ec.clear();
    if (s.capacity) capacity = s.capacity;
    std::uint64_t v = 0;
    switch (s.type) {
    case threshold_spec::kind::bytes: v = s.value; break;
    case threshold_spec::kind::ppm:
        if (s.value > 1000000u) return fail("a share above 100% (" + std::to_string(s.value) + " ppm)");
        if (!capacity) return fail("the capacity is unknown");
        v = ppm_of(*capacity, s.value);
        break;
    case threshold_spec::kind::margin:
        if (!capacity) return fail("the capacity is unknown");
        if (s.value >= *capacity)
            return fail("the margin " + std::to_string(s.value) + " is not below the capacity " + std::to_string(*capacity));
        v = *capacity - s.value;
        break;
    }
    if (v == 0) return fail("the threshold computes to 0, which would disarm");
    if (capacity && v > *capacity)
        return fail("the threshold " + std::to_string(v) + " is past the capacity " + std::to_string(*capacity));
    return v;
}

}  // namespace qmp
