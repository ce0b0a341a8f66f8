// Benchmark of the threshold service on one thread: N real
// qemu-storage-daemons ("VMs"), one client + threshold service each, all on
// one io_context thread. Every VM's `vda` is armed, then every VM is written
// at once and each BLOCK_WRITE_THRESHOLD is taken by the application's
// callback. "At once": the bench connects to every VM's NBD export first
// (a minimal NBD client of its own), then sends every VM one 64 KiB write
// in one loop, so the load on the machine is the firing and nothing else
// (no hundred qemu-io processes starting).
//
//   qmp-bench-fleet [--vms 1,10,100] [--agent-nice N]
//
// --agent-nice N gives the agent thread (the io_context thread that runs
// every client and service) the nice value N, as `Nice=N` in an agent's
// systemd unit would; the QEMUs keep theirs (0).
//
// Prints per QEMU and N: events received, latency from QEMU's event
// timestamp to the callback (p50, p99, max), the agent thread's CPU time
// (getrusage RUSAGE_THREAD) while the events arrived and per event, graph
// queries during the firing (0: no rebuild per event), and the resident
// memory each watched VM adds to the process (client + service + graph).
#include "bench_support.hpp"
#include "nbd_writer.hpp"

#include <support/qemu.hpp>

#include <qmp/threshold/service.hpp>

#include <asio/io_context.hpp>
#include <asio/packaged_task.hpp>
#include <asio/post.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

namespace {

using qmp_bench::pct;

double thread_cpu_ms() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

struct vm {
    std::string name;
    std::unique_ptr<qmp_support::qemu_instance> q;
    std::unique_ptr<qmp::unix_client> client;
    std::unique_ptr<qmp::threshold_service> service;
};

void bench(const qmp_support::qemu_build& b, std::size_t n, std::optional<int> agent_nice) {
    qmp_support::temp_dir dir;
    std::vector<vm> vms(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto& v = vms[i];
        v.name = "vm" + std::to_string(i);
        auto files = qmp_support::make_chain(b, dir, v.name, 2, "256M");
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(files, v.name);
        cfg.nbd_export_node = v.name + "-1-fmt";
        v.q = std::make_unique<qmp_support::qemu_instance>(b, dir, cfg, v.name);
    }

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread loop([&] {
        if (agent_nice && ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), *agent_nice) != 0)
            std::cerr << "qmp-bench-fleet: setpriority " << *agent_nice << ": " << std::strerror(errno) << "\n";
        io.run();
    });
    auto on_loop = [&](auto f) { return asio::post(io, std::packaged_task<decltype(f())()>(std::move(f))).get(); };

    const std::size_t rss0 = static_cast<std::size_t>(qmp_bench::proc_status_kb("VmRSS"));
    std::promise<void> all_armed;
    std::atomic<std::size_t> armed{0}, failed{0};
    on_loop([&] {
        for (auto& v : vms) {
            v.client = std::make_unique<qmp::unix_client>(io);
            qmp::threshold_service_options o;
            o.tracker.catalog.entries["vda"] = v.name + "-1-fmt";
            v.service = std::make_unique<qmp::threshold_service>(*v.client, o);
            v.client->async_connect(v.q->qmp_endpoint(), [&, &v = v](std::error_code ec) {
                if (!ec) v.service->on_connected();
                auto done = [&](std::error_code ec2, std::vector<qmp::threshold_event>) {
                    if (ec2) ++failed;
                    if (++armed == n) all_armed.set_value();
                };
                if (ec) return done(ec, {});
                v.service->async_arm("vda", qmp::threshold_spec::bytes(64u << 10), done);
            });
        }
        return 0;
    });
    all_armed.get_future().wait();
    if (failed) throw std::runtime_error(std::to_string(failed.load()) + " VMs could not be armed");
    const std::size_t rss1 = static_cast<std::size_t>(qmp_bench::proc_status_kb("VmRSS"));

    std::vector<double> latency_ms;
    std::vector<double> read_ms;     // QEMU timestamp -> the client read it (a plain subscription)
    std::vector<double> service_ms;  // the client read it -> the service's callback
    std::map<std::string, double> read_at;  // node -> when read
    std::vector<qmp::unix_client::subscription> plain(n);
    std::promise<void> all_fired;
    auto now_ms = [] {
        return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    auto qemu_ms = [](const qmp::timestamp& t) {
        return static_cast<double>(t.seconds) * 1e3 + static_cast<double>(t.microseconds) / 1e3;
    };
    std::uint64_t queries_before = 0;
    double cpu0 = 0;
    on_loop([&] {
        for (auto& v : vms) queries_before += v.service->stats().graph_queries;
        cpu0 = thread_cpu_ms();
        for (auto& v : vms) {
            // Subscribed before the service's own subscription is served? No:
            // the router hands an event to every subscription in one go, so
            // both receives become ready in the same read; this one records
            // the read, the service's callback comes after its tracker ran.
            auto& sub = plain[static_cast<std::size_t>(&v - vms.data())];
            sub = v.client->subscribe({{"BLOCK_WRITE_THRESHOLD"}, {}});
            sub.async_receive([&](std::error_code ec, qmp::event ev) {
                if (ec) return;
                const double t = now_ms();
                read_ms.push_back(t - qemu_ms(ev.time));
                read_at[ev.data.value("node-name", "")] = t;
            });
            v.service->async_receive([&](std::error_code ec, qmp::threshold_event e) {
                if (ec) return;
                const double t = now_ms();
                latency_ms.push_back(t - qemu_ms(e.time));
                auto r = read_at.find(e.node);
                if (r != read_at.end()) service_ms.push_back(t - r->second);
                if (latency_ms.size() == n) all_fired.set_value();
            });
        }
        return 0;
    });
    // The writers connect to every VM's NBD export first; then one loop
    // sends every VM its write.
    std::vector<qmp_bench::nbd_writer> writers;
    for (auto& v : vms) writers.emplace_back(v.q->nbd_path(), "vda");
    for (auto& w : writers) w.send_write(0, 64u << 10);  // past 64 KiB of host storage (after qcow2's metadata)
    for (auto& w : writers) w.wait_reply();
    auto fired = all_fired.get_future();
    const bool complete = fired.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
    std::uint64_t queries_after = 0;
    double cpu1 = 0;
    std::size_t got = 0;
    std::vector<double> lat, rd, sv;
    on_loop([&] {
        rd = read_ms;
        sv = service_ms;
        for (auto& p : plain) p.reset();
        cpu1 = thread_cpu_ms();
        for (auto& v : vms) queries_after += v.service->stats().graph_queries;
        got = latency_ms.size();
        lat = latency_ms;
        for (auto& v : vms) {
            v.service->stop();
            v.client->close();
        }
        return 0;
    });
    work.reset();
    loop.join();
    if (!complete || lat.empty()) throw std::runtime_error("only " + std::to_string(got) + " of " + std::to_string(n) + " events arrived");

    std::cout << std::fixed << std::setprecision(2) << "QEMU " << b.label << ", " << std::setw(3) << n
              << " VMs: " << got << "/" << n << " events; QEMU timestamp -> callback p50 " << pct(lat, 0.5)
              << " ms, p99 " << pct(lat, 0.99) << " ms, max " << pct(lat, 1.0) << " ms; agent thread CPU "
              << (cpu1 - cpu0) << " ms (" << std::setprecision(0) << (cpu1 - cpu0) * 1e3 / static_cast<double>(got)
              << " us/event); graph queries while firing " << (queries_after - queries_before) << "; memory per VM "
              << (rss1 > rss0 ? (rss1 - rss0) / n : 0) << " KiB\n";
    if (!rd.empty() && !sv.empty())
        std::cout << std::setprecision(2) << "        of which QEMU timestamp -> client read p50 " << pct(rd, 0.5)
                  << " ms, p99 " << pct(rd, 0.99) << " ms; client read -> service callback p50 " << pct(sv, 0.5)
                  << " ms, p99 " << pct(sv, 0.99) << " ms\n";
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::size_t> sizes{1, 10, 100};
    std::optional<int> agent_nice;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--vms" && i + 1 < argc) {
            sizes.clear();
            std::stringstream ss(argv[++i]);
            for (std::string part; std::getline(ss, part, ',');) sizes.push_back(std::stoul(part));
        } else if (a == "--agent-nice" && i + 1 < argc) {
            agent_nice = std::stoi(argv[++i]);
        } else {
            std::cerr << "usage: qmp-bench-fleet [--vms 1,10,100] [--agent-nice N]\n";
            return 2;
        }
    }
    try {
        for (const auto& b : qmp_support::qemu_builds())
            for (auto n : sizes) bench(b, n, agent_nice);
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-fleet: " << e.what() << "\n";
        return 1;
    }
}
