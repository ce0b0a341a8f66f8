// Benchmark of the threshold manager's resyncs: 128 armed elements of a
// 128-deep chain, the disk (virtio-blk) of a paused qemu-system-x86_64,
// each QEMU, the images naming their backing files by absolute path and by
// relative name (as oVirt's vdsm lays them out).
//
//   qmp-bench-threshold [--rounds N]
//
// Prints, per kind, the median time and the worst stall of QEMU's main loop
// seen meanwhile:
//   resync     the default: journal and high-water marks (query-blockstats);
//              what a loss marker runs too (the same work, the same queries)
//   reconnect  the manager's connection drops and it connects again:
//              handshake, then the resync the journal vouches for
//   restart    a new manager loaded with the journal (a restarted agent)
//              connects to the same QEMU: the same, with nothing cached
//   audit      write_threshold read back (query-named-block-nodes)
// The stall is measured from outside: a raw client on a second monitor of
// the same QEMU sends query-version every 2 ms; QEMU answers it on its main
// loop, so its latency grows by however long the loop was busy. Stall =
// the worst probe latency overlapping the operation, minus the probe's
// median latency when idle.
#include "raw_client.hpp"

#include <support/qemu.hpp>

#include <qmp/threshold/manager.hpp>

#include <algorithm>
#include <atomic>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <thread>

namespace {

using clock_type = std::chrono::steady_clock;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// query-version on a second monitor, over and over, each timed.
class loop_probe {
public:
    explicit loop_probe(const std::string& path) : c_(path, false), t_([this] { run(); }) {}
    ~loop_probe() {
        stop_ = true;
        t_.join();
    }
    loop_probe(const loop_probe&) = delete;
    loop_probe& operator=(const loop_probe&) = delete;

    // The median latency of probes that ended in [a, b].
    double median_in(clock_type::time_point a, clock_type::time_point b) {
        std::vector<double> v;
        std::lock_guard<std::mutex> l(m_);
        for (const auto& s : samples_)
            if (s.end >= a && s.end <= b) v.push_back(ms_between(s.start, s.end));
        return median(v);
    }
    // The worst latency of probes that overlap [a, b] (waits for the one in flight at b).
    double worst_over(clock_type::time_point a, clock_type::time_point b) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        double worst = 0;
        std::lock_guard<std::mutex> l(m_);
        for (const auto& s : samples_)
            if (s.end >= a && s.start <= b) worst = std::max(worst, ms_between(s.start, s.end));
        return worst;
    }

private:
    struct sample {
        clock_type::time_point start, end;
    };
    void run() {
        static const char q[] = "{\"execute\":\"query-version\"}\r\n";
        while (!stop_) {
            const auto t0 = clock_type::now();
            c_.write_all(q, sizeof q - 1);
            bool answered = false;
            while (!answered)
                c_.read_lines(1, [&](std::string_view line, clock_type::time_point) {
                    answered = answered || line.find("\"return\"") != std::string_view::npos;
                }, [] { return clock_type::now(); });
            const auto t1 = clock_type::now();
            {
                std::lock_guard<std::mutex> l(m_);
                samples_.push_back({t0, t1});
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    qmp_bench::raw_client c_;
    std::mutex m_;
    std::vector<sample> samples_;
    std::atomic<bool> stop_{false};
    std::thread t_;  // last: starts once the rest is built
};

struct figure {
    std::vector<double> ms, stall;
};

void bench(const qmp_support::qemu_build& b, int rounds, qmp_support::chain_layout layout) {
    qmp_support::temp_dir dir;
    const int depth = 128;
    auto files = qmp_support::make_chain(b, dir, "vda", depth, "1G", layout);
    qmp_support::qemu_config cfg;
    cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
    const std::string root = "vda-" + std::to_string(depth - 1) + "-fmt";
    const std::string second = dir.file("probe.sock");
    cfg.kind = qmp_support::qemu_kind::system;
    cfg.extra = {"-device", "virtio-blk-pci,drive=" + root + ",id=virtio-disk0",
                 "-chardev", "socket,path=" + second + ",server=on,wait=off,id=m2", "-mon", "chardev=m2,mode=control"};
    qmp_support::qemu_instance q(b, dir, cfg);

    qmp::threshold_manager_options o;
    o.service.tracker.catalog.entries["vda"] = "virtio-disk0";
    o.client.command_timeout = std::chrono::minutes(2);
    qmp::threshold_manager m(q.qmp_endpoint(), o);
    m.connect();
    for (std::uint32_t i = 1; i <= depth && m.armed().size() < depth; ++i)
        m.arm("vda[" + std::to_string(i) + "]", qmp::threshold_spec::bytes(512u << 20).with_capacity(1ull << 30));

    {
        // What each query of a resync costs QEMU alone (median of 5, raw client).
        qmp_bench::raw_client raw(second, false);
        std::cout << std::fixed << std::setprecision(2) << "  per query (" << b.label << ", " << qmp_support::to_string(layout) << "):";
        for (const char* cmd : {"{\"execute\":\"x-debug-query-block-graph\"}\r\n", "{\"execute\":\"query-blockstats\"}\r\n",
                                "{\"execute\":\"query-blockstats\",\"arguments\":{\"query-nodes\":true}}\r\n",
                                "{\"execute\":\"query-named-block-nodes\",\"arguments\":{\"flat\":true}}\r\n"}) {
            std::vector<double> v;
            for (int i = 0; i < 5; ++i) {
                const auto t0 = clock_type::now();
                raw.write_all(cmd, std::strlen(cmd));
                bool answered = false;
                while (!answered)
                    raw.read_lines(1, [&](std::string_view line, clock_type::time_point) {
                        answered = answered || line.find("\"return\"") != std::string_view::npos;
                    }, [] { return clock_type::now(); });
                v.push_back(ms_between(t0, clock_type::now()));
            }
            std::cout << " " << std::string(cmd).substr(12, std::string(cmd).find('"', 12) - 12)
                      << (std::string(cmd).find("query-nodes") != std::string::npos ? "(nodes)" : "") << " " << median(v) << " ms;";
        }
        std::cout << "\n";
    }
    loop_probe probe(second);
    const auto idle_from = clock_type::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const double idle = probe.median_in(idle_from, clock_type::now());

    figure resync, reconnect, restart, audit;
    auto timed = [&](figure& f, auto&& op) {
        const auto t0 = clock_type::now();
        op();
        const auto t1 = clock_type::now();
        f.ms.push_back(ms_between(t0, t1));
        f.stall.push_back(std::max(0.0, probe.worst_over(t0, t1) - idle));
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
    };
    for (int r = 0; r < rounds; ++r) {
        timed(resync, [&] {
            if (!m.resync().empty()) throw std::runtime_error("unexpected events in resync");
        });
        m.client().close();
        timed(reconnect, [&] {
            if (!m.connect().empty()) throw std::runtime_error("unexpected events after reconnecting");
        });
        // A monitor serves one client at a time: the first lets go.
        m.client().close();
        {
            qmp::threshold_manager fresh(q.qmp_endpoint(), o);
            fresh.load(m.state());
            timed(restart, [&] {
                if (!fresh.connect().empty()) throw std::runtime_error("unexpected events after restarting");
            });
            if (fresh.tracker().stats().audits != 0) throw std::runtime_error("the restart audited");
        }
        m.connect();
        timed(audit, [&] {
            if (!m.audit().empty()) throw std::runtime_error("unexpected events in audit");
        });
    }
    std::cout << std::fixed << std::setprecision(1) << "QEMU " << b.label << ", " << qmp_support::to_string(layout)
              << " backing names, 128 armed elements (probe idle " << idle << " ms):\n";
    for (auto [name, f] : {std::pair<const char*, figure*>{"resync", &resync}, {"reconnect", &reconnect}, {"restart", &restart}, {"audit", &audit}})
        std::cout << "  " << std::setw(9) << name << " " << std::setw(7) << median(f->ms) << " ms, QEMU stalled "
                  << std::setw(6) << median(f->stall) << " ms (worst " << *std::max_element(f->stall.begin(), f->stall.end())
                  << ")\n";
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 11;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else {
            std::cerr << "usage: qmp-bench-threshold [--rounds N]\n";
            return 2;
        }
    }
    try {
        for (const auto& b : qmp_support::qemu_builds())
            for (auto layout : {qmp_support::chain_layout::absolute, qmp_support::chain_layout::relative}) bench(b, rounds, layout);
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-threshold: " << e.what() << "\n";
        return 1;
    }
}
