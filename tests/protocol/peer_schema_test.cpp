// What a peer offers, from QEMU 7.2's and 10.0's recorded query-qmp-schema:
// probes, the check of a command and its arguments at any depth, a hostile
// schema, and the session refusing before it writes anything.
#include "../support/recorded.hpp"
#include "../support/session_peer.hpp"

#include <qmp/protocol/peer_schema.hpp>

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>

namespace {

const qmp::peer_schema& recorded_schema(const std::string& v) {
    static std::map<std::string, std::unique_ptr<qmp::peer_schema>> cache;
    auto& s = cache[v];
    if (!s) s = std::make_unique<qmp::peer_schema>(qmp::json::parse(qmp_test::recorded_text(v, "query-qmp-schema")),
                                                   "QEMU " + v);
    return *s;
}

// blockdev-add of a qcow2 node over a file node (BlockdevRef: an alternate
// of a node name and an inline union, selected by "driver").
qmp::json qcow2_over_file() {
    return {{"driver", "qcow2"},
            {"node-name", "top"},
            {"file", {{"driver", "file"}, {"filename", "/nonexistent.qcow2"}}}};
}

}  // namespace

TEST_CASE("peer schema: what QEMU 7.2 and 10.0 offer, from their recorded query-qmp-schema" *
          doctest::test_suite("protocol")) {
    const auto& old = recorded_schema("7.2");
    const auto& now = recorded_schema("10.0");
    CHECK(old.size() > 1000);
    CHECK(now.has_command("blockdev-set-active"));
    CHECK_FALSE(old.has_command("blockdev-set-active"));
    CHECK(old.has_event("BLOCK_WRITE_THRESHOLD"));
    CHECK_FALSE(old.has_command("BLOCK_WRITE_THRESHOLD"));
    CHECK(old.command_has_argument("query-named-block-nodes", "flat"));
    CHECK_FALSE(old.command_has_argument("query-machines", "compat-props"));
    CHECK(now.command_has_argument("query-machines", "compat-props"));
    // blockdev-add's members come from the union's base and every branch.
    CHECK(now.command_has_argument("blockdev-add", "active"));
    CHECK_FALSE(old.command_has_argument("blockdev-add", "active"));
    CHECK(old.command_has_argument("blockdev-add", "node-name"));

    const auto* cmd = now.find("query-machines");
    REQUIRE(cmd);
    CHECK(cmd->meta_type == "command");
    const auto members = now.members_of(cmd->arg_type);
    REQUIRE(members.size() == 1);
    CHECK(members[0]->name == "compat-props");
    CHECK(members[0]->optional);
    // A qcow2 branch brings its own members; the file branch does not have them.
    const auto* add = now.find("blockdev-add");
    REQUIRE(add);
    bool lazy = false;
    for (const auto* m : now.members_of(add->arg_type, "qcow2")) lazy = lazy || m->name == "lazy-refcounts";
    CHECK(lazy);
    for (const auto* m : now.members_of(add->arg_type, "file")) CHECK(m->name != "lazy-refcounts");
}

TEST_CASE("peer schema: a command, an argument at any depth, or an enum value the peer lacks is named" *
          doctest::test_suite("protocol")) {
    const auto& old = recorded_schema("7.2");
    const auto& now = recorded_schema("10.0");

    CHECK(old.refusal("blockdev-set-active", {{"active", true}}) == "QEMU 7.2 has no command 'blockdev-set-active'");
    CHECK(now.refusal("blockdev-set-active", {{"active", true}}).empty());
    CHECK(old.refusal("BLOCK_WRITE_THRESHOLD", nullptr) == "QEMU 7.2 has no command 'BLOCK_WRITE_THRESHOLD'");
    CHECK(old.refusal("query-machines", {{"compat-props", true}}) ==
          "QEMU 7.2: 'query-machines' has no argument 'compat-props'");
    CHECK(now.refusal("query-machines", {{"compat-props", true}}).empty());
    CHECK(old.refusal("query-machines", nullptr).empty());
    CHECK(old.refusal("query-machines", qmp::json::object()).empty());

    // Through the union, the alternate and the nested union.
    auto args = qcow2_over_file();
    CHECK(old.refusal("blockdev-add", args).empty());
    CHECK(now.refusal("blockdev-add", args).empty());
    args["lazy-refcounts"] = true;  // a qcow2 member: fine on the qcow2 branch
    CHECK(now.refusal("blockdev-add", args).empty());
    args["file"]["lazy-refcounts"] = true;  // not on the file branch
    CHECK(now.refusal("blockdev-add", args) == "QEMU 10.0: 'blockdev-add' has no argument 'file.lazy-refcounts'");
    args = qcow2_over_file();
    args["active"] = false;  // QEMU 10.0 added it to the union's base
    CHECK(now.refusal("blockdev-add", args).empty());
    CHECK(old.refusal("blockdev-add", args) == "QEMU 7.2: 'blockdev-add' has no argument 'active'");
    args = qcow2_over_file();
    args["file"] = "some-node";  // the alternate's string branch
    CHECK(old.refusal("blockdev-add", args).empty());
    args["driver"] = "qcow3";
    CHECK(now.refusal("blockdev-add", args) == "QEMU 10.0: 'blockdev-add' argument 'driver' has no value 'qcow3'");

    // Arrays name the element.
    qmp::json transaction = {{"actions",
                              {{{"type", "block-dirty-bitmap-add"}, {"data", {{"node", "n"}, {"name", "b"}}}},
                               {{"type", "block-dirty-bitmap-add"},
                                {"data", {{"node", "n"}, {"name", "b"}, {"colour", "red"}}}}}}};
    CHECK(now.refusal("transaction", transaction) ==
          "QEMU 10.0: 'transaction' has no argument 'actions[1].data.colour'");
}

TEST_CASE("peer schema: a malformed or hostile schema is skipped, never trusted, never thrown on" *
          doctest::test_suite("protocol")) {
    for (const char* text : {"null", "{}", "[1, \"x\", null, []]", R"([{"name": 5, "meta-type": "command"}])",
                             R"([{"name": "c", "meta-type": "command", "arg-type": "c"}])",
                             R"([{"name": "c", "meta-type": "command", "arg-type": "t"},
                                 {"name": "t", "meta-type": "object", "members": [{"name": "a", "type": "t"}],
                                  "variants": [{"case": "x", "type": "t"}], "tag": "a"},
                                 {"name": "e", "meta-type": "enum", "members": 7, "values": [1, "v"]}])"}) {
        CAPTURE(text);
        qmp::peer_schema s(qmp::json::parse(text));
        qmp::json deep = {{"a", {{"a", {{"a", {{"a", 1}}}}}}}};
        CHECK_NOTHROW((void)s.refusal("c", deep));
        CHECK_NOTHROW((void)s.refusal("c", {{"b", 1}}));
        CHECK_NOTHROW((void)s.command_has_argument("c", "a"));
    }
    // A type that contains itself: the check follows the value, which ends.
    qmp::peer_schema loop(qmp::json::parse(R"([{"name": "c", "meta-type": "command", "arg-type": "t"},
        {"name": "t", "meta-type": "object", "members": [{"name": "a", "type": "t", "default": null}]}])"));
    CHECK(loop.refusal("c", {{"a", {{"a", {{"a", qmp::json::object()}}}}}}).empty());
    CHECK(loop.refusal("c", {{"a", {{"a", {{"b", 1}}}}}}) == "the peer: 'c' has no argument 'a.a.b'");
}

TEST_CASE("session: with the peer's schema offered, a command it lacks is refused before anything is written" *
          doctest::test_suite("protocol")) {
    qmp_test::peer p;
    p.negotiate();
    p.s.offer(std::make_shared<const qmp::peer_schema>(recorded_schema("7.2")));
    REQUIRE(p.s.offered());
    std::error_code ec;
    qmp::diagnostics d;
    CHECK(p.s.submit("blockdev-set-active", {{"active", true}}, {}, ec, d) == 0);
    CHECK(ec == qmp::error::not_offered);
    CHECK(d.message == "QEMU 7.2 has no command 'blockdev-set-active'");
    CHECK(p.s.submit("query-machines", {{"compat-props", true}}, {}, ec, d) == 0);
    CHECK(ec == qmp::error::not_offered);
    CHECK(d.message == "QEMU 7.2: 'query-machines' has no argument 'compat-props'");
    CHECK_FALSE(p.s.want_write());
    CHECK(p.s.stats().commands_sent == 0);
    // What the peer has goes out as always.
    CHECK(p.s.submit("query-machines", nullptr, {}, ec, d) != 0);
    CHECK(!ec);
    CHECK(p.written().size() == 1);
    // A new connection may reach another QEMU: the view is forgotten.
    p.negotiate();
    CHECK_FALSE(p.s.offered());
    CHECK(p.s.submit("blockdev-set-active", {{"active", true}}, {}, ec, d) != 0);
    CHECK(!ec);
}

TEST_CASE("peer schema: a command's arguments and result, or an event's data, described from the schema" *
          doctest::test_suite("protocol")) {
    const auto& now = recorded_schema("10.0");
    const std::string machines = now.describe("query-machines");
    CHECK(machines.rfind("command query-machines (QEMU 10.0)\narguments:\n  compat-props?: bool\n"
                         "returns: array of object\n  name: str\n  alias?: str\n", 0) == 0);
    CHECK(machines.find("\n  compat-props?: array of object\n    qom-type: str\n") != std::string::npos);
    CHECK(now.describe("BLOCK_WRITE_THRESHOLD") ==
          "event BLOCK_WRITE_THRESHOLD (QEMU 10.0)\ndata:\n  node-name: str\n  amount-exceeded: int\n"
          "  write-threshold: int\n");
    CHECK(now.describe("stop") == "command stop (QEMU 10.0)\narguments: none\nreturns: nothing\n");
    const std::string status = now.describe("query-status");
    CHECK(status.find("returns: object\n  running: bool\n") != std::string::npos);
    CHECK(status.find("  status: enum (debug, inmigrate, ") != std::string::npos);
    const std::string add = now.describe("blockdev-add");
    CHECK(add.find("\n  when driver is file:\n    filename: str\n") != std::string::npos);
    CHECK(add.find("\n  when driver is qcow2:\n    file: one of (object | str)\n"
                   "    backing?: one of (object | str | null)\n") != std::string::npos);
    const std::string oob = now.describe("migrate-recover");
    CHECK(oob.find("allows out-of-band execution\n") != std::string::npos);
    CHECK(now.describe("no-such-thing").empty());
    CHECK(now.describe("1").empty());  // a masked type is neither
    // Self-reference is cut where it recurs.
    qmp::peer_schema loop(qmp::json::parse(R"([{"name": "c", "meta-type": "command", "arg-type": "t", "ret-type": "t"},
        {"name": "t", "meta-type": "object", "members": [{"name": "a", "type": "t", "default": null}]}])"));
    CHECK(loop.describe("c") ==
          "command c (the peer)\narguments:\n  a?: object\n    (the enclosing object, recursively)\n"
          "returns: object\n  a?: object\n    (the enclosing object, recursively)\n");
}
