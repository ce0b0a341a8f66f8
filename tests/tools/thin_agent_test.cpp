// qmp-thin-agent against real QEMU 7.2 and 10.0: two VMs on thin storage
// (size-limited raw nodes) that a hook grows through a second QMP monitor
// of the same VM, as lvextend would from outside; every write succeeds;
// the metrics endpoint serves what happened; SIGTERM ends it with 0.
#include "../support/thin_agent.hpp"

#include <support/process.hpp>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using namespace qmp_support;

#ifdef QMP_BIN_DIR

using namespace qmp_test;

TEST_CASE("qmp-thin-agent: kill -9 and restart loses nothing, a stopped VM delays no other, SIGHUP adds and drops" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        fleet f(b, 2);
        const std::string list = f.work.file("vms");
        auto write_list = [&](int n) {
            std::ofstream l(list);
            l << "# NAME=SOCKET\n";
            for (int i = 0; i < n; ++i) l << "vm" << i << "=" << f.socket(i) << "\n";
        };
        write_list(1);
        auto start = [&] {
            return spawn({qmp_test::thin_agent(), "--vms-file", list, "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                          "--state-dir", f.work.path().string()},
                         f.out, f.err);
        };
        pid_t agent = start();
        INFO(read_file(f.err));
        INFO(read_file(f.out));
        REQUIRE(wait_for([&] { return lines(f.out, "armed", "vm0").size() == 1; }));
        // SIGHUP: vm1 joins.
        write_list(2);
        ::kill(agent, SIGHUP);
        REQUIRE(wait_for([&] { return lines(f.out, "armed", "vm1").size() == 1; }));

        // kill -9; the guest crosses its threshold while no agent runs.
        ::kill(agent, SIGKILL);
        wait_exit(agent);
        REQUIRE(f.vms[0]->q->nbd_write(0, 12u << 20) == 0);
        // vm1's QEMU is stopped (SIGSTOP): its socket accepts, nothing answers.
        ::kill(f.vms[1]->q->process().pid(), SIGSTOP);
        agent = start();  // the same state folder; its stdout starts afresh
        // vm0's firing is recovered and extended once, however long vm1 hangs.
        REQUIRE(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }, 30s));
        auto t = lines(f.out, "threshold", "vm0");
        REQUIRE(t.size() == 1);
        CHECK(t[0]["recovered"] == true);
        CHECK(lines(f.out, "connected", "vm1").empty());
        REQUIRE(f.hook_calls("vm0").size() == 1);
        const std::string call = f.hook_calls("vm0")[0];
        CHECK(call.substr(call.size() - 2) == " 1");  // QMP_RECOVERED=1
        ::kill(f.vms[1]->q->process().pid(), SIGCONT);
        CHECK(wait_for([&] { return lines(f.out, "connected", "vm1").size() == 1; }, 60s));
        // Nothing is extended twice for one firing, and nothing was armed
        // twice: the state said what QEMU holds.
        std::this_thread::sleep_for(500ms);
        CHECK(f.hook_calls("vm0").size() == 1);
        CHECK(lines(f.out, "armed", "vm0").empty());  // it was armed, then re-armed by the extension only
        // SIGHUP: vm1 leaves.
        write_list(1);
        ::kill(agent, SIGHUP);
        CHECK(wait_for([&] { return lines(f.out, "removed", "vm1").size() == 1; }));
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

TEST_CASE("qmp-thin-agent: two VMs on thin storage keep writing, a hook grows it, metrics, SIGTERM" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        fleet f(b, 2);
        auto& vms = f.vms;
        auto& second = f.second;
        auto& work = f.work;
        const std::string& hook = f.hook;
        const unsigned short port = free_port();
        const std::string& out = f.out;
        const std::string& err = f.err;
        pid_t agent = spawn({qmp_test::thin_agent(), "--vm", "vm0=" + vms[0]->q->qmp_path(), "--vm", "vm1=" + vms[1]->q->qmp_path(),
                             "--spec", "end-6M", "--extend-cmd", "sh " + hook, "--state-dir", work.path().string(),
                             "--metrics", "127.0.0.1:" + std::to_string(port)},
                            out, err);
        INFO(read_file(err));
        INFO(read_file(out));
        REQUIRE(wait_for([&] { return lines(out, "armed").size() == 2; }));
        // Each guest writes 56 MiB (of its 64 MiB disk) in 4 MiB bursts into
        // a 16 MiB window: only extensions in time keep every write working.
        for (std::uint64_t at = 0; at < (56u << 20); at += 4u << 20)
            for (auto& vm : vms) {
                std::string text;
                REQUIRE_MESSAGE(vm->q->nbd_write(at, 4u << 20, &text) == 0, "at " << at << ": " << text);
                // A burst may only start once the agent kept up; it does
                // so in milliseconds, the guests just wait for it here.
                wait_for([&] { return lines(out, "extended").size() >= lines(out, "threshold").size(); }, 10s);
            }
        for (const char* name : {"vm0", "vm1"}) {
            CAPTURE(name);
            CHECK(lines(out, "threshold", name).size() >= 2);
            CHECK(lines(out, "extended", name).size() >= 2);
            auto t = lines(out, "threshold", name).at(0);
            // No catalog: the disk is listed under its root node.
            CHECK(t["target"] == "vda-1-fmt[1]");
            CHECK(t["node"] == "vda-1-thin");
            CHECK(t["recovered"] == false);
        }
        CHECK(lines(out, "extend-failed").empty());
        CHECK(read_file(work.file("hook.log")).find("vm1 vda-1-fmt[1] vda-1-thin 16777216 0") != std::string::npos);
        // The state is on disk, one file per VM.
        CHECK(read_file(work.file("vm0.json")).find("\"qmp-threshold-state\"") != std::string::npos);

        // A live merge on vm0: the top is committed into vda[2] (the base,
        // 16 MiB of thin storage), through the second monitor as a
        // management layer would start it. The agent arms the base while the
        // job runs and keeps it extended; a pause on a full volume is resumed.
        std::string text;
        REQUIRE_MESSAGE(run({qmpctl(), "-s", second[0], "exec", "block-commit",
                             R"({"job-id": "merge", "device": "vda-1-fmt", "top-node": "vda-1-fmt",
                                 "base-node": "vda-0-fmt", "speed": 33554432, "on-error": "stop"})"},
                            &text) == 0,
                        text);
        std::string jobs;
        bool ready = wait_for(
            [&] {
                jobs.clear();
                run({qmpctl(), "-s", second[0], "exec", "query-block-jobs"}, &jobs);
                auto j = nlohmann::json::parse(jobs, nullptr, false);
                return j.is_array() && j.size() == 1 && j[0].value("ready", false);
            },
            60s);
        if (!ready) {
            std::string nodes;
            run({qmpctl(), "-s", second[0], "exec", "query-named-block-nodes"}, &nodes);
            auto j = nlohmann::json::parse(nodes, nullptr, false);
            if (j.is_array())
                for (auto& n : j) jobs += "\n" + n.value("node-name", "") + " threshold " + std::to_string(n.value("write_threshold", 0));
            std::string st;
            run({qmpctl(), "-s", second[0], "exec", "query-blockstats", R"({"query-nodes": true})"}, &st);
            j = nlohmann::json::parse(st, nullptr, false);
            if (j.is_array())
                for (auto& n : j) jobs += "\n" + n.value("node-name", "") + " wr " + std::to_string(n["stats"].value("wr_highest_offset", 0));
        }
        CHECK_MESSAGE(ready, jobs);  // every byte of the top reached the base
        bool base_armed = false, base_extended = false;
        for (const auto& l : lines(out, "armed", "vm0")) base_armed |= l.value("job", "") == "merge" && l["target"] == "vda-1-fmt[2]";
        for (const auto& l : lines(out, "extended", "vm0")) base_extended |= l["target"] == "vda-1-fmt[2]";
        CHECK(base_armed);
        CHECK(base_extended);
        REQUIRE(run({qmpctl(), "-s", second[0], "exec", "block-job-cancel", R"({"device": "merge", "force": true})"}, &text) == 0);

        const std::string metrics = http_get(port, "/metrics");
        CHECK(metrics.find("HTTP/1.1 200 OK") == 0);
        CHECK(metrics.find("# TYPE qmp_thin_extensions_ok_total counter") != std::string::npos);
        CHECK(metrics.find("qmp_thin_connected{vm=\"vm0\"} 1") != std::string::npos);
        CHECK(metrics.find("qmp_thin_capacity_bytes{vm=\"vm1\",target=\"vda-1-fmt[1]\"}") != std::string::npos);
        CHECK(http_get(port, "/other").find("404") != std::string::npos);
#ifdef QMP_PROMTOOL
        {  // what a real scraper makes of it
            const std::string body = metrics.substr(metrics.find("\r\n\r\n") + 4);
            const std::string file = work.file("metrics.txt");
            std::ofstream(file) << body;
            std::string verdict;
            CHECK_MESSAGE(run({"sh", "-c", std::string("'") + QMP_PROMTOOL + "' check metrics < '" + file + "'"}, &verdict) == 0,
                          verdict);
        }
#endif

        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}


TEST_CASE("qmp-thin-agent: a guest paused on ENOSPC is resumed after the extension" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        // A guest writes its 32 MiB disk from start to end into an 8 MiB
        // window; the hook waits until QEMU has stopped the guest on the full
        // window (werror=enospc, status io-error), then grows it by 32 MiB.
        fleet f(b, 1, true, 1);
        pid_t agent = spawn({qmp_test::thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-4M", "--extend-cmd", "sh " + f.hook},
                            f.out, f.err);
        INFO(read_file(f.err));
        INFO(read_file(f.out));
        REQUIRE(wait_for([&] { return lines(f.out, "armed", "vm0").size() == 1; }));
        std::string text;
        REQUIRE_MESSAGE(run({qmpctl(), "-s", f.second[0], "exec", "cont"}, &text) == 0, text);
        CHECK(wait_for([&] { return lines(f.out, "paused", "vm0").size() == 1; }, 120s));
        CHECK(wait_for([&] { return lines(f.out, "resumed", "vm0").size() == 1; }));
        CHECK(lines(f.out, "paused", "vm0").at(0)["reason"] == "ENOSPC");
        CHECK(lines(f.out, "extended", "vm0").size() == 1);
        // The disk is the IDE device with id "vda" (its backend has no name
        // of its own); the boot disk, a device without an id, is another.
        CHECK(lines(f.out, "threshold", "vm0").at(0)["target"] == "vda[2]");
        // Resumed: the guest writes on to the end of its disk (1024 requests
        // of 32 KiB, then BIOS refuses the first one past the end: status 1),
        // with no further pause and no write QEMU failed.
        //
        // One thing is not the agent's: on a loaded machine, SeaBIOS's PIO
        // loop sometimes gives up on the request QEMU held across the pause
        // (status 0x0c, "bad track") right after QEMU completed the held
        // sector, and once more after a disk reset, although QEMU reported
        // no failure (failed_wr_operations stays 0). The guest resets the
        // disk and retries the request, as a driver would (at most 3 times);
        // retries are allowed for that one request only.
        std::string log;
        CHECK(wait_for([&] { return (log = read_file(f.vms[0]->guest_log())).find('E') != std::string::npos; }, 120s));
        std::string stats;
        run({qmpctl(), "-s", f.second[0], "exec", "query-blockstats"}, &stats);
        INFO("the guest's report: " << log.size() << " bytes, ending "
                                    << nlohmann::json(log.substr(log.size() > 8 ? log.size() - 8 : 0)).dump());
        INFO("the devices' statistics: " << stats);
        std::string failed;                  // "status@request" for each request BIOS failed
        std::set<std::ptrdiff_t> retried;    // requests retried
        for (std::size_t i = 0; i + 1 < log.size(); ++i)
            if (log[i] == 'R' || log[i] == 'E') {
                auto at = std::count(log.begin(), log.begin() + static_cast<std::ptrdiff_t>(i), '.');
                failed += " " + std::to_string(static_cast<unsigned char>(log[i + 1])) + "@" + std::to_string(at);
                if (log[i] == 'R') retried.insert(at);
            }
        if (!retried.empty()) MESSAGE("QEMU " << b.label << ": BIOS failed requests (status@request):" << failed);
        CHECK(std::count(log.begin(), log.end(), '.') == 1024);
        CHECK(log.substr(log.size() - 2) == "E\x01");
        CHECK(retried.size() <= 1);
        int devices = 0;
        for (const auto& dev : nlohmann::json::parse(stats))
            if (dev.value("qdev", "") == "vda") {
                ++devices;
                CHECK(dev["stats"]["failed_wr_operations"] == 0);
            }
        CHECK(devices == 1);
        REQUIRE(run({qmpctl(), "-s", f.second[0], "exec", "query-status"}, &text) == 0);
        CHECK(nlohmann::json::parse(text)["status"] == "running");
        CHECK(lines(f.out, "paused", "vm0").size() == 1);
        CHECK(lines(f.out, "extend-failed").empty());
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

#endif
