// The threshold tracker's decisions, without sockets, threads or QEMU: a
// pretend block layer answers its actions (support/fake_block_layer.hpp).
#include "../support/fake_block_layer.hpp"

#include <qmp/threshold/tracker.hpp>

#include <doctest/doctest.h>

#include <algorithm>

using qmp_test::fake_block_layer;
using qmp_test::scripted_driver;

namespace {

constexpr std::uint64_t MiB = 1u << 20;

// vda: a 2-element chain on virtio-disk0: vda[1] = vda-1 (top), vda[2] = vda-0.
fake_block_layer two_deep() {
    fake_block_layer q;
    q.disks.push_back({"virtio-disk0", 2, "vda"});
    return q;
}

qmp::tracker_options named() {
    qmp::tracker_options o;
    o.catalog.entries["vda"] = "virtio-disk0";
    return o;
}

// A connected tracker whose first resync is done.
struct connected {
    fake_block_layer q;
    qmp::threshold_tracker t;
    scripted_driver d;
    explicit connected(fake_block_layer layer = two_deep(), qmp::tracker_options o = named(),
                       std::optional<std::string> instance = std::string("pid:1"))
        : q(std::move(layer)), t(std::move(o)), d(q) {
        t.on_connected(instance);
        d.run(t);
        d.log.clear();
        d.saved.clear();
    }
};

}  // namespace

TEST_CASE("tracker: arming saves the intent before QEMU hears of it, then confirms" * doctest::test_suite("threshold")) {
    connected c;
    auto id = c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    // fresh marks, the intent on disk, the command, the confirmation on disk.
    CHECK(c.d.log == std::vector<std::string>{"graph", "save", "set vda-1-file 1048576", "save", "done " + std::to_string(id)});
    REQUIRE(c.d.saved.size() == 2);
    CHECK(c.d.saved[0].armed.at(0).state == qmp::armed_threshold::status::arming);
    CHECK(c.d.saved[1].armed.at(0).state == qmp::armed_threshold::status::armed);
    CHECK(c.q.thresholds["vda-1-file"] == MiB);
    CHECK(c.t.armed().at(0).where.indexed() == "vda[1]");
}

TEST_CASE("tracker: an intent that cannot be saved never reaches QEMU" * doctest::test_suite("threshold")) {
    connected c;
    c.d.fail_saves = std::make_error_code(std::errc::read_only_file_system);
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    CHECK(c.d.count("set") == 0);
    REQUIRE(c.d.done.size() == 1);
    CHECK(c.d.done[0].ec == std::errc::read_only_file_system);
    CHECK(c.t.armed().empty());
    CHECK(c.q.thresholds.count("vda-1-file") == 0);
}

TEST_CASE("tracker: a live event costs no graph query and is reported once" * doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda[2]", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    c.d.log.clear();
    auto ev = c.q.write("vda-0-file", 3 * MiB);
    REQUIRE(ev);
    c.t.on_threshold_event(*ev, {5, 6});
    c.d.run(c.t);
    CHECK(c.d.log == std::vector<std::string>{"save", "report live vda[2]"});
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].amount_exceeded == 2 * MiB);
    CHECK(c.d.events[0].time.seconds == 5);
    CHECK(!c.d.events[0].active);
    CHECK(c.t.armed()[0].state == qmp::armed_threshold::status::fired);
    // The same event again (e.g. after a resync found it): not reported twice.
    c.t.on_threshold_event(*ev, {5, 6});
    c.t.resync();
    c.d.run(c.t);
    CHECK(c.d.events.size() == 1);
}

TEST_CASE("tracker: fired while disconnected: recovered after the reconnect, amount from the mark" *
          doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    c.q.write("vda-1-file", 5 * MiB);  // the event went to nobody
    c.t.on_connected(std::string("pid:1"));
    c.d.run(c.t);
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::recovered);
    CHECK(c.d.events[0].amount_exceeded == 4 * MiB);
    CHECK(c.d.events[0].active);
    // Reported before the state says so? No: saved first, then reported.
    auto save = std::find(c.d.log.begin(), c.d.log.end(), "save");
    auto rep = std::find(c.d.log.begin(), c.d.log.end(), "report recovered vda[1]");
    CHECK(save < rep);
}

TEST_CASE("tracker: a restarted QEMU is re-armed, not reported as fired" * doctest::test_suite("threshold")) {
    for (bool known_instance : {true, false}) {
        CAPTURE(known_instance);
        connected c(two_deep(), named(), known_instance ? std::optional<std::string>("pid:1") : std::nullopt);
        c.q.marks["vda-1-file"] = 2 * MiB;  // some writes before arming
        c.t.arm("vda", qmp::threshold_spec::bytes(8 * MiB));
        c.d.run(c.t);
        // QEMU restarts: thresholds and marks start again at 0.
        c.q.thresholds.clear();
        c.q.marks.clear();
        c.d.log.clear();
        c.t.on_connected(known_instance ? std::optional<std::string>("pid:2") : std::nullopt);
        c.d.run(c.t);
        CHECK(c.d.events.empty());
        CHECK(c.d.count("set vda-1-file 8388608") == 1);
        CHECK(c.q.thresholds["vda-1-file"] == 8 * MiB);
        CHECK(c.t.armed()[0].state == qmp::armed_threshold::status::armed);
        if (known_instance) CHECK(c.t.stats().restarts == 1);
    }
    // Nothing written before the restart, and no instance to compare: QEMU
    // holds no threshold, no write went past it: re-armed, still no report.
    connected c(two_deep(), named(), std::nullopt);
    c.t.arm("vda", qmp::threshold_spec::bytes(8 * MiB));
    c.d.run(c.t);
    c.q.thresholds.clear();
    c.t.on_connected(std::nullopt);
    c.d.run(c.t);
    CHECK(c.d.events.empty());
    CHECK(c.q.thresholds["vda-1-file"] == 8 * MiB);
    CHECK(c.t.stats().rearmed_unexplained == 1);
}

TEST_CASE("tracker: a resync decides from the journal and the marks, only an audit reads write_threshold" *
          doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(8 * MiB));
    c.t.arm("vda[2]", qmp::threshold_spec::bytes(4 * MiB));
    c.d.run(c.t);
    // The same QEMU again (a reconnection, an agent restarted): the journal
    // vouches for what it armed; the marks say nothing fired.
    c.d.log.clear();
    c.d.resyncs_done.clear();
    c.d.resync_queries = 0;
    const auto resyncs_before = c.t.stats().resyncs;
    c.t.on_disconnected();
    c.t.on_connected(std::string("pid:1"));
    c.d.run(c.t);
    CHECK(c.d.log == std::vector<std::string>{"graph"});
    CHECK(!c.t.audit_owed());
    // Its query says it is for a resync, and its end is told (a runner times it).
    CHECK(c.d.resync_queries == 1);
    REQUIRE(c.d.resyncs_done.size() == 1);
    CHECK(!c.d.resyncs_done[0].audit);
    CHECK(c.d.resyncs_done[0].request == 0);  // the tracker's own, after a reconnection
    // A loss marker: the same cheap resync, and what fired meanwhile is found by its mark.
    c.q.marks["vda-1-file"] = 9 * MiB;
    c.d.log.clear();
    c.t.on_events_lost(3);
    c.d.run(c.t);
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::recovered);
    CHECK(c.d.count("graph+details") == 0);
    // What a resync cannot see: someone else cleared the other threshold.
    c.q.thresholds["vda-0-file"] = 0;
    c.d.log.clear();
    c.t.resync();
    c.d.run(c.t);
    CHECK(c.d.count("set") == 0);
    CHECK(c.t.stats().rearmed_unexplained == 0);
    // An audit reads it back and re-arms it (no write went past it: no report).
    c.d.events.clear();
    c.d.log.clear();
    c.t.audit();
    c.d.run(c.t);
    CHECK(c.d.count("graph+details") == 1);
    CHECK(c.d.count("set vda-0-file 4194304") == 1);
    CHECK(c.d.events.empty());
    CHECK(c.t.stats().rearmed_unexplained == 1);
    CHECK(c.t.stats().audits == 1);
    // Its end is told once the re-arming it decided was answered.
    REQUIRE(!c.d.resyncs_done.empty());
    CHECK(c.d.resyncs_done.back().audit);
    CHECK(c.d.resyncs_done.back().request != 0);
    CHECK(c.d.resyncs_done.size() == c.d.resync_queries);
    CHECK(c.d.resyncs_done.size() == c.t.stats().resyncs - resyncs_before);
    // Someone else re-armed it elsewhere: an audit follows QEMU.
    c.q.thresholds["vda-0-file"] = 5 * MiB;
    c.t.audit();
    c.d.run(c.t);
    for (const auto& a : c.t.armed())
        if (a.node == "vda-0-file") CHECK(a.threshold == 5 * MiB);
}

TEST_CASE("tracker: a QEMU the journal cannot vouch for is audited once, and only with something armed" *
          doctest::test_suite("threshold")) {
    // The transport cannot tell instances apart (TCP): every connection audits.
    connected c(two_deep(), named(), std::nullopt);
    CHECK(c.t.stats().audits == 0);  // nothing armed: nothing to audit
    c.t.arm("vda", qmp::threshold_spec::bytes(8 * MiB));
    c.d.run(c.t);
    c.d.log.clear();
    c.t.on_connected(std::nullopt);
    CHECK(c.t.audit_owed());
    c.d.run(c.t);
    CHECK(c.d.log == std::vector<std::string>{"graph+details"});
    CHECK(!c.t.audit_owed());
    // A state that recorded no instance (written elsewhere), then a QEMU that tells one: audited once.
    qmp::threshold_state s = c.t.state();
    s.instance.reset();
    connected c2(two_deep(), named(), std::string("pid:7"));
    c2.t.load(s);
    c2.d.log.clear();
    c2.t.on_connected(std::string("pid:7"));
    c2.d.run(c2.t);
    CHECK(c2.d.log.front() == "graph+details");
    c2.d.log.clear();
    c2.t.on_connected(std::string("pid:7"));
    c2.d.run(c2.t);
    CHECK(c2.d.log == std::vector<std::string>{"graph"});
    // Another instance: QEMU restarted, everything is re-armed without reading anything back.
    c2.d.log.clear();
    c2.q.thresholds.clear();
    c2.t.on_connected(std::string("pid:8"));
    c2.d.run(c2.t);
    CHECK(c2.d.count("graph+details") == 0);
    CHECK(c2.q.thresholds["vda-1-file"] == 8 * MiB);
}

TEST_CASE("tracker: audits coalesce with waiting resyncs, at most one queued" * doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(8 * MiB));
    c.d.run(c.t);
    c.d.log.clear();
    c.t.on_events_lost(1);
    c.t.audit_due();
    c.t.audit_due();
    c.t.on_events_lost(1);
    c.d.run(c.t);
    CHECK(c.d.count("graph") <= 2);  // both kinds
    CHECK(c.d.count("graph+details") == 1);
    CHECK(c.t.stats().audits == 1);
}

TEST_CASE("tracker: an intent cut off before its reply is sent again by a resync, adopted by an audit" *
          doctest::test_suite("threshold")) {
    connected c;
    c.d.connection_cut_after_set = true;  // QEMU armed it; we never heard
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    REQUIRE(c.t.armed().size() == 1);
    CHECK(c.t.armed()[0].state == qmp::armed_threshold::status::arming);  // the intent stays
    CHECK(c.d.done.back().ec == qmp::error::connection_closed);
    CHECK(c.q.thresholds["vda-1-file"] == MiB);
    c.d.connection_cut_after_set = false;
    c.d.log.clear();
    c.t.on_connected(std::string("pid:1"));
    c.d.run(c.t);
    // The journal cannot tell whether it reached QEMU: setting it again is harmless.
    CHECK(c.d.count("set vda-1-file 1048576") == 1);
    CHECK(c.t.armed()[0].state == qmp::armed_threshold::status::armed);
    CHECK(c.t.stats().audits == 0);
    // An audit reads QEMU's value instead: exactly the intent, adopted without a command.
    connected ca;
    ca.d.connection_cut_after_set = true;
    ca.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    ca.d.run(ca.t);
    ca.d.connection_cut_after_set = false;
    ca.d.log.clear();
    ca.t.on_connected(std::string("pid:1"), false);
    ca.t.audit();
    ca.d.run(ca.t);
    CHECK(ca.d.count("set") == 0);
    CHECK(ca.t.armed()[0].state == qmp::armed_threshold::status::armed);
    CHECK(ca.t.stats().audits == 1);
    // The other case: it never reached QEMU.
    connected c2;
    c2.d.connection_cut_after_set = true;
    c2.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c2.d.run(c2.t);
    c2.q.thresholds.clear();
    c2.d.connection_cut_after_set = false;
    c2.t.on_connected(std::string("pid:1"));
    c2.d.run(c2.t);
    CHECK(c2.q.thresholds["vda-1-file"] == MiB);
    REQUIRE(c2.t.armed().size() == 1);
    CHECK(c2.t.armed()[0].state == qmp::armed_threshold::status::armed);
    // A definite refusal is undone: nothing was armed.
    connected c3;
    c3.d.fail_set = qmp::server_error::generic_error;
    c3.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c3.d.run(c3.t);
    CHECK(c3.t.armed().empty());
    CHECK(c3.d.done.back().ec == qmp::server_error::generic_error);
    CHECK(c3.d.done.back().diag.message == "refused");
}

TEST_CASE("tracker: immediate below the allocation, gone after a commit" * doctest::test_suite("threshold")) {
    connected c;
    c.q.marks["vda-1-file"] = 3 * MiB;
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    CHECK(c.d.count("set") == 0);
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::immediate);
    CHECK(c.d.events[0].amount_exceeded == 2 * MiB);

    c.t.arm("vda[2]", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    // The top is committed into vda[2]: vda[1] leaves the chain.
    c.q.disks[0].depth = 1;
    c.d.events.clear();
    c.t.on_chain_may_have_changed();
    c.d.run(c.t);
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::gone);
    CHECK(c.d.events[0].where.indexed() == "vda[1]");
}

TEST_CASE("tracker: a graph whose query went out before a request began does not decide it" *
          doctest::test_suite("threshold")) {
    connected c;
    c.t.resync();
    auto a = c.t.next_action();  // the resync's query goes out ...
    REQUIRE(a);
    REQUIRE(std::holds_alternative<qmp::tracker_actions::query_graph>(*a));
    const auto early = c.q.graph(std::get<qmp::tracker_actions::query_graph>(*a).details != qmp::details_need::none);  // ... QEMU answers it ...
    c.q.marks["vda-1-file"] = 3 * MiB;  // ... then a job fills the volume and stops
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.t.on_graph(early);  // the early answer arrives after the arm began
    c.d.run(c.t);
    // Armed on the early graph, the threshold (1 MiB, below what is written)
    // would reach QEMU and never fire. Decided on a later one: immediate.
    CHECK(c.d.count("set vda-1-file") == 0);
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::immediate);
}

TEST_CASE("tracker: job events: the end of a job refreshes the graph once, other job news costs nothing" *
          doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.t.arm("vda[2]", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    c.d.log.clear();
    auto job = [](const char* name, qmp::json data) {
        qmp::event ev;
        ev.name = name;
        ev.data = std::move(data);
        return ev;
    };
    // A job runs: no graph query.
    c.t.on_event(job("JOB_STATUS_CHANGE", {{"id", "merge"}, {"status", "running"}}));
    c.t.on_event(job("BLOCK_JOB_READY", {{"device", "merge"}, {"type", "commit"}}));
    c.d.run(c.t);
    CHECK(c.d.log.empty());
    // The commit pivoted: the top left the chain; the job's end says so.
    c.q.disks[0].depth = 1;
    c.t.on_event(job("JOB_STATUS_CHANGE", {{"id", "merge"}, {"status", "concluded"}}));
    c.t.on_event(job("BLOCK_JOB_COMPLETED", {{"device", "merge"}, {"type", "commit"}, {"len", 1}, {"offset", 1}, {"speed", 0}}));
    c.d.run(c.t);
    CHECK(c.d.count("graph") == 1);  // two signs of one change: one refresh
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::gone);
    CHECK(c.d.events[0].where.indexed() == "vda[1]");
    CHECK(c.d.event_requests[0] == 0);  // the tracker's own finding: for whoever receives events
}

TEST_CASE("tracker: restarted from its saved state: what fired while it was down is recovered, once" *
          doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.t.arm("vda[2]", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    const qmp::threshold_state saved = c.t.state();
    // The agent is gone; a write crosses vda[2]'s threshold (the event goes to nobody).
    c.q.write("vda-0-file", 2 * MiB);
    qmp::threshold_tracker again(named());
    again.load(saved);
    scripted_driver d(c.q);
    again.on_connected(std::string("pid:1"));  // the same QEMU
    d.run(again);
    REQUIRE(d.events.size() == 1);
    CHECK(d.events[0].how == qmp::threshold_event::origin::recovered);
    CHECK(d.events[0].where.indexed() == "vda[2]");
    CHECK(d.event_requests[0] == 0);
    CHECK(d.count("set") == 0);  // vda[1] is still armed in QEMU: nothing sent again
    // An explicit resync finds nothing more; an arm below the allocation
    // is the arm's own answer (its request carries it).
    again.resync();
    d.run(again);
    CHECK(d.events.size() == 1);
    auto id = again.arm("vda[2]", qmp::threshold_spec::bytes(MiB / 2));
    d.run(again);
    REQUIRE(d.events.size() == 2);
    CHECK(d.events[1].how == qmp::threshold_event::origin::immediate);
    CHECK(d.event_requests[1] == id);
}

TEST_CASE("tracker: re-arm policies: step at once, on_extend when told" * doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB), qmp::rearm_policy::step, 2 * MiB);
    c.d.run(c.t);
    c.t.on_threshold_event(*c.q.write("vda-1-file", MiB + 4096), {});
    c.d.run(c.t);
    CHECK(c.q.thresholds["vda-1-file"] == 3 * MiB);
    CHECK(c.t.armed()[0].state == qmp::armed_threshold::status::armed);
    // A step the write already passed: reported at once, not armed behind it.
    c.t.on_threshold_event(*c.q.write("vda-1-file", 6 * MiB), {});
    c.d.run(c.t);
    CHECK(c.d.events.back().how == qmp::threshold_event::origin::immediate);

    connected e;
    e.t.arm("vda", qmp::threshold_spec::margin(MiB), qmp::rearm_policy::on_extend);
    e.d.run(e.t);
    CHECK(e.q.thresholds["vda-1-file"] == 63 * MiB);  // the storage's fixed size (64 MiB) less the margin
    e.t.on_threshold_event(*e.q.write("vda-1-file", 63 * MiB + 1), {});
    e.d.run(e.t);
    e.t.extended("vda", 128 * MiB);
    e.d.run(e.t);
    CHECK(e.q.thresholds["vda-1-file"] == 127 * MiB);
    CHECK(e.d.done.back().ec == std::error_code());
    // The caller's word stands where kept sizes would be older (here the
    // fake QEMU still says 64 MiB): a new arm and a report use it...
    e.t.arm("vda", qmp::threshold_spec::margin(2 * MiB), qmp::rearm_policy::on_extend);
    e.t.report();
    e.d.run(e.t);
    CHECK(e.q.thresholds["vda-1-file"] == 126 * MiB);
    CHECK(e.d.done.back().rows[0].capacity == std::optional<std::uint64_t>(128 * MiB));
    // ... until QEMU's sizes are read again.
    e.t.report(true);
    e.d.run(e.t);
    CHECK(e.d.log.back().rfind("done", 0) == 0);
    CHECK(e.d.count("graph+details") >= 1);
    CHECK(e.d.done.back().rows[0].capacity == std::optional<std::uint64_t>(64 * MiB));
}

TEST_CASE("tracker: capacity is the storage's fixed size, else the virtual size" * doctest::test_suite("threshold")) {
    fake_block_layer grows = two_deep();
    grows.storage_driver = "file";
    grows.storage_size = 200u << 10;  // a sparse file's length says nothing
    connected c(grows);
    c.t.arm("vda", qmp::threshold_spec::percent(50));
    c.t.report();
    c.d.run(c.t);
    CHECK(c.q.thresholds["vda-1-file"] == 32 * MiB);  // half the 64 MiB virtual size
    REQUIRE(!c.d.done.back().rows.empty());
    CHECK(c.d.done.back().rows[0].capacity_from == qmp::capacity_source::virtual_size);
    connected fixed;
    fixed.t.report();
    fixed.d.run(fixed.t);
    CHECK(fixed.d.done.back().rows[0].capacity_from == qmp::capacity_source::storage);
    // A byte offset on growing storage is not bounded by the virtual size.
    c.t.arm("vda", qmp::threshold_spec::bytes(65 * MiB));
    c.d.run(c.t);
    CHECK(!c.d.done.back().ec);
    c.t.arm("vda", qmp::threshold_spec::ppm(1));  // floors to a few bytes, not 0
    c.d.run(c.t);
    CHECK(!c.d.done.back().ec);
    fake_block_layer tiny = two_deep();
    tiny.storage_size = 100;
    connected z(tiny);
    z.t.arm("vda", qmp::threshold_spec::ppm(1));
    z.d.run(z.t);
    CHECK(z.d.done.back().ec == qmp::threshold_error::out_of_range);
    CHECK(z.d.done.back().diag.message.find("disarm") != std::string::npos);
}

TEST_CASE("tracker: loss markers coalesce, an unreadable threshold event is a loss" * doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    c.d.run(c.t);
    const auto before = c.t.stats().resyncs;
    // A flood reported before the driver ran anything: one resync covers it all.
    for (int i = 0; i < 100; ++i) c.t.on_events_lost(1);
    c.d.run(c.t);
    CHECK(c.t.stats().resyncs - before == 1);
    // Markers after its graph query went out make exactly one more.
    c.t.on_events_lost(1);
    auto first = c.t.next_action();
    REQUIRE(first);
    CHECK(std::holds_alternative<qmp::tracker_actions::query_graph>(*first));
    for (int i = 0; i < 100; ++i) c.t.on_events_lost(1);
    c.t.on_graph(c.q.graph(true));
    c.d.run(c.t);
    CHECK(c.t.stats().resyncs - before == 3);
    qmp::event bad;
    bad.name = "BLOCK_WRITE_THRESHOLD";
    bad.undecoded = R"({"node-name": "vda-1-file", "amount-exceeded": 1e999, "write-threshold": 1048576})";
    c.q.write("vda-1-file", 2 * MiB);
    c.t.on_event(bad);
    c.d.run(c.t);
    CHECK(c.t.stats().malformed_events == 1);
    CHECK(c.d.count("decode-error BLOCK_WRITE_THRESHOLD: BLOCK_WRITE_THRESHOLD: amount-exceeded: 1e999 does not fit") == 1);
    REQUIRE(c.d.events.size() == 1);
    CHECK(c.d.events[0].how == qmp::threshold_event::origin::recovered);
}

TEST_CASE("tracker: state saves and loads as validated JSON" * doctest::test_suite("threshold")) {
    connected c;
    c.t.arm("vda", qmp::threshold_spec::percent(50), qmp::rearm_policy::on_extend);
    c.d.run(c.t);
    qmp::json j = c.t.state();
    CHECK(j["format"] == "qmp-threshold-state");
    CHECK(j["version"] == 1);
    CHECK(j["instance"] == "pid:1");
    CHECK(j["armed"][0]["policy"] == "on-extend");
    CHECK(j["armed"][0]["state"] == "armed");
    CHECK(j["armed"][0]["spec"]["kind"] == "ppm");
    qmp::threshold_state back;
    REQUIRE(!qmp::convert(j, back));
    CHECK(qmp::json(back) == j);
    struct bad {
        std::string path;
        qmp::json value;
        const char* says;
    };
    for (const auto& b : std::vector<bad>{{"/armed/0/policy", 1.5, "armed[0].policy: expected a string, got a number"},
                                          {"/armed/0/state", "exploded", "unknown value 'exploded'"},
                                          {"/armed/0/threshold", -1, "negative"},
                                          {"/armed/0/target", "vda]", "invalid target"},
                                          {"/armed/0/spec/value", 2000000, "above 100%"},
                                          {"/version", 7, "version: 7"},
                                          {"/format", "other", "format:"},
                                          {"/registry/next", 4294967296.0, "not an integer"}}) {
        CAPTURE(b.path);
        qmp::json mod = j;
        mod[qmp::json::json_pointer(b.path)] = b.value;
        qmp::diagnostics d;
        CHECK(qmp::convert(mod, back, &d));
        CHECK(d.message.find(b.says) != std::string::npos);
    }
    qmp::json twice = j;
    twice["armed"].push_back(j["armed"][0]);
    qmp::diagnostics d;
    CHECK(qmp::convert(twice, back, &d));
    CHECK(d.message.find("armed twice") != std::string::npos);
}

TEST_CASE("tracker: concurrent writers merge: each side's changes survive" * doctest::test_suite("threshold")) {
    connected a, b;
    qmp::threshold_state base = a.t.state();
    a.t.arm("vda", qmp::threshold_spec::bytes(MiB));
    a.d.run(a.t);
    b.t.arm("vda[2]", qmp::threshold_spec::bytes(2 * MiB));
    b.d.run(b.t);
    auto merged = qmp::merge_states(base, a.t.state(), b.t.state());
    CHECK(merged.armed.size() == 2);
    // Merging a state with itself gives it back, order and all (found by fuzzing).
    CHECK(qmp::json(qmp::merge_states(merged, merged, merged)) == qmp::json(merged));
    // b later clears what it armed; a, unchanged since, takes that in.
    qmp::threshold_state b_before = merged;
    b.t.load(merged);
    b.t.disarm("vda[2]");
    b.d.run(b.t);
    auto merged2 = qmp::merge_states(b_before, merged, b.t.state());
    CHECK(merged2.armed.size() == 1);
    CHECK(merged2.armed[0].node == "vda-1-file");
}
