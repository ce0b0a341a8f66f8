// The typed-command mechanism. A command is a plain struct with its wire
// name as `static constexpr std::string_view name`, a `result_type`, and
// (when it has arguments) a `to_json` found by ADL. Results convert with
// `from_json`; a conversion failure becomes an error code, never an
// exception into the io_context.
#pragma once

#include <qmp/protocol/error.hpp>
#include <qmp/protocol/message.hpp>

#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>
#include <string>

namespace qmp {

/// Result of commands that return `{}`.
struct empty_result {};
inline void from_json(const json&, empty_result&) {}

/// True for types usable with the typed async_execute.
template <class C, class = void>
struct is_command : std::false_type {};
template <class C>
struct is_command<C, std::void_t<typename C::result_type, decltype(C::name)>> : std::true_type {};

namespace detail {

/// Maps an exception thrown by a nlohmann conversion to our codes, keeping
/// its text (which names the missing key) as diagnostics.
inline std::error_code conversion_error(const json::exception& e, diagnostics* diag) {
    if (diag) {
        diag->error_class.clear();
        diag->message = e.what();
    }
    // 403: key not found.
    return e.id == 403 ? make_error_code(error::missing_member) : make_error_code(error::invalid_result);
}

template <class R>
std::error_code from_json_noexcept(const json& j, R& out, diagnostics* diag) {
    try {
        if constexpr (std::is_same_v<R, json>)
            out = j;
        else
            j.get_to(out);
        return {};
    } catch (const json::exception& e) {
        return conversion_error(e, diag);
    } catch (const std::exception& e) {
        if (diag) diag->message = e.what();
        return make_error_code(error::invalid_result);
    }
}

template <class C>
std::error_code arguments_of(const C& cmd, json& out, diagnostics* diag) {
    if constexpr (std::is_empty_v<C>) {
        (void)cmd;
        out = json();
        return {};
    } else {
        try {
            out = json(cmd);
            return {};
        } catch (const std::exception& e) {
            if (diag) diag->message = e.what();
            return make_error_code(error::invalid_argument);
        }
    }
}

}  // namespace detail

/// Typed conversion of any JSON value, with errors as codes.
template <class R>
std::error_code convert(const json& j, R& out, diagnostics* diag = nullptr) {
    return detail::from_json_noexcept(j, out, diag);
}

// Two commands every session has; they prove the mechanism. The block
// commands live in qmp/qapi/.

/// `query-version`.
struct query_version {
    static constexpr std::string_view name = "query-version";
    using result_type = version_info;
};

inline void from_json(const json& j, version_info& v) {
    const json& q = j.at("qemu");
    q.at("major").get_to(v.qemu.major);
    q.at("minor").get_to(v.qemu.minor);
    q.at("micro").get_to(v.qemu.micro);
    v.package = j.value("package", std::string());
}

/// `qmp_capabilities` (the client sends it itself; a second one is refused
/// by QEMU with CommandNotFound, which tests use).
struct qmp_capabilities {
    static constexpr std::string_view name = "qmp_capabilities";
    using result_type = empty_result;
    std::vector<std::string> enable{};
};

inline void to_json(json& j, const qmp_capabilities& c) {
    j = json::object();
    if (!c.enable.empty()) j["enable"] = c.enable;
}

}  // namespace qmp
