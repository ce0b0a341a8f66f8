// Resync by counters, audit by exception, against real QEMU 7.2 and 10.0 on
// both chain layouts (absolute backing names, and relative ones as vdsm
// writes them): a reconnection and a restart on the same QEMU cost no
// query-named-block-nodes; what only an audit can notice (a threshold
// cleared in QEMU behind the tracker's back) is noticed by an audit only;
// sizes are asked of QEMU once per element first seen, not per arm or report.
#include "../support/thin_vm.hpp"

#include <qmp/qapi.hpp>
#include <qmp/threshold/manager.hpp>

#include <doctest/doctest.h>

using namespace qmp_support;

namespace {

// A paused VM whose virtio-blk disk is a 4-deep qcow2 chain, with a second monitor.
struct chain_vm {
    const qemu_build* build;
    temp_dir dir;
    std::string second;
    std::unique_ptr<qemu_instance> q;
    chain_vm(const qemu_build& b, chain_layout layout) : build(&b) {
        auto files = make_chain(b, dir, "vda", 4, "64M", layout);
        qemu_config cfg;
        cfg.kind = qemu_kind::system;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        second = dir.file("second.qmp");
        cfg.extra = {"-device", "virtio-blk-pci,drive=vda-3-fmt,id=virtio-disk0", "-chardev",
                     "socket,path=" + second + ",server=on,wait=off,id=m2", "-mon", "chardev=m2,mode=control"};
        q = std::make_unique<qemu_instance>(b, dir, cfg);
    }
    // QEMU's write_threshold of `node`, read on the second monitor.
    std::uint64_t threshold_of(const std::string& node) const { return threshold_in_qemu(second, node); }
    void clear(const std::string& node) const {
        qmp::sync_client side;
        side.connect(asio::local::stream_protocol::endpoint(second));
        side.execute(qmp::block_set_write_threshold{node, 0});
    }
};

// Runs `f` on a fresh chain VM for each QEMU and each chain layout, with
// manager options that name its disk `vda`.
template <class F>
void each_chain(F f) {
    for (const auto& b : qemu_builds())
        for (auto layout : {chain_layout::absolute, chain_layout::relative}) {
            CAPTURE(b.label);
            CAPTURE(to_string(layout));
            chain_vm vm(b, layout);
            INFO(vm.q->log());
            qmp::threshold_manager_options o;
            o.service.tracker.catalog.entries["vda"] = "virtio-disk0";
            f(vm, o);
        }
}

}  // namespace

TEST_CASE("resync: reconnecting and restarting on the same QEMU read counters only, and an audit finds a cleared threshold" *
          doctest::test_suite("qemu")) {
    each_chain([](chain_vm& vm, const qmp::threshold_manager_options& o) {
            qmp::threshold_manager m(vm.q->qmp_endpoint(), o);
            m.connect();
            m.arm("vda[1]", qmp::threshold_spec::bytes(32u << 20).with_capacity(64u << 20));
            m.arm("vda[3]", qmp::threshold_spec::bytes(16u << 20).with_capacity(64u << 20));
            const std::string top = "vda-3-file", deep = "vda-1-file";
            REQUIRE(vm.threshold_of(deep) == 16u << 20);
            const auto details_before = m.service().stats().details_queries;

            // The connection drops and comes back; then an agent restarts.
            m.client().close();
            CHECK(m.connect().empty());
            CHECK(m.service().stats().details_queries == details_before);
            CHECK(m.tracker().stats().audits == 0);
            m.client().close();
            {
                qmp::threshold_manager restarted(vm.q->qmp_endpoint(), o);
                restarted.load(m.state());
                CHECK(restarted.connect().empty());
                CHECK(restarted.tracker().stats().audits == 0);
                // Drivers of nodes first seen may cost the query once in a
                // new process; a VM's device tree shows them all: none.
                CHECK(restarted.service().stats().details_queries == 0);
            }
            m.connect();

            // Someone clears a threshold in QEMU: a resync cannot tell, an audit can.
            vm.clear(deep);
            CHECK(m.resync().empty());
            CHECK(vm.threshold_of(deep) == 0);
            CHECK(m.audit().empty());  // nothing was written past it: re-armed, not reported
            CHECK(vm.threshold_of(deep) == 16u << 20);
            CHECK(vm.threshold_of(top) == 32u << 20);
            CHECK(m.tracker().stats().audits == 1);
            CHECK(m.tracker().stats().rearmed_unexplained == 1);
    });
}

TEST_CASE("resync: a state that recorded no QEMU instance is audited on connecting, once" * doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    chain_vm vm(b, chain_layout::relative);
    INFO(vm.q->log());
    qmp::threshold_manager_options o;
    o.service.tracker.catalog.entries["vda"] = "virtio-disk0";
    qmp::threshold_state s;
    {
        qmp::threshold_manager m(vm.q->qmp_endpoint(), o);
        m.connect();
        m.arm("vda[2]", qmp::threshold_spec::bytes(8u << 20).with_capacity(64u << 20));
        s = m.state();
    }
    REQUIRE(s.instance);
    s.instance.reset();  // as written by a tool that could not tell instances apart
    vm.clear("vda-2-file");
    qmp::threshold_manager m(vm.q->qmp_endpoint(), o);
    m.load(s);
    CHECK(m.connect().empty());
    CHECK(m.tracker().stats().audits == 1);
    CHECK(vm.threshold_of("vda-2-file") == 8u << 20);
    m.client().close();
    m.connect();
    CHECK(m.tracker().stats().audits == 1);  // the instance is known now
}

TEST_CASE("resync: node details are read once per element first seen, not per arm, report or firing" *
          doctest::test_suite("qemu")) {
    each_chain([](chain_vm& vm, const qmp::threshold_manager_options& o) {
            qmp::threshold_manager m(vm.q->qmp_endpoint(), o);
            m.connect();
            auto details = [&] { return m.service().stats().details_queries; };
            // A margin needs the size: the first arm reads every node's details once.
            m.arm("vda[1]", qmp::threshold_spec::margin(16u << 20));
            CHECK(details() == 1);
            m.arm("vda[2]", qmp::threshold_spec::margin(16u << 20));
            m.arm("vda[3]", qmp::threshold_spec::percent(50));
            auto rows = m.report();
            REQUIRE(rows.size() == 4);
            CHECK(rows[3].element.filename.has_value());  // kept, not read again
            CHECK(rows[0].capacity == std::optional<std::uint64_t>(64u << 20));
            CHECK(m.resync().empty());
            CHECK(details() == 1);
            // A snapshot adds an element: the next arm that needs sizes reads them once.
            const std::string ov = vm.dir.file("ov.qcow2");
            run_checked({vm.build->tool("qemu-img"), "create", "-q", "-f", "qcow2", ov, "64M"});
            {
                qmp::sync_client side;
                side.connect(asio::local::stream_protocol::endpoint(vm.second));
                side.execute("blockdev-add", qmp::json{{"driver", "file"}, {"node-name", "ov-file"}, {"filename", ov}});
                side.execute("blockdev-add", qmp::json{{"driver", "qcow2"}, {"node-name", "ov"}, {"file", "ov-file"}, {"backing", nullptr}});
                side.execute("blockdev-snapshot", qmp::json{{"node", "vda-3-fmt"}, {"overlay", "ov"}});
            }
            m.arm("vda", qmp::threshold_spec::margin(8u << 20));
            CHECK(details() == 2);
            CHECK(m.report().size() == 5);
            CHECK(details() == 2);
    });
}
