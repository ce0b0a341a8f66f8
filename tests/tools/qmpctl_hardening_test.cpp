// qmpctl as an adversary and a careless operator use it: monitors that stop
// answering, QEMUs killed mid-way, refusals, a stalled stdout, concurrent
// writers of one state file, a read-only folder, invalid state files, floods.
#include "../support/reply_id.hpp"
#include "../support/cut_proxy.hpp"
#include "../support/fake_server.hpp"
#include "../support/recorded.hpp"
#include "../support/thin_vm.hpp"
#include "../support/tool_paths.hpp"

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <future>

#include <sys/stat.h>

using namespace std::chrono_literals;
using namespace qmp_support;
using qmp_test::fake_server;

#ifdef QMP_BIN_DIR

namespace {

using qmp_test::qmpctl;

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// A monitor that negotiates, then reads every command and answers none.
struct silent_monitor {
    fake_server srv;
    std::atomic<bool> stop{false};
    std::future<void> script = std::async(std::launch::async, [this] {
        while (!stop) {
            if (!srv.accept_within(50)) continue;
            try {
                srv.handshake_accepted();
                while (!stop) srv.try_read_message(50);
            } catch (const std::exception&) {
            }
        }
    });
    ~silent_monitor() {
        stop = true;
        script.get();
    }
};

}  // namespace

TEST_CASE("qmpctl: --timeout bounds every subcommand against a monitor that stops answering" *
          doctest::test_suite("fake")) {
    silent_monitor mon;
    temp_dir dir;
    for (std::vector<std::string> sub : {std::vector<std::string>{"exec", "query-version"}, {"chain"}, {"resolve", "vda"},
                                         {"threshold", "set", "vda", "1M"}, {"threshold", "report"},
                                         {"threshold", "clear", "vda"}}) {
        CAPTURE(sub[0]);
        std::vector<std::string> argv{qmpctl(), "-s", mon.srv.path(), "--timeout", "1.5", "--state",
                                      dir.file("s.json")};
        argv.insert(argv.end(), sub.begin(), sub.end());
        std::string out;
        auto t0 = clock_type::now();
        CHECK(run(argv, &out) == 3);
        const double took = seconds_since(t0);
        CHECK(took >= 1.4);
        CHECK(took < 5.0);  // not the 30 s default
        CHECK(out.find("timed out") != std::string::npos);
    }
}

TEST_CASE("qmpctl: a refused negotiation and error replies without text say what QEMU said" *
          doctest::test_suite("fake")) {
    fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.accept();
        srv.send_greeting();
        srv.reply_error(srv.read_message(), "GenericError", "Capability oob not available here");
        srv.handshake();
        srv.send(R"({"error": {"class": 7, "desc": [1]})" + qmp_test::id_member(srv.read_message()) + "}\r\n");
        srv.close();
    });
    std::string out;
    CHECK(run({qmpctl(), "-s", srv.path(), "exec", "query-version"}, &out) == 3);
    CHECK(out.find("capabilities negotiation failed") != std::string::npos);
    CHECK(out.find("Capability oob not available here") != std::string::npos);
    CHECK(run({qmpctl(), "-s", srv.path(), "exec", "query-version"}, &out) == 4);
    CHECK(out.find("qmpctl: query-version: error: QEMU's error reply has no text and no class") == 0);
    CHECK(out.find(R"({"class": 7, "desc": [1]})") != std::string::npos);
    script.get();
}

TEST_CASE("qmpctl: events with a stalled stdout: the tally is exact" * doctest::test_suite("fake")) {
    fake_server srv;
    temp_dir dir;
    constexpr int sent = 200001;
    std::promise<void> flooded;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        std::string burst;
        for (int i = 0; i < sent; ++i) {
            burst += R"({"event": "TICK", "data": {"i": )" + std::to_string(i) +
                     R"(}, "timestamp": {"seconds": 1, "microseconds": 0}})" "\r\n";
            if (burst.size() > (1u << 20)) {
                srv.send(burst);
                burst.clear();
            }
        }
        srv.send(burst);
        flooded.set_value();
        try {
            srv.try_read_message(60000);  // until qmpctl leaves
        } catch (const std::exception&) {
        }
    });
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);  // nobody reads it: stdout stalls once the pipe is full
    pid_t pid = spawn({qmpctl(), "-s", srv.path(), "events"}, "", dir.file("events.err"), pipefd[1]);
    ::close(pipefd[1]);
    REQUIRE(flooded.get_future().wait_for(60s) == std::future_status::ready);
    std::this_thread::sleep_for(500ms);  // the client reads everything QEMU sent
    ::kill(pid, SIGTERM);
    int rc = wait_exit(pid);
    ::close(pipefd[0]);
    script.get();
    std::string err = read_file(dir.file("events.err"));
    INFO(err);
    CHECK(rc == 3);  // stdout failed
    // "N received: P printed, L lost to queue overflow, Q not printed"
    auto tally = err.find("received: ");
    REQUIRE(tally != std::string::npos);
    long long received = 0, printed = 0, lost = 0, left = 0;
    auto line_start = err.rfind('\n', tally);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    REQUIRE(std::sscanf(err.c_str() + line_start, "qmpctl: events: %lld received: %lld printed, %lld lost to queue overflow, %lld not printed",
                        &received, &printed, &lost, &left) == 4);
    CHECK(received == sent);
    CHECK(printed + lost + left == received);
    CHECK(lost > 0);
    // The markers printed along the way add up to the same loss.
    long long markers = 0;
    for (std::size_t p = 0; (p = err.find(" events lost (queue overflow)", p)) != std::string::npos; ++p) {
        auto s = err.rfind("qmpctl: ", p);
        markers += std::atoll(err.c_str() + s + 8);
    }
    CHECK(markers <= lost);
}

TEST_CASE("qmpctl: a QEMU killed while qmpctl waits for it is a failure, never a success" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        qemu_config cfg;
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        // exec against a stopped QEMU (it never greets), then killed.
        q.process().signal(SIGSTOP);
        auto exec = std::async(std::launch::async, [&] {
            std::string out;
            int rc = run({qmpctl(), "-s", q.qmp_path(), "exec", "query-version"}, &out);
            return std::make_pair(rc, out);
        });
        std::this_thread::sleep_for(300ms);
        q.process().kill_now();
        auto [rc, out] = exec.get();
        CHECK(rc == 3);
        CHECK(out.find("cannot connect") != std::string::npos);
    }
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 1}});
        // A watch whose QEMU is killed for good: it says so, retries, and fails when time runs out.
        const std::string base = vm.dir.file("watch");
        pid_t pid = spawn({qmpctl(), "-s", vm.q->qmp_path(), "--disk", "vda=vda-0-fmt", "threshold", "watch",
                           "--timeout", "3"},
                          base + ".out", base + ".err");
        std::this_thread::sleep_for(800ms);
        vm.q->process().kill_now();
        CHECK(wait_exit(pid) == 3);
        std::string err = read_file(base + ".err");
        INFO(err);
        CHECK(err.find("lost the connection to " + vm.q->qmp_path()) != std::string::npos);
        CHECK(err.find("reconnecting") != std::string::npos);
        CHECK(err.find("still not connected") != std::string::npos);
    }
}

#endif


#ifdef QMP_BIN_DIR

TEST_CASE("qmpctl: a threshold event watch cannot read is said and leads to a resync, never to silence" *
          doctest::test_suite("fake")) {
    // A monitor answering from QEMU 10.0's recorded replies; once qmpctl
    // watches, a BLOCK_WRITE_THRESHOLD whose numbers no 64-bit integer holds.
    fake_server srv;
    std::atomic<int> graph_queries{0};
    std::atomic<bool> done{false};
    auto script = std::async(std::launch::async, [&] {
        try {
            srv.handshake();
            bool sent = false;
            while (!done) {
                auto m = srv.try_read_message(50);
                if (!m) {
                    if (graph_queries >= 1 && !sent) {
                        srv.send(R"({"event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "vda-2-file", )"
                                 R"("amount-exceeded": 18446744073709551616, "write-threshold": -1}, )"
                                 R"("timestamp": {"seconds": 1, "microseconds": 2}})" "\r\n");
                        sent = true;
                    }
                    continue;
                }
                const std::string cmd = m->at("execute");
                if (cmd == "x-debug-query-block-graph") ++graph_queries;
                auto ret = qmp_test::recorded_reply(cmd, m->value("arguments", qmp::json()));
                srv.reply(*m, ret ? qmp::json::parse(*ret) : qmp::json::object());
            }
        } catch (const std::exception&) {  // qmpctl went
        }
    });
    std::string out;
    const int rc = run({qmpctl(), "-s", srv.path(), "threshold", "watch", "--count", "1", "--timeout", "3"}, &out);
    done = true;
    script.get();
    INFO(out);
    CHECK(rc == 3);  // the count was not reached: no event was invented ...
    CHECK(out.find("an unreadable BLOCK_WRITE_THRESHOLD") != std::string::npos);  // ... the bad one was said ...
    CHECK(out.find("resyncing") != std::string::npos);
    CHECK(graph_queries >= 2);  // ... and a resync looked at QEMU again
}

TEST_CASE("qmpctl: a --state that names a folder says why it cannot be read" * doctest::test_suite("fake")) {
    temp_dir dir;
    std::string out;
    // Refused before it connects (the socket need not exist).
    CHECK(run({qmpctl(), "-s", dir.file("none.qmp"), "--state", dir.path().string(), "threshold", "report"}, &out) == 6);
    CHECK(out.find("Is a directory") != std::string::npos);
    CHECK(out.find(dir.path().string()) != std::string::npos);
}

#endif
