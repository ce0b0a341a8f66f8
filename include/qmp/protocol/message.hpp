// Classifies one framed JSON text as a QMP greeting, success reply, error
// reply or event in one validating pass over its top-level members, without
// building a tree of the payload: a reply's `return` value is kept as its
// exact text, for the caller to read as typed data, as a JSON tree, or as
// text. Never throws: anything that is not valid QMP comes back as a code.
#pragma once

#include <qmp/error.hpp>
#include <qmp/json/parse.hpp>
#include <qmp/json/reader.hpp>
#include <qmp/json/wire.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

namespace qmp {

using json = nlohmann::json;

/// `{"qemu": {"major", "minor", "micro"}, "package"}`: the greeting's version
/// and the result of `query-version`.
struct version_info {
    struct triple {
        std::int64_t major = 0;
        std::int64_t minor = 0;
        std::int64_t micro = 0;
        static constexpr auto wire_members() {
            return std::make_tuple(wire::required("major", &triple::major), wire::required("minor", &triple::minor),
                                   wire::required("micro", &triple::micro));
        }
    } qemu;
    std::string package;

    /// "major.minor.micro", as QEMU prints its version.
    std::string text() const {
        return std::to_string(qemu.major) + "." + std::to_string(qemu.minor) + "." + std::to_string(qemu.micro);
    }

    /// major * 1'000'000 + minor * 1'000 + micro, handy for comparisons.
    std::int64_t number() const noexcept { return qemu.major * 1000000 + qemu.minor * 1000 + qemu.micro; }

    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("qemu", &version_info::qemu),
                               wire::optional("package", &version_info::package));
    }
};

/// The greeting QEMU sends when a connection opens.
struct greeting {
    version_info version;
    std::vector<std::string> capabilities;  ///< offered, e.g. {"oob"}

    bool offers(std::string_view cap) const {
        for (const auto& c : capabilities)
            if (c == cap) return true;
        return false;
    }

    /// Same version, package and capabilities: how a repeated greeting is
    /// told from a different server.
    bool same_as(const greeting& o) const {
        return version.qemu.major == o.version.qemu.major && version.qemu.minor == o.version.qemu.minor &&
               version.qemu.micro == o.version.qemu.micro && version.package == o.version.package &&
               capabilities == o.capabilities;
    }

    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("version", &greeting::version),
                               wire::required("capabilities", &greeting::capabilities));
    }
};

/// `{"seconds", "microseconds"}`; both -1 when QEMU had no host time.
struct timestamp {
    std::int64_t seconds = 0;
    std::int64_t microseconds = 0;
};

/// An asynchronous event from the server.
struct event {
    std::string name;
    json data;  ///< null when the event carries no `data` (or when it could not be held, see `undecoded`)
    timestamp time;
    /// Set only on an "events lost" marker: how many events were dropped.
    std::uint64_t lost = 0;
    /// The exact text of `data` when the JSON tree cannot hold it (a number
    /// beyond 64 bits or a double's range); empty otherwise. Such an event
    /// is delivered, never dropped: typed conversions of it fail clearly.
    std::string undecoded;
};

enum class message_kind { greeting, success, failure, event };

/// One classified message. The views point into the classified text.
struct message {
    message_kind kind = message_kind::event;
    bool has_id = false;
    std::string_view id;     ///< the `id` member's JSON text (empty when none)
    std::string_view value;  ///< success: the `return` value's text; failure: the `error` object's text
    std::string error_class;  ///< failure: the class; empty when QEMU sent none or not a string
    std::string error_desc;   ///< failure: the desc, or a sentence saying it is missing
    struct greeting greeting;  ///< greeting only
    struct event event;        ///< event only

    /// The id as a string when it is one (the negotiation's id is).
    bool id_string(std::string& out) const {
        json_reader r(id);
        if (r.next() != json_token::string) return false;
        r.string_value(out);
        return true;
    }
};

namespace detail {

// The members classification looks at, as value texts.
struct top_level {
    std::string_view ret, err, ev, qmp, id, data, ts;
    bool has_ret = false, has_err = false, has_ev = false, has_qmp = false, has_id = false, has_data = false,
         has_ts = false;
};

inline std::error_code scan_top_level(std::string_view text, top_level& t, std::size_t max_depth) {
    json_reader r(text, max_depth);
    json_token tok = r.next();
    if (tok == json_token::error) return r.error();
    if (tok != json_token::begin_object) return error::malformed_message;
    std::string kbuf;
    for (;;) {
        tok = r.next();
        if (tok == json_token::end_object) break;
        if (tok != json_token::key) return r.error() ? r.error() : make_error_code(error::malformed_message);
        const std::string_view key = r.escaped() ? std::string_view(kbuf = r.string_value()) : r.raw();
        if (r.next() == json_token::error) return r.error();
        const std::size_t b = r.begin_offset();
        if (!r.skip_value()) return r.error();
        const std::string_view v = text.substr(b, r.end_offset() - b);
        auto take = [&](std::string_view& slot, bool& has) {
            slot = v;
            has = true;
        };
        if (key == "return") take(t.ret, t.has_ret);
        else if (key == "error") take(t.err, t.has_err);
        else if (key == "event") take(t.ev, t.has_ev);
        else if (key == "QMP") take(t.qmp, t.has_qmp);
        else if (key == "id") take(t.id, t.has_id);
        else if (key == "data") take(t.data, t.has_data);
        else if (key == "timestamp") take(t.ts, t.has_ts);
    }
    if (r.next() != json_token::end) return r.error() ? r.error() : make_error_code(error::malformed_message);
    return {};
}

inline bool read_string(std::string_view text, std::string& out) {
    json_reader r(text);
    if (r.next() != json_token::string) return false;
    r.string_value(out);
    return true;
}

inline void read_timestamp(std::string_view text, timestamp& ts) {
    ts = {};
    json_reader r(text);
    if (r.next() != json_token::begin_object) return;
    for (json_token t = r.next(); t == json_token::key; t = r.next()) {
        const std::string key = r.string_value();
        r.next();
        if (r.current() == json_token::number && (r.number_kind() == json_number_kind::unsigned_integer ||
                                                  r.number_kind() == json_number_kind::negative_integer)) {
            const std::int64_t v = r.signed_value();
            const bool fits = r.number_kind() == json_number_kind::negative_integer || r.unsigned_value() <= INT64_MAX;
            if (fits && key == "seconds") ts.seconds = v;
            if (fits && key == "microseconds") ts.microseconds = v;
        } else if (!r.skip_value()) {
            return;
        }
    }
}

}  // namespace detail

/// Classifies `text`. Returns malformed_message for invalid JSON or a
/// non-object, nesting_too_deep past `max_depth`, unexpected_message for an
/// object that is no QMP message, bad_greeting for a greeting with missing or
/// mistyped members. `out`'s views point into `text`.
inline std::error_code classify(std::string_view text, message& out, std::size_t max_depth = 1024) {
    detail::top_level t;
    if (auto ec = detail::scan_top_level(text, t, max_depth)) return ec;
    out.has_id = t.has_id;
    out.id = t.has_id ? t.id : std::string_view();
    out.value = {};
    if (t.has_ret) {
        out.kind = message_kind::success;
        out.value = t.ret;
        return {};
    }
    if (t.has_err) {
        out.kind = message_kind::failure;
        out.value = t.err;
        out.error_class.clear();
        out.error_desc.clear();
        json_reader r(t.err);
        if (r.next() != json_token::begin_object) return error::unexpected_message;
        bool has_class = false, has_desc = false;
        for (json_token k = r.next(); k == json_token::key; k = r.next()) {
            const std::string key = r.string_value();
            r.next();
            if (key == "class" && r.current() == json_token::string) {
                r.string_value(out.error_class);
                has_class = true;
            } else if (key == "desc" && r.current() == json_token::string) {
                r.string_value(out.error_desc);
                has_desc = true;
            } else {
                r.skip_value();
            }
        }
        if (!has_desc)
            out.error_desc = std::string("QEMU's error reply has no text") + (has_class ? "" : " and no class") +
                             ": " + std::string(t.err);
        return {};
    }
    if (t.has_ev) {
        out.kind = message_kind::event;
        event& ev = out.event;
        if (!detail::read_string(t.ev, ev.name)) return error::unexpected_message;
        ev.lost = 0;
        ev.undecoded.clear();
        ev.data = nullptr;
        if (t.has_data && parse_json(t.data, ev.data)) {
            ev.data = nullptr;
            ev.undecoded.assign(t.data.data(), t.data.size());
        }
        if (t.has_ts)
            detail::read_timestamp(t.ts, ev.time);
        else
            ev.time = {};
        return {};
    }
    if (t.has_qmp) {
        out.kind = message_kind::greeting;
        out.greeting = {};
        if (convert_text(t.qmp, out.greeting)) return error::bad_greeting;
        return {};
    }
    return error::unexpected_message;
}

}  // namespace qmp
