// Error codes of the protocol and client layers: one enum for what the
// session and its driver detect (transport, framing, protocol state, typed
// conversions), one for the error classes QEMU puts in an `error` reply. Both
// plug into std::error_code. The layers above declare their own:
// block/error.hpp (naming disks and chain elements) and threshold/error.hpp.
//
// The model, everywhere: an operation fails with a std::error_code; what a
// person needs to act on it (QEMU's class and desc, the member a conversion
// stopped at, the character a target failed to parse at) comes in a
// `diagnostics`: asynchronous operations attach it to the completion
// (client/diagnostics.hpp), synchronous ones take an optional
// `diagnostics*`, and throwing overloads throw qmp_error, which carries it
// and whose what() includes its message.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace qmp {

/// Failures detected on the client side.
enum class error {
    not_connected = 1,      ///< no session: never connected, or closed
    already_connected,      ///< connect/handshake on a live session
    connection_closed,      ///< the peer closed the stream or the client was closed
    connect_timeout,        ///< the transport connection was not made in time
    greeting_timeout,       ///< no greeting / negotiation reply in time
    timeout,                ///< a command got no reply in time
    message_too_large,      ///< a message exceeded the configured size cap
    nesting_too_deep,       ///< a message nested deeper than the depth cap
    malformed_message,      ///< bytes that are not a JSON object
    unexpected_message,     ///< valid JSON that is no QMP message (or at the wrong time)
    out_of_sync,            ///< an error reply without id: the stream lost its framing
    bad_greeting,           ///< the greeting lacks a member or has a wrong type
    negotiation_failed,     ///< qmp_capabilities was refused
    oob_not_negotiated,     ///< exec-oob requested but oob is not enabled
    invalid_result,         ///< a reply or event could not be converted to the typed result
    missing_member,         ///< a required member was absent in a typed conversion
    invalid_argument,       ///< the caller passed something unusable
    fd_passing_unsupported, ///< file descriptors given for a stream that is no unix socket
    unrepresentable_number, ///< a number no 64-bit integer or double holds exactly
    greeted_twice,          ///< QEMU greeted again: its monitor was set up under this connection
    not_offered,            ///< the peer's schema lacks the command, an argument member or a value
};

/// QMP error classes (qapi/error.json QapiErrorClass).
enum class server_error {
    generic_error = 1,
    command_not_found,
    device_not_active,
    device_not_found,
    kvm_missing_cap,
    unknown_class,  ///< a class name this library does not know
};

namespace detail {

class client_category_impl : public std::error_category {
public:
    const char* name() const noexcept override { return "qmp.client"; }
    std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
        case error::not_connected: return "not connected to a QMP server";
        case error::already_connected: return "the session is already connected";
        case error::connection_closed: return "the QMP connection was closed";
        case error::connect_timeout: return "timed out connecting to the QMP server";
        case error::greeting_timeout: return "timed out waiting for the QMP greeting or negotiation";
        case error::timeout: return "timed out waiting for QEMU (a command's reply, or an event)";
        case error::message_too_large: return "a QMP message exceeded the size limit";
        case error::nesting_too_deep: return "a QMP message is nested too deeply";
        case error::malformed_message: return "received bytes that are not a JSON object";
        case error::unexpected_message: return "received a JSON message that is not valid QMP here";
        case error::out_of_sync: return "the server reported an error without id: stream out of sync";
        case error::bad_greeting: return "the QMP greeting is malformed";
        case error::negotiation_failed: return "capabilities negotiation failed";
        case error::oob_not_negotiated: return "out-of-band execution was not negotiated";
        case error::invalid_result: return "a reply did not match the expected type";
        case error::missing_member: return "a required member is missing";
        case error::invalid_argument: return "invalid argument";
        case error::fd_passing_unsupported: return "file descriptors can only be passed over a unix socket";
        case error::unrepresentable_number: return "a number cannot be held exactly (beyond 64-bit integers or doubles)";
        case error::greeted_twice:
            return "QEMU sent its greeting twice: the connection began while QEMU set up its monitor, which can lose "
                   "what it reads then; connect again";
        case error::not_offered:
            return "the peer does not offer this command, argument or value (its query-qmp-schema lacks it)";
        }
        return "unknown qmp.client error";
    }
};

class server_category_impl : public std::error_category {
public:
    const char* name() const noexcept override { return "qmp.server"; }
    std::string message(int ev) const override {
        switch (static_cast<server_error>(ev)) {
        case server_error::generic_error: return "GenericError";
        case server_error::command_not_found: return "CommandNotFound";
        case server_error::device_not_active: return "DeviceNotActive";
        case server_error::device_not_found: return "DeviceNotFound";
        case server_error::kvm_missing_cap: return "KVMMissingCap";
        case server_error::unknown_class: return "unknown QMP error class";
        }
        return "unknown qmp.server error";
    }
};

}  // namespace detail

inline const std::error_category& client_category() noexcept {
    static const detail::client_category_impl cat;
    return cat;
}

inline const std::error_category& server_category() noexcept {
    static const detail::server_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), client_category()};
}

inline std::error_code make_error_code(server_error e) noexcept {
    return {static_cast<int>(e), server_category()};
}

/// Maps the `class` member of a QMP error reply to its code.
inline server_error server_error_from_class(std::string_view cls) noexcept {
    if (cls == "GenericError") return server_error::generic_error;
    if (cls == "CommandNotFound") return server_error::command_not_found;
    if (cls == "DeviceNotActive") return server_error::device_not_active;
    if (cls == "DeviceNotFound") return server_error::device_not_found;
    if (cls == "KVMMissingCap") return server_error::kvm_missing_cap;
    return server_error::unknown_class;
}

/// What accompanies an error code: the server's class and `desc` for a QMP
/// error, or a sentence naming the member for a failed conversion.
struct diagnostics {
    std::string error_class;  ///< the QMP `class` as sent (empty for client errors)
    std::string message;      ///< server `desc`, or the client's explanation

    void clear() {
        error_class.clear();
        message.clear();
    }
};

/// Thrown by the throwing overloads of the blocking API.
class qmp_error : public std::system_error {
public:
    qmp_error(std::error_code ec, diagnostics diag)
        : std::system_error(diag.message.empty() ? std::system_error(ec) : std::system_error(ec, diag.message)),
          diag_(std::move(diag)) {}
    explicit qmp_error(std::error_code ec) : std::system_error(ec) {}
    const diagnostics& diag() const noexcept { return diag_; }

private:
    diagnostics diag_;
};

namespace detail {

/// The throwing form of a call `f(ec, diag*)` that returns an optional:
/// its value, or qmp_error with the code and the diagnostics.
template <class F>
auto value_or_throw(F&& f) {
    std::error_code ec;
    diagnostics diag;
    auto r = std::forward<F>(f)(ec, &diag);
    if (!r) throw qmp_error(ec, std::move(diag));
    return std::move(*r);
}

}  // namespace detail

}  // namespace qmp

template <>
struct std::is_error_code_enum<qmp::error> : std::true_type {};
template <>
struct std::is_error_code_enum<qmp::server_error> : std::true_type {};
