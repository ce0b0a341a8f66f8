// Test support: a sans-io session driven as QEMU's side sees it: bytes fed
// in, what the client wrote read back as JSON, and a handler that records
// replies, events, readiness and the end.
#pragma once

#include "reply_id.hpp"

#include <qmp/json/wire.hpp>
#include <qmp/protocol/session.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace qmp_test {

inline const std::string greeting_oob =
    R"({"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}})"
    "\r\n";
inline const std::string greeting_plain =
    R"({"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}})"
    "\r\n";

struct recorder : qmp::session_handler {
    struct reply {
        std::uint64_t id;
        std::error_code ec;
        std::string value;
        qmp::diagnostics diag;
    };
    std::vector<reply> replies;
    bool build_trees = false;  // also convert each value into a json, as the clients do
    std::vector<qmp::json> trees;
    std::vector<qmp::event> events;
    int ready = 0;
    std::vector<std::pair<std::error_code, qmp::diagnostics>> closed;

    void on_reply(std::uint64_t id, std::error_code ec, std::string_view value, const qmp::diagnostics& d) override {
        if (build_trees) {
            qmp::json j;
            if (!ec) ec = qmp::convert_text(value, j);
            trees.push_back(std::move(j));
        }
        replies.push_back({id, ec, std::string(value), d});
    }
    void on_event(qmp::event&& ev) override { events.push_back(std::move(ev)); }
    void on_ready() override { ++ready; }
    void on_closed(std::error_code ec, const qmp::diagnostics& d) override { closed.emplace_back(ec, d); }
};

// QEMU's side of a session: what the client wrote, as JSON messages.
struct peer {
    qmp::session s;
    recorder r;
    explicit peer(qmp::session_options o = {}) : s(std::move(o)) {}

    void feed(const std::string& bytes, bool bytewise = false) {
        if (!bytewise) return s.on_bytes(bytes.data(), bytes.size(), r);
        for (char c : bytes) s.on_bytes(&c, 1, r);
    }
    // Everything queued for writing, as the driver would write it.
    std::vector<qmp::json> written(std::vector<std::uint64_t>* fd_owners = nullptr) {
        std::vector<qmp::json> out;
        while (s.want_write()) {
            auto c = s.next_write();
            if (fd_owners) fd_owners->push_back(c.fd_owner);
            std::string text(c.bytes);
            s.written();
            qmp::framer f;
            f.feed(text);
            std::string_view m;
            std::error_code ec;
            while (f.next(m, ec) == qmp::framer::status::message) out.push_back(qmp::json::parse(m));
        }
        return out;
    }
    void negotiate(bool oob = true) {
        s.start();
        feed(oob ? greeting_oob : greeting_plain);
        auto caps = written();
        REQUIRE(caps.size() == 1);
        feed(R"({"return": {}, "id": )" + caps[0]["id"].dump() + "}\r\n");
        REQUIRE(s.ready());
    }
    std::uint64_t submit(const std::string& name, qmp::request_options o = {}) {
        std::error_code ec;
        qmp::diagnostics d;
        auto id = s.submit(name, nullptr, o, ec, d);
        REQUIRE_MESSAGE(!ec, ec.message());
        return id;
    }
    // As QEMU: the request's id back, or none when it had none.
    void answer(const qmp::json& req, const std::string& ret) {
        feed(R"({"return": )" + ret + qmp_test::id_member(req) + "}\r\n");
    }
};


}  // namespace qmp_test
