// `vda[N]`: parsing, and resolution both ways against real QEMU 7.2 and 10.0,
// across snapshots, commits, streams and mirror pivots.
#include <support/qemu.hpp>

#include <qmp/block.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace qmp_support;

TEST_CASE("target: parse and print" * doctest::test_suite("block")) {
    std::error_code ec;
    auto t = qmp::parse_target("vda", ec);
    REQUIRE(t);
    CHECK(t->disk == "vda");
    CHECK(t->index == 0);
    CHECK(t->str() == "vda");
    CHECK(t->indexed() == "vda[0]");
    t = qmp::parse_target("vda[0]", ec);
    REQUIRE(t);
    CHECK(t->index == 0);
    CHECK(t->str() == "vda");
    t = qmp::parse_target("vda[12]", ec);
    REQUIRE(t);
    CHECK(t->index == 12);
    CHECK(t->str() == "vda[12]");
    t = qmp::parse_target("vda[4294967295]", ec);
    REQUIRE(t);
    CHECK(t->index == 4294967295u);
    t = qmp::parse_target("virtio-disk0[007]", ec);
    REQUIRE(t);
    CHECK(t->str() == "virtio-disk0[7]");  // canonical form

    struct bad {
        const char* text;
        const char* says;
    };
    for (auto b : {bad{"vda[", "missing index"}, bad{"vda[]", "empty index"},
                   bad{"vda[-1]", "not an unsigned decimal"}, bad{"vda[1]x", "unexpected text after ']'"},
                   bad{"vda[99999999999]", "does not fit 32 bits"}, bad{"vda[4294967296]", "does not fit 32 bits"},
                   bad{"vda[0x1]", "unexpected character 'x'"}, bad{"[3]", "disk name before '[' is empty"},
                   bad{"", "empty"}, bad{"vda[1", "missing ']'"}, bad{"vda]", "']' without '['"},
                   bad{"vda[ 1]", "not an unsigned decimal"}, bad{"vda[1]x[2]", "unexpected text after ']'"},
                   bad{"a[x]/b", "without a number"}, bad{"a[1/b", "unexpected character '/' in index"},
                   bad{"a][0]", "']' without '['"}, bad{"v\tda", "control character"}}) {
        CAPTURE(b.text);
        qmp::diagnostics why;
        CHECK(!qmp::parse_target(b.text, ec, &why));
        CHECK(ec == qmp::block_error::invalid_target);
        CHECK(why.message.find(b.says) != std::string::npos);
        CHECK_THROWS_AS(qmp::parse_target(b.text), qmp::qmp_error);
    }
    qmp::diagnostics why;
    qmp::parse_target("vda[1]x", ec, &why);
    CHECK(why.message.find("character 7") != std::string::npos);  // says where
    // The index is the trailing [N]: QEMU names devices without an id by
    // paths with brackets, and those disks have elements too.
    t = qmp::parse_target("/machine/peripheral-anon/device[0]/virtio-backend[2]", ec);
    REQUIRE(t);
    CHECK(t->disk == "/machine/peripheral-anon/device[0]/virtio-backend");
    CHECK(t->index == 2);
    t = qmp::parse_target("/machine/peripheral-anon/device[0][1]", ec);
    REQUIRE(t);
    CHECK(t->disk == "/machine/peripheral-anon/device[0]");
    CHECK(t->index == 1);
    t->index = 0;
    CHECK(t->str() == "/machine/peripheral-anon/device[0][0]");  // not the name alone, which means ".../device"
    // Both printed forms of whatever parses parse back to the same target
    // ("a][0]" used to parse, and print as "a]", which does not).
    for (const char* text : {"vda", "vda[0]", "vda[7]", "/machine/peripheral/virtio-disk0/virtio-backend[3]", "é[1]",
                             "/machine/peripheral-anon/device[0]/virtio-backend[2]", "/machine/peripheral-anon/device[0][0]",
                             "/machine/peripheral-anon/device[0][1]", "vda[1][2]"}) {
        CAPTURE(text);
        auto p = qmp::parse_target(text, ec);
        REQUIRE(p);
        CHECK(qmp::parse_target(p->str(), ec) == p);
        CHECK(qmp::parse_target(p->indexed(), ec) == p);
    }
}

TEST_CASE("index_registry: libvirt names, first sight, persistence" * doctest::test_suite("block")) {
    CHECK(qmp::index_registry::libvirt_index("libvirt-7-format") == std::optional<std::uint32_t>(7));
    CHECK(qmp::index_registry::libvirt_index("libvirt-12-storage") == std::optional<std::uint32_t>(12));
    CHECK(!qmp::index_registry::libvirt_index("libvirt-x-format"));
    CHECK(!qmp::index_registry::libvirt_index("libvirt-0-format"));
    CHECK(!qmp::index_registry::libvirt_index("libvirt-3-formats"));
    CHECK(!qmp::index_registry::libvirt_index("vda-1-fmt"));

    // Loading refuses anything that would break the numbering, naming what.
    struct bad {
        const char* text;
        const char* says;
    };
    for (auto b : {bad{R"({"next": 1, "nodes": {"a": -1}})", "nodes.a: -1 is negative"},
                   bad{R"([1, 2])", "expected an object"},
                   bad{R"({"next": 4294967296, "nodes": {}})", "next: 4294967296 does not fit"},
                   bad{R"({"next": 4294967295, "nodes": {"a": 4294967295}})", "is no index"},
                   bad{R"({"next": 3, "nodes": {"a": 2, "b": 2}})", "index 2 is used twice"},
                   bad{R"({"next": 2, "nodes": {"a": 5}})", "not below next"},
                   bad{R"({"next": 0, "nodes": {}})", "next: 0"},
                   bad{R"({"next": 2.5, "nodes": {}})", "not an integer"},
                   bad{R"({"next": "2", "nodes": {}})", "got a string"},
                   bad{R"({"next": 3, "nodes": {"a": 1, "a": 2}})", "appears twice"},
                   bad{R"({"nodes": {}})", "next: missing"}}) {
        CAPTURE(b.text);
        qmp::index_registry copy;
        qmp::diagnostics d;
        CHECK(qmp::convert_text(b.text, copy, &d));
        CHECK(d.message.find(b.says) != std::string::npos);
        CHECK(copy.size() == 0);
    }
    // The highest possible next hands out no number past it (nothing wraps).
    qmp::index_registry full;
    REQUIRE(!qmp::convert_text(R"({"next": 4294967294, "nodes": {"a": 4294967293}})", full));
    CHECK(full.next() == 4294967294u);
    qmp::json back = full;
    CHECK(back.dump() == R"({"next":4294967294,"nodes":{"a":4294967293}})");
}

namespace {

std::string fmt(const std::string& file, const std::string& name, const std::string& backing = "") {
    return R"({"driver":"qcow2","node-name":")" + name + R"(","file":")" + file + "\"" +
           (backing.empty() ? "" : R"(,"backing":")" + backing + "\"") + "}";
}
std::string filenode(const std::string& path, const std::string& name) {
    return R"({"driver":"file","node-name":")" + name + R"(","filename":")" + path + "\"}";
}

struct live {
    qmp::sync_client& cl;
    qmp::index_registry& reg;
    qmp::resolver res;
    qmp::driver_cache drivers;
    live(qmp::sync_client& c, qmp::index_registry& r, qmp::disk_catalog cat = {}) : cl(c), reg(r), res(std::move(cat)) {
        refresh();
    }
    void refresh(bool details = false) {
        res.update(qmp::query_block_graph(cl, qmp::graph_query_options{details ? qmp::details_need::fresh : qmp::details_need::none}, &drivers), reg);
    }
    std::uint32_t index_of(const std::string& target_text) {
        std::error_code ec;
        qmp::diagnostics why;
        auto r = res.resolve(target_text, ec, &why);
        REQUIRE_MESSAGE(r, why.message);
        return r->element.index;
    }
    std::string format_of(const std::string& target_text) {
        std::error_code ec;
        auto r = res.resolve(target_text, ec);
        REQUIRE(r);
        return r->element.format_node;
    }
    std::vector<std::uint32_t> indexes(const std::string& disk) {
        std::error_code ec;
        auto* d = res.find_disk(disk, ec);
        REQUIRE(d);
        std::vector<std::uint32_t> out;
        for (const auto& e : d->elements) out.push_back(e.index);
        return out;
    }
};

template <class E>
E wait_for(qmp::sync_client& cl, std::function<bool(const E&)> pred = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw std::runtime_error("no " + std::string(E::name));
        auto ev = cl.receive_event(left);
        std::error_code ec;
        if (auto t = qmp::event_as<E>(ev, ec); t && (!pred || pred(*t))) return *t;
    }
}

}  // namespace

TEST_CASE("resolver: three disks: libvirt names under a throttle, generated names, a raw base" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        // vda: libvirt-style names, indexes 1 (base) .. 3 (top), a throttle on top.
        std::vector<std::string> bd;
        for (int i = 1; i <= 3; ++i) {
            std::string f = dir.file("a" + std::to_string(i) + ".qcow2");
            if (i == 1)
                run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", f, "64M"});
            else
                run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", "-b", dir.file("a" + std::to_string(i - 1) + ".qcow2"),
                             "-F", "qcow2", f});
            std::string n = "libvirt-" + std::to_string(i);
            bd.push_back(filenode(f, n + "-storage"));
            bd.push_back(fmt(n + "-storage", n + "-format", i > 1 ? "libvirt-" + std::to_string(i - 1) + "-format" : ""));
        }
        bd.push_back(R"({"driver":"throttle","node-name":"vda-throttle","throttle-group":"tg0","file":"libvirt-3-format"})");
        // vdc: a qcow2 over a raw image opened without a format layer.
        std::string raw = dir.file("c-base.img");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "raw", raw, "64M"});
        std::string ctop = dir.file("c-top.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", ctop});
        bd.push_back(filenode(raw, "c-base"));
        bd.push_back(filenode(ctop, "c-top-file"));
        bd.push_back(fmt("c-top-file", "c-top", "c-base"));
        // vdb: a legacy -drive with generated node names.
        auto bfiles = make_chain(b, dir, "b", 2);
        qemu_config cfg;
        cfg.kind = qemu_kind::system;
        cfg.blockdevs = bd;
        cfg.extra = {"-object", "throttle-group,id=tg0", "-device", "virtio-blk-pci,drive=vda-throttle,id=virtio-disk0",
                     "-drive", "file=" + bfiles[1] + ",format=qcow2,if=none,id=drive1", "-device",
                     "virtio-blk-pci,drive=drive1,id=virtio-disk1", "-device", "virtio-blk-pci,drive=c-top,id=virtio-disk2"};
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        qmp::sync_client cl;
        cl.connect(q.qmp_endpoint());
        qmp::index_registry reg;
        qmp::disk_catalog cat;
        cat.entries = {{"vda", "virtio-disk0"}, {"vdb", "drive1"}, {"vdc", "/machine/peripheral/virtio-disk2/virtio-backend"}};
        live L(cl, reg, cat);
        REQUIRE(L.res.disks().size() == 3);
        CHECK(L.res.disks()[0].name == "vda");

        // libvirt's numbers are taken as they are; vda and vda[0] are the top.
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{3, 2, 1});
        CHECK(L.format_of("vda") == "libvirt-3-format");
        CHECK(L.format_of("vda[0]") == "libvirt-3-format");
        CHECK(L.format_of("vda[2]") == "libvirt-2-format");
        // The others continue the same per-VM counter, disks in name order.
        CHECK(L.indexes("vdb") == std::vector<std::uint32_t>{4, 5});
        CHECK(L.indexes("vdc") == std::vector<std::uint32_t>{6, 7});
        std::error_code ec;
        auto base = L.res.resolve("vdc[7]", ec);
        REQUIRE(base);
        CHECK(base->element.format_node.empty());  // no format layer
        CHECK(base->element.storage_node == "c-base");
        auto top = L.res.resolve("vdc", ec);
        REQUIRE(top);
        CHECK(top->element.storage_node == "c-top-file");
        auto vdb1 = L.res.resolve("vdb[5]", ec);
        REQUIRE(vdb1);
        CHECK(vdb1->element.format_node.rfind("#block", 0) == 0);

        // Other names for the same disks, without the catalog.
        qmp::index_registry reg2;
        live plain(cl, reg2);
        CHECK(plain.format_of("virtio-disk0") == "libvirt-3-format");
        CHECK(plain.format_of("/machine/peripheral/virtio-disk0/virtio-backend") == "libvirt-3-format");
        CHECK(plain.format_of("drive1") == L.format_of("vdb"));
        CHECK(plain.format_of("c-top") == "c-top");  // a root node name

        // Reverse: node -> target and layer.
        auto loc = L.res.locate("libvirt-2-storage", ec);
        REQUIRE(loc);
        CHECK(loc->where.canonical().indexed() == "vda[2]");
        CHECK(loc->node_layer == qmp::layer::storage);
        CHECK(!loc->where.active);
        loc = L.res.locate("libvirt-3-format", ec);
        REQUIRE(loc);
        CHECK(loc->where.active);
        CHECK(loc->node_layer == qmp::layer::format);
        loc = L.res.locate("c-base", ec);
        REQUIRE(loc);
        CHECK(loc->where.canonical().indexed() == "vdc[7]");
        CHECK(!L.res.locate("vda-throttle", ec));  // a filter is no chain element
        CHECK(ec == qmp::block_error::not_in_chain);
        CHECK(!L.res.locate("nonexistent", ec));
        CHECK(ec == qmp::block_error::not_in_chain);

        // Depth is a separate question.
        auto d1 = L.res.at_depth("vda", 1, ec);
        REQUIRE(d1);
        CHECK(d1->element.index == 2);
        CHECK(!L.res.at_depth("vda", 3, ec));

        // Errors.
        qmp::diagnostics why;
        CHECK(!L.res.resolve("vdz", ec, &why));
        CHECK(ec == qmp::block_error::unknown_disk);
        CHECK(!L.res.resolve("vda[4]", ec, &why));  // 4 is vdb's
        CHECK(ec == qmp::block_error::unknown_index);
        CHECK(why.message.find("index 4") != std::string::npos);
        CHECK(!L.res.resolve("vda[x]", ec, &why));
        CHECK(ec == qmp::block_error::invalid_target);
        qmp::disk_catalog dup;
        dup.entries = {{"both", "virtio-disk0"}};
        qmp::resolver amb(dup);
        qmp::block_graph g = qmp::query_block_graph(cl);
        // Two backends answering to one name: make the second backend's qdev equal.
        auto& backends = qmp::detail::graph_builder(g).backends();
        for (auto& bk : backends)
            if (bk.root_node == "vda-throttle") backends[bk.root_node == backends[0].root_node ? 1 : 0].qdev = bk.qdev;
        qmp::index_registry reg3;
        amb.update(g, reg3);
        CHECK(!amb.find_disk("virtio-disk0", ec));
        CHECK(ec == qmp::block_error::ambiguous_disk);

        // Details: capacity, allocation, thresholds per layer.
        cl.execute(qmp::block_set_write_threshold{"libvirt-2-storage", 123456});
        L.refresh(true);
        auto e2 = L.res.resolve("vda[2]", ec);
        REQUIRE(e2);
        CHECK(e2->element.storage_threshold == std::optional<std::uint64_t>(123456));
        CHECK(e2->element.format_threshold == std::optional<std::uint64_t>(0));
        CHECK(e2->element.driver == std::optional<std::string>("qcow2"));
        CHECK(e2->element.virtual_size == std::optional<std::uint64_t>(64 << 20));
        REQUIRE(e2->element.capacity);
        CHECK(*e2->element.capacity > 0);
        CHECK(e2->element.allocation == std::optional<std::uint64_t>(0));
        CHECK(e2->element.filename == std::optional<std::string>(dir.file("a2.qcow2")));
    }
}

TEST_CASE("resolver: indexes survive snapshot, commit, stream, active commit and mirror pivot" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 4);
        // Data in vda-2, so committing it writes into vda-1.
        run_checked({b.tool("qemu-io"), "-f", "qcow2", files[2], "-c", "write -P 0x5a 0 4M"});
        qemu_config cfg;
        cfg.kind = qemu_kind::system;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.extra = {"-device", "virtio-blk-pci,drive=vda-3-fmt,id=virtio-disk0"};
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        qmp::sync_client cl;
        cl.connect(q.qmp_endpoint());
        qmp::index_registry reg;
        qmp::disk_catalog cat;
        cat.entries = {{"vda", "virtio-disk0"}};
        live L(cl, reg, cat);
        // First sight: top to base.
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{1, 2, 3, 4});
        CHECK(L.format_of("vda[3]") == "vda-1-fmt");

        // blockdev-snapshot: the new top gets a fresh index, the rest keep theirs.
        std::string s1 = dir.file("snap1.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", s1, "64M"});
        cl.execute(qmp::blockdev::file("snap1-file", s1));
        qmp::blockdev::qcow2_options no_backing;
        no_backing.no_backing = true;
        cl.execute(qmp::blockdev::qcow2("snap1", "snap1-file", no_backing));
        cl.execute(qmp::blockdev_snapshot{"vda-3-fmt", "snap1"});
        L.refresh();

        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{5, 1, 2, 3, 4});
        CHECK(L.format_of("vda") == "snap1");

        // A threshold armed on vda[3]'s storage before a commit into vda[3]
        // fires, and the event's node maps back to vda[3].
        std::error_code ec;
        auto target3 = L.res.resolve("vda[3]", ec);
        REQUIRE(target3);
        cl.execute(qmp::block_set_write_threshold{target3->element.storage_node, 1 << 20});
        qmp::block_commit c;
        c.device = "snap1";
        c.top_node = "vda-2-fmt";
        c.base_node = "vda-1-fmt";
        c.job.job_id = "commit0";
        cl.execute(c);
        auto ev = wait_for<qmp::block_write_threshold_event>(cl);
        L.refresh();  // the graph as it is now (the commit may still run)
        auto loc = L.res.locate(ev.node_name, ec);
        REQUIRE(loc);
        CHECK(loc->where.canonical().indexed() == "vda[3]");
        CHECK(loc->node_layer == qmp::layer::storage);
        wait_for<qmp::block_job_completed_event>(cl);
        cl.execute(qmp::blockdev_del{"vda-2-fmt"});  // dropped from the chain: delete it, as libvirt does
        cl.execute(qmp::blockdev_del{"vda-2-file"});
        L.refresh();
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{5, 1, 3, 4});  // 2 is gone, for good

        // block-stream into the top from vda[3]: vda[1] goes.
        qmp::block_stream s;
        s.device = "snap1";
        s.base_node = "vda-1-fmt";
        s.job.job_id = "stream0";
        cl.execute(s);
        wait_for<qmp::block_job_completed_event>(cl);
        cl.execute(qmp::blockdev_del{"vda-3-fmt"});
        cl.execute(qmp::blockdev_del{"vda-3-file"});
        L.refresh();
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{5, 3, 4});

        // Active commit of the top into vda[3]: READY, complete; vda[3] is active.
        qmp::block_commit ac;
        ac.device = "snap1";
        ac.base_node = "vda-1-fmt";
        ac.job.job_id = "active0";
        cl.execute(ac);
        wait_for<qmp::block_job_ready_event>(cl);
        L.refresh();
        CHECK(L.format_of("vda") == "snap1");  // still the top while the job runs
        cl.execute(qmp::block_job_complete{"active0"});
        wait_for<qmp::block_job_completed_event>(cl);
        cl.execute(qmp::blockdev_del{"snap1"});
        cl.execute(qmp::blockdev_del{"snap1-file"});
        L.refresh();
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{3, 4});
        CHECK(L.format_of("vda") == "vda-1-fmt");

        // Mirror to a new node: addressable while it runs, the top after the pivot.
        std::string m = dir.file("copy.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", m, "64M"});
        cl.execute(qmp::blockdev::file("copy-file", m));
        cl.execute(qmp::blockdev::qcow2("copy", "copy-file"));
        qmp::blockdev_mirror mir;
        mir.device = "vda-1-fmt";
        mir.target = "copy";
        mir.sync = "full";
        mir.job.job_id = "mirror0";
        cl.execute(mir);
        wait_for<qmp::block_job_ready_event>(cl);
        L.refresh();
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{3, 4});
        auto mirror = L.res.resolve("vda[6]", ec);
        REQUIRE(mirror);
        CHECK(mirror->element.mirror);
        CHECK(mirror->element.format_node == "copy");
        auto mloc = L.res.locate("copy-file", ec);
        REQUIRE(mloc);
        CHECK(mloc->where.canonical().indexed() == "vda[6]");
        cl.execute(qmp::block_job_complete{"mirror0"});
        wait_for<qmp::block_job_completed_event>(cl);
        L.refresh();
        CHECK(L.indexes("vda") == std::vector<std::uint32_t>{6});
        CHECK(L.format_of("vda") == "copy");

        // A restarted resolver with the persisted registry gives the same names.
        std::string saved = qmp::json(reg).dump();
        qmp::index_registry reloaded;
        REQUIRE(!qmp::convert_text(saved, reloaded));
        live again(cl, reloaded, cat);
        CHECK(again.indexes("vda") == std::vector<std::uint32_t>{6});
        // And a new element after the restart still gets a number never used.
        std::string s2 = dir.file("snap2.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", s2, "64M"});
        cl.execute(qmp::blockdev::file("snap2-file", s2));
        cl.execute(qmp::blockdev::qcow2("snap2", "snap2-file", no_backing));
        cl.execute(qmp::blockdev_snapshot{"copy", "snap2"});
        again.refresh();
        CHECK(again.indexes("vda") == std::vector<std::uint32_t>{7, 6});
    }
}
