// qmp-thin-agent run as an operator runs it as root, with hostile but local
// input: a command line or VMs file that is wrong in any way is refused
// before anything starts; hooks get only stdin, stdout and stderr, run in a
// group of their own and are bounded; SIGTERM waits for a hook only so long
// and the next start finishes what it interrupted; a peer's event flood
// costs bounded memory and graph queries; metrics clients cannot take the
// descriptors extensions need; a VMs file that goes bad on SIGHUP keeps the
// VMs watched.
#include "../support/fake_server.hpp"
#include "../support/recorded.hpp"
#include "../support/thin_agent.hpp"

#include <support/hostile_events.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>

#include <dirent.h>

#ifdef QMP_BIN_DIR

using namespace qmp_test;

namespace {

// A line of /proc/PID/status, in kB (VmRSS).
long proc_kb(pid_t pid, const std::string& key) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
    return -1;
}

// Descriptors the process has open.
int open_fds(pid_t pid) {
    int n = 0;
    if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
        while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
    }
    return n;
}

// Adds settings to a sanitizer's options for the processes a test starts,
// and puts the old value back at the end (this process read its own at
// start). Harmless in builds without that sanitizer.
class child_sanitizer_options {
public:
    child_sanitizer_options(const char* var, const std::string& extra) : var_(var) {
        const char* v = std::getenv(var);
        had_ = v != nullptr;
        if (had_) old_ = v;
        ::setenv(var, (had_ && !old_.empty() ? old_ + ":" + extra : extra).c_str(), 1);
    }
    ~child_sanitizer_options() {
        if (had_)
            ::setenv(var_, old_.c_str(), 1);
        else
            ::unsetenv(var_);
    }
    child_sanitizer_options(const child_sanitizer_options&) = delete;
    child_sanitizer_options& operator=(const child_sanitizer_options&) = delete;

private:
    const char* var_;
    bool had_ = false;
    std::string old_;
};

bool running(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == 0;
}

}  // namespace

TEST_CASE("qmp-thin-agent: a bad command line or VMs file is one line and exit 2, and nothing starts" *
          doctest::test_suite("tools")) {
    temp_dir dir;
    const std::string state = dir.file("state");
    ::mkdir(state.c_str(), 0755);
    const std::string vms = dir.file("vms");
    struct bad {
        std::vector<std::string> args;
        std::string says;
        std::optional<std::string> vms_file{};  // written to `vms` first
    };
    const std::string plain = dir.file("plain");
    std::ofstream(plain) << "x";
    const std::vector<bad> cases = {
        {{"--vm", "../escaped=/run/vm.qmp"}, "is not a plain file name"},
        {{"--vm", "a/b=/run/vm.qmp"}, "is not a plain file name"},
        {{"--vm", ".hidden=/run/vm.qmp"}, "is not a plain file name"},
        {{"--vm", "a=/x", "--vm", "a=/y"}, "is named twice"},
        {{"--vm", "a"}, "not NAME=SOCKET"},
        {{"--vm", "a=/x", "--spec", "200%"}, "above 100%"},
        {{"--vm", "a=/x", "--spec", "0"}, "would disarm"},
        {{"--vm", "a=/x", "--spec", "0%"}, "would disarm"},
        {{"--vm", "a=/x", "--spec", "lots"}, "--spec"},
        {{"--vm", "a=/x", "--metrics", "127.0.0.1:99999"}, "is not 1 to 65535"},
        {{"--vm", "a=/x", "--metrics", "127.0.0.1:-1"}, "is not 1 to 65535"},
        {{"--vm", "a=/x", "--metrics", "localhost:9000"}, "is not an IP address"},
        {{"--vm", "a=/x", "--state-dir", dir.file("nowhere")}, "No such file or directory"},
        {{"--vm", "a=/x", "--state-dir", plain}, "is not a folder"},
        {{"--vm", "a=/x", "--hook-timeout", "0"}, "--hook-timeout wants seconds"},
        {{"--vm", "a=/x", "--audit-interval", "soon"}, "--audit-interval wants seconds"},
        {{"--vm", "a=/x", "--sample-interval", "-1"}, "--sample-interval wants seconds"},
        {{"--vm", "a=/x", "--metrics-timeout", "0"}, "--metrics-timeout wants seconds"},
        {{"--vm", "a=/x", "--log", "xml"}, "--log is json or text"},
        {{"--vm", "a=/x", "--bogus", "1"}, "unknown option"},
        {{"--vm", "a=/x", "stray"}, "unexpected argument"},
        {{"--vm", "a=/x", "--vm"}, "needs a value"},
        {{}, "no VM"},
        {{"--vms-file", dir.file("missing")}, "No such file or directory"},
        {{"--vms-file", state}, "is not a regular file"},
        {{"--vms-file", vms}, "lists no VM", ""},
        {{"--vms-file", vms}, "lists no VM", "# only a comment\n\n   \n"},
        {{"--vms-file", vms}, ":1: not NAME=SOCKET", "vm1 /run/vm1.qmp\n"},
        {{"--vms-file", vms}, ":2: a control byte", "vm1=/run/vm1.qmp\n\x7f" "ELF\x02\x01\n"},
        {{"--vms-file", vms}, ":3: the VM 'vm1' is listed twice", "vm1=/a\n# x\nvm1=/b\n"},
        {{"--vms-file", vms}, "is not a plain file name", "../up=/a\n"},
        {{"--vm", "vm1=/a", "--vms-file", vms}, "is named twice", "vm1=/b\n"},
    };
    for (const auto& c : cases) {
        if (c.vms_file) std::ofstream(vms, std::ios::binary) << *c.vms_file;
        std::vector<std::string> argv{thin_agent(), "--state-dir", state};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        std::string cmd;
        for (const auto& a : argv) cmd += a + " ";
        CAPTURE(cmd);
        std::string said;
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(run(argv, &said) == 2);
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // nothing started (no connect, no wait)
        CHECK(said.rfind("qmp-thin-agent: ", 0) == 0);
        const std::string first = said.substr(0, said.find('\n'));
        CHECK_MESSAGE(first.find(c.says) != std::string::npos, first);
        CHECK(said.find("usage:") != std::string::npos);
    }
    std::string listing;
    run({"ls", "-A", state}, &listing);
    CHECK(listing.empty());  // no state file was written for anything
}

TEST_CASE("qmp-thin-agent: hooks get only stdin, stdout and stderr, and a hook that hangs is killed with its group and run again" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir marks;
        // The first call lists its descriptors, starts a helper in its group
        // and hangs; the second grows the storage.
        const std::string prelude = "ls -l /proc/$$/fd > '" + marks.file("fds") + "'\n" +
                                    "if [ ! -e '" + marks.file("once") + "' ]; then touch '" + marks.file("once") +
                                    "'; sleep 3001 & echo $! > '" + marks.file("helper") + "'; sleep 3002; fi\n";
        fleet f(b, 1, false, 0, prelude);
        pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                             "--hook-timeout", "1", "--state-dir", f.work.path().string()},
                            f.out, f.err);
        INFO(read_file(f.err));
        INFO(read_file(f.out));
        REQUIRE(f.armed(0));
        REQUIRE(f.cross(0) == 0);
        REQUIRE(wait_for([&] { return lines(f.out, "extend-timeout", "vm0").size() == 1; }));
        REQUIRE(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }));
        const auto timeout = lines(f.out, "extend-timeout", "vm0").at(0);
        CHECK(timeout["status"] == 137);  // killed (SIGKILL)
        CHECK(timeout["retry_ms"] > 0);
        // The hook got 0, 1 and 2 and nothing else of the agent's: no socket
        // (QMP connections, the metrics listener), no epoll or timer
        // descriptor. (The shell running the hook script opens the script
        // and /dev/null for itself, at 10 and above.)
        const std::string fds = read_file(marks.file("fds"));
        INFO(fds);
        CHECK(fds.find(" 0 -> /dev/null") != std::string::npos);
        CHECK(fds.find("socket:") == std::string::npos);
        CHECK(fds.find("anon_inode:") == std::string::npos);
        CHECK(fds.find(" 3 -> ") == std::string::npos);
        // What the hung hook started went with it.
        const pid_t helper = std::stoi(read_file(marks.file("helper")));
        CHECK(wait_for([&] { return ::kill(helper, 0) != 0; }, 5s));
        CHECK(f.hook_calls("vm0").size() == 1);  // the second call did the work
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

TEST_CASE("qmp-thin-agent: SIGTERM waits for a hung hook only --stop-timeout, and the next start finishes the extension" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir marks;
        const std::string prelude = "echo started >> '" + marks.file("calls") + "'\nif [ ! -e '" + marks.file("once") +
                                    "' ]; then touch '" + marks.file("once") + "'; sleep 3003; fi\n";
        fleet f(b, 1, false, 0, prelude);
        auto start = [&] {
            return spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                          "--stop-timeout", "2", "--state-dir", f.work.path().string()},
                         f.out, f.err);
        };
        pid_t agent = start();
        INFO(read_file(f.err));
        INFO(read_file(f.out));
        REQUIRE(f.armed(0));
        REQUIRE(f.cross(0) == 0);
        REQUIRE(wait_for([&] { return read_file(marks.file("calls")).size() > 0; }));
        const auto t0 = std::chrono::steady_clock::now();
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 1500ms);  // it waited for the hook ...
        CHECK(took < 10s);      // ... only so long
        std::string ps;
        run({"pgrep", "-f", "sleep 3003"}, &ps);
        CHECK(ps.empty());  // the hung hook was killed, with its group
        // The state says the threshold fired and nothing re-armed it: the
        // next start runs the hook again, and re-arms after it.
        CHECK(read_file(f.work.file("vm0.json")).find("\"fired\"") != std::string::npos);
        agent = start();
        REQUIRE(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }));
        CHECK(lines(f.out, "resuming", "vm0").size() == 1);
        CHECK(f.hook_calls("vm0").size() == 1);
        CHECK(read_file(f.work.file("vm0.json")).find("\"fired\"") == std::string::npos);
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

TEST_CASE("qmp-thin-agent: after kill -9, a hook left running holds neither the VM's monitor nor the metrics port" *
          doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    temp_dir marks;
    const std::string prelude = "echo started >> '" + marks.file("calls") + "'\nsleep 4\n";
    fleet f(b, 1, false, 0, prelude);
    const unsigned short port = free_port();
    auto start = [&] {
        return spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                      "--state-dir", f.work.path().string(), "--metrics", "127.0.0.1:" + std::to_string(port)},
                     f.out, f.err);
    };
    pid_t agent = start();
    INFO(read_file(f.err));
    INFO(read_file(f.out));
    REQUIRE(f.armed(0));
    REQUIRE(f.cross(0) == 0);
    REQUIRE(wait_for([&] { return read_file(marks.file("calls")).size() > 0; }));
    ::kill(agent, SIGKILL);
    wait_exit(agent);
    // The orphaned hook sleeps on; a new agent connects and listens at once.
    agent = start();
    CHECK(wait_for([&] { return lines(f.out, "connected", "vm0").size() == 1; }, 10s));
    CHECK(wait_for([&] { return http_get(port, "/metrics").find("qmp_thin_connected{vm=\"vm0\"} 1") != std::string::npos; },
                   10s));
    CHECK(running(agent));
    ::kill(agent, SIGTERM);
    CHECK(wait_exit(agent) == 0);
}

TEST_CASE("qmp-thin-agent: a peer's event flood costs bounded memory and graph queries, and the other VM is still extended" *
          doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    fleet f(b, 1);
    fake_server bad;
    // AddressSanitizer holds freed memory back (256 MB by default) to catch
    // late uses: without that hold the agent's RSS is its own again.
    child_sanitizer_options no_quarantine("ASAN_OPTIONS", "quarantine_size_mb=0");
    std::atomic<bool> flooding{false}, done{false};
    std::atomic<int> graph_queries{0};
    auto peer = std::async(std::launch::async, [&] {
        auto answer = [&](const qmp::json& req) {
            const std::string cmd = req.at("execute");
            if (cmd == "x-debug-query-block-graph") ++graph_queries;
            auto ret = recorded_reply(cmd, req.value("arguments", qmp::json()));
            if (ret)
                bad.reply(req, qmp::json::parse(*ret));
            else
                bad.reply_error(req, "CommandNotFound", "no");
        };
        try {
            bad.handshake();
            std::uint64_t n = 0;
            while (!done) {
                if (flooding) {
                    // What a hostile or broken peer sends, over and over: job
                    // news of the wrong type, job starts, firings of nodes
                    // nobody knows, pauses, I/O errors with data of the wrong type.
                    const std::string burst = hostile_burst(n, 50);
                    bad.send(burst);
                }
                while (auto m = bad.try_read_message(flooding ? 0 : 20)) answer(*m);
            }
        } catch (const std::exception&) {  // the agent went
        }
    });
    pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--vm", "bad=" + bad.path(), "--spec", "end-6M",
                         "--extend-cmd", "sh " + f.hook, "--state-dir", f.work.path().string()},
                        f.out, f.err);
    INFO(read_file(f.err));
    REQUIRE(f.armed(0));
    REQUIRE(wait_for([&] { return lines(f.out, "connected", "bad").size() == 1; }));
    flooding = true;
    std::this_thread::sleep_for(3s);
    const long rss_early = proc_kb(agent, "VmRSS");
    const int queries_early = graph_queries;
    const auto t_early = std::chrono::steady_clock::now();
    // The healthy VM is served all along: its threshold fires and it is extended.
    REQUIRE(f.cross(0) == 0);
    CHECK(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }, 20s));
    std::this_thread::sleep_for(12s);
    const long rss_late = proc_kb(agent, "VmRSS");
    const int queries_late = graph_queries;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_early).count();
    flooding = false;
    const double rate = (queries_late - queries_early) / seconds;
    MESSAGE("flood: agent RSS " << rss_early << " kB after 3 s, " << rss_late << " kB " << seconds
                                << " s later; graph queries of the flooded VM: " << rate << " per second");
    CHECK(running(agent));
    CHECK(rss_late - rss_early < 16 * 1024);  // bounded (it grew by hundreds of MB before)
    // The service's own queries (one per 200 ms at most) and the agent's
    // job checks (the same): ten a second at most (it was thousands).
    CHECK(rate <= 11.0);
    CHECK(!lines(f.out, "error", "bad").empty());    // the unreadable events were said
    ::kill(agent, SIGTERM);
    CHECK(wait_exit(agent) == 0);
    done = true;
    peer.get();
}

TEST_CASE("qmp-thin-agent: idle metrics clients are dropped and capped under the descriptor limit, and extensions go on" *
          doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    fleet f(b, 1);
    const unsigned short port = free_port();
    // The operator's limit: 128 descriptors, hard.
    pid_t agent = spawn({"prlimit", "--nofile=128:128", "--", thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M",
                         "--extend-cmd", "sh " + f.hook, "--state-dir", f.work.path().string(), "--metrics",
                         "127.0.0.1:" + std::to_string(port), "--metrics-timeout", "1"},
                        f.out, f.err);
    INFO(read_file(f.err));
    INFO(read_file(f.out));
    REQUIRE(f.armed(0));
    // 200 clients connect and never send a request.
    asio::io_context io;
    std::vector<asio::ip::tcp::socket> idle;
    for (int i = 0; i < 200; ++i) {
        idle.emplace_back(io);
        idle.back().connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }
    std::this_thread::sleep_for(500ms);
    CHECK(open_fds(agent) < 100);  // the rest wait in the listen backlog, not in the agent
    // An extension is not kept from starting.
    REQUIRE(f.cross(0) == 0);
    CHECK(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }, 20s));
    // Each idle client is dropped after 1 s (--metrics-timeout); at most 16
    // are served at once, so all are within 13 s, and within the minute.
    int closed = 0;
    const auto end = std::chrono::steady_clock::now() + 60s;
    for (auto& s : idle) {
        char c;
        std::error_code ec;
        s.non_blocking(false);
        while (std::chrono::steady_clock::now() < end) {
            pollfd p{s.native_handle(), POLLIN, 0};
            if (::poll(&p, 1, 1000) > 0) break;
        }
        s.read_some(asio::buffer(&c, 1), ec);
        closed += ec == asio::error::eof;
    }
    CHECK(closed == 200);
    CHECK(http_get(port, "/metrics").find("qmp_thin_extensions_ok_total{vm=\"vm0\"} 1") != std::string::npos);
    ::kill(agent, SIGTERM);
    CHECK(wait_exit(agent) == 0);
}

// Not in builds with UBSan's vptr check: that check probes memory through a
// pipe and, with no descriptor left, reports every polymorphic call as an
// invalid object (suppressions do not reach it); the default and release
// builds run this test.
#ifndef QMP_TEST_VPTR_CHECKED
TEST_CASE("qmp-thin-agent: the metrics endpoint survives running out of descriptors" * doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    fleet f(b, 1);
    const unsigned short port = free_port();
    pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                         "--metrics", "127.0.0.1:" + std::to_string(port)},
                        f.out, f.err);
    INFO(read_file(f.err));
    INFO(read_file(f.out));
    REQUIRE(f.armed(0));
    // The agent's soft limit drops to what it has open: its next accept fails (EMFILE).
    const std::string pid = std::to_string(agent);
    REQUIRE(run({"prlimit", "--pid", pid, "--nofile=" + std::to_string(open_fds(agent)) + ":"}) == 0);
    asio::io_context io;
    asio::ip::tcp::socket waiting(io);
    waiting.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    REQUIRE(wait_for([&] { return !lines(f.out, "error").empty(); }, 10s));
    CHECK(lines(f.out, "error").back()["error"].get<std::string>().find("metrics: accept:") == 0);
    CHECK(running(agent));
    // Descriptors come back: the endpoint serves again, by itself.
    REQUIRE(run({"prlimit", "--pid", pid, "--nofile=1024:"}) == 0);
    CHECK(wait_for([&] { return http_get(port, "/metrics").find("qmp_thin_connected{vm=\"vm0\"} 1") != std::string::npos; },
                   10s));
    ::kill(agent, SIGTERM);
    CHECK(wait_exit(agent) == 0);
}

#endif

TEST_CASE("qmp-thin-agent: on SIGHUP a VMs file that is gone or garbled keeps the VMs watched, and says so" *
          doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    fleet f(b, 1);
    const std::string list = f.work.file("vms");
    std::ofstream(list) << "vm0=" << f.socket(0) << "\n";
    pid_t agent = spawn({thin_agent(), "--vms-file", list, "--spec", "end-6M", "--extend-cmd", "sh " + f.hook},
                        f.out, f.err);
    INFO(read_file(f.err));
    INFO(read_file(f.out));
    REQUIRE(f.armed(0));
    // A line that is not NAME=SOCKET, binary bytes, the file deleted, the file empty.
    for (const std::string& garbled : {std::string("vm0 = what\n"), std::string("\x01\x02\x03"), std::string("gone"), std::string("")}) {
        if (garbled == "gone")
            ::unlink(list.c_str());
        else
            std::ofstream(list, std::ios::binary) << garbled;
        const auto errors = lines(f.out, "error").size();
        ::kill(agent, SIGHUP);
        REQUIRE(wait_for([&] { return lines(f.out, "error").size() == errors + 1; }));
        CHECK(lines(f.out, "error").back()["error"].get<std::string>().find("still watching the 1 VM(s)") != std::string::npos);
    }
    CHECK(lines(f.out, "removed").empty());
    // Still watched: a firing is extended.
    REQUIRE(f.cross(0) == 0);
    CHECK(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }, 20s));
    ::kill(agent, SIGTERM);
    CHECK(wait_exit(agent) == 0);
}

#endif
