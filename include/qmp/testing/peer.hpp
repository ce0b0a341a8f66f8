// qmp::testing::peer: a QMP monitor played in memory, scripted by a test.
//
// The peer is what a test states about QEMU: its greeting, how it answers
// each command (matched by name, and by arguments when given), events at
// chosen points, delays, and faults (a read or write that fails after N
// operations, the connection cut after N bytes, a reply never sent, a
// refused connect). Clients reach it through qmp::testing::stream
// (testing/stream.hpp), which every client type takes: asynchronous,
// blocking, with any completion token. Nothing here opens a socket, starts
// a thread or reads a clock: the peer answers inside the client's own
// reads and writes, on the client's executor, and is safe to script from
// another thread while the client runs.
//
// Copies of a peer share one monitor: keep one in the test, give its
// endpoint() to clients.
#pragma once

#include <qmp/json/parse.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/testing/detail/connection.hpp>
#include <qmp/testing/rule.hpp>

#include <asio/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace qmp::testing {

template <class Executor>
class basic_stream;
namespace detail {
class pending_reads;
}

/// What a client connects to: a peer's address, for async_connect, the
/// blocking client's connect and the reconnector.
struct endpoint {
    std::shared_ptr<void> state;
};

/// A QMP monitor scripted by a test (see the top of this file).
class peer {
public:
    /// A QEMU 10.0.0 that offers out-of-band execution, answering
    /// qmp_capabilities with {} and any command without a rule with
    /// CommandNotFound, as QEMU does.
    peer() : st_(std::make_shared<state>()) { version(10, 0, 0); }

    /// The greeting's version (its capabilities keep oob unless `oob` is false).
    peer& version(int major, int minor, int micro = 0, bool oob = true) {
        std::lock_guard<std::mutex> lk(st_->m);
        st_->greeting = R"({"QMP": {"version": {"qemu": {"micro": )" + std::to_string(micro) +
                        R"(, "minor": )" + std::to_string(minor) + R"(, "major": )" + std::to_string(major) +
                        R"(}, "package": ""}, "capabilities": [)" + (oob ? R"("oob")" : "") + "]}}\r\n";
        return *this;
    }
    /// Exactly these bytes greet each connection (an event first, garbage, nothing).
    peer& greeting(std::string raw) {
        std::lock_guard<std::mutex> lk(st_->m);
        st_->greeting = std::move(raw);
        return *this;
    }

    /// A rule for command `execute` (any arguments); rules are tried in the
    /// order they were made. The reference stays valid as long as the peer.
    /// Set a rule up before a client can send its command: the chained
    /// calls on it take no lock (everything else on the peer does).
    rule& on(std::string execute) {
        std::lock_guard<std::mutex> lk(st_->m);
        st_->rules.push_back(std::make_unique<rule>());
        st_->rules.back()->execute_ = std::move(execute);
        return *st_->rules.back();
    }
    /// A rule for `execute` with exactly these arguments (a command sent
    /// without arguments has `{}`).
    rule& on(std::string execute, json arguments) {
        rule& r = on(std::move(execute));
        std::lock_guard<std::mutex> lk(st_->m);
        r.arguments_ = std::move(arguments);
        return r;
    }

    /// A rule for every command (qmp_capabilities included) that no
    /// earlier rule answers: `qemu.on_any().no_reply()` leaves them all to
    /// peer::answer().
    rule& on_any() {
        rule& r = on("*");
        std::lock_guard<std::mutex> lk(st_->m);
        r.any_ = true;
        return r;
    }

    /// Sends an event now on the current connection (`data` is JSON text);
    /// with none, the next connection sends it right after its greeting.
    void event(const std::string& name, const std::string& data = "{}") { send(rule::event_text(name, data)); }
    /// Sends bytes as they are, the same way.
    void send(const std::string& raw) {
        std::lock_guard<std::mutex> lk(st_->m);
        if (auto c = st_->live())
            c->send(raw);
        else
            st_->queued += raw;
    }
    /// Ends the current connection: the client reads end of file once it
    /// has read what was sent before.
    void hang_up() {
        std::lock_guard<std::mutex> lk(st_->m);
        if (auto c = st_->live()) {
            c->ended = true;
            c->deliver();
        }
    }
    /// The next connection reaches a new QEMU process: the client's
    /// peer_instance() changes (the threshold service resynchronises).
    void restart() {
        std::lock_guard<std::mutex> lk(st_->m);
        ++st_->instance;
    }

    /// Faults for every connection from now on, the current one included
    /// (its counts so far stay).
    void set_faults(const faults& f) {
        std::lock_guard<std::mutex> lk(st_->m);
        st_->all_faults = f;
        st_->per_connection.clear();
        if (auto c = st_->live()) {
            c->f = f;
            c->deliver();
        }
    }
    /// Faults for the connect attempt number `n` only (1: the first;
    /// refused attempts count).
    void set_faults(const faults& f, std::size_t n) {
        std::lock_guard<std::mutex> lk(st_->m);
        st_->per_connection[n] = f;
        if (auto c = st_->live(); c && c->number == n) {
            c->f = f;
            c->deliver();
        }
    }

    /// Answers the oldest unanswered command named `execute` (see
    /// rule::no_reply) with `{"return": RETURN}`; false when none waits.
    bool answer(const std::string& execute, const std::string& return_json = "{}") {
        return answer_with(execute, R"({"return": )" + return_json);
    }
    /// Answers it with an error instead.
    bool answer_error(const std::string& execute, const std::string& cls, const std::string& desc) {
        return answer_with(execute, R"({"error": )" + json{{"class", cls}, {"desc", desc}}.dump());
    }

    /// Where clients connect to this peer.
    qmp::testing::endpoint endpoint() const { return {st_}; }

    /// Every message the clients sent, in order (qmp_capabilities included).
    std::vector<json> received() const {
        std::lock_guard<std::mutex> lk(st_->m);
        return st_->received;
    }
    /// The names of the commands the clients sent, in order.
    std::vector<std::string> commands() const {
        std::lock_guard<std::mutex> lk(st_->m);
        std::vector<std::string> out;
        for (const auto& r : st_->received) out.push_back(command_name(r));
        return out;
    }
    /// The commands no rule answered (they got CommandNotFound).
    std::vector<json> unexpected() const {
        std::lock_guard<std::mutex> lk(st_->m);
        return st_->unexpected;
    }
    /// The commands waiting for peer::answer().
    std::vector<json> unanswered() const {
        std::lock_guard<std::mutex> lk(st_->m);
        std::vector<json> out;
        for (const auto& w : st_->unanswered) out.push_back(w.request);
        return out;
    }
    /// Connections made so far (refused ones not counted).
    std::size_t connections() const {
        std::lock_guard<std::mutex> lk(st_->m);
        return st_->connections;
    }
    /// "" when every command found its rule and every rule with times(n)
    /// answered exactly n commands; otherwise what went differently.
    std::string check() const {
        std::lock_guard<std::mutex> lk(st_->m);
        std::string out;
        for (const auto& u : st_->unexpected) out += "unexpected command: " + u.dump() + "\n";
        for (const auto& r : st_->rules)
            if (r->times_ && r->used_ != *r->times_)
                out += "rule for " + r->execute_ + (r->arguments_ ? " " + r->arguments_->dump() : std::string()) +
                       ": answered " + std::to_string(r->used_) + " of " + std::to_string(*r->times_) + "\n";
        return out;
    }

private:
    template <class Executor>
    friend class basic_stream;
    friend class detail::pending_reads;


    /// A new connection, or nullptr when it is refused.
    static std::shared_ptr<detail::connection> connect(const qmp::testing::endpoint& ep) {
        auto st = std::static_pointer_cast<state>(ep.state);
        if (!st) return nullptr;
        std::lock_guard<std::mutex> lk(st->m);
        const std::size_t attempt = ++st->attempts;
        const auto pf = st->per_connection.find(attempt);
        const faults f = pf != st->per_connection.end() ? pf->second : st->all_faults;
        if (f.refuse_connect) return nullptr;
        auto c = std::make_shared<detail::connection>();
        ++st->connections;
        c->number = attempt;
        c->instance = "qmp-testing:" + std::to_string(st->instance);
        c->f = f;
        c->to_client = st->greeting + st->queued;
        st->queued.clear();
        st->current = c;
        return c;
    }
    /// The client wrote `data` on `c`: returns false when the write fails.
    static bool write(const qmp::testing::endpoint& ep, detail::connection& c, const char* data, std::size_t size) {
        auto st = std::static_pointer_cast<state>(ep.state);
        std::lock_guard<std::mutex> lk(st->m);
        if (c.ended || c.client_closed || c.writes++ >= c.f.fail_write_after) return false;
        c.from_client.feed(data, size);
        std::string_view msg;
        std::error_code ec;
        for (;;) {
            const auto s = c.from_client.next(msg, ec);
            if (s == qmp::framer::status::need_more) break;
            if (s == qmp::framer::status::failed) {
                c.from_client.reset();
                c.send(R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})" "\r\n");
                break;
            }
            st->handle(c, json::parse(msg, nullptr, false));
        }
        return true;
    }
    /// The peer's lock, for the stream's reads.
    static std::unique_lock<std::mutex> lock(const qmp::testing::endpoint& ep) {
        return std::unique_lock<std::mutex>(std::static_pointer_cast<state>(ep.state)->m);
    }

    struct waiting_command {
        std::weak_ptr<detail::connection> conn;
        std::string name;
        json request;
    };

    static std::string command_name(const json& req) {
        if (!req.is_object()) return {};
        for (const char* k : {"execute", "exec-oob"}) {
            const auto it = req.find(k);
            if (it != req.end() && it->is_string()) return it->get<std::string>();
        }
        return {};
    }

    struct state : std::enable_shared_from_this<state> {
        mutable std::mutex m;
        std::string greeting;
        std::string queued;
        std::vector<std::unique_ptr<rule>> rules;
        std::vector<json> received, unexpected;
        std::vector<waiting_command> unanswered;
        faults all_faults;
        std::map<std::size_t, faults> per_connection;
        std::size_t connections = 0, attempts = 0, instance = 1;
        std::weak_ptr<detail::connection> current;

        std::shared_ptr<detail::connection> live() {
            auto c = current.lock();
            return c && !c->ended && !c->client_closed ? c : nullptr;
        }

        void handle(detail::connection& c, const json& req) {
            received.push_back(req);
            const std::string name = command_name(req);
            if (name.empty()) {
                c.send(R"({"error": {"class": "GenericError", "desc": "QMP input must be a JSON object with execute"})" +
                       id_member(req) + "}\r\n");
                return;
            }
            auto a = req.find("arguments");
            const json args = a != req.end() && !a->is_null() ? *a : json::object();
            rule* r = nullptr;
            for (auto& candidate : rules)
                if (candidate->matches(name, args)) {
                    r = candidate.get();
                    break;
                }
            if (!r) {
                if (name == "qmp_capabilities") {
                    c.send(R"({"return": {})" + id_member(req) + "}\r\n");
                } else {
                    unexpected.push_back(req);
                    c.send(R"({"error": {"class": "CommandNotFound", "desc": "The command )" + name +
                           R"( has not been found"})" + id_member(req) + "}\r\n");
                }
                return;
            }
            ++r->used_;
            if (r->delay_.count() > 0 && c.schedule) {
                auto self = shared_from_this();
                std::weak_ptr<detail::connection> wc = c.weak_from_this();
                c.schedule(r->delay_, [self, wc, r, req, name] {
                    std::lock_guard<std::mutex> lk(self->m);
                    if (auto conn = wc.lock()) self->act(*conn, *r, req, name);
                });
            } else {
                act(c, *r, req, name);
            }
        }

        void act(detail::connection& c, const rule& r, const json& req, const std::string& name) {
            for (const auto& b : r.before_) c.send(b);
            switch (r.action_) {
                case rule::action::reply:
                    c.send(R"({"return": )" + r.text_ + id_member(req) + "}\r\n");
                    break;
                case rule::action::error:
                    c.send(R"({"error": )" + r.text_ + id_member(req) + "}\r\n");
                    break;
                case rule::action::none:
                    unanswered.push_back({c.weak_from_this(), name, req});
                    break;
                case rule::action::hang_up:
                    c.ended = true;
                    c.deliver();
                    return;
            }
            for (const auto& b : r.after_) c.send(b);
        }
    };

    bool answer_with(const std::string& execute, const std::string& head) {
        std::lock_guard<std::mutex> lk(st_->m);
        for (auto it = st_->unanswered.begin(); it != st_->unanswered.end(); ++it) {
            if (it->name != execute) continue;
            auto c = it->conn.lock();
            const std::string msg = head + id_member(it->request) + "}\r\n";
            st_->unanswered.erase(it);
            if (c) c->send(msg);
            return true;
        }
        return false;
    }

    std::shared_ptr<state> st_;
};

}  // namespace qmp::testing
