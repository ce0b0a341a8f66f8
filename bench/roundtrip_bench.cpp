// Round trips against the transport limit, in one run.
//
//   qmp-bench-roundtrip [--count N] [--batches B] [--events E] [--rounds R] [--no-strace]
//                       [--inband-cap C]
//
// Against a real qemu-storage-daemon of each QEMU:
//   sequential: N `query-version` one after another, through a raw-socket
//     client (blocking, no JSON parser) without an id (the limit) and with
//     one, the async client (one io_context thread, each completion
//     starting the next) and sync_client, each with id-less commands (the
//     default) and with every command numbered (`-ids`);
//   pipelined: B batches of 64 commands in flight with oob negotiated, the
//     raw client writing all 64 at once, the async client keeping at most C
//     in-band commands at QEMU (client_options::max_inband_in_flight,
//     default the library's 8);
//   event latency: E times an NBD export is added and deleted; from the
//     BLOCK_EXPORT_DELETED event's timestamp (QEMU's wall clock) to the
//     code that gets it (the raw client's line scan, the async client's
//     subscription handler, sync_client's receive_event), median and p99.
// The ways take turns in R rounds (default 10) sharing the N and B; each
// figure is the median of its rounds, reported with its ratio to the raw
// client's in the same run, plus heap
// allocations per round trip (counted here: this program replaces operator
// new) and system calls per round trip (the program runs itself under
// `strace -f -c` twice, for two counts, and divides the difference, so
// start-up and connection cost nothing).
#include "raw_client.hpp"

#include <support/qemu.hpp>

#include <qmp/qmp.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <new>
#include <sstream>

namespace {
std::atomic<std::uint64_t> allocations{0};
std::size_t inband_cap = qmp::client_options{}.max_inband_in_flight;
}

// The replacements below pair with each other; GCC, seeing the library's
// new-expressions inlined next to free(), cannot tell.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// ---- the limit: a blocking client on the raw socket, no JSON parser (raw_client.hpp)

using qmp_bench::raw_client;

// The shortest form with an id, byte for byte as long as the library's
// numbered commands (whose ids are the smallest free numbers, one digit
// here): QEMU's monitor reads one byte per system call, so every byte of a
// command costs QEMU time, and a baseline that sent more would flatter the
// library. Pipelined commands need ids.
const char k_query[] = "{\"execute\":\"query-version\",\"id\":1}";
// The shortest form of all, without an id: the limit for sequential round
// trips (a command alone in flight needs none; the library sends it so).
const char k_query_idless[] = "{\"execute\":\"query-version\"}";

void raw_sequential(const std::string& path, int n) {
    raw_client c(path, false);
    for (int i = 0; i < n; ++i) {
        c.write_all(k_query, sizeof(k_query) - 1);
        c.read_lines(1);
    }
}

void raw_idless_sequential(const std::string& path, int n) {
    raw_client c(path, false);
    for (int i = 0; i < n; ++i) {
        c.write_all(k_query_idless, sizeof(k_query_idless) - 1);
        c.read_lines(1);
    }
}

void raw_pipelined(const std::string& path, int batches) {
    raw_client c(path, true);
    std::string batch;
    for (int i = 0; i < 64; ++i) batch += k_query;
    for (int b = 0; b < batches; ++b) {
        c.write_all(batch.data(), batch.size());
        c.read_lines(64);
    }
}

// ---- this library -------------------------------------------------------------

// Each completion starts the next command: one io_context thread, nothing else.
struct next_command {
    qmp::unix_client* c;
    int* left;
    void operator()(std::error_code ec, const qmp::json&) const {
        if (ec) throw std::system_error(ec);
        if (--*left > 0) c->async_execute("query-version", nullptr, *this);
    }
};

// The client always has a read pending (events), so run() would not
// return: connect, then run until the work is done.
void connect(asio::io_context& ctx, qmp::unix_client& c, const std::string& path) {
    bool done = false;
    c.async_connect(asio::local::stream_protocol::endpoint(path), [&done](std::error_code ec) {
        if (ec) throw std::system_error(ec);
        done = true;
    });
    while (!done) ctx.run_one();
}

// `idless`: client_options::idless_commands (the A/B of the ids).
void async_run(const std::string& path, int n, bool idless) {
    asio::io_context ctx{1};
    qmp::client_options o;
    o.idless_commands = idless;
    qmp::unix_client c(ctx, o);
    connect(ctx, c, path);
    int left = n;
    c.async_execute("query-version", nullptr, next_command{&c, &left});
    while (left > 0) ctx.run_one();
}
void async_sequential(const std::string& path, int n) { async_run(path, n, true); }
void async_ids_sequential(const std::string& path, int n) { async_run(path, n, false); }

void sync_run(const std::string& path, int n, bool idless) {
    qmp::client_options o;
    o.idless_commands = idless;
    qmp::sync_client c(o);
    c.connect(asio::local::stream_protocol::endpoint(path));
    for (int i = 0; i < n; ++i) c.execute("query-version");
}
void sync_sequential(const std::string& path, int n) { sync_run(path, n, true); }
void sync_ids_sequential(const std::string& path, int n) { sync_run(path, n, false); }

void async_pipelined(const std::string& path, int batches) {
    asio::io_context ctx{1};
    qmp::client_options o;
    o.enable_oob = true;
    o.max_inband_in_flight = inband_cap;
    qmp::unix_client c(ctx, o);
    connect(ctx, c, path);
    for (int b = 0; b < batches; ++b) {
        int done = 0;
        for (int i = 0; i < 64; ++i)
            c.async_execute("query-version", nullptr, [&done](std::error_code ec, const qmp::json&) {
                if (ec) throw std::system_error(ec);
                ++done;
            });
        while (done < 64) ctx.run_one();
    }
}

using runner = void (*)(const std::string&, int);
struct way {
    const char* name;
    runner run;
    bool pipelined;
};
// Sequential ways are measured against "raw-idless" (the limit), pipelined
// ones against "raw-pipelined". "-ids": the library with every command
// numbered, as before id-less commands (the A/B).
const way k_ways[] = {{"raw-idless", raw_idless_sequential, false},
                      {"raw", raw_sequential, false},
                      {"async", async_sequential, false},
                      {"async-ids", async_ids_sequential, false},
                      {"sync", sync_sequential, false},
                      {"sync-ids", sync_ids_sequential, false},
                      {"raw-pipelined", raw_pipelined, true},
                      {"async-pipelined", async_pipelined, true}};
constexpr std::size_t k_sequential_base = 0, k_pipelined_base = 6;

const way& find_way(const std::string& name) {
    for (const auto& w : k_ways)
        if (name == w.name) return w;
    throw std::invalid_argument("unknown way " + name);
}

// System calls of `self --child WAY PATH N` under strace -f -c (all threads).
long syscalls_of(const std::string& self, const std::string& way, const std::string& path, int n) {
    char tmpl[] = "/tmp/qmp-bench-strace-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    std::string cmd = "strace -f -c -o '" + std::string(tmpl) + "' '" + self + "' --child " + way + " '" + path + "' " +
                      std::to_string(n) + " " + std::to_string(inband_cap) + " >/dev/null 2>&1";
    int rc = std::system(cmd.c_str());
    std::ifstream f(tmpl);
    std::string line, last;
    while (std::getline(f, line))
        if (line.find("total") != std::string::npos) last = line;
    ::unlink(tmpl);
    if (rc != 0 || last.empty()) throw std::runtime_error("strace run failed: " + cmd);
    // "100.00    0.001319           9       144        19 total": calls is the 4th field.
    std::istringstream in(last);
    std::string pct, secs, usecs;
    long calls = 0;
    in >> pct >> secs >> usecs >> calls;
    return calls;
}

// ---- event latency: QEMU's timestamp to the code that gets the event ---------
//
// Each round adds an NBD export and deletes it; QEMU emits
// BLOCK_EXPORT_DELETED. Latency: the wall clock when the event reaches the
// code minus the event's timestamp (QEMU's wall clock, microseconds).

const char k_add[] = "{\"execute\":\"block-export-add\",\"arguments\":{\"type\":\"nbd\",\"id\":\"x\",\"node-name\":\"n0\",\"name\":\"x\"},\"id\":2}\r\n";
const char k_del[] = "{\"execute\":\"block-export-del\",\"arguments\":{\"id\":\"x\"},\"id\":3}\r\n";

double now_us() {
    return static_cast<double>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

double latency_us(const qmp::timestamp& t) { return now_us() - (static_cast<double>(t.seconds) * 1e6 + static_cast<double>(t.microseconds)); }

std::vector<double> raw_events(const std::string& path, int n) {
    std::vector<double> lat;
    raw_client c(path, false);
    // Events among the lines are timed: QEMU's timestamp to the receive.
    auto timed = [&lat](std::string_view line, double at) {
        if (line.find("BLOCK_EXPORT_DELETED") == std::string_view::npos) return;
        auto number = [&line](std::string_view key) {
            auto p = line.find(key);
            return p == std::string_view::npos ? -1.0 : std::strtod(std::string(line.substr(p + key.size(), 20)).c_str(), nullptr);
        };
        const double sec = number("\"seconds\": "), usec = number("\"microseconds\": ");
        if (sec >= 0 && usec >= 0) lat.push_back(at - (sec * 1e6 + usec));
    };
    for (int i = 0; i < n; ++i) {
        c.write_all(k_add, sizeof(k_add) - 1);
        c.read_lines(1, timed, now_us);
        c.write_all(k_del, sizeof(k_del) - 1);
        c.read_lines(2, timed, now_us);  // the reply and the event, in either order
    }
    return lat;
}

const qmp::json k_add_args = {{"type", "nbd"}, {"id", "x"}, {"node-name", "n0"}, {"name", "x"}};
const qmp::json k_del_args = {{"id", "x"}};

std::vector<double> async_events(const std::string& path, int n) {
    asio::io_context ctx{1};
    qmp::unix_client c(ctx);
    connect(ctx, c, path);
    std::vector<double> lat;
    qmp::event_filter only;
    only.names = {"BLOCK_EXPORT_DELETED"};
    auto sub = c.subscribe(only);
    std::function<void()> round;
    std::function<void(std::error_code, qmp::event)> on_event = [&](std::error_code ec, qmp::event e) {
        if (ec) throw std::system_error(ec);
        lat.push_back(latency_us(e.time));
        if (static_cast<int>(lat.size()) < n) round();
    };
    round = [&] {
        sub.async_receive(on_event);
        c.async_execute("block-export-add", k_add_args, [&](std::error_code ec, const qmp::json&) {
            if (ec) throw std::system_error(ec);
            c.async_execute("block-export-del", k_del_args, [](std::error_code ec2, const qmp::json&) {
                if (ec2) throw std::system_error(ec2);
            });
        });
    };
    round();
    while (static_cast<int>(lat.size()) < n) ctx.run_one();
    return lat;
}

std::vector<double> sync_events(const std::string& path, int n) {
    qmp::sync_client c;
    c.connect(asio::local::stream_protocol::endpoint(path));
    std::vector<double> lat;
    for (int i = 0; i < n; ++i) {
        c.execute("block-export-add", k_add_args);
        c.execute("block-export-del", k_del_args);
        for (;;) {
            qmp::event e = c.receive_event(std::chrono::seconds(10));
            if (e.name == "BLOCK_EXPORT_DELETED") {
                lat.push_back(latency_us(e.time));
                break;
            }
        }
    }
    return lat;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// The three take turns in rounds, as the round trips do.
void bench_events(const qmp_support::qemu_build& b, const std::string& path, int count, int rounds) {
    using fn = std::vector<double> (*)(const std::string&, int);
    const std::pair<const char*, fn> ways[] = {{"raw", raw_events}, {"async", async_events}, {"sync", sync_events}};
    std::vector<std::vector<double>> all(std::size(ways));
    for (const auto& w : ways) w.second(path, 20);  // warm up
    for (int r = 0; r < rounds; ++r)
        for (std::size_t i = 0; i < std::size(ways); ++i) {
            auto v = ways[i].second(path, std::max(1, count / rounds));
            all[i].insert(all[i].end(), v.begin(), v.end());
        }
    const double base = percentile(all[0], 0.5);
    for (std::size_t i = 0; i < std::size(ways); ++i)
        std::cout << std::fixed << std::setprecision(0) << "QEMU " << b.label << "  event latency " << std::left << std::setw(6)
                  << ways[i].first << std::right << " median " << percentile(all[i], 0.5) << " us (+" << percentile(all[i], 0.5) - base
                  << " us over raw), p99 " << percentile(all[i], 0.99) << " us, " << all[i].size() << " events\n"
                  << std::flush;
}

struct result {
    std::vector<double> rates;  // commands per second, one per round
    std::uint64_t allocs = 0, ops = 0;
    double syscalls = -1;
    double rate() const {
        auto v = rates;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
};

// The ways take turns, round after round, so a drift of the machine (the
// two cores are shared with QEMU's threads) touches them all alike; each
// figure is the median of its rounds.
void bench(const std::string& self, const qmp_support::qemu_build& b, int count, int batches, int events, int rounds,
           bool with_strace) {
    qmp_support::temp_dir dir;
    qmp_support::qemu_config cfg;
    cfg.blockdevs = {R"({"driver":"null-co","node-name":"n0"})"};
    cfg.nbd_export_node = "n0";  // the NBD server runs, so exports can come and go (event latency)
    qmp_support::qemu_instance q(b, dir, cfg);
    const std::string path = q.qmp_path();
    std::vector<result> res(std::size(k_ways));
    for (const auto& w : k_ways) w.run(path, w.pipelined ? 5 : 200);  // warm up
    for (int r = 0; r < rounds; ++r)
        for (std::size_t i = 0; i < std::size(k_ways); ++i) {
            const way& w = k_ways[i];
            const int n = std::max(1, (w.pipelined ? batches : count) / rounds);
            const std::uint64_t ops = static_cast<std::uint64_t>(n) * (w.pipelined ? 64 : 1);
            auto a0 = allocations.load();
            auto t0 = clock_type::now();
            w.run(path, n);
            res[i].rates.push_back(static_cast<double>(ops) / seconds_since(t0));
            res[i].allocs += allocations.load() - a0;
            res[i].ops += ops;
        }
    for (std::size_t i = 0; i < std::size(k_ways); ++i) {
        const way& w = k_ways[i];
        result& r = res[i];
        if (with_strace) {
            const int total = w.pipelined ? batches : count;
            const int small = std::max(1, total / 20), large = std::max(2, total / 4);
            long c1 = syscalls_of(self, w.name, path, small), c2 = syscalls_of(self, w.name, path, large);
            r.syscalls = static_cast<double>(c2 - c1) / ((large - small) * (w.pipelined ? 64 : 1));
        }
        const double base = res[w.pipelined ? k_pipelined_base : k_sequential_base].rate();
        std::cout << std::fixed << std::setprecision(0) << "QEMU " << b.label << "  " << std::left << std::setw(16)
                  << w.name << std::right << std::setw(7) << r.rate() << " commands/s  x" << std::setprecision(3)
                  << r.rate() / base << "  " << std::setprecision(2)
                  << static_cast<double>(r.allocs) / static_cast<double>(r.ops) << " allocations";
        if (r.syscalls >= 0) std::cout << "  " << r.syscalls << " system calls";
        std::cout << "  per command\n" << std::flush;
    }
    bench_events(b, path, events, rounds);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 6 && std::string(argv[1]) == "--child") {
            inband_cap = static_cast<std::size_t>(std::atoi(argv[5]));
            find_way(argv[2]).run(argv[3], std::atoi(argv[4]));
            return 0;
        }
        int count = 20000, batches = 300, events = 2000, rounds = 10;
        bool with_strace = true;
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--count" && i + 1 < argc)
                count = std::max(20, std::atoi(argv[++i]));
            else if (a == "--batches" && i + 1 < argc)
                batches = std::max(20, std::atoi(argv[++i]));
            else if (a == "--events" && i + 1 < argc)
                events = std::max(20, std::atoi(argv[++i]));
            else if (a == "--rounds" && i + 1 < argc)
                rounds = std::max(1, std::atoi(argv[++i]));
            else if (a == "--no-strace")
                with_strace = false;
            else if (a == "--inband-cap" && i + 1 < argc)
                inband_cap = static_cast<std::size_t>(std::max(1, std::atoi(argv[++i])));
            else {
                std::cerr << "usage: qmp-bench-roundtrip [--count N] [--batches B] [--events E] [--rounds R] [--no-strace] "
                             "[--inband-cap C]\n";
                return 2;
            }
        }
        if (with_strace && std::system("strace -V >/dev/null 2>&1") != 0) {
            std::cerr << "qmp-bench-roundtrip: strace is not installed; system calls are not counted\n";
            with_strace = false;
        }
        const std::string self = "/proc/" + std::to_string(::getpid()) + "/exe";
        char real[4096];
        ssize_t len = ::readlink(self.c_str(), real, sizeof(real) - 1);
        if (len <= 0) throw std::runtime_error("cannot find this program");
        real[len] = 0;
        for (const auto& b : qmp_support::qemu_builds()) bench(real, b, count, batches, events, rounds, with_strace);
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-roundtrip: " << e.what() << "\n";
        return 1;
    }
}
