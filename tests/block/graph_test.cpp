// Block graphs built from real QEMU 7.2 and 10.0: edges and roles, backends,
// filters (user-added and the implicit ones of running jobs), the fallback
// source, and drivers learned once, only for nodes whose shape and
// query-blockstats leave open whether they are filters.
#include <support/qemu.hpp>

#include <qmp/block/graph_query.hpp>
#include <qmp/block/resolver.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/qapi.hpp>

#include "../support/graph_walk.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace qmp_support;

namespace {

using qmp_test::walk;

bool has_edge(const qmp::block_graph& g, const std::string& parent, const std::string& child, qmp::edge_role role) {
    for (const auto& e : g.edges())
        if (g.nodes()[e.parent].name == parent && g.nodes()[e.child].name == child && e.role == role) return true;
    return false;
}

std::size_t idx(const qmp::block_graph& g, const std::string& name) {
    auto i = g.index_of(name);
    REQUIRE_MESSAGE(i.has_value(), "node " << name << " missing");
    return *i;
}

const qmp::graph_backend* backend_with_root(const qmp::block_graph& g, const std::string& root) {
    for (const auto& b : g.backends())
        if (b.root_node == root) return &b;
    return nullptr;
}


struct vm {
    temp_dir dir;
    std::unique_ptr<qemu_instance> q;
    qmp::sync_client cl;
    vm(const qemu_build& b, const qemu_config& cfg) {
        q = std::make_unique<qemu_instance>(b, dir, cfg);
        cl.connect(q->qmp_endpoint());
    }
};

qemu_config system_with(std::vector<std::string> blockdevs, std::vector<std::string> extra) {
    qemu_config cfg;
    cfg.kind = qemu_kind::system;
    cfg.blockdevs = std::move(blockdevs);
    cfg.extra = std::move(extra);
    return cfg;
}

}  // namespace

TEST_CASE("graph: a 3-deep chain in the storage daemon" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 3);
        qemu_config cfg;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.nbd_export_node = "vda-2-fmt";
        qemu_instance q(b, dir, cfg);
        qmp::sync_client cl;
        cl.connect(q.qmp_endpoint());
        auto g = qmp::query_block_graph(cl);
        CHECK(g.source() == qmp::graph_source::debug_graph);
        CHECK(!g.has_details());
        for (int i = 0; i < 3; ++i) {
            std::string n = "vda-" + std::to_string(i);
            CHECK(has_edge(g, n + "-fmt", n + "-file", qmp::edge_role::file));
            if (i > 0) CHECK(has_edge(g, n + "-fmt", "vda-" + std::to_string(i - 1) + "-fmt", qmp::edge_role::backing));
            CHECK(!g.is_filter(idx(g, n + "-fmt")));
            CHECK(g.nodes()[idx(g, n + "-file")].driver == std::optional<std::string>("file"));  // from blockstats
            CHECK(g.nodes()[idx(g, n + "-fmt")].wr_highest_offset == std::optional<std::uint64_t>(0));
        }
        CHECK(g.edges().size() == 6);  // 3 file + 2 backing + the export's root
        auto* be = backend_with_root(g, "vda-2-fmt");
        REQUIRE(be);
        CHECK(be->device.empty());
        CHECK(walk(g, idx(g, "vda-2-fmt")) == std::vector<std::string>{"vda-2-fmt", "vda-1-fmt", "vda-0-fmt"});

        // The high-water mark moves with writes, on both layers.
        REQUIRE(q.nbd_write(0, 1 << 20) == 0);
        g = qmp::query_block_graph(cl);
        CHECK(g.nodes()[idx(g, "vda-2-fmt")].wr_highest_offset == std::optional<std::uint64_t>(1 << 20));
        CHECK(*g.nodes()[idx(g, "vda-2-file")].wr_highest_offset > 1u << 20);

        // Details on request.
        g = qmp::query_block_graph(cl, qmp::graph_query_options{qmp::details_need::fresh});
        CHECK(g.has_details());
        const auto& top = g.nodes()[idx(g, "vda-2-fmt")];
        REQUIRE(top.details);
        CHECK(top.driver == std::optional<std::string>("qcow2"));
        CHECK(top.details->filename == files[2]);
        CHECK(top.details->virtual_size == 64 << 20);
        CHECK(top.details->write_threshold == 0);
    }
}

TEST_CASE("graph: a 64-deep chain" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 64, "16M");
        vm v(b, system_with(chain_blockdevs(files, "vda"), {"-device", "virtio-blk-pci,drive=vda-63-fmt,id=virtio-disk0"}));
        qmp::driver_cache cache;
        auto g = qmp::query_block_graph(v.cl, {}, &cache);
        CHECK(g.nodes().size() == 129);  // 128 nodes and the backend
        // Every node is settled without drivers: storage and overlays by
        // shape, the base (only a `file` child) by the device's
        // query-blockstats, which shows no filter there.
        CHECK(cache.refreshes == 0);
        for (std::size_t i = 0; i < g.nodes().size(); ++i) CHECK(g.filter_known(i).has_value());
        CHECK(g.nodes()[idx(g, "vda-0-fmt")].filter_seen == std::optional<bool>(false));
        auto chain = walk(g, idx(g, "vda-63-fmt"));
        REQUIRE(chain.size() == 64);
        CHECK(chain.front() == "vda-63-fmt");
        CHECK(chain.back() == "vda-0-fmt");
        auto* be = backend_with_root(g, "vda-63-fmt");
        REQUIRE(be);
        CHECK(be->qdev == "/machine/peripheral/virtio-disk0/virtio-backend");
        // The high-water marks come from the device's query-blockstats tree
        // (no per-node query: every node is in it), the node's own at the top.
        auto hmp = v.cl.execute("human-monitor-command",
                                {{"command-line", "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"write 0 64k\""}});
        INFO(hmp.dump());
        g = qmp::query_block_graph(v.cl, {}, &cache);
        auto per_node = v.cl.execute(qmp::query_blockstats{true});
        int compared = 0;
        for (const auto& s : per_node) {
            if (!s.node_name || !g.index_of(*s.node_name)) continue;
            CHECK(g.nodes()[idx(g, *s.node_name)].wr_highest_offset ==
                  std::optional<std::uint64_t>(static_cast<std::uint64_t>(s.stats.wr_highest_offset)));
            ++compared;
        }
        CHECK(compared == 128);
        CHECK(g.nodes()[idx(g, "vda-63-fmt")].wr_highest_offset == std::optional<std::uint64_t>(65536));
        CHECK(*g.nodes()[idx(g, "vda-63-file")].wr_highest_offset > 65536u);
        CHECK(g.nodes()[idx(g, "vda-63-file")].driver == std::optional<std::string>("file"));
        // Details on request teach the cache the drivers; later snapshots show them.
        g = qmp::query_block_graph(v.cl, qmp::graph_query_options{qmp::details_need::fresh}, &cache);
        CHECK(cache.refreshes == 1);
        g = qmp::query_block_graph(v.cl, {}, &cache);
        CHECK(cache.refreshes == 1);
        CHECK(!g.has_details());
        CHECK(g.nodes()[idx(g, "vda-30-fmt")].driver == std::optional<std::string>("qcow2"));
    }
}

TEST_CASE("graph: a throttle filter on top, a raw image without format layer, two disks" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir files_dir;
        auto a = make_chain(b, files_dir, "vda", 2);
        std::string raw = files_dir.file("vdb.img");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "raw", raw, "8M"});
        auto bd = chain_blockdevs(a, "vda");
        bd.push_back(R"({"driver":"throttle","node-name":"vda-throttle","throttle-group":"tg0","file":"vda-1-fmt"})");
        bd.push_back(R"({"driver":"file","node-name":"vdb-file","filename":")" + raw + "\"}");
        vm v(b, system_with(bd, {"-object", "throttle-group,id=tg0", "-device",
                                 "virtio-blk-pci,drive=vda-throttle,id=virtio-disk0", "-device",
                                 "virtio-blk-pci,drive=vdb-file,id=virtio-disk1"}));
        for (bool with_cache : {false, true}) {
            CAPTURE(with_cache);
            qmp::driver_cache cache;
            auto g = qmp::query_block_graph(v.cl, {}, with_cache ? &cache : nullptr);
            CHECK(has_edge(g, "vda-throttle", "vda-1-fmt", qmp::edge_role::file));
            CHECK(g.is_filter(idx(g, "vda-throttle")));  // by driver, or by shape
            CHECK(!g.is_filter(idx(g, "vda-1-fmt")));
            CHECK(!g.is_filter(idx(g, "vdb-file")));
            CHECK(walk(g, idx(g, "vda-throttle")) == std::vector<std::string>{"vda-1-fmt", "vda-0-fmt"});
            CHECK(walk(g, idx(g, "vdb-file")) == std::vector<std::string>{"vdb-file"});
            CHECK(g.backends().size() == 2);
            auto* b0 = backend_with_root(g, "vda-throttle");
            auto* b1 = backend_with_root(g, "vdb-file");
            REQUIRE(b0);
            REQUIRE(b1);
            CHECK(b0->qdev == "/machine/peripheral/virtio-disk0/virtio-backend");
            CHECK(b1->qdev == "/machine/peripheral/virtio-disk1/virtio-backend");
            // query-blockstats shows the throttle node's child as its `parent`
            // and its `backing`: a filter, no driver needed.
            CHECK(g.nodes()[idx(g, "vda-throttle")].filter_seen == std::optional<bool>(true));
            CHECK(g.filter_known(idx(g, "vda-throttle")) == std::optional<bool>(true));
            if (with_cache) CHECK(cache.refreshes == 0);
        }
    }
}

TEST_CASE("graph: drivers are asked for only where shape and blockstats leave a node open" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir files_dir;
        auto a = make_chain(b, files_dir, "vda", 2);
        {
            // A storage daemon's export has no device, so query-blockstats
            // says nothing of the base, whose only child is `file`: a format
            // node or a filter over storage. Its driver is learned once.
            temp_dir dir;
            qemu_config cfg;
            cfg.blockdevs = chain_blockdevs(a, "vda");
            cfg.nbd_export_node = "vda-1-fmt";
            qemu_instance q(b, dir, cfg);
            qmp::sync_client cl;
            cl.connect(q.qmp_endpoint());
            qmp::driver_cache cache;
            auto g = qmp::query_block_graph(cl, {}, &cache);
            CHECK(!g.nodes()[idx(g, "vda-0-fmt")].filter_seen);
            CHECK(cache.refreshes == 1);
            CHECK(g.nodes()[idx(g, "vda-0-fmt")].driver == std::optional<std::string>("qcow2"));
            CHECK(walk(g, idx(g, "vda-1-fmt")) == std::vector<std::string>{"vda-1-fmt", "vda-0-fmt"});
            g = qmp::query_block_graph(cl, {}, &cache);
            CHECK(cache.refreshes == 1);
        }
        {
            // A preallocate filter between the base's format node and its
            // file: the device's query-blockstats shows the filter, but the
            // base now looks like a filter by its shape (its `file` child has
            // a child) while blockstats shows none: the driver decides.
            auto bd = chain_blockdevs(a, "vda");
            bd[0] = R"({"driver":"file","node-name":"vda-0-store","filename":")" + a[0] + "\"}";
            bd.insert(bd.begin() + 1, R"({"driver":"preallocate","node-name":"vda-0-file","file":"vda-0-store"})");
            vm v(b, system_with(bd, {"-device", "virtio-blk-pci,drive=vda-1-fmt,id=virtio-disk0"}));
            qmp::driver_cache cache;
            auto g = qmp::query_block_graph(v.cl, {}, &cache);
            CHECK(g.nodes()[idx(g, "vda-0-file")].filter_seen == std::optional<bool>(true));
            CHECK(g.nodes()[idx(g, "vda-0-fmt")].filter_seen == std::optional<bool>(false));
            CHECK(cache.refreshes == 1);
            CHECK(!g.is_filter(idx(g, "vda-0-fmt")));
            CHECK(g.is_filter(idx(g, "vda-0-file")));
            CHECK(walk(g, idx(g, "vda-1-fmt")) == std::vector<std::string>{"vda-1-fmt", "vda-0-fmt"});
        }
    }
}

TEST_CASE("graph: a legacy -drive with generated node names" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir files_dir;
        auto a = make_chain(b, files_dir, "disk", 2);
        vm v(b, system_with({}, {"-drive", "file=" + a[1] + ",format=qcow2,if=none,id=drive0", "-device",
                                 "virtio-blk-pci,drive=drive0,id=virtio-disk0"}));
        qmp::driver_cache cache;
        auto g = qmp::query_block_graph(v.cl, {}, &cache);
        REQUIRE(g.backends().size() == 1);
        CHECK(g.backends()[0].device == "drive0");
        const std::string root = g.backends()[0].root_node;
        CHECK(root.rfind("#block", 0) == 0);
        auto chain = walk(g, idx(g, root));
        REQUIRE(chain.size() == 2);
        for (auto& n : chain) CHECK(n.rfind("#block", 0) == 0);
        CHECK(cache.refreshes == 0);
        CHECK(g.filter_known(idx(g, chain[1])) == std::optional<bool>(false));
        auto file = g.child(idx(g, chain[1]), qmp::edge_role::file);
        REQUIRE(file);
        CHECK(g.nodes()[*file].driver == std::optional<std::string>("file"));
    }
}

TEST_CASE("graph: job filters while a block-commit and a blockdev-mirror run" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir files_dir;
        auto a = make_chain(b, files_dir, "vda", 3);
        // Data in the middle and top images, so the jobs have work to do.
        run_checked({b.tool("qemu-io"), "-f", "qcow2", a[1], "-c", "write 0 4M"});
        run_checked({b.tool("qemu-io"), "-f", "qcow2", a[2], "-c", "write 4M 4M"});
        std::string tgt = files_dir.file("copy.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", tgt, "64M"});
        vm v(b, system_with(chain_blockdevs(a, "vda"), {"-device", "virtio-blk-pci,drive=vda-2-fmt,id=virtio-disk0"}));
        INFO(v.q->log());

        // Commit vda-1 into vda-0 at 1 byte/s: it stays running.
        qmp::block_commit c;
        c.device = "vda-2-fmt";
        c.top_node = "vda-1-fmt";
        c.base_node = "vda-0-fmt";
        c.job.job_id = "commit0";
        c.job.speed = 1;
        c.job.filter_node_name = "commit-filter";
        v.cl.execute(c);
        for (bool with_cache : {false, true}) {
            CAPTURE(with_cache);
            qmp::driver_cache cache;
            auto g = qmp::query_block_graph(v.cl, {}, with_cache ? &cache : nullptr);
            CHECK(has_edge(g, "vda-2-fmt", "commit-filter", qmp::edge_role::backing));
            CHECK(has_edge(g, "commit-filter", "vda-1-fmt", qmp::edge_role::backing));
            CHECK(g.is_filter(idx(g, "commit-filter")));
            CHECK(walk(g, idx(g, "vda-2-fmt")) == std::vector<std::string>{"vda-2-fmt", "vda-1-fmt", "vda-0-fmt"});
            bool job = false;
            for (std::size_t i = 0; i < g.nodes().size(); ++i)
                if (g.nodes()[i].kind == qmp::node_kind::job && g.nodes()[i].name == "commit0") {
                    job = true;
                    CHECK(!g.children(i).empty());
                    for (auto* e : g.children(i)) CHECK(e->role == qmp::edge_role::job);
                }
            CHECK(job);
            CHECK(g.filter_known(idx(g, "commit-filter")) == std::optional<bool>(true));  // only `backing`
            if (with_cache) CHECK(cache.refreshes == 0);
        }
        v.cl.execute(qmp::block_job_cancel{"commit0", true});

        // Wait until the job is gone, then mirror the top to a new node.
        for (int i = 0; i < 200 && !v.cl.execute(qmp::query_block_jobs{}).empty(); ++i)
            std::this_thread::sleep_for(10ms);
        v.cl.execute(qmp::blockdev::file("copy-file", tgt));
        v.cl.execute(qmp::blockdev::qcow2("copy-fmt", "copy-file"));
        qmp::blockdev_mirror m;
        m.device = "vda-2-fmt";
        m.target = "copy-fmt";
        m.sync = "full";
        m.job.job_id = "mirror0";
        m.job.speed = 1;
        m.job.filter_node_name = "mirror-filter";
        v.cl.execute(m);
        for (bool with_cache : {false, true}) {
            CAPTURE(with_cache);
            qmp::driver_cache cache;
            auto g = qmp::query_block_graph(v.cl, {}, with_cache ? &cache : nullptr);
            auto* be = backend_with_root(g, "mirror-filter");
            REQUIRE(be);  // the filter is now the device's root
            CHECK(has_edge(g, "mirror-filter", "vda-2-fmt", qmp::edge_role::backing));
            CHECK(g.is_filter(idx(g, "mirror-filter")));
            CHECK(walk(g, idx(g, "mirror-filter")).front() == "vda-2-fmt");
            bool job_uses_target = false;
            for (const auto& e : g.edges())
                if (g.nodes()[e.parent].name == "mirror0" && g.nodes()[e.child].name == "copy-fmt") job_uses_target = true;
            CHECK(job_uses_target);
        }
        v.cl.execute(qmp::block_job_cancel{"mirror0", true});
    }
}

TEST_CASE("graph: the blockstats fallback when the graph command is unavailable" * doctest::test_suite("qapi")) {
    // A query-blockstats reply shaped like QEMU 7.2's for a 2-deep chain on a virtio disk (trimmed).
    qmp::graph_replies r;
    r.backend_stats = qmp::json::parse(R"([{"device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
        "node-name": "vda-1-fmt", "stats": {"rd_bytes": 0, "wr_bytes": 512, "rd_operations": 0, "wr_operations": 1,
        "wr_highest_offset": 512},
        "parent": {"node-name": "vda-1-file", "driver-specific": {"driver": "file"},
                   "stats": {"rd_bytes": 0, "wr_bytes": 0, "rd_operations": 0, "wr_operations": 0, "wr_highest_offset": 327680}},
        "backing": {"node-name": "vda-0-fmt",
                    "stats": {"rd_bytes": 0, "wr_bytes": 0, "rd_operations": 0, "wr_operations": 0, "wr_highest_offset": 0},
                    "parent": {"node-name": "vda-0-file", "driver-specific": {"driver": "file"},
                               "stats": {"rd_bytes": 0, "wr_bytes": 0, "rd_operations": 0, "wr_operations": 0, "wr_highest_offset": 0}}}}])")
                          .get<std::vector<qmp::block_stats>>();
    auto g = qmp::build_block_graph(r);
    CHECK(g.source() == qmp::graph_source::blockstats);
    CHECK(has_edge(g, "vda-1-fmt", "vda-1-file", qmp::edge_role::file));
    CHECK(has_edge(g, "vda-1-fmt", "vda-0-fmt", qmp::edge_role::backing));
    CHECK(has_edge(g, "vda-0-fmt", "vda-0-file", qmp::edge_role::file));
    CHECK(g.nodes()[idx(g, "vda-1-file")].wr_highest_offset == std::optional<std::uint64_t>(327680));
    REQUIRE(g.backends().size() == 1);
    CHECK(g.backends()[0].root_node == "vda-1-fmt");
    CHECK(walk(g, idx(g, "vda-1-fmt")) == std::vector<std::string>{"vda-1-fmt", "vda-0-fmt"});
}

TEST_CASE("graph: filter_known trusts blockstats' \"no filter\" only where the shape agrees" *
          doctest::test_suite("qapi")) {
    // thr -> top (file + backing) -> base -> base-file. A QEMU before 5.2
    // reports no `backing` under a filter: thr then looks like no filter
    // to blockstats but like one by its shape, and stays open.
    qmp::graph_replies r;
    r.graph = qmp::json::parse(R"({"nodes": [{"name": "vda", "type": "block-backend", "id": 1},
        {"name": "thr", "type": "block-driver", "id": 2}, {"name": "top", "type": "block-driver", "id": 3},
        {"name": "top-file", "type": "block-driver", "id": 4}, {"name": "base", "type": "block-driver", "id": 5},
        {"name": "base-file", "type": "block-driver", "id": 6}],
        "edges": [{"name": "root", "parent": 1, "child": 2, "perm": [], "shared-perm": []},
                  {"name": "file", "parent": 2, "child": 3, "perm": [], "shared-perm": []},
                  {"name": "file", "parent": 3, "child": 4, "perm": [], "shared-perm": []},
                  {"name": "backing", "parent": 3, "child": 5, "perm": [], "shared-perm": []},
                  {"name": "file", "parent": 5, "child": 6, "perm": [], "shared-perm": []}]})")
                  .get<qmp::x_dbg_block_graph>();
    auto stats = [](const std::string& body) {
        return qmp::json::parse(R"([{"device": "vda", )" + body + "}]").get<std::vector<qmp::block_stats>>();
    };
    const std::string z = R"("stats": {"rd_bytes": 0, "wr_bytes": 0, "rd_operations": 0, "wr_operations": 0, "wr_highest_offset": 0})";
    const std::string base = R"({"node-name": "base", )" + z + R"(, "parent": {"node-name": "base-file", )" + z + "}}";
    const std::string top = R"({"node-name": "top", )" + z + R"(, "parent": {"node-name": "top-file", )" + z +
                            R"(}, "backing": )" + base + "}";
    SUBCASE("QEMU 5.2 on: the filter's child twice") {
        r.backend_stats = stats(R"("node-name": "thr", )" + z + R"(, "parent": )" + top + R"(, "backing": )" + top);
        auto g = qmp::build_block_graph(r);
        CHECK(g.filter_known(idx(g, "thr")) == std::optional<bool>(true));
        CHECK(g.filter_known(idx(g, "top")) == std::optional<bool>(false));        // file and backing
        CHECK(g.filter_known(idx(g, "base")) == std::optional<bool>(false));       // blockstats, shape agrees
        CHECK(g.filter_known(idx(g, "base-file")) == std::optional<bool>(false));  // no children
        CHECK(!qmp::driver_cache{}.misses(g));
    }
    SUBCASE("before 5.2: no backing under the filter") {
        r.backend_stats = stats(R"("node-name": "thr", )" + z + R"(, "parent": )" + top);
        auto g = qmp::build_block_graph(r);
        CHECK(g.nodes()[idx(g, "thr")].filter_seen == std::optional<bool>(false));
        CHECK(!g.filter_known(idx(g, "thr")));
        CHECK(g.is_filter(idx(g, "thr")));  // the shape's guess
        qmp::driver_cache cache;
        CHECK(cache.misses(g));
        cache.drivers["thr"] = "throttle";
        CHECK(!cache.misses(g));
    }
    SUBCASE("no device: the base is open") {
        r.backend_stats = std::vector<qmp::block_stats>{};
        auto g = qmp::build_block_graph(r);
        CHECK(!g.filter_known(idx(g, "base")));
        CHECK(!g.filter_known(idx(g, "thr")));
        CHECK(g.filter_known(idx(g, "top")) == std::optional<bool>(false));
    }
}

TEST_CASE("graph: a device with an id and no drive name is one backend (the graph names it by its id)" *
          doctest::test_suite("qapi")) {
    // QEMU 7.2, `-blockdev ... -device ide-hd,drive=vda-fmt,id=vda` next to a
    // device without an id (trimmed): query-blockstats says device "" and
    // qdev "vda"; the graph calls the backend "vda".
    qmp::graph_replies r;
    r.graph = qmp::json::parse(R"({"nodes": [{"name": "vda-fmt", "type": "block-driver", "id": 4},
        {"name": "boot", "type": "block-driver", "id": 2}, {"name": "vda", "type": "block-backend", "id": 3},
        {"name": "/machine/peripheral-anon/device[0]", "type": "block-backend", "id": 1}],
        "edges": [{"name": "root", "parent": 3, "child": 4, "perm": [], "shared-perm": []},
                  {"name": "root", "parent": 1, "child": 2, "perm": [], "shared-perm": []}]})")
                  .get<qmp::x_dbg_block_graph>();
    const char* zero = R"({"rd_bytes": 0, "wr_bytes": 0, "rd_operations": 0, "wr_operations": 0, "wr_highest_offset": 0})";
    r.backend_stats = qmp::json::parse(std::string(R"([{"device": "", "qdev": "/machine/peripheral-anon/device[0]", "node-name": "boot", "stats": )") +
                                       zero + R"(}, {"device": "", "qdev": "vda", "node-name": "vda-fmt", "stats": )" + zero + "}]")
                          .get<std::vector<qmp::block_stats>>();
    auto g = qmp::build_block_graph(r);
    REQUIRE(g.backends().size() == 2);
    CHECK(g.backends()[0].qdev == "/machine/peripheral-anon/device[0]");
    CHECK(g.backends()[1].qdev == "vda");
    CHECK(g.backends()[1].device.empty());
    CHECK(g.backends()[1].root_node == "vda-fmt");
}

TEST_CASE("graph: without the graph command and without flat, real QEMU gives the same chains (relative backing names)" *
          doctest::test_suite("qemu")) {
    // What an older QEMU offers, asked of 7.2 and 10.0: the blockstats
    // fallback and the non-flat details must give the chains the graph
    // command and flat give.
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 3, "64M", chain_layout::relative);
        vm v(b, system_with(chain_blockdevs(files, "vda"), {"-device", "virtio-blk-pci,drive=vda-2-fmt,id=virtio-disk0"}));
        qmp::graph_query_options now;
        now.details = qmp::details_need::fresh;
        qmp::driver_cache probed;
        auto g_now = qmp::query_block_graph(v.cl, now, &probed);
        REQUIRE(probed.offers);
        CHECK(probed.offers->source == qmp::offers_source::commands);
        CHECK(probed.offers->graph_command);
        CHECK(probed.offers->flat);
        CHECK(probed.offers->query_nodes);
        CHECK(g_now.source() == qmp::graph_source::debug_graph);

        qmp::graph_query_options old = now;
        old.offers = qmp::block_query_offers{};
        old.offers->graph_command = false;
        old.offers->flat = false;
        qmp::driver_cache cache;
        auto g_old = qmp::query_block_graph(v.cl, old, &cache);
        CHECK(g_old.source() == qmp::graph_source::blockstats);
        CHECK(cache.probes == 0);

        qmp::index_registry reg_now, reg_old;
        qmp::resolver r_now, r_old;
        r_now.update(g_now, reg_now);
        r_old.update(g_old, reg_old);
        std::error_code ec;
        const auto* d_now = r_now.find_disk("virtio-disk0", ec);
        const auto* d_old = r_old.find_disk("virtio-disk0", ec);
        REQUIRE(d_now);
        REQUIRE(d_old);
        REQUIRE(d_now->elements.size() == 3);
        REQUIRE(d_old->elements.size() == 3);
        for (std::size_t i = 0; i < 3; ++i) {
            CAPTURE(i);
            const auto& a = d_now->elements[i];
            const auto& o = d_old->elements[i];
            CHECK(a.index == o.index);
            CHECK(a.format_node == o.format_node);
            CHECK(a.storage_node == o.storage_node);
            CHECK(a.driver == o.driver);
            CHECK(a.filename == o.filename);
            CHECK(a.format_filename == o.format_filename);
            CHECK(a.capacity == o.capacity);
            CHECK(a.virtual_size == o.virtual_size);
            CHECK(a.allocation == o.allocation);
            CHECK(a.storage_threshold == o.storage_threshold);
            // The file users know, whatever QEMU calls the format node.
            CHECK(a.filename == std::optional<std::string>(files[2 - i]));
        }
        // Relative backing names: QEMU's filename of a format node with a
        // backing file is a json: description, not the image's path.
        REQUIRE(d_now->elements[0].format_filename);
        CHECK(d_now->elements[0].format_filename->rfind("json:", 0) == 0);
    }
}
