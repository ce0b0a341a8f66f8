// What a caller asks for when arming a write threshold: an absolute byte
// offset, a share of the element's capacity (percent or parts per million),
// or a free-space margin below the capacity (threshold = capacity - margin).
// Computed in unsigned 64-bit integers; 0 is "disarm" in QEMU, so a spec
// that computes to 0, or past the capacity, is an error, never an accident.
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/error.hpp>
#include <qmp/threshold/error.hpp>
#include <qmp/json/wire.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

    friend bool operator==(const threshold_spec& a, const threshold_spec& b) {
        return a.type == b.type && a.value == b.value && a.capacity == b.capacity && a.on == b.on;
    }

    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("kind", &threshold_spec::type), wire::required("value", &threshold_spec::value),
                               wire::optional("capacity", &threshold_spec::capacity),
                               wire::required("layer", &threshold_spec::on));
    }
    static std::string wire_check(const threshold_spec& s) {
        if (s.type == kind::ppm && s.value > 1000000u) return "value: " + std::to_string(s.value) + " ppm is above 100%";
        if (s.type == kind::ppm && s.value == 0) return "value: a share of 0 computes to 0, which would disarm";
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

namespace detail {

// "512M", "2G", "1048576" -> bytes (binary suffixes K, M, G, T).
inline std::optional<std::uint64_t> parse_size(std::string_view v, std::string& why) {
    if (v.empty() || v[0] < '0' || v[0] > '9') {
        why = "invalid size '" + std::string(v) + "'";
        return std::nullopt;
    }
    std::size_t i = 0;
    std::uint64_t n = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
        const auto d = static_cast<std::uint64_t>(v[i++] - '0');
        if (n > (UINT64_MAX - d) / 10) {
            why = "size '" + std::string(v) + "' is too large";
            return std::nullopt;
        }
        n = n * 10 + d;
    }
    int shift = 0;
    if (i < v.size()) {
        switch (v[i]) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        case 'T': case 't': shift = 40; break;
        default: why = "invalid size suffix in '" + std::string(v) + "'"; return std::nullopt;
        }
        if (i + 1 != v.size()) {
            why = "invalid size '" + std::string(v) + "'";
            return std::nullopt;
        }
    }
    if (shift && n > (UINT64_MAX >> shift)) {
        why = "size '" + std::string(v) + "' is too large";
        return std::nullopt;
    }
    return n << shift;
}

}  // namespace detail

/// Parses a spec as operators write it: bytes with an optional binary
/// suffix (`512M`, `2G`), `N%`, `Nppm`, or `end-SIZE` (capacity minus SIZE).
/// On failure: nullopt, threshold_error::invalid_spec, and a sentence in
/// `diag`.
inline std::optional<threshold_spec> parse_threshold_spec(std::string_view v, std::error_code& ec,
                                                          diagnostics* diag = nullptr) {
    std::string w;
    auto fail = [&](std::string text) -> std::optional<threshold_spec> {
        ec = threshold_error::invalid_spec;
        if (diag) *diag = {{}, std::move(text)};
        return std::nullopt;
    };
    ec.clear();
    if (v.substr(0, 4) == "end-") {
        auto n = detail::parse_size(v.substr(4), w);
        if (!n) return fail(w);
        return threshold_spec::margin(*n);
    }
    auto digits = [&](std::string_view d) -> std::optional<std::uint64_t> {
        if (d.empty() || d.size() > 9 || d.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
        std::uint64_t n = 0;
        for (char c : d) n = n * 10 + static_cast<std::uint64_t>(c - '0');
        return n;
    };
    if (v.size() > 1 && v.back() == '%') {
        auto n = digits(v.substr(0, v.size() - 1));
        if (!n) return fail("invalid value '" + std::string(v) + "'");
        return threshold_spec::percent(*n);
    }
    if (v.size() > 3 && v.substr(v.size() - 3) == "ppm") {
        auto n = digits(v.substr(0, v.size() - 3));
        if (!n) return fail("invalid value '" + std::string(v) + "'");
        return threshold_spec::ppm(*n);
    }
    auto n = detail::parse_size(v, w);
    if (!n) return fail(w);
    return threshold_spec::bytes(*n);
}

/// Throwing form: qmp_error(threshold_error::invalid_spec) with the sentence.
inline threshold_spec parse_threshold_spec(std::string_view v) {
    return detail::value_or_throw([&](std::error_code& ec, diagnostics* d) { return parse_threshold_spec(v, ec, d); });
}

/// floor(capacity * parts / 1'000'000), exact for every 64-bit capacity
/// (split so no intermediate overflows).
inline std::uint64_t ppm_of(std::uint64_t capacity, std::uint64_t parts) {
    const std::uint64_t q = capacity / 1000000u, r = capacity % 1000000u;
    return q * parts + (r * parts) / 1000000u;
}

/// The byte value a spec means for `capacity` (nullopt: unknown). Errors:
/// threshold_error::unknown_capacity or out_of_range, with a sentence in
/// `diag`.
inline std::optional<std::uint64_t> compute_threshold(const threshold_spec& s, std::optional<std::uint64_t> capacity,
                                                      std::error_code& ec, diagnostics* diag = nullptr) {
    auto fail = [&](const std::string& w, threshold_error e = threshold_error::out_of_range) -> std::optional<std::uint64_t> {
        ec = e;
        if (diag) *diag = {{}, w};
        return std::nullopt;
    };
    ec.clear();
    if (s.capacity) capacity = s.capacity;
    std::uint64_t v = 0;
    switch (s.type) {
    case threshold_spec::kind::bytes: v = s.value; break;
    case threshold_spec::kind::ppm:
        if (s.value > 1000000u) return fail("a share above 100% (" + std::to_string(s.value) + " ppm)");
        if (!capacity) return fail("the capacity is unknown", threshold_error::unknown_capacity);
        v = ppm_of(*capacity, s.value);
        break;
    case threshold_spec::kind::margin:
        if (!capacity) return fail("the capacity is unknown", threshold_error::unknown_capacity);
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
