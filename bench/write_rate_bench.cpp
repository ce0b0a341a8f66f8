// The pause-free write rate: the highest rate a writer can keep up on thin
// storage that qmp-thin-agent grows, as a fraction of H/L (headroom over
// extension latency, the rate no agent can beat).
//
//   qmp-bench-write-rate [--pairs 64M/250ms,256M/1s] [--fractions 0.5,0.7,0.8,...,1.0,1.05]
//                        [--firings 4] [--qemu all|7.2|10.0] [--dir /dev/shm]
//
// Per (H, L) pair and rate: a qemu-storage-daemon whose disk is one qcow2
// image on thin storage in miniature (a raw node with a size over a bigger
// file), images on tmpfs (--dir, default /dev/shm) so the host's disk is
// not the limit; the agent arms `end-H`; its hook logs its start, sleeps L
// (lvextend and the storage's round trip), then grows the window by 2H
// through the daemon's second monitor. A writer (a minimal NBD client, 1 MiB
// writes, at most 4 in flight) writes sequentially at the rate, paced by a
// clock, until the window has been grown --firings times and it has written
// the last firing's whole headroom. A rate passes when no write failed
// (ENOSPC: a guest with werror=enospc would have paused) and the writer kept
// its pace. Rates are tried in increasing order; the first failure ends a
// pair. The writer's own ceiling (the same disk with room for everything,
// no agent) is measured first: a pair whose H/L nears it measures the
// writer, not the agent. Printed: each rate tried, then per pair the highest passing rate as
// a fraction of H/L with the latency from QEMU's event to the hook's start
// (p50, p99) and to the storage grown (p50, max) at that rate.
#include "bench_support.hpp"
#include "nbd_writer.hpp"

#include <support/qemu.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>

namespace {

using namespace std::chrono_literals;
using namespace qmp_bench;
using qmp_support::temp_dir;

constexpr std::uint64_t MiB = 1u << 20;
constexpr std::uint32_t write_size = 1u << 20;
constexpr int in_flight = 4;

struct pair_spec {
    std::uint64_t headroom = 0;            // H, bytes
    std::chrono::milliseconds latency{};  // L
    std::string text;
    double limit() const { return static_cast<double>(headroom) / (static_cast<double>(latency.count()) / 1e3); }  // H/L, bytes/s
};

// "64M/250ms", "1G/1s".
pair_spec parse_pair(const std::string& s) {
    const auto slash = s.find('/');
    if (slash == std::string::npos) throw std::invalid_argument("a pair is H/L, like 64M/250ms: " + s);
    pair_spec p;
    p.text = s;
    std::size_t used = 0;
    const std::string h = s.substr(0, slash), l = s.substr(slash + 1);
    const double hv = std::stod(h, &used);
    const std::string unit = h.substr(used);
    p.headroom = static_cast<std::uint64_t>(hv * (unit == "G" ? 1024.0 * MiB : unit == "M" ? MiB : unit == "K" ? 1024.0 : 1.0));
    const double lv = std::stod(l, &used);
    const std::string lunit = l.substr(used);
    p.latency = std::chrono::milliseconds(static_cast<long>(lunit == "s" ? lv * 1000 : lv));
    if (p.headroom < 4 * MiB || p.latency.count() <= 0 || (lunit != "s" && lunit != "ms"))
        throw std::invalid_argument("a pair is H/L with H >= 4M and L in ms or s, like 64M/250ms: " + s);
    return p;
}

struct step {
    double fraction = 0, rate = 0, achieved = 0;  // bytes/s
    std::size_t firings = 0, extended = 0, failed_writes = 0;
    std::uint32_t first_error = 0;
    std::vector<double> to_hook_ms, to_grown_ms;
    std::string problem;  // empty: passed
};

std::string mib(double bytes_per_s) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(0) << bytes_per_s / MiB;
    return o.str();
}

// One disk on thin storage in miniature: a qcow2 image on a raw node of
// `window` bytes over a bigger file, exported over NBD, with a second monitor.
struct thin_disk {
    temp_dir dir;
    std::string second = dir.file("second.qmp");
    std::unique_ptr<qmp_support::qemu_instance> q;

    thin_disk(const qmp_support::qemu_build& b, std::uint64_t disk, std::uint64_t window) {
        auto files = qmp_support::make_chain(b, dir, "vda", 1, std::to_string(disk / MiB) + "M");
        qmp_support::run_checked({"truncate", "-s", std::to_string(std::max(disk, window) + 64 * MiB), files[0]});
        qmp_support::qemu_config cfg;
        cfg.blockdevs = {R"({"driver":"file","node-name":"vda-file","filename":")" + files[0] + "\"}",
                         R"({"driver":"raw","node-name":"vda-thin","file":"vda-file","offset":0,"size":)" + std::to_string(window) + "}",
                         R"({"driver":"qcow2","node-name":"vda-fmt","file":"vda-thin"})"};
        cfg.nbd_export_node = "vda-fmt";
        cfg.extra = {"--chardev", "socket,path=" + second + ",server=on,wait=off,id=m2", "--monitor", "chardev=m2"};
        q = std::make_unique<qmp_support::qemu_instance>(b, dir, cfg, "vm");
    }
};

// The writer: sequential 1 MiB writes, at most 4 in flight, each sent at
// its time on a clock that runs at `rate` (0: as fast as QEMU takes them).
// Stops at the first failed write. Returns the rate it achieved.
double write_at(const std::string& nbd, std::uint64_t total, double rate, step& s) {
    qmp_bench::nbd_writer w(nbd, "vda");
    const std::uint64_t writes = (total + write_size - 1) / write_size;
    int pending = 0;
    auto take_reply = [&] {
        const std::uint32_t e = w.read_reply();
        --pending;
        if (e != 0) {
            if (!s.failed_writes) s.first_error = e;
            ++s.failed_writes;
        }
    };
    // A writer that fell behind its clock does not catch up in a burst
    // (faster than the rate): past one write's time late, the clock moves.
    const auto step_time = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(rate > 0 ? static_cast<double>(write_size) / rate : 0.0));
    const auto t0 = std::chrono::steady_clock::now();
    auto next = t0;
    for (std::uint64_t i = 0; i < writes && !s.failed_writes; ++i) {
        if (pending == in_flight) take_reply();
        const auto now = std::chrono::steady_clock::now();
        if (now > next + step_time) next = now - step_time;
        std::this_thread::sleep_until(next);
        next += step_time;
        w.send_write(i * write_size, write_size);
        ++pending;
    }
    while (pending > 0) take_reply();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(writes * write_size) / elapsed;
}

step run_step(const qmp_support::qemu_build& b, const pair_spec& p, double fraction, int firings) {
    step s;
    s.fraction = fraction;
    s.rate = fraction * p.limit();
    const std::uint64_t H = p.headroom, C = 2 * H;
    const std::uint64_t window = C + H;                                        // the first firing after C bytes
    const std::uint64_t total = static_cast<std::uint64_t>(firings) * C + H;  // through the last firing's headroom
    thin_disk d(b, total + 2 * C, window);
    const temp_dir& dir = d.dir;
    const std::string& second = d.second;
    auto& q = *d.q;

    const std::string out = dir.file("agent.out"), err = dir.file("agent.err"), hook = dir.file("hook.sh"), log = dir.file("hook.log");
    {
        std::ofstream h(hook);
        h << "#!/bin/bash\nSTART=$EPOCHREALTIME\nsleep " << std::fixed << std::setprecision(3)
          << static_cast<double>(p.latency.count()) / 1e3 << "\nNEW=$((QMP_CAPACITY + " << C << "))\n'" << bin_dir()
          << "/qmpctl' -s '" << second
          << "' exec blockdev-reopen \"{\\\"options\\\": [{\\\"driver\\\": \\\"raw\\\", \\\"node-name\\\": \\\"$QMP_NODE\\\", "
             "\\\"file\\\": \\\"vda-file\\\", \\\"offset\\\": 0, \\\"size\\\": $NEW}]}\" >/dev/null\n"
          << "echo \"$QMP_EVENT_TIME $START $EPOCHREALTIME\" >> '" << log << "'\n";
    }
    const pid_t agent = qmp_support::spawn({bin_dir() + "/qmp-thin-agent", "--vm", "vm=" + q.qmp_path(), "--spec",
                                            "end-" + std::to_string(H), "--extend-cmd", "exec bash " + hook},
                                           out, err);
    if (!wait_until([&] { return count_lines(out, "armed") >= 1; }, 30s)) {
        ::kill(agent, SIGKILL);
        qmp_support::wait_exit(agent);
        throw std::runtime_error("the agent did not arm: " + qmp_support::read_file(err) + qmp_support::read_file(out));
    }

    s.achieved = write_at(q.nbd_path(), total, s.rate, s);
    wait_until([&] { return count_lines(out, "extended") >= count_lines(out, "threshold"); }, 2 * p.latency + 10s);
    s.firings = count_lines(out, "threshold");
    s.extended = count_lines(out, "extended");
    ::kill(agent, SIGTERM);
    if (qmp_support::wait_exit(agent) != 0) s.problem = "the agent did not exit with 0";
    {
        std::ifstream f(log);
        std::string ev, start, end;
        while (f >> ev >> start >> end) {
            if (ev.empty()) continue;
            s.to_hook_ms.push_back((std::stod(start) - std::stod(ev)) * 1e3);
            s.to_grown_ms.push_back((std::stod(end) - std::stod(ev)) * 1e3);
        }
    }
    if (s.failed_writes)
        s.problem = std::to_string(s.failed_writes) + " write(s) failed (" + (s.first_error == ENOSPC ? "ENOSPC" : "errno " + std::to_string(s.first_error)) + ")";
    else if (s.achieved < 0.98 * s.rate)
        s.problem = "the writer fell behind (" + mib(s.achieved) + " MiB/s)";
    else if (s.firings < static_cast<std::size_t>(firings))
        s.problem = "only " + std::to_string(s.firings) + " firings";
    if (count_lines(out, "extend-failed") || count_lines(out, "error"))
        s.problem += (s.problem.empty() ? "" : "; ") + std::string("the agent said: ") + qmp_support::read_file(out);
    return s;
}

// The writer's ceiling on this machine: the same disk with room for
// everything, no agent, writes as fast as QEMU takes them.
double ceiling(const qmp_support::qemu_build& b, std::uint64_t total) {
    thin_disk d(b, total + 64 * MiB, total + 64 * MiB);
    step s;
    const double r = write_at(d.q->nbd_path(), total, 0, s);
    if (s.failed_writes) throw std::runtime_error("the writer's ceiling: a write failed with errno " + std::to_string(s.first_error));
    return r;
}

void print(const step& s, const pair_spec& p) {
    std::cout << "  " << std::fixed << std::setprecision(2) << std::setw(5) << s.fraction << " H/L  " << std::setw(5) << mib(s.rate)
              << " MiB/s  firings " << s.firings << ", extended " << s.extended << "; event -> hook start p50 " << std::setprecision(1)
              << pct(s.to_hook_ms, 0.5) << " ms, p99 " << pct(s.to_hook_ms, 0.99) << " ms; event -> grown p50 "
              << pct(s.to_grown_ms, 0.5) << " ms, max " << pct(s.to_grown_ms, 1.0) << " ms (L " << p.latency.count() << ")  "
              << (s.problem.empty() ? "ok" : s.problem) << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<pair_spec> pairs;
    std::vector<double> fractions{0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0, 1.05};
    int firings = 4;
    std::string which = "10.0", dir = "/dev/shm";
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (i + 1 >= argc) throw std::invalid_argument(a + " wants a value");
            const std::string v = argv[++i];
            if (a == "--pairs") pairs = parse_list<pair_spec>(v, parse_pair);
            else if (a == "--fractions") fractions = parse_list<double>(v, [](const std::string& x) { return std::stod(x); });
            else if (a == "--firings") firings = std::max(1, std::stoi(v));
            else if (a == "--qemu") which = v;
            else if (a == "--dir") dir = v;
            else throw std::invalid_argument("unknown option " + a);
        }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-write-rate: " << e.what() << "\nusage: qmp-bench-write-rate [--pairs 64M/250ms,256M/1s] "
                     "[--fractions 0.5,0.7,...] [--firings N] [--qemu all|7.2|10.0] [--dir /dev/shm]\n";
        return 2;
    }
    if (pairs.empty()) pairs = {parse_pair("64M/250ms"), parse_pair("256M/1s")};
    std::sort(fractions.begin(), fractions.end());
    ::setenv("TMPDIR", dir.c_str(), 1);  // images, sockets and the agent's files
    try {
        for (const auto& b : qmp_support::qemu_builds()) {
            if (which != "all" && b.label != which) continue;
            for (const auto& p : pairs) {
                std::cout << "QEMU " << b.label << ", H " << p.headroom / MiB << " MiB, L " << p.latency.count()
                          << " ms: H/L " << mib(p.limit()) << " MiB/s, grown by " << 2 * p.headroom / MiB
                          << " MiB per firing; the writer's ceiling (no agent, room for all) "
                          << mib(ceiling(b, static_cast<std::uint64_t>(firings) * 2 * p.headroom + p.headroom)) << " MiB/s\n";
                std::optional<step> best;
                for (double f : fractions) {
                    step s = run_step(b, p, f, firings);
                    print(s, p);
                    if (!s.problem.empty()) break;
                    best = std::move(s);
                }
                if (best)
                    std::cout << "  => pause-free up to " << std::setprecision(2) << best->fraction << " of H/L (" << mib(best->rate)
                              << " MiB/s); event -> hook start p50 " << std::setprecision(1) << pct(best->to_hook_ms, 0.5)
                              << " ms, p99 " << pct(best->to_hook_ms, 0.99) << " ms\n";
                else
                    std::cout << "  => no rate tried was pause-free\n";
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-write-rate: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
