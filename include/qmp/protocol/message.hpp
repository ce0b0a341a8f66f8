// Classifies one framed JSON text as a QMP greeting, success reply, error
// reply or event, and exposes the members each kind carries. Never throws:
// anything that is not valid QMP comes back as an error code.
#pragma once

#include <qmp/protocol/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
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
    } qemu;
    std::string package;

    /// major * 1'000'000 + minor * 1'000 + micro, handy for comparisons.
    std::int64_t number() const noexcept { return qemu.major * 1000000 + qemu.minor * 1000 + qemu.micro; }
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
};

/// `{"seconds", "microseconds"}`; both -1 when QEMU had no host time.
struct timestamp {
    std::int64_t seconds = 0;
    std::int64_t microseconds = 0;
};

/// An asynchronous event from the server.
struct event {
    std::string name;
    json data;  ///< null when the event carries no `data`
    timestamp time;
    /// Set only on an "events lost" marker: how many events were dropped.
    std::uint64_t lost = 0;
};

enum class message_kind { greeting, success, failure, event };

/// One classified message. `id` is null when the message carried none.
struct message {
    message_kind kind = message_kind::event;
    json id;
    json body;                 ///< `return` value (success) or the whole error object (failure)
    std::string error_class;   ///< failure only
    std::string error_desc;    ///< failure only
    struct greeting greeting;  ///< greeting only
    struct event event;        ///< event only
    bool has_id = false;
};

namespace detail {

inline bool read_int(const json& obj, const char* key, std::int64_t& out) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_integer()) return false;
    out = it->get<std::int64_t>();
    return true;
}

inline bool parse_version(const json& v, version_info& out) {
    if (!v.is_object()) return false;
    auto q = v.find("qemu");
    if (q == v.end() || !q->is_object()) return false;
    if (!read_int(*q, "major", out.qemu.major) || !read_int(*q, "minor", out.qemu.minor) ||
        !read_int(*q, "micro", out.qemu.micro))
        return false;
    auto p = v.find("package");
    if (p != v.end()) {
        if (!p->is_string()) return false;
        out.package = p->get<std::string>();
    }
    return true;
}

}  // namespace detail

/// Parses and classifies `text`. Returns malformed_message for invalid JSON
/// or a non-object, unexpected_message for an object that is no QMP message,
/// bad_greeting for a greeting with missing or mistyped members.
inline std::error_code classify(std::string_view text, message& out) {
    json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return error::malformed_message;

    auto id = doc.find("id");
    out.has_id = id != doc.end();
    out.id = out.has_id ? std::move(*id) : json();

    if (auto r = doc.find("return"); r != doc.end()) {
        out.kind = message_kind::success;
        out.body = std::move(*r);
        return {};
    }
    if (auto e = doc.find("error"); e != doc.end()) {
        out.kind = message_kind::failure;
        if (!e->is_object()) return error::unexpected_message;
        auto cls = e->find("class");
        auto desc = e->find("desc");
        out.error_class = (cls != e->end() && cls->is_string()) ? cls->get<std::string>() : std::string();
        out.error_desc = (desc != e->end() && desc->is_string()) ? desc->get<std::string>() : std::string();
        out.body = std::move(*e);
        return {};
    }
    if (auto ev = doc.find("event"); ev != doc.end()) {
        if (!ev->is_string()) return error::unexpected_message;
        out.kind = message_kind::event;
        out.event.name = ev->get<std::string>();
        auto d = doc.find("data");
        out.event.data = d != doc.end() ? std::move(*d) : json();
        out.event.time = {};
        out.event.lost = 0;
        if (auto ts = doc.find("timestamp"); ts != doc.end() && ts->is_object()) {
            detail::read_int(*ts, "seconds", out.event.time.seconds);
            detail::read_int(*ts, "microseconds", out.event.time.microseconds);
        }
        return {};
    }
    if (auto g = doc.find("QMP"); g != doc.end()) {
        out.kind = message_kind::greeting;
        out.greeting = {};
        if (!g->is_object()) return error::bad_greeting;
        auto v = g->find("version");
        if (v == g->end() || !detail::parse_version(*v, out.greeting.version)) return error::bad_greeting;
        auto caps = g->find("capabilities");
        if (caps == g->end() || !caps->is_array()) return error::bad_greeting;
        for (const auto& c : *caps) {
            if (!c.is_string()) return error::bad_greeting;
            out.greeting.capabilities.push_back(c.get<std::string>());
        }
        return {};
    }
    return error::unexpected_message;
}

}  // namespace qmp
