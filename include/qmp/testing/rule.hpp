// qmp::testing's vocabulary: the faults a connection meets, and the rule
// that says how the peer answers a command (testing/peer.hpp).
#pragma once

#include <qmp/json/parse.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qmp::testing {

/// The id part of a reply to `req`: `, "id": X` with the request's id as it
/// was sent, or nothing when it had none (QEMU answers an id-less command
/// without one).
inline std::string id_member(const json& req) {
    if (!req.is_object()) return {};
    const auto it = req.find("id");
    return it == req.end() ? std::string() : R"(, "id": )" + it->dump();
}

/// Faults a connection meets. Counts are per connection; `never` is off.
struct faults {
    static constexpr std::size_t never = static_cast<std::size_t>(-1);
    /// Reads that succeed; the next one fails with connection_reset.
    std::size_t fail_read_after = never;
    /// Writes that succeed; the next one fails with broken_pipe.
    std::size_t fail_write_after = never;
    /// Bytes the client receives; then the connection ends (the client
    /// reads end of file), as when QEMU dies mid-message.
    std::size_t cut_after_bytes = never;
    /// 0: a read takes all there is; else at most this many bytes.
    std::size_t read_limit = 0;
    /// Connecting fails with connection_refused (QEMU not listening yet).
    bool refuse_connect = false;

    /// Faults that refuse the connect: `qemu.set_faults(faults::refused(), 1)`.
    static faults refused() {
        faults f;
        f.refuse_connect = true;
        return f;
    }
};

class peer;

/// How the peer answers a command: made by peer::on(), set up with the
/// chained calls below (the last of reply/error/no_reply/hang_up wins).
class rule {
public:
    /// Answers with `{"return": RETURN}`; `return_json` is JSON text, sent
    /// as it is ("{}" by default).
    rule& reply(std::string return_json) {
        action_ = action::reply;
        text_ = std::move(return_json);
        return *this;
    }
    rule& reply(const char* return_json) { return reply(std::string(return_json)); }
    /// Answers with `{"return": VALUE}`.
    rule& reply(const json& value) { return reply(value.dump()); }
    /// Answers with an error of class `cls` (GenericError, DeviceNotFound, ...).
    rule& error(std::string cls, std::string desc) {
        action_ = action::error;
        text_ = json{{"class", std::move(cls)}, {"desc", std::move(desc)}}.dump();
        return *this;
    }
    /// Sends no reply: the command waits (peer::unanswered()) until the test
    /// answers it with peer::answer(), or forever.
    rule& no_reply() {
        action_ = action::none;
        return *this;
    }
    /// Ends the connection instead of replying (QEMU killed mid-command).
    rule& hang_up() {
        action_ = action::hang_up;
        return *this;
    }
    /// Sends an event just before the reply (`data` is JSON text).
    rule& event_before(std::string name, std::string data = "{}") {
        before_.push_back(event_text(name, data));
        return *this;
    }
    /// Sends an event just after the reply.
    rule& event_after(std::string name, std::string data = "{}") {
        after_.push_back(event_text(name, data));
        return *this;
    }
    /// Sends bytes as they are, before or after the reply: anything QEMU
    /// would not send (garbage, an id-less error, half a message).
    rule& send_before(std::string raw) {
        before_.push_back(std::move(raw));
        return *this;
    }
    rule& send_after(std::string raw) {
        after_.push_back(std::move(raw));
        return *this;
    }
    /// Waits this long (on the client's executor) before answering.
    rule& delay(std::chrono::milliseconds d) {
        delay_ = d;
        return *this;
    }
    /// Answers `n` commands, then lets later rules answer; peer::check()
    /// reports a rule with a count that was not used exactly `n` times.
    rule& times(std::size_t n) {
        times_ = n;
        return *this;
    }
    /// Matches only the commands whose arguments pass `pred` too.
    rule& when(std::function<bool(const json& arguments)> pred) {
        pred_ = std::move(pred);
        return *this;
    }

    /// How many commands this rule answered.
    std::size_t used() const { return used_; }

    /// An event message as QEMU writes it, with a made-up timestamp.
    static std::string event_text(const std::string& name, const std::string& data) {
        return R"({"event": )" + json(name).dump() + R"(, "data": )" + data +
               R"(, "timestamp": {"seconds": 1700000000, "microseconds": 0}})" + "\r\n";
    }

private:
    friend class peer;
    enum class action { reply, error, none, hang_up };

    bool matches(const std::string& name, const json& args) const {
        if ((!any_ && name != execute_) || (times_ && used_ >= *times_)) return false;
        if (arguments_ && *arguments_ != args) return false;
        return !pred_ || pred_(args);
    }

    std::string execute_;
    bool any_ = false;
    std::optional<json> arguments_;
    std::function<bool(const json&)> pred_;
    action action_ = action::reply;
    std::string text_ = "{}";
    std::vector<std::string> before_, after_;
    std::chrono::milliseconds delay_{0};
    std::optional<std::size_t> times_;
    std::size_t used_ = 0;
};

}  // namespace qmp::testing
