// The session's rules, byte by byte: no sockets, threads or timers. A
// recording handler keeps what the session produced; the test plays QEMU.
#include "../support/session_peer.hpp"

#include <qmp/json/wire.hpp>
#include <qmp/protocol/session.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using qmp_test::greeting_oob;
using qmp_test::greeting_plain;
using qmp_test::peer;
using qmp_test::recorder;

TEST_CASE("session: negotiation with and without oob, byte by byte" * doctest::test_suite("protocol")) {
    for (bool offered : {true, false})
        for (bool wanted : {true, false}) {
            CAPTURE(offered);
            CAPTURE(wanted);
            qmp::session_options o;
            o.enable_oob = wanted;
            peer p(o);
            p.s.start();
            p.feed(R"({"event": "EARLY", "data": {}})" "\r\n", true);  // before the greeting: kept
            CHECK(p.r.events.size() == 1);
            p.feed(offered ? greeting_oob : greeting_plain, true);
            auto caps = p.written();
            REQUIRE(caps.size() == 1);
            CHECK(caps[0]["execute"] == "qmp_capabilities");
            CHECK(caps[0].contains("arguments") == (offered && wanted));
            CHECK(p.r.ready == 0);
            std::error_code ec;
            qmp::diagnostics d;
            CHECK(p.s.submit("early", nullptr, {}, ec, d) == 0);  // not before negotiation
            CHECK(ec == qmp::error::not_connected);
            p.feed(R"({"return": {}, "id": )" + caps[0]["id"].dump() + "}\r\n", true);
            CHECK(p.r.ready == 1);
            CHECK(p.s.oob_enabled() == (offered && wanted));
        }
}

TEST_CASE("session: QEMU's reason for refusing negotiation ends the session with it" * doctest::test_suite("protocol")) {
    peer p;
    p.s.start();
    p.feed(greeting_oob);
    auto caps = p.written();
    p.feed(R"({"error": {"class": "GenericError", "desc": "Capability oob not available"}, "id": )" +
           caps[0]["id"].dump() + "}\r\n");
    REQUIRE(p.r.closed.size() == 1);
    CHECK(p.r.closed[0].first == qmp::error::negotiation_failed);
    CHECK(p.r.closed[0].second.error_class == "GenericError");
    CHECK(p.r.closed[0].second.message == "Capability oob not available");
    CHECK(p.s.current() == qmp::session::state::closed);
}

TEST_CASE("session: a repeated greeting ends the session, before or after the negotiation" * doctest::test_suite("protocol")) {
    for (bool after : {false, true}) {
        CAPTURE(after);
        peer p;
        p.s.start();
        p.feed(greeting_oob);
        auto caps = p.written();
        REQUIRE(caps.size() == 1);
        if (after) {
            p.feed(R"({"return": {}, "id": )" + caps[0]["id"].dump() + "}\r\n");
            REQUIRE(p.s.ready());
        }
        p.feed(greeting_oob);
        CHECK(p.written().empty());  // no second request
        CHECK(p.s.stats().repeated_greetings == 1);
        REQUIRE(p.r.closed.size() == 1);
        CHECK(p.r.closed[0].first == qmp::error::greeted_twice);
        CHECK(p.s.current() == qmp::session::state::closed);
    }
    peer p;
    p.s.start();
    p.feed(greeting_oob);
    p.feed(greeting_plain);  // not even a copy
    REQUIRE(p.r.closed.size() == 1);
    CHECK(p.r.closed[0].first == qmp::error::unexpected_message);
}

TEST_CASE("session: replies by id in any order, unknown ids counted, an id-less error fails everything" *
          doctest::test_suite("protocol")) {
    qmp::session_options numbered;
    numbered.idless_commands = false;  // the rules of ids, every command numbered (the id-less case: below)
    peer p(numbered);
    p.negotiate(false);
    auto a = p.submit("a"), b = p.submit("b"), c = p.submit("c");
    auto reqs = p.written();
    REQUIRE(reqs.size() == 3);
    // Ids on the wire are the smallest free numbers, not the request ids.
    CHECK(reqs[0]["id"] == 0);
    CHECK(reqs[1]["id"] == 1);
    CHECK(reqs[2]["id"] == 2);
    // Not ours, though each names a tag in use, or looks like one.
    for (const char* id : {R"("0")", "-0", "1.0", "1e0", "12345", "4294967296", R"({"x": 1})", "null"})
        p.feed(std::string(R"({"return": 9, "id": )") + id + "}\r\n");
    CHECK(p.s.stats().unknown_ids == 8);
    CHECK(p.r.replies.empty());
    p.answer(reqs[2], "3");
    p.answer(reqs[0], "1");
    p.feed(R"({"return": 9, "id": 0})" "\r\n");  // answered already
    p.feed(R"({"return": 9})" "\r\n");
    CHECK(p.s.stats().unknown_ids == 10);
    REQUIRE(p.r.replies.size() == 2);
    CHECK(p.r.replies[0].id == c);
    CHECK(p.r.replies[0].value == "3");
    CHECK(p.r.replies[1].id == a);
    p.feed(R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})" "\r\n");
    REQUIRE(p.r.replies.size() == 3);
    CHECK(p.r.replies[2].id == b);
    CHECK(p.r.replies[2].ec == qmp::error::out_of_sync);
    REQUIRE(p.r.closed.size() == 1);
    CHECK(p.r.closed[0].first == qmp::error::out_of_sync);
    std::error_code ec;
    qmp::diagnostics d;
    CHECK(p.s.submit("after", nullptr, {}, ec, d) == 0);
    CHECK(ec == qmp::error::out_of_sync);  // the reason stays
}

TEST_CASE("session: QEMU's error class and desc come with the reply" * doctest::test_suite("protocol")) {
    peer p;
    p.negotiate(false);
    p.submit("nope");
    auto req = p.written();
    p.feed(R"({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"})" + qmp_test::id_member(req[0]) +
           "}\r\n");
    REQUIRE(p.r.replies.size() == 1);
    CHECK(p.r.replies[0].ec == qmp::server_error::command_not_found);
    CHECK(p.r.replies[0].diag.error_class == "CommandNotFound");
    CHECK(p.r.replies[0].diag.message == "The command nope has not been found");
}

TEST_CASE("session: with oob at most 8 in-band commands at QEMU, exec-oob goes past them" *
          doctest::test_suite("protocol")) {
    peer p;
    p.negotiate(true);
    for (int i = 0; i < 20; ++i) p.submit("c" + std::to_string(i));
    auto first = p.written();
    CHECK(first.size() == 8);
    qmp::request_options oob;
    oob.oob = true;
    p.submit("urgent", oob);
    auto more = p.written();
    REQUIRE(more.size() == 1);
    CHECK(more[0]["exec-oob"] == "urgent");
    p.answer(first[0], "0");
    p.answer(first[1], "1");
    auto next = p.written();
    REQUIRE(next.size() == 2);  // two answered, two more go out, in order
    CHECK(next[0]["execute"] == "c8");
    CHECK(next[1]["execute"] == "c9");
    // Without oob there is no cap (QEMU reads one at a time anyway).
    peer q;
    q.negotiate(false);
    for (int i = 0; i < 20; ++i) q.submit("c");
    CHECK(q.written().size() == 20);
}

TEST_CASE("session: a command with descriptors waits for the previous one's reply" * doctest::test_suite("protocol")) {
    peer p;
    p.negotiate(true);
    qmp::request_options fds;
    fds.fd_count = 1;
    auto a = p.submit("getfd", fds);
    auto b = p.submit("getfd", fds);
    p.submit("plain");  // behind b, in order
    std::vector<std::uint64_t> owners;
    auto w = p.written(&owners);
    REQUIRE(w.size() == 1);
    CHECK(owners == std::vector<std::uint64_t>{a});
    p.answer(w[0], "{}");
    owners.clear();
    w = p.written(&owners);
    REQUIRE(w.size() == 2);
    CHECK(owners.front() == b);  // its own chunk, its descriptors with its first byte
    std::error_code ec;
    qmp::diagnostics d;
    fds.oob = true;
    CHECK(p.s.submit("x", nullptr, fds, ec, d) == 0);
    CHECK(ec == qmp::error::invalid_argument);
    fds.oob = false;
    fds.fd_count = 17;
    CHECK(p.s.submit("x", nullptr, fds, ec, d) == 0);
    CHECK(d.message.find("16") != std::string::npos);
}

TEST_CASE("session: an abandoned command is never sent, or its late reply is consumed" * doctest::test_suite("protocol")) {
    peer p;
    p.negotiate(true);
    std::uint64_t sent_ids_first = 0;
    for (int i = 0; i < 8; ++i) {
        auto id = p.submit("fill");
        if (i == 0) sent_ids_first = id;
    }
    auto queued = p.submit("queued");
    p.s.abandon(queued);  // held back by the cap: dropped
    auto sent = p.written();
    CHECK(sent.size() == 8);
    p.s.abandon(sent_ids_first);  // the first: sent already
    p.answer(sent[0], "\"late\"");
    CHECK(p.s.stats().late_replies == 1);
    CHECK(p.r.replies.empty());
    for (std::size_t i = 1; i < 8; ++i) p.answer(sent[i], "0");
    CHECK(p.written().empty());  // "queued" never goes out
    CHECK(p.s.pending() == 0);
}

TEST_CASE("session: a wire id is free again only when its reply arrived, late or not" *
          doctest::test_suite("protocol")) {
    qmp::session_options numbered;
    numbered.idless_commands = false;  // the rules of ids, every command numbered (the id-less case: below)
    peer p(numbered);
    p.negotiate(false);
    auto a = p.submit("a"), b = p.submit("b");
    auto first = p.written();
    REQUIRE(first.size() == 2);
    p.s.abandon(a);  // sent: its id 0 stays taken
    auto c = p.submit("c");
    auto second = p.written();
    REQUIRE(second.size() == 1);
    CHECK(second[0]["id"] == 2);
    p.answer(first[0], "\"late\"");  // a's late reply: consumed, frees 0
    CHECK(p.s.stats().late_replies == 1);
    CHECK(p.r.replies.empty());
    p.answer(first[1], "\"b\"");
    auto d = p.submit("d"), e = p.submit("e");
    auto third = p.written();
    REQUIRE(third.size() == 2);
    CHECK(third[0]["id"] == 0);
    CHECK(third[1]["id"] == 1);
    p.answer(third[1], "\"e\"");
    p.answer(second[0], "\"c\"");
    p.answer(third[0], "\"d\"");
    REQUIRE(p.r.replies.size() == 4);
    CHECK(p.r.replies[0].id == b);
    CHECK(p.r.replies[0].value == "\"b\"");
    CHECK(p.r.replies[1].id == e);
    CHECK(p.r.replies[2].id == c);
    CHECK(p.r.replies[3].id == d);
    CHECK(p.r.replies[3].value == "\"d\"");
    // A new connection starts from 0 again.
    p.s.close(qmp::error::connection_closed, {}, p.r);
    p.negotiate(false);
    p.submit("f");
    auto fourth = p.written();
    REQUIRE(fourth.size() == 1);
    CHECK(fourth[0]["id"] == 0);
}

TEST_CASE("session: a command alone in flight goes without an id, and the next id-less reply is its own" *
          doctest::test_suite("protocol")) {
    peer p;
    p.negotiate(true);
    // Alone: no id.
    auto a = p.submit("a");
    auto w = p.written();
    REQUIRE(w.size() == 1);
    CHECK(!w[0].contains("id"));
    // While it is in flight, the others are numbered, exec-oob included.
    auto b = p.submit("b");
    qmp::request_options oob;
    oob.oob = true;
    auto u = p.submit("urgent", oob);
    auto w2 = p.written();
    REQUIRE(w2.size() == 2);
    CHECK(w2[0]["id"] == 0);
    CHECK(w2[1]["id"] == 1);
    CHECK(w2[1].contains("exec-oob"));
    // The oob reply overtakes; then a's reply, without an id, then b's.
    p.answer(w2[1], "\"u\"");
    p.answer(w[0], "\"a\"");
    p.answer(w2[0], "\"b\"");
    REQUIRE(p.r.replies.size() == 3);
    CHECK(p.r.replies[0].id == u);
    CHECK(p.r.replies[1].id == a);
    CHECK(p.r.replies[1].value == "\"a\"");
    CHECK(p.r.replies[2].id == b);
    CHECK(p.s.stats().idless_sent == 1);
    // Nothing in flight: an id-less reply is nobody's (counted, dropped).
    p.feed(R"({"return": 9})" "\r\n");
    CHECK(p.s.stats().unknown_ids == 1);
    // An exec-oob alone is numbered all the same.
    p.submit("urgent", oob);
    auto w3 = p.written();
    REQUIRE(w3.size() == 1);
    CHECK(w3[0]["id"] == 0);
    p.answer(w3[0], "{}");
    // An id-less command abandoned: its late reply is consumed, and until it
    // came every command is numbered (an id-less reply would be ambiguous).
    auto c = p.submit("c");
    auto w4 = p.written();
    REQUIRE(!w4[0].contains("id"));
    p.s.abandon(c);
    auto d = p.submit("d");
    auto w5 = p.written();
    REQUIRE(w5.size() == 1);
    CHECK(w5[0]["id"] == 0);
    p.answer(w4[0], "\"late\"");
    CHECK(p.s.stats().late_replies == 1);
    p.answer(w5[0], "\"d\"");
    CHECK(p.r.replies.back().id == d);
    // Its error is its own reply too (class and text kept).
    p.submit("nope");
    auto w6 = p.written();
    REQUIRE(!w6[0].contains("id"));
    p.feed(R"({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}})" "\r\n");
    CHECK(p.r.replies.back().ec == qmp::server_error::command_not_found);
    CHECK(p.r.replies.back().diag.message == "The command nope has not been found");
    CHECK(p.r.closed.empty());
    // With nothing id-less in flight, an id-less error still ends the session.
    auto e = p.submit("e");
    p.submit("f");
    auto w7 = p.written();
    REQUIRE(w7.size() == 2);
    p.answer(w7[0], "\"e\"");
    CHECK(p.r.replies.back().id == e);
    p.feed(R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})" "\r\n");
    REQUIRE(p.r.closed.size() == 1);
    CHECK(p.r.closed[0].first == qmp::error::out_of_sync);
    // A new connection: nothing in flight, the first goes without an id again.
    p.negotiate(true);
    p.submit("g");
    auto w8 = p.written();
    REQUIRE(w8.size() == 1);
    CHECK(!w8[0].contains("id"));
}

TEST_CASE("wire_ids: smallest free number, owners by the id's exact text" * doctest::test_suite("protocol")) {
    qmp::wire_ids ids;
    CHECK(ids.take(7) == 0);
    CHECK(ids.take(8) == 1);
    CHECK(ids.take(9) == 2);
    CHECK(ids.held() == 3);
    ids.release(1);
    ids.release(1);  // twice: still one free number
    ids.release(42);  // never taken: ignored
    CHECK(ids.held() == 2);
    CHECK(ids.owner("1") == 0);
    CHECK(ids.take(10) == 1);
    CHECK(ids.take(11) == 3);
    CHECK(ids.owner("0") == 7);
    CHECK(ids.owner("1") == 10);
    CHECK(ids.owner("3") == 11);
    for (const char* other : {"", "4", "01", "-1", "1.0", "1e0", "\"1\"", " 1", "9999999999", "4294967297"})
        CHECK(ids.owner(other) == 0);
    std::string text = "{\"execute\":\"x\"";
    qmp::wire_ids::append_id(text, 123);
    CHECK(text == "{\"execute\":\"x\",\"id\":123}");
    ids.clear();
    CHECK(ids.held() == 0);
    CHECK(ids.owner("0") == 0);
    CHECK(ids.take(5) == 0);
}

TEST_CASE("session: writes coalesce, except into the chunk being written" * doctest::test_suite("protocol")) {
    peer p;
    p.negotiate(false);
    p.submit("a");
    p.submit("b");
    auto c = p.s.next_write();
    const std::string first(c.bytes);
    CHECK(first.find("\"a\"") != std::string::npos);
    CHECK(first.find("\"b\"") != std::string::npos);
    p.submit("c");  // the first chunk is being written: a new one
    CHECK(std::string(c.bytes) == first);
    p.s.written();
    auto c2 = p.s.next_write();
    CHECK(std::string(c2.bytes).find("\"c\"") != std::string::npos);
}

TEST_CASE("session: bad bytes end the session with a clear reason, events flow" * doctest::test_suite("protocol")) {
    for (auto bad : {std::string("garbage\r\n"), std::string("[1, 2]\r\n"), std::string(R"({"hello": 1})" "\r\n")}) {
        peer p;
        p.negotiate(false);
        p.submit("x");
        p.feed(bad);
        REQUIRE(p.r.closed.size() == 1);
        CHECK((p.r.closed[0].first == qmp::error::malformed_message ||
               p.r.closed[0].first == qmp::error::unexpected_message));
        CHECK(p.r.replies.size() == 1);  // the pending command failed with it
    }
    qmp::session_options o;
    o.limits.max_message_size = 160;  // the greeting fits
    peer big(o);
    big.negotiate(false);
    big.feed(R"({"event": "X", "data": {"pad": ")" + std::string(200, 'x') + "\"}}\r\n");
    REQUIRE(big.r.closed.size() == 1);
    CHECK(big.r.closed[0].first == qmp::error::message_too_large);
    peer ev;
    ev.negotiate(false);
    ev.feed(R"({"event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "n"}, "timestamp": {"seconds": 1, "microseconds": 2}})" "\r\n", true);
    REQUIRE(ev.r.events.size() == 1);
    CHECK(ev.r.events[0].data["node-name"] == "n");
    CHECK(ev.s.stats().events_received == 1);
}

TEST_CASE("session: a big reply's text given back while its tree is built reaches no other message" *
          doctest::test_suite("protocol")) {
    // An array of 60,000 strings of 100 bytes (about 6 MiB): the tree built
    // in on_reply gives back the text's pages (spent_text), and the reply
    // after it, in the same bytes, still reads whole.
    std::string value = "[";
    for (int i = 0; i < 60000; ++i) {
        std::string s = "element-" + std::to_string(i) + "-";
        s.resize(100, 'x');
        value += (i ? ",\"" : "\"") + s + '"';
    }
    value += ']';
    for (std::size_t chunk : {std::size_t{0}, std::size_t{65536}, std::size_t{4096 + 7}}) {
        for (bool give_back : {true, false}) {
            CAPTURE(chunk);
            CAPTURE(give_back);
            qmp::session_options o;
            o.give_back_reply_text = give_back;
            peer p(o);
            p.r.build_trees = true;
            p.negotiate();
            p.submit("query-big");
            p.submit("query-small");
            const auto reqs = p.written();
            REQUIRE(reqs.size() == 2);
            const std::string bytes = R"({"return": )" + value + qmp_test::id_member(reqs[0]) + "}\r\n" +
                                      R"({"return": {"small": true})" + qmp_test::id_member(reqs[1]) + "}\r\n";
            if (chunk == 0) {
                p.s.on_bytes(bytes.data(), bytes.size(), p.r);
            } else {
                for (std::size_t off = 0; off < bytes.size(); off += chunk)
                    p.s.on_bytes(bytes.data() + off, std::min(chunk, bytes.size() - off), p.r);
            }
            REQUIRE(p.r.trees.size() == 2);
            CHECK_FALSE(p.r.replies[0].ec);
            REQUIRE(p.r.trees[0].size() == 60000);
            CHECK(p.r.trees[0][59999].get<std::string>().rfind("element-59999-x", 0) == 0);
            // The recorder's copy was taken after the tree: the pages it passed
            // were given back (Linux), the rest of the text is untouched.
            CHECK(p.r.replies[0].value.back() == ']');
            if (!give_back) CHECK(p.r.replies[0].value == value);
#if defined(__linux__)
            if (give_back) CHECK(p.r.replies[0].value[value.size() / 2] == '\0');
#endif
            CHECK(p.r.trees[1] == qmp::json{{"small", true}});
            CHECK(p.r.replies[1].value == R"({"small": true})");
        }
    }
}
