// What a peer can send the threshold layer: every event the tracker needs
// is read typed, in one place (threshold_tracker::role_of), so a member of
// the wrong type is a decode error and a resync, never an exception into
// the reader; and the numbers it hands out never wrap.
#include "../support/fake_block_layer.hpp"

#include <qmp/client/backoff.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/threshold/tracker.hpp>

#include <doctest/doctest.h>

#include <stdexcept>

using qmp_test::fake_block_layer;
using qmp_test::scripted_driver;

namespace {

// The event as the client hands it on: classified from QEMU's text.
qmp::event event_from(const std::string& name, const std::string& data) {
    qmp::message m;
    const std::string text = R"({"event": ")" + name + R"(", "data": )" + data +
                             R"(, "timestamp": {"seconds": 1, "microseconds": 2}})";
    REQUIRE(!qmp::classify(text, m));
    return m.event;
}

}  // namespace

TEST_CASE("tracker: hostile data in the events it needs is a decode error and a resync, never an exception" *
          doctest::test_suite("threshold")) {
    struct hostile {
        std::string name, data;
    };
    const hostile unreadable[] = {
        {"JOB_STATUS_CHANGE", R"({"id": "j", "status": 1})"},
        {"JOB_STATUS_CHANGE", R"({"id": 7, "status": "concluded"})"},
        {"JOB_STATUS_CHANGE", R"({"status": "concluded"})"},
        {"JOB_STATUS_CHANGE", R"([1, 2])"},
        {"JOB_STATUS_CHANGE", R"("concluded")"},
        {"JOB_STATUS_CHANGE", R"(null)"},
        {"BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-1-file", "amount-exceeded": 18446744073709551616, "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-1-file", "amount-exceeded": -1, "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-1-file", "amount-exceeded": "1", "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-1-file", "amount-exceeded": 1e999, "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-1-file", "amount-exceeded": 1.5, "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"({"node-name": 3, "amount-exceeded": 1, "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"({"amount-exceeded": 1, "write-threshold": 1})"},
        {"BLOCK_WRITE_THRESHOLD", R"([])"},
    };
    const qmp::event_filter interest = qmp::threshold_tracker::interest();
    for (const auto& h : unreadable) {
        CAPTURE(h.name);
        CAPTURE(h.data);
        const qmp::event ev = event_from(h.name, h.data);
        bool wanted = false;
        CHECK_NOTHROW(wanted = interest.matches(ev));
        CHECK(wanted);  // taken, so that it leads to a resync instead of vanishing
        CHECK(qmp::threshold_tracker::role_of(ev) != qmp::threshold_tracker::event_role::none);

        fake_block_layer q;
        q.disks.push_back({"virtio-disk0", 2, "vda"});
        qmp::threshold_tracker t;
        scripted_driver d(q);
        t.on_connected(std::string("pid:1"));
        d.run(t);
        d.log.clear();
        CHECK_NOTHROW(t.on_event(ev));
        d.run(t);
        REQUIRE(d.count("decode-error " + h.name) == 1);
        CHECK(d.count("graph") == 1);  // the resync
        CHECK(t.stats().malformed_events == 1);
    }
    // Job news the tracker does not act on costs nothing, and the end of a
    // job or a device is acted on whatever its data says.
    CHECK(qmp::threshold_tracker::role_of(event_from("JOB_STATUS_CHANGE", R"({"id": "j", "status": "running"})")) ==
          qmp::threshold_tracker::event_role::none);
    CHECK_FALSE(interest.matches(event_from("JOB_STATUS_CHANGE", R"({"id": "j", "status": "running"})")));
    CHECK(qmp::threshold_tracker::role_of(event_from("JOB_STATUS_CHANGE", R"({"id": "j", "status": "concluded"})")) ==
          qmp::threshold_tracker::event_role::chain_changed);
    CHECK(qmp::threshold_tracker::role_of(event_from("DEVICE_DELETED", R"({"path": 5})")) ==
          qmp::threshold_tracker::event_role::chain_changed);
    CHECK(qmp::threshold_tracker::role_of(event_from("BLOCK_JOB_COMPLETED", R"("garbage")")) ==
          qmp::threshold_tracker::event_role::chain_changed);
    CHECK_FALSE(interest.matches(event_from("STOP", R"({})")));
}

TEST_CASE("router: a predicate that throws takes the event, and nothing escapes into the reader" *
          doctest::test_suite("protocol")) {
    qmp::event_router r;
    qmp::event_filter f;
    f.predicate = [](const qmp::event&) -> bool { throw std::runtime_error("a user's bug"); };
    auto sub = r.add(f, 4);
    qmp::event ev;
    ev.name = "STOP";
    std::size_t took = 0;
    CHECK_NOTHROW(took = r.push(ev));
    CHECK(took == 1);
    CHECK(r.queue(sub)->size() == 1);
}

TEST_CASE("index registry: never wraps, never hands out a number twice or 0" * doctest::test_suite("block")) {
    qmp::index_registry reg;
    qmp::diagnostics why;
    // A saved registry at the very end of the numbers (valid: nothing is left).
    REQUIRE(!qmp::convert_text(R"({"next": 4294967295, "nodes": {"a-fmt": 4294967294}})", reg, &why));
    std::vector<qmp::disk_chain> disks(1);
    disks[0].name = "vda";
    for (const char* n : {"a-fmt", "b-fmt", "c-fmt", "d-fmt"}) {
        qmp::chain_element el;
        el.format_node = n;
        el.storage_node = std::string(n) + "-file";
        disks[0].elements.push_back(el);
    }
    reg.assign(disks);
    CHECK(disks[0].elements[0].index == 4294967294u);  // the one it had
    for (std::size_t i = 1; i < 4; ++i) CHECK(disks[0].elements[i].index == 0);  // none left: no index, not a reused one
    CHECK(reg.next() == 4294967295u);
    CHECK(reg.size() == 1);
    // A libvirt name cannot claim the end either.
    CHECK_FALSE(qmp::index_registry::libvirt_index("libvirt-4294967295-format"));
    CHECK(qmp::index_registry::libvirt_index("libvirt-4294967294-format") == 4294967294u);
    // And a registry whose `next` says 0 or is below a number it gave is refused.
    CHECK(qmp::convert_text(R"({"next": 0, "nodes": {}})", reg, &why));
    CHECK(qmp::convert_text(R"({"next": 5, "nodes": {"x": 5}})", reg, &why));
    CHECK(qmp::convert_text(R"({"next": 4294967296, "nodes": {}})", reg, &why));
}

TEST_CASE("tracker: an element left without an index cannot be armed, and says why" * doctest::test_suite("threshold")) {
    fake_block_layer q;
    q.disks.push_back({"virtio-disk0", 2, "vda"});
    qmp::threshold_state full;
    qmp::diagnostics why;
    REQUIRE(!qmp::convert_text(R"({"format": "qmp-threshold-state", "version": 1, "registry": {"next": 4294967295, "nodes": {}}, "armed": []})",
                               full, &why));
    qmp::tracker_options o;
    o.catalog.entries["vda"] = "virtio-disk0";
    qmp::threshold_tracker t(o);
    t.load(full);
    scripted_driver d(q);
    t.on_connected(std::string("pid:1"));
    d.run(t);
    t.arm("vda", qmp::threshold_spec::bytes(1u << 20));
    d.run(t);
    REQUIRE(d.done.size() == 1);
    CHECK(d.done[0].ec == qmp::block_error::registry_full);
    CHECK(d.done[0].diag.message.find("no index") != std::string::npos);
    CHECK(d.count("set") == 0);
}

TEST_CASE("backoff: doubling waits up to the maximum, jitter shortens them, the total ends the series" *
          doctest::test_suite("client")) {
    using namespace std::chrono_literals;
    const auto t0 = qmp::backoff_series::clock::now();
    qmp::backoff_series plain(qmp::backoff{10ms, 50ms, 0.0, 0ms}, t0);
    std::vector<long long> waits;
    for (int i = 0; i < 5; ++i) waits.push_back(plain.next(t0)->count());
    CHECK(waits == std::vector<long long>{10, 20, 40, 50, 50});
    CHECK(plain.failures() == 5);
    plain.reset(t0);
    CHECK(plain.next(t0)->count() == 10);

    qmp::backoff_series jittered(qmp::backoff{1000ms, 1000ms, 0.5, 0ms}, t0);
    bool varied = false;
    long long first = jittered.next(t0)->count();
    for (int i = 0; i < 50; ++i) {
        const long long w = jittered.next(t0)->count();
        CHECK(w > 500);
        CHECK(w <= 1000);
        varied = varied || w != first;
    }
    CHECK(varied);

    qmp::backoff_series bounded(qmp::backoff{10ms, 100ms, 0.0, 35ms}, t0);
    CHECK(bounded.next(t0)->count() == 10);            // ends at 10 ms
    CHECK(bounded.next(t0 + 10ms)->count() == 20);     // ends at 30 ms
    CHECK_FALSE(bounded.next(t0 + 30ms).has_value());  // 40 ms more would end past 35 ms
}
