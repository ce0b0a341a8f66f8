// One QMP session as a state machine, with no I/O: bytes received and user
// requests go in; bytes to write, replies, events and the session's end come
// out. It owns every rule of the protocol: negotiation (the handshake,
// repeated greetings), ids and matching, the in-band cap with oob, the
// descriptor ordering, id-less errors, late replies of abandoned requests,
// and the write queue. The asio client drives it; its tests feed it bytes.
//
// What it produces goes to a session_handler during the call that caused
// it. A reply's text is valid only during on_reply, and a `json` built from
// it there gives back the pages it has passed (give_back_reply_text: read
// the text first if you want it too). The handler must not
// call back into the session from inside a callback (collect, then act).
//
// The library's one sans-io object that pushes instead of being pulled
// (threshold_tracker hands out actions through next_action()), on purpose:
// a reply is converted to its typed result while its text is still in the
// read buffer (on_reply's view), with no copy and no action object per
// message; pulling would have to keep every reply's text until the runner
// asks for it. The round-trip benchmarks hold the library to the raw socket,
// and that is where this choice pays.
#pragma once

#include <qmp/error.hpp>
#include <qmp/json/detail/spent_text.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/handshake.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/protocol/peer_schema.hpp>
#include <qmp/protocol/session_types.hpp>
#include <qmp/protocol/wire_ids.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace qmp {

class session {
public:
    enum class state { idle, negotiating, ready, closed };

    explicit session(session_options o = {}) : opts_(std::move(o)), framer_(opts_.limits), hs_(opts_.enable_oob) {}

    // ---- life cycle -------------------------------------------------------------

    /// A transport is connected: expect the greeting. Forgets any earlier
    /// session (its requests were failed when it closed).
    void start() {
        framer_.reset();
        hs_ = handshake(opts_.enable_oob);
        pending_.clear();
        waiting_.clear();
        out_.clear();
        ids_.clear();
        idless_ = 0;
        writing_ = false;
        inband_in_flight_ = 0;
        fds_in_flight_ = false;
        reason_.clear();
        greetings_seen_ = 0;
        schema_.reset();
        state_ = state::negotiating;
    }

    /// What this peer offers (its query-qmp-schema, indexed), for the rest
    /// of this connection: from now on a command it lacks, or an argument
    /// member or enum value it does not know, is refused by submit with
    /// not_offered and a message naming it, before anything is sent. A new
    /// connection (start) forgets it; null turns the check off.
    void offer(std::shared_ptr<const peer_schema> schema) { schema_ = std::move(schema); }
    const std::shared_ptr<const peer_schema>& offered() const noexcept { return schema_; }

    state current() const noexcept { return state_; }
    bool ready() const noexcept { return state_ == state::ready; }
    bool oob_enabled() const noexcept { return state_ == state::ready && hs_.oob_enabled(); }
    const struct greeting& server_greeting() const noexcept { return hs_.server_greeting(); }
    /// Why the session ended (empty while it runs).
    std::error_code close_reason() const noexcept { return reason_; }
    const session_stats& stats() const noexcept { return stats_; }
    /// Requests not answered yet (sent or waiting), abandoned ones included.
    std::size_t pending() const noexcept { return pending_.size(); }

    // ---- requests ---------------------------------------------------------------

    /// Queues command `name` with `arguments` (null, or an object) and
    /// returns its id (> 0), or 0 with `ec` (and `diag`) when the session
    /// cannot take it. `fd_count` descriptors go with it (its runner keeps
    /// them and sends them with the chunk whose fd_owner is this id).
    std::uint64_t submit(std::string_view name, const json& arguments, const request_options& o, std::error_code& ec,
                         diagnostics& diag) {
        if (!check(o, ec, diag) || (schema_ && !admitted(name, arguments, ec, diag))) return 0;
        std::string text;
        try {
            text = arguments.is_null() ? std::string() : arguments.dump();
        } catch (const json::exception& e) {
            ec = error::invalid_argument;
            diag = {{}, e.what()};
            return 0;
        }
        return queue(name, text, o);
    }

    /// The same with the arguments already serialised (a JSON object's text,
    /// or empty for none).
    std::uint64_t submit_text(std::string_view name, std::string_view arguments, const request_options& o,
                              std::error_code& ec, diagnostics& diag) {
        if (!check(o, ec, diag)) return 0;
        if (schema_) {
            json args;
            if (!arguments.empty() && parse_json(arguments, args)) args = nullptr;  // the peer will say
            if (!admitted(name, args, ec, diag)) return 0;
        }
        return queue(name, arguments, o);
    }

    /// The caller gave up on `id`: unsent, it is never sent; sent, its late
    /// reply is read and dropped.
    void abandon(std::uint64_t id) {
        auto it = pending_.find(id);
        if (it == pending_.end()) return;
        if (!it->second.sent) {
            for (auto w = waiting_.begin(); w != waiting_.end(); ++w)
                if (*w == id) {
                    waiting_.erase(w);
                    break;
                }
            pending_.erase(it);
            return;
        }
        it->second.abandoned = true;
    }

    // ---- input ------------------------------------------------------------------

    /// Bytes from the transport. Every complete message is handled now.
    void on_bytes(const char* data, std::size_t size, session_handler& h) {
        if (state_ != state::negotiating && state_ != state::ready) return;
        stats_.bytes_received += size;
        framer_.feed(data, size);
        for (;;) {
            std::string_view text;
            std::error_code fe;
            auto st = framer_.next(text, fe);
            if (st == framer::status::need_more) return;
            if (st == framer::status::failed) return close(fe, {}, h);
            handle(text, h);
            if (state_ == state::closed) return;
        }
    }

    /// The transport failed or ended. The peer going away is
    /// connection_closed whichever side noticed (EOF, ECONNRESET, EPIPE).
    void on_transport_error(std::error_code ec, session_handler& h) { close(ec, {}, h); }

    /// Ends the session: every request not answered is failed with `ec`
    /// (on_reply), then on_closed. Safe to call twice.
    void close(std::error_code ec, const diagnostics& diag, session_handler& h) {
        if (state_ == state::closed || state_ == state::idle) return;
        state_ = state::closed;
        reason_ = ec;
        out_.clear();
        writing_ = false;
        waiting_.clear();
        ids_.clear();
        idless_ = 0;
        trace(trace_kind::state, "closed");
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [id, r] : pending)
            if (!r.abandoned) h.on_reply(id, ec, {}, diagnostics{});
        h.on_closed(ec, diag);
    }

    // ---- output -----------------------------------------------------------------

    /// Bytes to write next: the first chunk. When `fd_owner` is not 0, the
    /// descriptors of that request go with the chunk's first byte. The chunk
    /// stays as it is until consumed() covers it.
    struct chunk {
        std::string_view bytes;
        std::uint64_t fd_owner = 0;
    };
    bool want_write() const noexcept { return !out_.empty(); }
    chunk next_write() {
        writing_ = true;
        return {out_.front().bytes, out_.front().fd_owner};
    }
    /// The first chunk was written entirely.
    void written() {
        out_.pop_front();
        writing_ = false;
    }

private:
    // Copies of the greeting are counted in the handshake, per connection;
    // the stats add them up.
    void count_greetings() {
        stats_.repeated_greetings += hs_.extra_greetings() - greetings_seen_;
        greetings_seen_ = hs_.extra_greetings();
    }

    void trace(trace_kind k, std::string_view text) const {
        if (opts_.trace) opts_.trace(k, text);
    }

    struct entry {
        bool oob = false;
        bool fds = false;
        bool sent = false;
        bool abandoned = false;
        bool idless = false;    // sent without an id (alone in flight)
        std::uint32_t tag = 0;  // the id on the wire, once sent (unless idless)
        std::string wire;       // until sent; without its id and closing brace
    };
    struct out_chunk {
        std::string bytes;
        std::uint64_t fd_owner = 0;
    };

    bool check(const request_options& o, std::error_code& ec, diagnostics& diag) const {
        ec.clear();
        if (state_ != state::ready) {
            ec = state_ == state::closed && reason_ ? reason_ : make_error_code(error::not_connected);
            return false;
        }
        if (o.oob && !hs_.oob_enabled()) {
            ec = error::oob_not_negotiated;
            return false;
        }
        if (o.fd_count && (o.oob || o.fd_count > max_fds_per_request)) {
            ec = error::invalid_argument;
            diag = {{}, o.oob ? "descriptors cannot go with exec-oob"
                              : "at most " + std::to_string(max_fds_per_request) + " descriptors per command"};
            return false;
        }
        return true;
    }

    // The peer's schema takes the command and its arguments (only with offer()).
    bool admitted(std::string_view name, const json& args, std::error_code& ec, diagnostics& diag) const {
        std::string why = schema_->refusal(name, args);
        if (why.empty()) return true;
        ec = error::not_offered;
        diag = {{}, std::move(why)};
        return false;
    }

    std::uint64_t queue(std::string_view name, std::string_view arguments, const request_options& o) {
        const std::uint64_t id = ++last_id_;
        entry e;
        e.oob = o.oob;
        e.fds = o.fd_count > 0;
        e.wire.reserve(name.size() + arguments.size() + 48);
        e.wire += o.oob ? "{\"exec-oob\":" : "{\"execute\":";
        append_json_string(e.wire, name);
        if (!arguments.empty()) {
            e.wire += ",\"arguments\":";
            e.wire += arguments;
        }
        const bool hold = !o.oob && (!waiting_.empty() || held_back(e));
        auto& slot = pending_.emplace(id, std::move(e)).first->second;
        if (hold)
            waiting_.push_back(id);
        else
            transmit(id, slot);
        return id;
    }

    // An in-band command waits while QEMU's queue is full (oob on), and a
    // command with descriptors waits for the reply to the previous one:
    // QEMU keeps only the descriptors of the last message that carried any,
    // and with oob on it reads ahead of the command that takes them.
    bool held_back(const entry& e) const {
        if (!e.oob && hs_.oob_enabled() && inband_in_flight_ >= opts_.max_inband_in_flight) return true;
        return e.fds && fds_in_flight_;
    }

    // The id goes on last: none for an in-band command alone in flight (its
    // reply is the next one without an id), else the smallest free number
    // (wire_ids.hpp).
    void transmit(std::uint64_t id, entry& e) {
        e.sent = true;
        if (!e.oob) ++inband_in_flight_;
        if (e.fds) fds_in_flight_ = true;
        ++stats_.commands_sent;
        if (opts_.idless_commands && !e.oob && idless_ == 0 && ids_.held() == 0) {
            e.idless = true;
            idless_ = id;
            ++stats_.idless_sent;
            e.wire += '}';
        } else {
            e.tag = ids_.take(id);
            wire_ids::append_id(e.wire, e.tag);
        }
        trace(trace_kind::sent, e.wire);
        write(e.wire, e.fds ? id : 0);
        std::string().swap(e.wire);
    }

    void pump_waiting() {
        while (!waiting_.empty()) {
            auto it = pending_.find(waiting_.front());
            if (it == pending_.end()) {
                waiting_.pop_front();
                continue;
            }
            if (held_back(it->second)) return;
            waiting_.pop_front();
            transmit(it->first, it->second);
        }
    }

    // Appends to the last chunk unless it is being written or must start
    // with descriptors of its own.
    void write(std::string_view bytes, std::uint64_t fd_owner) {
        const bool can_join = !out_.empty() && !fd_owner && !(writing_ && out_.size() == 1);
        if (can_join)
            out_.back().bytes += bytes;
        else
            out_.push_back(out_chunk{std::string(bytes), fd_owner});
    }

    static void append_json_string(std::string& out, std::string_view s) {
        out += '"';
        for (char c : s) {
            switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    static const char* hex = "0123456789abcdef";
                    out += "\\u00";
                    out += hex[(c >> 4) & 0xf];
                    out += hex[c & 0xf];
                } else {
                    out += c;
                }
            }
        }
        out += '"';
    }

    std::uint64_t our_id(const message& m) const { return m.has_id ? ids_.owner(m.id) : 0; }

    void handle(std::string_view text, session_handler& h) {
        ++stats_.messages_received;
        trace(trace_kind::received, text);
        message msg;
        if (auto ec = classify(text, msg, opts_.limits.max_depth)) return close(ec, {}, h);
        if (state_ == state::negotiating) return negotiate(msg, h);
        switch (msg.kind) {
        case message_kind::greeting: {
            // Always the end of the session (see handshake).
            std::string unused;
            bool handled = false;
            auto ec = hs_.on_message(msg, unused, handled);
            count_greetings();
            return close(ec ? ec : make_error_code(error::unexpected_message), {}, h);
        }
        case message_kind::event:
            ++stats_.events_received;
            return h.on_event(std::move(msg.event));
        case message_kind::success:
        case message_kind::failure: break;
        }
        // A reply without an id is the id-less command's, if one is in
        // flight (QEMU answers in-band commands in order, and every other
        // command in flight has an id). Otherwise an id-less error answers
        // input QEMU could not parse: our stream and QEMU's parser
        // disagree, nothing can be trusted.
        if (!msg.has_id && !idless_) {
            if (msg.kind == message_kind::failure) return close(error::out_of_sync, {}, h);
            ++stats_.unknown_ids;
            return;
        }
        const std::uint64_t id = msg.has_id ? our_id(msg) : idless_;
        auto it = id ? pending_.find(id) : pending_.end();
        if (it == pending_.end()) {
            ++stats_.unknown_ids;
            return;
        }
        entry e = std::move(it->second);
        pending_.erase(it);
        if (e.idless)
            idless_ = 0;
        else
            ids_.release(e.tag);
        if (!e.oob && inband_in_flight_ > 0) --inband_in_flight_;
        if (e.fds) fds_in_flight_ = false;
        if (e.abandoned) {
            ++stats_.late_replies;
        } else if (msg.kind == message_kind::success) {
            // Nothing here reads the value after its handler: a tree built
            // from it may give back the text's pages as it goes.
            detail::spent_text spendable(opts_.give_back_reply_text ? msg.value : std::string_view());
            h.on_reply(id, {}, msg.value, diagnostics{});
        } else {
            h.on_reply(id, server_error_from_class(msg.error_class), {}, diagnostics{msg.error_class, msg.error_desc});
        }
        pump_waiting();
    }

    void negotiate(message& msg, session_handler& h) {
        std::string to_send;
        bool handled = false;
        if (auto ec = hs_.on_message(msg, to_send, handled)) {
            count_greetings();
            diagnostics d;
            if (ec == error::negotiation_failed) d = {hs_.error_class(), hs_.error_desc()};
            return close(ec, d, h);
        }
        count_greetings();
        if (!to_send.empty()) {
            trace(trace_kind::sent, to_send);
            write(to_send, 0);
        }
        if (hs_.current() == handshake::state::ready) {
            state_ = state::ready;
            ++stats_.connections;
            trace(trace_kind::state, hs_.oob_enabled() ? "ready (oob)" : "ready");
            h.on_ready();
        }
        if (!handled && msg.kind == message_kind::event) {
            ++stats_.events_received;
            h.on_event(std::move(msg.event));
        }
    }

    session_options opts_;
    framer framer_;
    handshake hs_;
    state state_ = state::idle;
    std::error_code reason_;
    std::unordered_map<std::uint64_t, entry> pending_;
    std::deque<std::uint64_t> waiting_;  // held back, in order
    std::deque<out_chunk> out_;
    wire_ids ids_;
    std::uint64_t idless_ = 0;  // the request sent without an id, until its reply (0: none)
    bool writing_ = false;
    std::size_t inband_in_flight_ = 0;
    bool fds_in_flight_ = false;
    std::uint64_t last_id_ = 0;
    unsigned greetings_seen_ = 0;
    session_stats stats_;
    std::shared_ptr<const peer_schema> schema_{};
};

}  // namespace qmp
