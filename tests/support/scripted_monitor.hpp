// Test support: a QMP monitor played in memory over test_stream: it greets,
// answers each command the client writes with what `answer` says (by
// command name and arguments, the client's id echoed), and sends events
// when the test says. No sockets, threads or timers: the test runs the
// io_context and calls pump() to let the monitor answer.
#pragma once

#include "reply_id.hpp"
#include "test_stream.hpp"

#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/message.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace qmp_test {

class scripted_monitor {
public:
    /// The `return` value's JSON text for a command, or nullopt for a
    /// GenericError reply.
    using answer_fn = std::function<std::optional<std::string>(const std::string& execute, const qmp::json& arguments)>;

    explicit scripted_monitor(answer_fn answer, std::string version = R"({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""})")
        : remote_(std::make_shared<test_stream::remote>()), answer_(std::move(answer)) {
        remote_->feed(R"({"QMP": {"version": )" + version + R"(, "capabilities": ["oob"]}})" "\r\n");
    }

    /// The client's side of the connection, on `ex`.
    test_stream stream(const test_stream::executor_type& ex) const { return test_stream(ex, remote_); }
    std::shared_ptr<test_stream::remote> remote() const { return remote_; }

    /// Answers what the client wrote since the last call; true when it answered something.
    bool pump() {
        if (remote_->written.size() > seen_) {
            framer_.feed(std::string_view(remote_->written).substr(seen_));
            seen_ = remote_->written.size();
        }
        bool any = false;
        std::string_view msg;
        std::error_code ec;
        while (framer_.next(msg, ec) == qmp::framer::status::message) {
            const qmp::json req = qmp::json::parse(msg, nullptr, false);
            if (req.is_discarded() || !req.is_object()) continue;
            const auto ex = req.find("execute"), oob = req.find("exec-oob");
            const auto& name = ex != req.end() ? *ex : oob != req.end() ? *oob : qmp::json();
            if (!name.is_string()) continue;
            const auto args = req.find("arguments");
            ++commands;
            std::optional<std::string> ret = name == "qmp_capabilities"
                                                 ? std::optional<std::string>("{}")
                                                 : answer_(name.get<std::string>(), args == req.end() ? qmp::json() : *args);
            std::string reply = ret ? R"({"return": )" + *ret : R"({"error": {"class": "GenericError", "desc": "refused"})";
            reply += qmp_test::id_member(req);
            remote_->feed(reply + "}\r\n");
            any = true;
        }
        return any;
    }

    /// Sends bytes as they are (an event, or anything).
    void send(const std::string& bytes) { remote_->feed(bytes); }
    /// Sends an event with `data` (JSON text, sent as it is).
    void send_event(const std::string& name, const std::string& data) {
        send(R"({"event": ")" + name + R"(", "data": )" + data + R"(, "timestamp": {"seconds": 1, "microseconds": 2}})" "\r\n");
    }

    std::size_t commands = 0;  ///< commands answered (negotiation included)

private:
    std::shared_ptr<test_stream::remote> remote_;
    answer_fn answer_;
    qmp::framer framer_;
    std::size_t seen_ = 0;
};

}  // namespace qmp_test
