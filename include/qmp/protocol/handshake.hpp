// The session opening as a small state machine: wait for the greeting, send
// `qmp_capabilities` (enabling `oob` when offered and wanted), wait for its
// reply. Events that arrive before the greeting are tolerated by the caller.
#pragma once

#include <qmp/protocol/message.hpp>

#include <string>
#include <system_error>

namespace qmp {

class handshake {
public:
    enum class state { awaiting_greeting, awaiting_capabilities, ready, failed };

    /// The id of the negotiation request (inside the reserved prefix).
    static std::string capabilities_id() { return "qmp#capabilities"; }

    explicit handshake(bool want_oob = true) : want_oob_(want_oob) {}

    state current() const noexcept { return state_; }
    bool oob_enabled() const noexcept { return oob_; }
    const struct greeting& server_greeting() const noexcept { return greeting_; }

    /// Feeds a classified message. While the handshake is not finished:
    /// a greeting yields the request to send in `to_send`; the reply to it
    /// finishes the handshake. Returns an error when the server misbehaves
    /// or refuses; `handled` is false for messages that are not part of the
    /// handshake (events), which the caller routes as usual.
    std::error_code on_message(const message& msg, std::string& to_send, bool& handled) {
        handled = false;
        to_send.clear();
        switch (state_) {
        case state::awaiting_greeting:
            if (msg.kind == message_kind::event) return {};
            handled = true;
            if (msg.kind != message_kind::greeting) return fail(error::unexpected_message);
            greeting_ = msg.greeting;
            oob_ = want_oob_ && greeting_.offers("oob");
            {
                json req = {{"execute", "qmp_capabilities"}, {"id", capabilities_id()}};
                if (oob_) req["arguments"] = {{"enable", json::array({"oob"})}};
                to_send = req.dump();
            }
            state_ = state::awaiting_capabilities;
            return {};
        case state::awaiting_capabilities:
            if (msg.kind == message_kind::event) return {};
            handled = true;
            if (msg.kind == message_kind::greeting) return repeated_greeting(msg.greeting);
            if (msg.kind == message_kind::success && is_capabilities_reply(msg)) {
                state_ = state::ready;
                return {};
            }
            if (msg.kind == message_kind::failure) {
                error_class_ = msg.error_class;
                error_desc_ = msg.error_desc;
                return fail(error::negotiation_failed);
            }
            return fail(error::unexpected_message);
        case state::ready:
            if (msg.kind == message_kind::greeting) {
                handled = true;
                return repeated_greeting(msg.greeting);
            }
            return {};
        case state::failed: handled = true; return error::unexpected_message;
        }
        return {};
    }

    /// Copies of the first greeting received after it (ignored; see
    /// repeated_greeting).
    unsigned extra_greetings() const noexcept { return extra_greetings_; }

    /// The server's class and `desc` when negotiation was refused.
    const std::string& error_class() const noexcept { return error_class_; }
    const std::string& error_desc() const noexcept { return error_desc_; }

private:
    static bool is_capabilities_reply(const message& msg) {
        std::string id;
        return msg.id_string(id) && id == capabilities_id();
    }

    // QEMU 7.2 and 10.0 send the greeting twice to a client that connects
    // while the monitor is still being set up (both versions, about one
    // connection in 30 right after start under load; the copy comes before
    // the negotiation reply). Each greeting is QEMU opening the monitor
    // afresh, and in that window QEMU reads the connection unreliably:
    // seen here after a second greeting, over some 7,000 starts, were
    // `qmp_capabilities` answered with "JSON parse error, stray '#'", a
    // later `query-version` arriving as "qery-version" (a byte lost),
    // errors without id on the next connection, and QEMU dying of SIGSEGV.
    // So a copy of the greeting ends the session with greeted_twice, which
    // connect_retry tries again; a different greeting means the stream is
    // not one session at all (unexpected_message).
    std::error_code repeated_greeting(const struct greeting& g) {
        if (!g.same_as(greeting_)) return fail(error::unexpected_message);
        ++extra_greetings_;
        return fail(error::greeted_twice);
    }

    std::error_code fail(error e) {
        state_ = state::failed;
        return e;
    }

    bool want_oob_;
    bool oob_ = false;
    state state_ = state::awaiting_greeting;
    struct greeting greeting_;
    std::string error_class_;
    std::string error_desc_;
    unsigned extra_greetings_ = 0;
};

}  // namespace qmp
