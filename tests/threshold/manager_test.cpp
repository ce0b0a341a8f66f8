// The threshold manager against real QEMU 7.2 and 10.0.
#include "../support/thin_vm.hpp"

#include <qmp/qapi.hpp>
#include <qmp/threshold/manager.hpp>

#include <doctest/doctest.h>

#include <set>

using namespace std::chrono_literals;
using namespace qmp_support;

TEST_CASE("threshold spec: exact integer arithmetic and refusals" * doctest::test_suite("threshold")) {
    std::error_code ec;
    qmp::diagnostics why;
    CHECK(qmp::compute_threshold(qmp::threshold_spec::bytes(5), std::nullopt, ec) == std::optional<std::uint64_t>(5));
    CHECK(qmp::compute_threshold(qmp::threshold_spec::percent(50), 64u << 20, ec) == std::optional<std::uint64_t>(32u << 20));
    // floor(1000000007 * 333333 / 10^6) = 333333002
    CHECK(qmp::compute_threshold(qmp::threshold_spec::ppm(333333), 1000000007u, ec) ==
          std::optional<std::uint64_t>(333333002u));
    // No overflow near 2^64.
    CHECK(qmp::ppm_of(UINT64_MAX, 1000000) == UINT64_MAX);
    CHECK(qmp::ppm_of(UINT64_MAX, 500000) == UINT64_MAX / 2);
    CHECK(qmp::compute_threshold(qmp::threshold_spec::margin(1u << 20), 8u << 20, ec) ==
          std::optional<std::uint64_t>(7u << 20));
    CHECK(qmp::compute_threshold(qmp::threshold_spec::margin(1), std::nullopt, ec).has_value() == false);
    CHECK(ec == qmp::threshold_error::unknown_capacity);
    // 0 would disarm: refused.
    CHECK(!qmp::compute_threshold(qmp::threshold_spec::bytes(0), std::nullopt, ec, &why));
    CHECK(ec == qmp::threshold_error::out_of_range);
    CHECK(why.message.find("disarm") != std::string::npos);
    CHECK(!qmp::compute_threshold(qmp::threshold_spec::percent(0), 100, ec));
    CHECK(!qmp::compute_threshold(qmp::threshold_spec::ppm(1), 999999, ec));  // floor to 0
    CHECK(!qmp::compute_threshold(qmp::threshold_spec::ppm(1000001), 100, ec));
    CHECK(!qmp::compute_threshold(qmp::threshold_spec::margin(100), 100, ec));
    CHECK(!qmp::compute_threshold(qmp::threshold_spec::bytes(101), 100, ec, &why));
    CHECK(why.message.find("past the capacity") != std::string::npos);
    CHECK(qmp::threshold_spec::percent(20).str() == "20%");
    // As operators write them.
    auto spec = [&](const char* text) { return qmp::parse_threshold_spec(text, ec, &why); };
    CHECK(spec("512M")->value == 512u << 20);
    CHECK(spec("1048576")->value == 1048576u);
    CHECK(spec("end-1G")->type == qmp::threshold_spec::kind::margin);
    CHECK(spec("end-1G")->value == 1u << 30);
    CHECK(spec("25%")->value == 250000u);
    CHECK(spec("333ppm")->value == 333u);
    for (const char* bad : {"", "M", "12Q", "1MB", "end-", "%", "-1", "1.5G", "99999999999%", "20000000000000000000",
                            "17179869184T"}) {
        CAPTURE(bad);
        CHECK(!spec(bad));
        CHECK(ec == qmp::threshold_error::invalid_spec);
        CHECK(!why.message.empty());
    }
    // A share above 100 % parses, and is refused when computed.
    CHECK(!qmp::compute_threshold(*spec("101%"), 100, ec, &why));
    CHECK(ec == qmp::threshold_error::out_of_range);
    // The throwing form carries the code and the sentence.
    try {
        (void)qmp::parse_threshold_spec("12Q");
        FAIL("no throw");
    } catch (const qmp::qmp_error& e) {
        CHECK(e.code() == qmp::threshold_error::invalid_spec);
        CHECK(std::string(e.what()).find("12Q") != std::string::npos);
        CHECK(e.code().category().name() == std::string("qmp.threshold"));
    }
    CHECK(qmp::threshold_spec::ppm(15).str() == "15ppm");
    CHECK(qmp::threshold_spec::margin(512).str() == "end-512");
}

TEST_CASE("threshold: percent, ppm and margin give the exact bytes QEMU then reports" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        INFO(vm.q->log());
        qmp::threshold_manager m(vm.ep(), named({{"vda", "vda-1-fmt"}}));
        m.connect();
        auto& cl = m.client();
        // Storage layer by default; capacity = the storage node's size (the 64 MiB window).
        m.arm("vda", qmp::threshold_spec::percent(37));
        CHECK(vm.threshold_of(cl, "vda-1-thin") == qmp::ppm_of(64u << 20, 370000));
        m.arm("vda[2]", qmp::threshold_spec::ppm(123457));
        CHECK(vm.threshold_of(cl, "vda-0-thin") == (64ull << 20) * 123457 / 1000000);
        m.arm("vda[2]", qmp::threshold_spec::margin(5u << 20));  // replaces the ppm one
        CHECK(vm.threshold_of(cl, "vda-0-thin") == (64u << 20) - (5u << 20));
        CHECK(m.armed().size() == 2);
        // A capacity the caller states, and the format layer on request.
        m.arm("vda", qmp::threshold_spec::ppm(1).with_capacity(3000000007ull).on_layer(qmp::layer::format));
        CHECK(vm.threshold_of(cl, "vda-1-fmt") == 3000u);
        // Refusals change nothing in QEMU.
        CHECK_THROWS_AS(m.arm("vda", qmp::threshold_spec::margin(64u << 20)), qmp::qmp_error);
        CHECK_THROWS_AS(m.arm("vda[9]", qmp::threshold_spec::percent(10)), qmp::qmp_error);
        CHECK_THROWS_AS(m.arm("vda[", qmp::threshold_spec::percent(10)), qmp::qmp_error);
        CHECK(vm.threshold_of(cl, "vda-1-thin") == qmp::ppm_of(64u << 20, 370000));
        m.disarm("vda");
        CHECK(vm.threshold_of(cl, "vda-1-thin") == 0);
        CHECK(vm.threshold_of(cl, "vda-1-fmt") == 0);
        CHECK(m.armed().size() == 1);

        // The bulk report: every element, its thresholds and the armed spec.
        auto rows = m.report();
        REQUIRE(rows.size() == 2);
        CHECK(rows[0].active);
        CHECK(rows[0].element.capacity == std::optional<std::uint64_t>(64u << 20));
        CHECK(!rows[0].armed);
        REQUIRE(rows[1].armed);
        CHECK(rows[1].armed->spec.str() == "end-" + std::to_string(5u << 20));
        CHECK(rows[1].armed->threshold == (64u << 20) - (5u << 20));
        CHECK(vm.threshold_of(cl, rows[1].armed->node) == (64u << 20) - (5u << 20));
        // A report reads no threshold from QEMU (what is armed says it); one with fresh sizes does.
        CHECK(!rows[1].element.storage_threshold);
        auto fresh = m.client().run<std::error_code, std::vector<qmp::threshold_report_row>>(
            [&](auto h) { m.service().async_report(true, std::move(h)); });
        REQUIRE(!std::get<0>(fresh));
        CHECK(std::get<1>(fresh)[1].element.storage_threshold == std::optional<std::uint64_t>((64u << 20) - (5u << 20)));
    }
}

TEST_CASE("threshold: live events as vda[N]: the top, and a backing element during a commit into it" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 3}});
        INFO(vm.q->log());
        qmp::threshold_manager m(vm.ep(), named({{"vda", "vda-2-fmt"}}));
        m.connect();
        REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);  // goes to the top
        m.arm("vda", qmp::threshold_spec::bytes(3u << 20), qmp::rearm_policy::step, 8u << 20);
        REQUIRE(vm.q->nbd_write(2u << 20, 2u << 20) == 0);  // the top's storage passes 3 MiB
        auto got = poll_until(m, 1);
        REQUIRE(got.size() >= 1);
        CHECK(got[0].how == qmp::threshold_event::origin::live);
        CHECK(got[0].where.indexed() == "vda[1]");
        CHECK(got[0].active);
        CHECK(got[0].node == "vda-2-thin");
        CHECK(got[0].node_layer == qmp::layer::storage);
        CHECK(got[0].tracked);
        CHECK(got[0].threshold == 3u << 20);
        // The step policy re-armed 8 MiB higher.
        CHECK(vm.threshold_of(m.client(), "vda-2-thin") == 11u << 20);

        // Commit the top into vda[2] with a threshold on vda[2]'s storage.
        m.arm("vda[2]", qmp::threshold_spec::bytes(1u << 20));
        qmp::block_commit c;
        c.device = "vda-2-fmt";
        c.top_node = "vda-2-fmt";
        c.base_node = "vda-1-fmt";
        c.job.job_id = "live-merge";
        m.client().execute(c);  // an active commit: the commit writes into vda[2]
        auto ev = poll_until(m, 1);
        bool seen = false;
        for (auto& e : ev)
            if (e.where.indexed() == "vda[2]") {
                seen = true;
                CHECK(e.how == qmp::threshold_event::origin::live);
                CHECK(!e.active);
                CHECK(e.node == "vda-1-thin");
            }
        CHECK(seen);
        m.client().execute(qmp::block_job_cancel{"live-merge", true});
    }
}

TEST_CASE("threshold: fired while disconnected, and while the manager was down" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        INFO(vm.q->log());
        qmp::threshold_state saved;
        {
            qmp::threshold_manager m(vm.ep(), named({{"vda", "vda-1-fmt"}}));
            m.connect();
            m.arm("vda", qmp::threshold_spec::bytes(1u << 20));
            m.arm("vda[2]", qmp::threshold_spec::percent(50));  // not crossed below
            // Disconnected: the connection is closed, a write crosses.
            m.client().close();
            REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);
            auto got = poll_until(m, 1, 10s);  // reconnects by itself, then resyncs

            REQUIRE(got.size() == 1);
            CHECK(got[0].how == qmp::threshold_event::origin::recovered);
            CHECK(got[0].recovered());
            CHECK(got[0].where.indexed() == "vda[1]");
            CHECK(got[0].amount_exceeded > 0);
            CHECK(m.resync().empty());  // once only
            m.arm("vda", qmp::threshold_spec::bytes(8u << 20));
            saved = m.state();
        }
        // Down: a write crosses while no manager runs (8 MiB of new clusters
        // land past 8 MiB of host offsets: thresholds count host bytes here).
        REQUIRE(vm.q->nbd_write(8u << 20, 8u << 20) == 0);
        qmp::threshold_manager again(vm.ep(), named({{"vda", "vda-1-fmt"}}));
        again.load(saved);
        auto got = again.connect();
        REQUIRE(got.size() == 1);
        CHECK(got[0].recovered());
        CHECK(got[0].where.indexed() == "vda[1]");
        CHECK(got[0].threshold == 8u << 20);
        CHECK(again.resync().empty());
        qmp::threshold_state bad;
        qmp::diagnostics why;
        CHECK(qmp::convert_text(R"({"armed": []})", bad, &why));  // what a journal refuses to load
        CHECK(why.message.find("format") != std::string::npos);
    }
}

TEST_CASE("threshold: re-arming below the allocation is reported at once, on_extend re-arms" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 1}}, 8u << 20);
        INFO(vm.q->log());
        qmp::threshold_manager m(vm.ep(), named({{"vda", "vda-0-fmt"}}));
        m.connect();
        REQUIRE(vm.q->nbd_write(0, 3u << 20) == 0);
        auto now = m.arm("vda", qmp::threshold_spec::margin(6u << 20), qmp::rearm_policy::on_extend);  // 2 MiB < allocation
        REQUIRE(now.size() == 1);
        CHECK(now[0].how == qmp::threshold_event::origin::immediate);
        CHECK(now[0].threshold == 2u << 20);
        CHECK(now[0].amount_exceeded > 1u << 20);
        CHECK(vm.threshold_of(m.client(), "vda-0-thin") == 0);  // nothing armed that could fire twice
        // The agent grows the storage to 64 MiB (reopen the window), reports it: re-armed with the same margin.
        m.client().execute(qmp::blockdev_reopen{{{{"driver", "raw"}, {"node-name", "vda-0-thin"}, {"file", "vda-0-file"},
                                                 {"offset", 0}, {"size", 64u << 20}}}});
        auto after = m.extended("vda", 64u << 20);
        CHECK(after.empty());
        CHECK(vm.threshold_of(m.client(), "vda-0-thin") == (64u << 20) - (6u << 20));
    }
}

TEST_CASE("threshold: an overflowing event queue leads to a resync that loses nothing" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        auto side = vm.with_second_monitor();
        INFO(vm.q->log());
        auto o = named({{"vda", "vda-1-fmt"}});
        o.service.event_capacity = 1;
        qmp::threshold_manager m(vm.ep(), o);
        m.connect();
        m.arm("vda", qmp::threshold_spec::bytes(1u << 20));
        // The manager's service takes the events it needs (the end of a job,
        // thresholds) into a queue of one, and nothing is read on its
        // connection while no call runs. A job runs and ends on the second
        // monitor (QEMU sends its events to both) and then a write crosses
        // the threshold, so the manager's next read brings the job's end
        // (two events it takes) and the threshold event behind them: the
        // full queue drops the last one, with a marker. (Starting the job on
        // the manager's own connection would let its end arrive while that
        // command's reply is read, and then nothing overflows.)
        qmp::sync_client watch;
        watch.connect(asio::local::stream_protocol::endpoint(side));
        qmp::block_stream s;
        s.device = "vda-1-fmt";
        s.job.job_id = "noise";
        watch.execute(s);
        // A loaded machine can take seconds for it.
        for (int i = 0; i < 600 && !watch.execute(qmp::query_block_jobs{}).empty(); ++i) std::this_thread::sleep_for(50ms);
        REQUIRE(watch.execute(qmp::query_block_jobs{}).empty());
        REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);
        auto got = poll_until(m, 1);
        REQUIRE(got.size() == 1);
        CHECK(m.loss_markers() > 0);
        CHECK(got[0].recovered());
        CHECK(got[0].where.indexed() == "vda[1]");
    }
}

TEST_CASE("threshold: two disks, several armed elements, events interleaved with commands" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}, {"vdb", 2}});
        INFO(vm.q->log());
        qmp::threshold_manager m(vm.ep(), named({{"vda", "vda-1-fmt"}, {"vdb", "vdb-1-fmt"}}));
        m.connect();
        m.arm("vda", qmp::threshold_spec::bytes(1u << 20));
        m.arm("vdb", qmp::threshold_spec::bytes(2u << 20));
        m.arm("vdb[4]", qmp::threshold_spec::percent(90));
        CHECK(m.armed().size() == 3);
        REQUIRE(vm.q->nbd_write(0, 3u << 20, nullptr, "vdb") == 0);
        auto report = m.report();  // a command between the write and the event
        CHECK(report.size() == 4);
        // Someone else arms the format layer of vda's top: reported too, resolved.
        m.client().execute(qmp::block_set_write_threshold{"vda-1-fmt", 1u << 20});
        REQUIRE(vm.q->nbd_write(0, 3u << 20, nullptr, "vda") == 0);
        auto got = poll_until(m, 3);
        REQUIRE(got.size() == 3);
        std::set<std::string> targets;
        for (auto& e : got) {
            CHECK(e.how == qmp::threshold_event::origin::live);
            CHECK(e.resolved);
            targets.insert(e.where.indexed() + " " + qmp::to_string(e.node_layer) + (e.tracked ? "" : " foreign"));
        }
        CHECK(targets == std::set<std::string>{"vda[1] storage", "vda[1] format foreign", "vdb[3] storage"});
        CHECK(m.poll(300ms).empty());  // vdb[4] did not fire
    }
}
