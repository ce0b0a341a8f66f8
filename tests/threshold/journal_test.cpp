// The threshold journal: the one way state reaches disk, shared by every
// process that keeps state for one VM (the agent, qmpctl, an application):
// saves merge what another writer changed, a held lock serialises a whole
// read-modify-write, the file work can run off the thread that serves the
// VMs, and a service takes in another writer's threshold before it judges
// that threshold's firing.
#include "../support/recorded.hpp"

#include <qmp/client/basic_client.hpp>
#include <qmp/testing.hpp>
#include <qmp/threshold/journal.hpp>
#include <qmp/threshold/service.hpp>

#include <support/process.hpp>

#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>

using namespace std::chrono_literals;

namespace {

qmp::armed_threshold entry(const std::string& node, std::uint32_t index, std::uint64_t threshold) {
    qmp::armed_threshold a;
    a.where = qmp::target{"vda", index};
    a.node = node;
    a.spec = qmp::threshold_spec::bytes(threshold);
    a.threshold = threshold;
    a.state = qmp::armed_threshold::status::armed;
    return a;
}

bool has(const qmp::threshold_state& s, const std::string& node) {
    for (const auto& a : s.armed)
        if (a.node == node) return true;
    return false;
}

}  // namespace

TEST_CASE("journal: two writers of one file each keep what they changed" * doctest::test_suite("threshold")) {
    qmp_support::temp_dir dir;
    const std::string file = dir.file("vm.json");
    qmp::threshold_journal a(file), b(file);
    qmp::threshold_state sa, sb;
    REQUIRE(!a.load(sa));  // no file yet: a fresh state
    REQUIRE(!b.load(sb));
    sa.armed.push_back(entry("n1", 1, 100));
    REQUIRE(!a.save(sa));
    CHECK(b.changed_on_disk());
    sb.armed.push_back(entry("n2", 2, 200));
    REQUIRE(!b.save(sb));  // merges a's change: b did not touch n1
    CHECK(has(sb, "n1"));
    CHECK(has(sb, "n2"));
    // a takes in b's change without writing.
    std::optional<qmp::threshold_state> theirs;
    qmp::threshold_state base;
    REQUIRE(!a.read_changes(theirs, base));
    REQUIRE(theirs);
    CHECK(has(*theirs, "n2"));
    const qmp::threshold_state merged = qmp::merge_states(base, sa, *theirs);
    CHECK(has(merged, "n1"));
    CHECK(has(merged, "n2"));
    CHECK_FALSE(a.changed_on_disk());
    REQUIRE(!a.read_changes(theirs, base));
    CHECK_FALSE(theirs);  // nothing new
    // a removes n1, b changes n2's threshold: both stand.
    sa = merged;
    sa.armed.erase(sa.armed.begin());
    REQUIRE(!a.save(sa));
    for (auto& e : sb.armed)
        if (e.node == "n2") e.threshold = 300;
    REQUIRE(!b.save(sb));
    qmp::threshold_state on_disk;
    REQUIRE(!qmp::threshold_journal(file).load(on_disk));
    REQUIRE(on_disk.armed.size() == 1);
    CHECK(on_disk.armed[0].node == "n2");
    CHECK(on_disk.armed[0].threshold == 300);
}

TEST_CASE("journal: a held lock serialises a read-modify-write, others wait, then time out, saying who holds it" *
          doctest::test_suite("threshold")) {
    qmp_support::temp_dir dir;
    const std::string file = dir.file("vm.json");
    qmp::threshold_journal holder(file), other(file, 200ms);
    qmp::threshold_state s;
    REQUIRE(!holder.lock());
    REQUIRE(!holder.load(s));
    s.armed.push_back(entry("n1", 1, 100));
    REQUIRE(!holder.save(s));  // under its own lock: written as it is
    qmp::threshold_state t;
    REQUIRE(!other.load(t));  // reading needs no lock
    CHECK(has(t, "n1"));
    qmp::diagnostics why;
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(other.save(t, &why) == qmp::threshold_error::journal_failed);
    CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
    CHECK(why.message.find("another process holds") != std::string::npos);
    holder.unlock();
    CHECK(!other.save(t));
}

TEST_CASE("journal: what cannot be read is said, naming the file or the member" * doctest::test_suite("threshold")) {
    qmp_support::temp_dir dir;
    qmp::threshold_state s;
    qmp::diagnostics why;
    CHECK(qmp::threshold_journal(dir.path().string()).load(s, &why) == qmp::threshold_error::journal_failed);
    CHECK(why.message.find("Is a directory") != std::string::npos);
    const std::string bad = dir.file("bad.json");
    std::ofstream(bad) << R"({"format": "qmp-threshold-state", "version": 1, "registry": {"next": 1, "nodes": {}}, "armed": [{"node": 5}]})";
    CHECK(qmp::threshold_journal(bad).load(s, &why) == qmp::threshold_error::invalid_state);
    CHECK(why.message.find(bad) != std::string::npos);
    CHECK(why.message.find("armed[0]") != std::string::npos);
}

TEST_CASE("journal: a save prepared here, run on another thread, finished here" * doctest::test_suite("threshold")) {
    qmp_support::temp_dir dir;
    const std::string file = dir.file("vm.json");
    qmp::threshold_journal j(file), other(file);
    qmp::threshold_state mine, theirs;
    REQUIRE(!j.load(mine));
    REQUIRE(!other.load(theirs));
    theirs.armed.push_back(entry("n2", 2, 200));
    REQUIRE(!other.save(theirs));
    mine.armed.push_back(entry("n1", 1, 100));
    auto job = j.prepare_save(mine);
    const auto here = std::this_thread::get_id();
    std::thread::id ran_on;
    std::thread([&] {
        ran_on = std::this_thread::get_id();
        job.run();
    }).join();
    CHECK(ran_on != here);
    qmp::threshold_state written;
    REQUIRE(!j.finish_save(job, written));
    CHECK(has(written, "n1"));
    CHECK(has(written, "n2"));
    CHECK_FALSE(j.changed_on_disk());
}

#ifdef QMP_TEST_DATA_DIR

TEST_CASE("journal: a service saves off its thread, and takes in another writer's threshold before judging its firing" *
          doctest::test_suite("threshold")) {
    qmp_support::temp_dir dir;
    const std::string file = dir.file("vm.json");
    asio::io_context io;
    asio::thread_pool pool(1);
    qmp::testing::peer qemu;
    qmp_test::answer_as_recorded(qemu);
    qmp::basic_client<qmp::testing::stream> client(io);
    qmp::threshold_service_options o;
    o.tracker.catalog.entries["vda"] = "virtio-disk0";
    o.journal = std::make_shared<qmp::threshold_journal>(file);
    o.journal_executor = pool.get_executor();
    qmp::basic_threshold_service<qmp::basic_client<qmp::testing::stream>> svc(client, o);
    auto settle = [&] {
        for (int i = 0; i < 2000; ++i) {
            io.restart();
            const std::size_t n = io.poll();
            if (n == 0 && !svc.busy()) return;
            if (n == 0) std::this_thread::sleep_for(1ms);  // a save on the pool's thread
        }
    };
    client.async_connect(qemu.endpoint(), [&](std::error_code ec) {
        REQUIRE(!ec);
        svc.on_connected();
    });
    settle();
    std::error_code armed_ec = qmp::error::timeout;
    svc.async_arm("vda", qmp::threshold_spec::bytes(1u << 30), [&](std::error_code ec, std::vector<qmp::threshold_event>) {
        armed_ec = ec;
    });
    settle();
    REQUIRE(!armed_ec);
    CHECK(svc.stats().saves >= 2);  // the intent, then its confirmation
    qmp::threshold_state on_disk;
    REQUIRE(!qmp::threshold_journal(file).load(on_disk));
    REQUIRE(on_disk.armed.size() == 1);
    CHECK(on_disk.armed[0].state == qmp::armed_threshold::status::armed);

    // Another process arms the second element through the same file ...
    qmp::threshold_journal other(file);
    qmp::threshold_state s;
    REQUIRE(!other.load(s));
    auto second = entry("vda-1-file", 2, 4096);
    second.where = qmp::target{"vda", 2};
    s.armed.push_back(second);
    REQUIRE(!other.save(s));
    // ... and QEMU fires it: the service reports it as one of its state's.
    std::optional<qmp::threshold_event> got;
    svc.async_receive([&](std::error_code ec, qmp::threshold_event e) {
        if (!ec) got = e;
    });
    qemu.event("BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-1-file", "amount-exceeded": 512, "write-threshold": 4096})");
    settle();
    REQUIRE(got);
    CHECK(got->tracked);
    CHECK(got->node == "vda-1-file");
    CHECK(svc.stats().taken_from_disk == 1);
    // Its save kept both thresholds.
    REQUIRE(!qmp::threshold_journal(file).load(on_disk));
    CHECK(on_disk.armed.size() == 2);
    svc.stop();
    client.close();
    settle();
    pool.join();
}

#endif
