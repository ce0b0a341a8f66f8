// qmp-bench-agent-flood: qmp-thin-agent under a peer's event flood, over
// minutes: its memory and the graph queries the flood makes it send. One
// monitor (played here, answering the library's queries with a real QEMU
// 10.0's recorded replies) sends, without pause, what a hostile or broken
// peer can: job status changes of the wrong type, job starts, firings of
// nodes nobody knows, pauses on a full volume, I/O errors of the wrong type.
// A second VM, a real qemu-storage-daemon, is watched beside it; at the end
// its threshold is crossed, and the agent must still report it.
//
//   qmp-bench-agent-flood [--seconds 300] [--sample 30]
//
// Prints, every --sample seconds: the agent's resident memory (VmRSS) and
// its peak (VmHWM), the events sent, and the graph queries the agent made of
// the flooding monitor in that interval (per second).
#include "bench_support.hpp"

#include <support/hostile_events.hpp>
#include <support/qemu.hpp>

#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/message.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

namespace {

using namespace std::chrono_literals;
using qmp_bench::bin_dir;

std::string recorded(const std::string& name) {
    std::ifstream f(std::string(QMP_TEST_DATA_DIR) + "/qemu-10.0/" + name + ".json");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The flooding monitor: answers every command, sends events between.
struct flood_monitor {
    std::string path;
    int listener = -1;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> graph_queries{0}, events{0};
    std::thread worker;

    explicit flood_monitor(std::string p) : path(std::move(p)) {
        listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
        if (::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) || ::listen(listener, 4))
            throw std::runtime_error("cannot listen on " + path);
        worker = std::thread([this] { run(); });
    }
    ~flood_monitor() {
        stop = true;
        ::shutdown(listener, SHUT_RDWR);
        worker.join();
        ::close(listener);
    }

    void run() {
        const std::string replies[][2] = {{"query-commands", recorded("query-commands")},
                                          {"x-debug-query-block-graph", recorded("x-debug-query-block-graph")},
                                          {"query-named-block-nodes", recorded("query-named-block-nodes-flat")}};
        const std::string stats = recorded("query-blockstats"), node_stats = recorded("query-blockstats-nodes");
        while (!stop) {
            const int fd = ::accept(listener, nullptr, nullptr);
            if (fd < 0) return;
            auto put = [fd](const std::string& b) { return ::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == ssize_t(b.size()); };
            put(R"({"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}})"
                "\r\n");
            qmp::framer fr;
            std::uint64_t n = 0;
            for (bool alive = true; alive && !stop;) {
                char buf[65536];
                const ssize_t got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (got == 0) break;
                if (got > 0) fr.feed(buf, static_cast<std::size_t>(got));
                std::string_view m;
                std::error_code ec;
                while (alive && fr.next(m, ec) == qmp::framer::status::message) {
                    const auto req = qmp::json::parse(m, nullptr, false);
                    if (!req.is_object() || !req.contains("execute")) continue;
                    const std::string cmd = req["execute"].is_string() ? req["execute"].get<std::string>() : "";
                    std::string ret = "{}";
                    for (const auto& r : replies)
                        if (cmd == r[0]) ret = r[1];
                    if (cmd == "query-blockstats")
                        ret = req.contains("arguments") && req["arguments"].contains("query-nodes") ? node_stats : stats;
                    if (cmd == "x-debug-query-block-graph") ++graph_queries;
                    alive = put(R"({"return": )" + ret + (req.contains("id") ? R"(, "id": )" + req["id"].dump() : std::string()) + "}\r\n");
                }
                const std::string burst = qmp_support::hostile_burst(n, 20);
                if (put(burst)) events += 20 * qmp_support::hostile_events_per_round;
                else alive = false;
            }
            ::close(fd);
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    int seconds = 300, sample = 30;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::max(1, std::atoi(argv[++i]));
        else if (a == "--sample" && i + 1 < argc) sample = std::max(1, std::atoi(argv[++i]));
        else {
            std::cerr << "usage: qmp-bench-agent-flood [--seconds 300] [--sample 30]\n";
            return 2;
        }
    }
    try {
        const auto builds = qmp_support::qemu_builds();
        const auto& b = builds.back();
        qmp_support::temp_dir dir;
        auto files = qmp_support::make_chain(b, dir, "vda", 2);
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
        cfg.nbd_export_node = "vda-1-fmt";
        qmp_support::qemu_instance healthy(b, dir, cfg, "healthy");
        flood_monitor bad(dir.file("bad.qmp"));
        const std::string out = dir.file("agent.out");
        const pid_t agent = qmp_support::spawn({bin_dir() + "/qmp-thin-agent", "--vm", "healthy=" + healthy.qmp_path(), "--vm",
                                                "bad=" + bad.path, "--spec", "end-32M", "--state-dir", dir.path().string()},
                                               out, dir.file("agent.err"));
        std::this_thread::sleep_for(2s);
        std::cout << "qmp-thin-agent under a flood from one monitor, beside a real QEMU " << b.label << ":\n"
                  << "  seconds   RSS (MiB)  peak (MiB)  events sent/s  graph queries/s\n"
                  << std::fixed << std::setprecision(1);
        std::uint64_t last_q = bad.graph_queries, last_e = bad.events;
        for (int t = sample; t <= seconds; t += sample) {
            std::this_thread::sleep_for(std::chrono::seconds(sample));
            const std::uint64_t q = bad.graph_queries, e = bad.events;
            const std::string pid = std::to_string(agent);
            std::cout << "  " << std::setw(7) << t << "  " << std::setw(9) << qmp_bench::proc_status_kb("VmRSS", pid) / 1024.0
                      << "  " << std::setw(10) << qmp_bench::proc_status_kb("VmHWM", pid) / 1024.0 << "  " << std::setw(13)
                      << double(e - last_e) / sample << "  " << std::setw(15) << double(q - last_q) / sample << "\n"
                      << std::flush;
            last_q = q;
            last_e = e;
        }
        // Still serving the healthy VM: its threshold (32 MiB below the end) is crossed.
        std::string text;
        healthy.nbd_write(0, 48u << 20, &text);
        bool reported = false;
        for (int i = 0; i < 100 && !reported; ++i) {
            std::this_thread::sleep_for(100ms);
            reported = qmp_support::read_file(out).find(R"("vm":"healthy","what":"threshold")") != std::string::npos;
        }
        std::cout << "  the healthy VM's firing " << (reported ? "was reported" : "was NOT reported") << "\n";
        ::kill(agent, SIGTERM);
        qmp_support::wait_exit(agent);
        return reported ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-agent-flood: " << e.what() << "\n";
        return 1;
    }
}
