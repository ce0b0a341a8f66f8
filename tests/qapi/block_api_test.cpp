// The typed block API against real QEMU 7.2 and 10.0: every command's round
// trip, its error paths, and typed events.
#include <support/qemu.hpp>

#include <qmp/client/clients.hpp>
#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace qmp_support;

namespace {

struct daemon_chain {
    temp_dir dir;
    std::vector<std::string> files;
    std::unique_ptr<qemu_instance> q;
    qmp::sync_client cl;

    daemon_chain(const qemu_build& b, int depth, qemu_kind kind = qemu_kind::storage_daemon) {
        files = make_chain(b, dir, "vda", depth);
        qemu_config cfg;
        cfg.kind = kind;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        if (kind == qemu_kind::storage_daemon)
            cfg.nbd_export_node = "vda-" + std::to_string(depth - 1) + "-fmt";
        else
            cfg.extra = {"-device", "virtio-blk-pci,drive=vda-" + std::to_string(depth - 1) + "-fmt,id=virtio-disk0"};
        q = std::make_unique<qemu_instance>(b, dir, cfg);
        cl.connect(q->qmp_endpoint());
    }

    // Waits for an event of type E (others are skipped).
    template <class E>
    E wait_event(std::chrono::milliseconds timeout = 20s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) throw std::runtime_error("no " + std::string(E::name) + " event");
            auto ev = cl.receive_event(left);
            std::error_code ec;
            auto typed = qmp::event_as<E>(ev, ec);
            REQUIRE(!ec);
            if (typed) return *typed;
        }
    }

    template <class E, class Pred>
    E wait_event_if(Pred&& pred) {
        for (;;) {
            E e = wait_event<E>();
            if (pred(e)) return e;
        }
    }
};

}  // namespace

TEST_CASE("qapi: query-version, query-qmp-schema and the capability probe" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        daemon_chain d(b, 1);
        auto schema = d.cl.execute(qmp::query_qmp_schema{});
        qmp::schema_probe probe(schema);
        CHECK(probe.size() > 100);
        CHECK(probe.has_command("block-set-write-threshold"));
        CHECK(probe.has_command("query-named-block-nodes"));
        CHECK(!probe.has_command("no-such-command"));
        CHECK(probe.has_event("BLOCK_WRITE_THRESHOLD"));
        CHECK(probe.command_has_argument("query-named-block-nodes", "flat"));
        CHECK(probe.command_has_argument("block-set-write-threshold", "write-threshold"));
        CHECK(!probe.command_has_argument("query-named-block-nodes", "deep"));
        CHECK(!probe.command_has_argument("no-such-command", "flat"));
    }
}

TEST_CASE("qapi: write threshold set, read back, fired as a typed event" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        daemon_chain d(b, 2);
        INFO(d.q->log());
        d.cl.execute(qmp::block_set_write_threshold{"vda-1-file", 1u << 20});
        d.cl.execute(qmp::block_set_write_threshold{"vda-1-fmt", (1ull << 32) + 7});  // > 32 bits survives
        auto nodes = d.cl.execute(qmp::query_named_block_nodes{true});
        REQUIRE(nodes.size() == 4);
        std::map<std::string, qmp::block_device_info> by;
        for (auto& n : nodes) by[*n.node_name] = n;
        CHECK(by["vda-1-file"].write_threshold == 1 << 20);
        CHECK(by["vda-1-fmt"].write_threshold == (1ll << 32) + 7);
        CHECK(by["vda-1-fmt"].drv == "qcow2");
        CHECK(by["vda-1-file"].drv == "file");
        CHECK(by["vda-1-fmt"].image.virtual_size == 64 << 20);
        CHECK(by["vda-1-fmt"].image.format == "qcow2");
        CHECK(!by["vda-1-fmt"].image.backing_image);  // flat
        CHECK(by["vda-1-fmt"].active.has_value() == (b.label != "7.2"));

        // Error paths: unknown node, bad argument.
        std::error_code ec;
        qmp::diagnostics diag;
        d.cl.execute(qmp::block_set_write_threshold{"nope", 1}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        CHECK(diag.message.find("nope") != std::string::npos);
        d.cl.execute("block-set-write-threshold", {{"node-name", "vda-1-file"}, {"write-threshold", "1M"}}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        CHECK(diag.message.find("write-threshold") != std::string::npos);

        REQUIRE(d.q->nbd_write(0, 2 << 20) == 0);
        auto ev = d.wait_event_if<qmp::block_write_threshold_event>(
            [](const auto& e) { return e.node_name == "vda-1-file"; });
        CHECK(ev.write_threshold == 1 << 20);
        CHECK(ev.amount_exceeded > 1u << 20);
        auto after = d.cl.execute(qmp::query_named_block_nodes{true});
        for (auto& n : after)
            if (*n.node_name == "vda-1-file") CHECK(n.write_threshold == 0);
    }
}

TEST_CASE("qapi: query-named-block-nodes without flat nests backing images" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        daemon_chain d(b, 3);
        auto nodes = d.cl.execute(qmp::query_named_block_nodes{});
        const qmp::block_device_info* top = nullptr;
        for (auto& n : nodes)
            if (n.node_name == std::optional<std::string>("vda-2-fmt")) top = &n;
        REQUIRE(top);
        REQUIRE(top->image.backing_image);
        REQUIRE(top->image.backing_image->backing_image);
        CHECK(top->image.backing_image->backing_image->filename == d.files[0]);
        CHECK(!top->image.backing_image->backing_image->backing_image);
    }
}

TEST_CASE("qapi: query-block and query-blockstats on a VM-shaped QEMU" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        daemon_chain d(b, 3, qemu_kind::system);
        INFO(d.q->log());
        auto blocks = d.cl.execute(qmp::query_block{});
        REQUIRE(blocks.size() == 1);
        CHECK(blocks[0].device == "");
        CHECK(blocks[0].qdev == std::optional<std::string>("/machine/peripheral/virtio-disk0/virtio-backend"));
        REQUIRE(blocks[0].inserted);
        CHECK(blocks[0].inserted->node_name == std::optional<std::string>("vda-2-fmt"));
        CHECK(blocks[0].inserted->backing_file_depth == 2);

        auto stats = d.cl.execute(qmp::query_blockstats{});
        REQUIRE(stats.size() == 1);
        CHECK(stats[0].node_name == std::optional<std::string>("vda-2-fmt"));
        REQUIRE(stats[0].parent);
        CHECK(stats[0].parent->node_name == std::optional<std::string>("vda-2-file"));
        CHECK(stats[0].parent->driver == std::optional<std::string>("file"));
        REQUIRE(stats[0].backing);
        CHECK(stats[0].backing->node_name == std::optional<std::string>("vda-1-fmt"));
        REQUIRE(stats[0].backing->backing);
        CHECK(stats[0].backing->backing->node_name == std::optional<std::string>("vda-0-fmt"));

        auto nodes = d.cl.execute(qmp::query_blockstats{true});
        CHECK(nodes.size() == 6);

        auto graph = d.cl.execute(qmp::x_debug_query_block_graph{});
        CHECK(graph.nodes.size() == 7);  // 6 nodes + the backend
    }
}

TEST_CASE("qapi: blockdev-add helpers, snapshot, resize, reopen, del" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        daemon_chain d(b, 1);
        INFO(d.q->log());
        std::string overlay = d.dir.file("overlay.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", overlay, "64M"});
        d.cl.execute(qmp::blockdev::file("ov-file", overlay));
        qmp::blockdev::qcow2_options o;
        o.no_backing = true;
        d.cl.execute(qmp::blockdev::qcow2("ov-fmt", "ov-file", o));
        d.cl.execute(qmp::blockdev_snapshot{"vda-0-fmt", "ov-fmt"});
        auto g = d.cl.execute(qmp::x_debug_query_block_graph{});
        bool found = false;
        for (auto& e : g.edges) {
            std::string p, c;
            for (auto& n : g.nodes) {
                if (n.id == e.parent) p = n.name;
                if (n.id == e.child) c = n.name;
            }
            if (p == "ov-fmt" && c == "vda-0-fmt" && e.name == "backing") found = true;
        }
        CHECK(found);

        // A raw window on a bigger file: thin storage in miniature.
        std::string big = d.dir.file("thin.img");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "raw", big, "16M"});
        d.cl.execute(qmp::blockdev::file("thin-file", big));
        qmp::blockdev::raw_options ro;
        ro.offset = 0;
        ro.size = 1 << 20;
        d.cl.execute(qmp::blockdev::raw("thin", "thin-file", ro));
        d.cl.execute(qmp::blockdev_reopen{{{{"driver", "raw"}, {"node-name", "thin"}, {"file", "thin-file"},
                                            {"offset", 0}, {"size", 4 << 20}}}});
        for (auto& n : d.cl.execute(qmp::query_named_block_nodes{true}))
            if (n.node_name == std::optional<std::string>("thin")) CHECK(n.image.virtual_size == 4 << 20);


        // Throttle filter over a new qcow2.
        d.cl.execute("object-add", {{"qom-type", "throttle-group"}, {"id", "tg0"}});
        std::string t = d.dir.file("t.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", t, "8M"});
        d.cl.execute(qmp::blockdev::file("t-file", t));
        d.cl.execute(qmp::blockdev::qcow2("t-fmt", "t-file"));
        d.cl.execute(qmp::block_resize{std::nullopt, std::string("t-fmt"), 16 << 20});
        for (auto& n : d.cl.execute(qmp::query_named_block_nodes{true}))
            if (n.node_name == std::optional<std::string>("t-fmt")) CHECK(n.image.virtual_size == 16 << 20);
        d.cl.execute(qmp::blockdev::throttle("t-throttle", "t-fmt", "tg0"));
        d.cl.execute(qmp::blockdev_del{"t-throttle"});
        d.cl.execute(qmp::blockdev_del{"t-fmt"});

        std::error_code ec;
        qmp::diagnostics diag;
        d.cl.execute(qmp::blockdev_del{"no-such-node"}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        d.cl.execute(qmp::blockdev_add{{{"driver", "qcow2"}, {"node-name", "bad"}, {"file", "missing"}}}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        d.cl.execute(qmp::block_resize{std::nullopt, std::string("nope"), 1 << 20}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);
        d.cl.execute(qmp::block_resize{std::nullopt, std::string("vda-0-fmt"), 1 << 30}, ec, diag);
        CHECK(ec == qmp::server_error::generic_error);  // a backing node is blocked from resizing
    }
}

TEST_CASE("qapi: block jobs: commit, stream, mirror with typed job events" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        daemon_chain d(b, 4);
        INFO(d.q->log());
        REQUIRE(d.q->nbd_write(0, 1 << 20) == 0);

        // Commit of a middle element (vda-2 into vda-1): completes by itself.
        qmp::block_commit c;
        c.device = "vda-3-fmt";
        c.top_node = "vda-2-fmt";
        c.base_node = "vda-1-fmt";
        c.job.job_id = "commit0";
        d.cl.execute(c);
        auto done = d.wait_event<qmp::block_job_completed_event>();
        CHECK(done.device == "commit0");
        CHECK(done.type == "commit");
        CHECK(!done.error);

        // Stream into the top from vda-0 (base stays).
        qmp::block_stream s;
        s.device = "vda-3-fmt";
        s.base_node = "vda-0-fmt";
        s.job.job_id = "stream0";
        s.job.auto_dismiss = false;
        d.cl.execute(s);
        auto sdone = d.wait_event<qmp::block_job_completed_event>();
        CHECK(sdone.device == "stream0");
        bool listed = false;
        for (auto& j : d.cl.execute(qmp::query_jobs{}))
            if (j.id == "stream0") {
                listed = true;
                CHECK(j.status == "concluded");
                CHECK(j.type == "stream");
            }
        CHECK(listed);
        d.cl.execute(qmp::job_dismiss{"stream0"});
        CHECK(d.cl.execute(qmp::query_jobs{}).empty());

        // Mirror to a new node: READY, then cancel (keeps the source).
        std::string tgt = d.dir.file("mirror.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", tgt, "64M"});
        d.cl.execute(qmp::blockdev::file("m-file", tgt));
        d.cl.execute(qmp::blockdev::qcow2("m-fmt", "m-file"));
        qmp::blockdev_mirror m;
        m.device = "vda-3-fmt";
        m.target = "m-fmt";
        m.sync = "full";
        m.job.job_id = "mirror0";
        d.cl.execute(m);
        auto ready = d.wait_event<qmp::block_job_ready_event>();
        CHECK(ready.device == "mirror0");
        CHECK(ready.type == "mirror");
        auto jobs = d.cl.execute(qmp::query_block_jobs{});
        REQUIRE(jobs.size() == 1);
        CHECK(jobs[0].device == "mirror0");
        CHECK(jobs[0].ready);
        d.cl.execute(qmp::block_job_cancel{"mirror0"});
        auto cancelled = d.wait_event<qmp::block_job_completed_event>();  // cancel after READY completes
        CHECK(cancelled.device == "mirror0");

        // Active commit: READY, then block-job-complete.
        qmp::block_commit ac;
        ac.device = "vda-3-fmt";
        ac.job.job_id = "active0";
        ac.job.auto_finalize = false;
        d.cl.execute(ac);
        d.wait_event<qmp::block_job_ready_event>();
        d.cl.execute(qmp::block_job_complete{"active0"});
        d.wait_event_if<qmp::job_status_change_event>([](const auto& e) { return e.status == "pending"; });
        d.cl.execute(qmp::job_finalize{"active0"});
        auto adone = d.wait_event<qmp::block_job_completed_event>();
        CHECK(adone.device == "active0");

        std::error_code ec;
        qmp::diagnostics diag;
        d.cl.execute(qmp::block_job_complete{"no-job"}, ec, diag);
        CHECK(ec);
        d.cl.execute(qmp::job_dismiss{"no-job"}, ec, diag);
        CHECK(ec);
    }
}

TEST_CASE("qapi: decode_event types known events and keeps others" * doctest::test_suite("qapi")) {
    qmp::event ev;
    ev.name = "BLOCK_WRITE_THRESHOLD";
    ev.data = {{"node-name", "n"}, {"amount-exceeded", 5}, {"write-threshold", 18446744073709551615ull}, {"new", 1}};
    std::error_code ec;
    auto t = qmp::decode_event(ev, ec);
    CHECK(!ec);
    REQUIRE(std::holds_alternative<qmp::block_write_threshold_event>(t));
    CHECK(std::get<qmp::block_write_threshold_event>(t).write_threshold == 18446744073709551615ull);

    ev.name = "JOB_STATUS_CHANGE";
    ev.data = {{"id", "j"}, {"status", "some-future-status"}};
    t = qmp::decode_event(ev, ec);
    REQUIRE(std::holds_alternative<qmp::job_status_change_event>(t));
    CHECK(std::get<qmp::job_status_change_event>(t).status == "some-future-status");

    ev.name = "SHUTDOWN";
    t = qmp::decode_event(ev, ec);
    CHECK(!ec);
    REQUIRE(std::holds_alternative<qmp::event>(t));
    CHECK(std::get<qmp::event>(t).name == "SHUTDOWN");

    ev.name = "BLOCK_WRITE_THRESHOLD";
    ev.data = {{"amount-exceeded", 5}, {"write-threshold", 1}};
    qmp::diagnostics diag;
    t = qmp::decode_event(ev, ec, &diag);
    CHECK(ec == qmp::error::missing_member);
    CHECK(diag.message.find("node-name") != std::string::npos);
    CHECK(std::holds_alternative<qmp::event>(t));  // nothing lost
}
