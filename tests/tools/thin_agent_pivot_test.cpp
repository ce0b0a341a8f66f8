// qmp-thin-agent and the pivot race (vdsm met it as a VM left paused): the
// hook for the active layer is still running when a live merge pivots and
// that layer leaves the chain. The agent must arm what the chain has now,
// resume the guest it found paused on ENOSPC without waiting for the old
// hook, and, when that hook ends (successful, or failed because the
// orchestrator deleted the old nodes), abandon the extension: no re-arming,
// no second run. One event per firing, never one under the disk's bare name.
#include "../support/thin_agent.hpp"

#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <fstream>

#ifdef QMP_BIN_DIR

using namespace qmp_test;

namespace {

// A short session on a monitor (the agent holds the first one; the hook
// uses the second too, so the test never keeps it).
qmp::json on_monitor(const std::string& socket, const std::string& command, const qmp::json& args = qmp::json::object()) {
    qmp::sync_client side;
    side.connect(asio::local::stream_protocol::endpoint(socket));
    return side.execute(command, args);
}

std::size_t count_lines(const std::string& file, const std::string& needle) {
    std::ifstream f(file);
    std::string line;
    std::size_t n = 0;
    while (std::getline(f, line)) n += line.find(needle) != std::string::npos;
    return n;
}

}  // namespace

TEST_CASE("qmp-thin-agent: a live merge pivots while the active layer's hook runs: the guest goes on, the extension is abandoned" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        for (const bool delete_old : {false, true}) {
            CAPTURE(b.label);
            CAPTURE(delete_old);
            // vda is vda-0 <- vda-1, each in an
            // 8 MiB window; the guest writes its 32 MiB disk from start to
            // end. The hook logs each start; for the active layer's node it
            // then waits for the test's word (an lvextend stuck on the
            // storage) before it grows anything.
            temp_dir side;
            const std::string go = side.file("go"), starts = side.file("starts.log");
            const std::string prelude = "echo \"$QMP_TARGET $QMP_NODE\" >> '" + starts +
                                        "'\nif [ \"$QMP_NODE\" = vda-1-thin ]; then for i in $(seq 1200); do [ -e '" + go +
                                        "' ] && break; sleep 0.05; done; fi\n";
            // Indexes by first sight, top to base: the boot disk is [1], vda's
            // active layer vda[2], its base vda[3].
            fleet f(b, 1, true, 0, prelude);
            pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-4M", "--extend-cmd", "sh " + f.hook},
                                f.out, f.err);
            INFO(read_file(f.err));
            INFO(read_file(f.out));
            INFO(read_file(starts));
            REQUIRE(f.armed(0));
            on_monitor(f.second[0], "cont");
            // The active layer fires, its hook hangs, the guest fills the window and QEMU stops it.
            REQUIRE(wait_for([&] { return count_lines(starts, "vda-1-thin") == 1; }, 120s));
            REQUIRE(wait_for([&] { return lines(f.out, "paused", "vm0").size() == 1; }, 120s));

            // The orchestrator's live merge: it grows the base first (as
            // vdsm does before a merge), commits the active layer into it,
            // and pivots.
            on_monitor(f.second[0], "blockdev-reopen",
                       {{"options",
                         {{{"driver", "raw"}, {"node-name", "vda-0-thin"}, {"file", "vda-0-file"}, {"offset", 0}, {"size", 24u << 20}}}}});
            on_monitor(f.second[0], "block-commit", {{"device", "vda-1-fmt"}, {"job-id", "merge"}});
            auto job_ready = [&] {
                for (const auto& j : on_monitor(f.second[0], "query-block-jobs"))
                    if (j.value("device", "") == "merge" && j.value("ready", false)) return true;
                return false;
            };
            REQUIRE(wait_for(job_ready, 60s));
            on_monitor(f.second[0], "job-complete", {{"id", "merge"}});
            REQUIRE(wait_for([&] { return on_monitor(f.second[0], "query-block-jobs").empty(); }, 60s));
            if (delete_old)  // as libvirt does after a pivot: the old layer's nodes go
                for (const char* n : {"vda-1-fmt", "vda-1-thin", "vda-1-file"}) on_monitor(f.second[0], "blockdev-del", {{"node-name", n}});

            // The agent saw the layer leave, armed the new active layer and
            // resumed the guest, while the old hook still hangs.
            CHECK(wait_for([&] { return lines(f.out, "gone", "vm0").size() == 1; }));
            CHECK(wait_for([&] { return lines(f.out, "resumed", "vm0").size() >= 1; }));
            CHECK(lines(f.out, "gone", "vm0").at(0)["target"] == "vda[2]");
            CHECK(lines(f.out, "abandoned", "vm0").empty());
            bool base_armed = false;
            for (const auto& l : lines(f.out, "armed", "vm0")) base_armed = base_armed || l["target"] == "vda[3]";
            CHECK(base_armed);

            // The old hook ends (it grows a window nobody writes, or fails on
            // deleted nodes): abandoned, never run again.
            { std::ofstream(go.c_str()) << "go\n"; }
            CHECK(wait_for([&] { return lines(f.out, "abandoned", "vm0").size() == 1; }));
            CHECK(lines(f.out, "abandoned", "vm0").at(0)["target"] == "vda[2]");

            // The guest writes on to the end of its disk, now into the base
            // (whose own threshold fires and is extended as any other).
            std::string log;
            CHECK(wait_for([&] { return (log = read_file(f.vms[0]->guest_log())).find('E') != std::string::npos; }, 120s));
            CHECK(std::count(log.begin(), log.end(), '.') == 1024);
            CHECK(log.substr(log.size() >= 2 ? log.size() - 2 : 0) == "E\x01");
            CHECK(on_monitor(f.second[0], "query-status")["status"] == "running");
            CHECK(lines(f.out, "extend-failed").empty());
            // One hook for the old layer's one firing; each firing of the
            // base ran its hook once.
            CHECK(count_lines(starts, "vda-1-thin") == 1);
            std::size_t top_events = 0, base_events = 0;
            for (const auto& l : lines(f.out, "threshold", "vm0")) {
                CHECK(l["target"] != "vda");  // never under the disk's bare name
                top_events += l["node"] == "vda-1-thin";
                base_events += l["node"] == "vda-0-thin";
            }
            CHECK(top_events == 1);
            CHECK(base_events >= 1);
            CHECK(count_lines(starts, "vda-0-thin") == base_events);
            std::this_thread::sleep_for(500ms);  // a second run would start now, if at all
            CHECK(count_lines(starts, "vda-1-thin") == 1);
            ::kill(agent, SIGTERM);
            CHECK(wait_exit(agent) == 0);
        }
    }
}

#endif
