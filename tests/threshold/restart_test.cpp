// Restarts and half-done commands against real QEMU 7.2 and 10.0: a QEMU
// restarted on the same socket is re-armed, not reported as fired; a
// threshold that reached QEMU when its reply did not is adopted.
#include "../support/cut_proxy.hpp"
#include "../support/thin_vm.hpp"

#include <qmp/qapi.hpp>
#include <qmp/threshold/manager.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace qmp_support;

TEST_CASE("threshold: a QEMU restarted on the same socket is re-armed, not reported as fired" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        INFO(vm.q->log());
        // A manager that stays up and reconnects by itself.
        qmp::threshold_manager m(vm.ep(), named({{"vda", "vda-1-fmt"}}));
        m.connect();
        m.arm("vda", qmp::threshold_spec::bytes(1u << 20));
        m.arm("vda[2]", qmp::threshold_spec::bytes(2u << 20));
        const qmp::threshold_state saved = m.state();
        vm.restart();  // nothing written, before or after
        auto got = poll_until(m, 1, 3s);
        CHECK(got.empty());
        REQUIRE(m.connected());
        CHECK(vm.threshold_of(m.client(), "vda-1-thin") == 1u << 20);  // armed again in the new QEMU
        CHECK(vm.threshold_of(m.client(), "vda-0-thin") == 2u << 20);
        CHECK(m.tracker().stats().restarts == 1);
        // And the new arming works: a write fires it, live.
        REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);
        got = poll_until(m, 1);
        REQUIRE(got.size() == 1);
        CHECK(got[0].how == qmp::threshold_event::origin::live);
        CHECK(got[0].where.indexed() == "vda[1]");

        // A manager that was down across the restart, started from its state.
        vm.restart();
        qmp::threshold_manager again(vm.ep(), named({{"vda", "vda-1-fmt"}}));
        again.load(saved);
        CHECK(again.connect().empty());
        CHECK(vm.threshold_of(again.client(), "vda-1-thin") == 1u << 20);
        CHECK(vm.threshold_of(again.client(), "vda-0-thin") == 2u << 20);
    }
}

TEST_CASE("threshold: armed in QEMU when the reply was lost: the intent is adopted and the firing reported" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        INFO(vm.q->log());
        cut_proxy proxy(vm.dir.file("proxy.qmp"), vm.q->qmp_path(), "block-set-write-threshold");
        const std::string state_file = vm.dir.file("state.json");
        auto on_disk = [&] {  // what the state file holds
            qmp::threshold_state s;
            REQUIRE(!qmp::threshold_journal(state_file).load(s));
            return s;
        };
        auto o = named({{"vda", "vda-1-fmt"}});
        o.service.journal = std::make_shared<qmp::threshold_journal>(state_file);
        qmp::threshold_manager m(asio::local::stream_protocol::endpoint(proxy.path()), o);
        m.connect();
        CHECK_THROWS_AS(m.arm("vda", qmp::threshold_spec::bytes(1u << 20)), qmp::qmp_error);
        REQUIRE(proxy.cut());
        REQUIRE(on_disk().armed.size() == 1);
        CHECK(on_disk().armed[0].state == qmp::armed_threshold::status::arming);  // recorded before it was sent
        {
            qmp::sync_client direct;
            direct.connect(vm.ep());
            CHECK(vm.threshold_of(direct, "vda-1-thin") == 1u << 20);  // and QEMU has it
        }
        // The manager reconnects (the relay now passes everything) and adopts it ...
        CHECK(poll_until(m, 1, 2s).empty());
        REQUIRE(m.connected());
        CHECK(m.armed().at(0).state == qmp::armed_threshold::status::armed);
        CHECK(on_disk().armed.at(0).state == qmp::armed_threshold::status::armed);
        // ... so its firing is reported.
        REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);
        auto got = poll_until(m, 1);
        REQUIRE(got.size() == 1);
        CHECK(got[0].how == qmp::threshold_event::origin::live);
        CHECK(got[0].tracked);
    }
}
