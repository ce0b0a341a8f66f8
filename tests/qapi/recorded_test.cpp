// Typed conversions and the graph builder on replies recorded from QEMU 7.2
// and 10.0 (scripts/record-replies.sh): no QEMU needed.
#include <qmp/block/graph.hpp>
#include <qmp/block/graph_query.hpp>
#include <qmp/protocol/command.hpp>
#include <qmp/qapi.hpp>

#include "../support/graph_walk.hpp"
#include "../support/recorded.hpp"

#include <doctest/doctest.h>


namespace {

using qmp_test::walk;

qmp::json recorded_json(const std::string& version, const std::string& name) {
    const std::string& text = qmp_test::recorded_text(version, name);
    REQUIRE_MESSAGE(!text.empty(), "missing test data " << version << "/" << name);
    return qmp::json::parse(text);
}

template <class T>
T typed(const qmp::json& j) {
    T out{};
    qmp::diagnostics d;
    auto ec = qmp::convert(j, out, &d);
    REQUIRE_MESSAGE(!ec, ec.message() << ": " << d.message);
    return out;
}


}  // namespace

TEST_CASE("recorded: typed results and graphs from QEMU 7.2 and 10.0 replies" * doctest::test_suite("qapi")) {
    for (std::string v : {"7.2", "10.0"}) {
        CAPTURE(v);
        auto ver = typed<qmp::version_info>(recorded_json(v, "query-version"));
        CHECK(std::to_string(ver.qemu.major) + "." + std::to_string(ver.qemu.minor) == v);

        // What the graph queries may use: from the command list (what the
        // library asks), and the same from the schema.
        auto offers = qmp::offers_from_commands(typed<std::vector<qmp::command_info>>(recorded_json(v, "query-commands")));
        CHECK(offers.graph_command);
        CHECK(offers.named_block_nodes);
        CHECK(offers.flat);
        CHECK(offers.query_nodes);
        auto by_schema = qmp::offers_from_schema(qmp::schema_probe(recorded_json(v, "query-qmp-schema")));
        CHECK(by_schema.graph_command == offers.graph_command);
        CHECK(by_schema.named_block_nodes == offers.named_block_nodes);
        CHECK(by_schema.flat == offers.flat);
        CHECK(by_schema.query_nodes == offers.query_nodes);

        auto flat = typed<std::vector<qmp::block_device_info>>(recorded_json(v, "query-named-block-nodes-flat"));
        CHECK(flat.size() == 8);
        for (const auto& n : flat) {
            REQUIRE(n.node_name);
            CHECK(n.active.has_value() == (v == "10.0"));  // `active` is new in 10.0
            CHECK(!n.image.backing_image);
            CHECK(n.write_threshold == (*n.node_name == "vda-2-file" ? 1048576 : 0));
        }
        auto nested = typed<std::vector<qmp::block_device_info>>(recorded_json(v, "query-named-block-nodes"));
        for (const auto& n : nested)
            if (*n.node_name == "vda-2-fmt") {
                REQUIRE(n.image.backing_image);
                REQUIRE(n.image.backing_image->backing_image);
                CHECK(n.image.backing_image->backing_image->filename == "/images/vda-0.qcow2");
            }

        auto blocks = typed<std::vector<qmp::block_info>>(recorded_json(v, "query-block"));
        REQUIRE(blocks.size() == 2);
        CHECK(blocks[0].qdev == std::optional<std::string>("/machine/peripheral/virtio-disk0/virtio-backend"));
        REQUIRE(blocks[0].inserted);
        CHECK(blocks[0].inserted->drv == "throttle");

        qmp::graph_replies r;
        r.graph = typed<qmp::x_dbg_block_graph>(recorded_json(v, "x-debug-query-block-graph"));
        r.node_stats = typed<std::vector<qmp::block_stats>>(recorded_json(v, "query-blockstats-nodes"));
        r.backend_stats = typed<std::vector<qmp::block_stats>>(recorded_json(v, "query-blockstats"));
        for (bool details : {false, true}) {
            CAPTURE(details);
            if (details) r.details = flat;
            auto g = qmp::build_block_graph(r);
            CHECK(g.source() == qmp::graph_source::debug_graph);
            CHECK(g.has_details() == details);
            REQUIRE(g.backends().size() == 2);
            CHECK(g.backends()[0].root_node == "vda-throttle");
            CHECK(g.backends()[1].root_node == "vdb-file");
            auto t = g.index_of("vda-throttle");
            REQUIRE(t);
            CHECK(g.is_filter(*t));
            CHECK(walk(g, *t) == std::vector<std::string>{"vda-2-fmt", "vda-1-fmt", "vda-0-fmt"});
            CHECK(walk(g, *g.index_of("vdb-file")) == std::vector<std::string>{"vdb-file"});
            if (details) {
                CHECK(g.find("vda-2-file")->details->write_threshold == 1048576);
                CHECK(g.find("vda-throttle")->driver == std::optional<std::string>("throttle"));
            }
        }

        // The fallback source sees the same chains.
        qmp::graph_replies fb;
        fb.backend_stats = r.backend_stats;
        auto g = qmp::build_block_graph(fb);
        CHECK(g.source() == qmp::graph_source::blockstats);
        REQUIRE(g.backends().size() == 2);
        auto root = g.index_of(g.backends()[0].root_node);
        REQUIRE(root);
        CHECK(walk(g, *root) == std::vector<std::string>{"vda-2-fmt", "vda-1-fmt", "vda-0-fmt"});
    }
}

TEST_CASE("recorded: newer members are used, unknown ones ignored, missing ones named" * doctest::test_suite("qapi")) {
    auto j = recorded_json("10.0", "query-named-block-nodes-flat");
    // What QEMU 10.1 adds: `children`; and something no QEMU has yet.
    for (auto& n : j) {
        n["children"] = qmp::json::array({{{"child", "file"}, {"node-name", "x"}}});
        n["from-the-future"] = {{"a", 1}};
    }
    auto nodes = typed<std::vector<qmp::block_device_info>>(j);
    REQUIRE(nodes[0].children);
    CHECK((*nodes[0].children)[0].child == "file");

    // In the blockstats fallback, `children` adds nodes no device shows.
    qmp::graph_replies r;
    r.backend_stats = typed<std::vector<qmp::block_stats>>(recorded_json("10.0", "query-blockstats"));
    auto extra = recorded_json("10.0", "query-named-block-nodes-flat");
    qmp::json orphan = extra[0];
    orphan["node-name"] = "orphan-fmt";
    orphan["drv"] = "qcow2";
    orphan["children"] = qmp::json::array({{{"child", "file"}, {"node-name", "orphan-file"}}});
    extra.push_back(orphan);
    r.details = typed<std::vector<qmp::block_device_info>>(extra);
    auto g = qmp::build_block_graph(r);
    auto o = g.index_of("orphan-fmt");
    REQUIRE(o);
    auto f = g.child(*o, qmp::edge_role::file);
    REQUIRE(f);
    CHECK(g.nodes()[*f].name == "orphan-file");

    j[0].erase("drv");
    std::vector<qmp::block_device_info> out;
    qmp::diagnostics d;
    CHECK(qmp::convert(j, out, &d) == qmp::error::missing_member);
    CHECK(d.message.find("drv") != std::string::npos);

    auto gj = recorded_json("7.2", "x-debug-query-block-graph");
    gj["edges"][0]["child"] = "not a number";
    qmp::x_dbg_block_graph graph;
    CHECK(qmp::convert(gj, graph, &d) == qmp::error::invalid_result);
}
