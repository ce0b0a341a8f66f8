// Benchmark of qmp-thin-agent as an operator runs it: one agent process, one
// thread, N VMs, every VM crossing its threshold at once.
//
//   qmp-bench-agent [--real 1,200] [--simulated 1,2000] [--idle-seconds 5]
//   qmp-bench-agent --record DIR   (only record the simulated monitors' replies)
//
// Real: N qemu-storage-daemons, each a disk of 2 qcow2 images whose top
// lies on a 2 MiB window of its file (thin storage in miniature, a raw node
// with a size) and a second monitor for the hook. The agent arms `end-1M`;
// the bench writes 1 MiB to every VM's NBD export at once (a minimal NBD
// client, no process per write); each hook logs its start and grows the
// window by 64 MiB through the second monitor, as lvextend would act from
// outside.
// Simulated: one qmp-bench-monitors process plays N monitors with replies
// recorded from a real QEMU 10.0 of the same layout; SIGUSR1 fires them all.
//
// Prints per run: VMs extended, latency from QEMU's event timestamp
// (QMP_EVENT_TIME) to the hook's first line (p50, p99, max), the agent's
// CPU time while it handled the firing (and per VM), its CPU time while
// idle (armed, nothing happening) over --idle-seconds, its resident memory
// and, with two sizes, the memory each further VM adds.
#include "bench_support.hpp"
#include "nbd_writer.hpp"

#include <support/qemu.hpp>

#include <qmp/client/clients.hpp>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

namespace {

using namespace std::chrono_literals;
using qmp_support::temp_dir;
using namespace qmp_bench;

// CPU time the process's (only) thread ran, from the scheduler: nanoseconds.
double cpu_ms(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/schedstat");
    unsigned long long ns = 0;
    f >> ns;
    return static_cast<double>(ns) / 1e6;
}

// The thin layout of one VM: <name>-0 (base) and <name>-1 (top) qcow2, each
// on a raw window of `window` bytes over its file; NBD export of the top.
qmp_support::qemu_config thin_layout(const qmp_support::qemu_build& b, const temp_dir& dir, const std::string& name,
                                     std::uint64_t window) {
    auto files = qmp_support::make_chain(b, dir, name, 2, "256M");
    qmp_support::qemu_config cfg;
    for (int i = 0; i < 2; ++i) {
        const std::string n = name + "-" + std::to_string(i);
        qmp_support::run_checked({"truncate", "-s", "2G", files[static_cast<std::size_t>(i)]});
        cfg.blockdevs.push_back(R"({"driver":"file","node-name":")" + n + R"(-file","filename":")" + files[static_cast<std::size_t>(i)] + "\"}");
        cfg.blockdevs.push_back(R"({"driver":"raw","node-name":")" + n + R"(-thin","file":")" + n + R"(-file","offset":0,"size":)" +
                                std::to_string(window) + "}");
        std::string fmt = R"({"driver":"qcow2","node-name":")" + n + R"(-fmt","file":")" + n + "-thin\"";
        if (i > 0) fmt += R"(,"backing":")" + name + "-0-fmt\"";
        cfg.blockdevs.push_back(fmt + "}");
    }
    cfg.nbd_export_node = name + "-1-fmt";
    return cfg;
}

// Replies of a real QEMU 10.0 with that layout, the watched node's size,
// threshold and highest offset replaced by placeholders, for qmp-bench-monitors.
void record_templates(const std::string& out_dir) {
    const auto builds = qmp_support::qemu_builds();
    const auto& b = builds.back();
    temp_dir dir;
    auto cfg = thin_layout(b, dir, "vm0", 64u << 20);
    qmp_support::qemu_instance q(b, dir, cfg, "vm0");
    qmp::sync_client c;
    c.connect(q.qmp_endpoint());
    const std::string node = "vm0-1-thin";
    const std::uint64_t cap = 9000000000001, thr = 9000000000002, wr = 9000000000003;
    std::function<void(nlohmann::json&)> mark = [&](nlohmann::json& j) {
        if (j.is_array()) {
            for (auto& e : j) mark(e);
        } else if (j.is_object()) {
            if (j.value("node-name", "") == node) {
                if (j.contains("write_threshold")) j["write_threshold"] = thr;
                if (j.contains("image")) j["image"]["virtual-size"] = cap;
                if (j.contains("stats")) j["stats"]["wr_highest_offset"] = wr;
            }
            for (auto& [k, v] : j.items()) mark(v);
        }
    };
    auto save = [&](const std::string& file, const std::string& cmd, nlohmann::json args) {
        nlohmann::json r = c.execute(cmd, args);
        mark(r);
        std::string s = r.dump();
        for (auto [num, ph] : {std::pair{cap, "@CAP@"}, std::pair{thr, "@THR@"}, std::pair{wr, "@WR@"}})
            for (std::size_t p; (p = s.find(std::to_string(num))) != std::string::npos;) s.replace(p, std::to_string(num).size(), ph);
        std::ofstream(out_dir + "/" + file) << s << "\n";
    };
    save("graph.json", "x-debug-query-block-graph", nullptr);
    save("node_stats.json", "query-blockstats", {{"query-nodes", true}});
    save("backend_stats.json", "query-blockstats", nullptr);
    save("nodes.json", "query-named-block-nodes", {{"flat", true}});
    save("commands.json", "query-commands", nullptr);
}

struct result {
    std::string label;
    std::size_t n = 0, extended = 0;
    double p50 = 0, p99 = 0, max = 0, fire_cpu_ms = 0, idle_cpu_ms = 0;
    std::size_t rss = 0;
};

void print(const result& r, const result* first) {
    std::cout << std::left << std::setw(18) << r.label << std::right << std::setw(6) << r.n << std::setw(9) << r.extended
              << std::fixed << std::setprecision(1) << std::setw(9) << r.p50 << std::setw(9) << r.p99 << std::setw(9) << r.max
              << std::setw(11) << r.fire_cpu_ms << std::setw(9) << std::setprecision(2) << r.fire_cpu_ms / static_cast<double>(std::max<std::size_t>(r.n, 1))
              << std::setprecision(1) << std::setw(10) << r.idle_cpu_ms << std::setw(10) << r.rss;
    if (first && first->n < r.n)
        std::cout << std::setw(10) << std::setprecision(1)
                  << static_cast<double>(r.rss - std::min(r.rss, first->rss)) / static_cast<double>(r.n - first->n);
    else
        std::cout << std::setw(10) << "-";
    std::cout << std::endl;
}

// Runs the agent over `vms` (name -> socket), fires through `fire`, measures.
result run_agent(const std::string& label, const std::vector<std::pair<std::string, std::string>>& vms,
                 const std::string& hook_body, const std::function<void()>& fire, int idle_seconds) {
    temp_dir work;
    const std::string list = work.file("vms"), out = work.file("agent.out"), err = work.file("agent.err"),
                      hook = work.file("hook.sh"), log = work.file("hook.log");
    {
        std::ofstream l(list);
        for (auto& [n, s] : vms) l << n << "=" << s << "\n";
        std::ofstream h(hook);
        h << "#!/bin/bash\necho \"$QMP_VM $QMP_EVENT_TIME $EPOCHREALTIME\" >> '" << log << "'\n" << hook_body;
    }
    pid_t agent = qmp_support::spawn({bin_dir() + "/qmp-thin-agent", "--vms-file", list, "--spec", "end-1M", "--extend-cmd",
                                      "exec bash " + hook},
                                     out, err);
    result r;
    r.label = label;
    r.n = vms.size();
    if (!wait_until([&] { return count_lines(out, "armed") >= vms.size(); }, std::chrono::seconds(30 + vms.size() / 10)))
        throw std::runtime_error(label + ": only " + std::to_string(count_lines(out, "armed")) + " of " +
                                 std::to_string(vms.size()) + " VMs armed\n" + qmp_support::read_file(err));
    std::this_thread::sleep_for(1s);
    const double idle0 = cpu_ms(agent);
    std::this_thread::sleep_for(std::chrono::seconds(idle_seconds));
    r.idle_cpu_ms = cpu_ms(agent) - idle0;
    r.rss = static_cast<std::size_t>(qmp_bench::proc_status_kb("VmRSS", std::to_string(agent)));
    const double fire0 = cpu_ms(agent);
    fire();
    wait_until([&] { return count_lines(out, "extended") >= vms.size(); }, 300s);
    r.fire_cpu_ms = cpu_ms(agent) - fire0;
    r.extended = count_lines(out, "extended");
    std::vector<double> lat;
    std::ifstream f(log);
    std::string vm, t0, t1;
    while (f >> vm >> t0 >> t1) lat.push_back((std::stod(t1) - std::stod(t0)) * 1e3);
    r.p50 = pct(lat, 0.5);
    r.p99 = pct(lat, 0.99);
    r.max = pct(lat, 1.0);
    ::kill(agent, SIGTERM);
    if (qmp_support::wait_exit(agent) != 0) std::cerr << label << ": the agent did not exit with 0\n" << qmp_support::read_file(err);
    if (count_lines(out, "extend-failed") || count_lines(out, "error"))
        std::cerr << label << ": failures in the agent's output:\n" << qmp_support::read_file(out);
    return r;
}

result real_run(const qmp_support::qemu_build& b, std::size_t n, int idle_seconds) {
    temp_dir dir;
    std::vector<std::unique_ptr<qmp_support::qemu_instance>> qs;
    std::vector<std::pair<std::string, std::string>> vms;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string name = "vm" + std::to_string(i);
        auto cfg = thin_layout(b, dir, name, 2u << 20);
        cfg.extra = {"--chardev", "socket,path=" + dir.file(name + "-second.qmp") + ",server=on,wait=off,id=m2", "--monitor",
                     "chardev=m2"};
        qs.push_back(std::make_unique<qmp_support::qemu_instance>(b, dir, cfg, name));
        vms.emplace_back(name, qs.back()->qmp_path());
    }
    // The hook grows the window by 64 MiB through the VM's second monitor.
    const std::string grow = "NEW=$((QMP_CAPACITY + 67108864))\n'" + bin_dir() + "/qmpctl' -s '" + dir.path().string() +
                             "'/$QMP_VM-second.qmp exec blockdev-reopen \"{\\\"options\\\": [{\\\"driver\\\": \\\"raw\\\", "
                             "\\\"node-name\\\": \\\"$QMP_NODE\\\", \\\"file\\\": \\\"${QMP_NODE%-thin}-file\\\", "
                             "\\\"offset\\\": 0, \\\"size\\\": $NEW}]}\" >/dev/null\n";
    std::vector<qmp_bench::nbd_writer> writers;
    auto fire = [&] {
        for (auto& q : qs) writers.emplace_back(q->nbd_path(), "vda");
        for (auto& w : writers) w.send_write(0, 1u << 20);
        for (auto& w : writers) w.wait_reply();
    };
    return run_agent("real " + b.label, vms, grow, fire, idle_seconds);
}

result simulated_run(const std::string& templates, std::size_t n, int idle_seconds) {
    temp_dir dir;
    const std::string ready = dir.file("monitors.out");
    pid_t server = qmp_support::spawn({bin_dir() + "/qmp-bench-monitors", "--templates", templates, "--dir", dir.path().string(),
                                       "--count", std::to_string(n), "--node", "vm0-1-thin", "--capacity",
                                       std::to_string(64u << 20)},
                                      ready, dir.file("monitors.err"));
    if (!wait_until([&] { return qmp_support::read_file(ready).find("ready") != std::string::npos; }, 60s))
        throw std::runtime_error("qmp-bench-monitors did not start: " + qmp_support::read_file(dir.file("monitors.err")));
    std::vector<std::pair<std::string, std::string>> vms;
    for (std::size_t i = 0; i < n; ++i) vms.emplace_back("vm" + std::to_string(i), dir.file("vm" + std::to_string(i) + ".qmp"));
    auto r = run_agent("simulated", vms, "", [&] { ::kill(server, SIGUSR1); }, idle_seconds);
    ::kill(server, SIGTERM);
    qmp_support::wait_exit(server);
    const std::string complaints = qmp_support::read_file(dir.file("monitors.err"));
    if (!complaints.empty()) std::cerr << complaints;
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::size_t> real, simulated;
    int idle_seconds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--real") real = parse_sizes(argv[i + 1]);
        else if (a == "--simulated") simulated = parse_sizes(argv[i + 1]);
        else if (a == "--idle-seconds") idle_seconds = std::stoi(argv[i + 1]);
        else if (a == "--record") return record_templates(argv[i + 1]), 0;  // only write the replies qmp-bench-monitors plays
    }
    if (real.empty() && simulated.empty()) real = {1, 200}, simulated = {1, 2000};
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    try {
        std::cout << std::left << std::setw(18) << "run" << std::right << std::setw(6) << "VMs" << std::setw(9) << "extended"
                  << std::setw(9) << "p50 ms" << std::setw(9) << "p99 ms" << std::setw(9) << "max ms" << std::setw(11) << "fire CPU"
                  << std::setw(9) << "ms/VM" << std::setw(10) << "idle CPU" << std::setw(10) << "RSS KiB" << std::setw(10)
                  << "KiB/VM" << "\n";
        for (const auto& b : qmp_support::qemu_builds()) {
            std::optional<result> first;
            for (std::size_t n : real) {
                auto r = real_run(b, n, idle_seconds);
                print(r, first ? &*first : nullptr);
                if (!first) first = r;
            }
        }
        if (!simulated.empty()) {
            temp_dir t;
            record_templates(t.path().string());
            std::optional<result> first;
            for (std::size_t n : simulated) {
                auto r = simulated_run(t.path().string(), n, idle_seconds);
                print(r, first ? &*first : nullptr);
                if (!first) first = r;
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-agent: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
