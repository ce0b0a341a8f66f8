// Benchmarks of block-graph discovery on a 128-deep qcow2 chain (256 nodes)
// attached to one virtio-blk device of a paused qemu-system-x86_64, with
// the images naming their backing files by absolute path and by relative
// name (as oVirt/vdsm do: QEMU's per-node replies grow about 10x).
//
//   qmp-bench-graph [--rounds N] [--replies-only]
//                                      snapshot costs, both QEMUs, then the
//                                      parses (only these: --replies-only)
//   qmp-bench-graph --parse FILE PARSER  one parser (this library's typed
//                                      reading, tree or tokens; nlohmann's SAX
//                                      or DOM) over one cached reply, run as a
//                                      child process so its peak memory is its own
//   qmp-bench-graph --replay FILE      the whole client with that reply: a
//                                      forked monitor sends it, the client
//                                      reads and types it (peak RSS its own)
//
// The query-named-block-nodes replies (1.7 MB flat; about 34 MB without flat,
// which takes QEMU about 25 s to produce) are generated once and cached in
// $XDG_CACHE_HOME/qmp-bench (default ~/.cache/qmp-bench), outside the repository.
#include "bench_support.hpp"

#include <support/qemu.hpp>

#include <qmp/block/graph_query.hpp>
#include <qmp/block/resolver.hpp>
#include <qmp/qmp.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::string cache_dir() {
    const char* x = std::getenv("XDG_CACHE_HOME");
    const char* h = std::getenv("HOME");
    std::string base = x && *x ? x : std::string(h ? h : "/tmp") + "/.cache";
    std::string d = base + "/qmp-bench";
    std::filesystem::create_directories(d);
    return d;
}

struct deep_vm {
    qmp_support::temp_dir dir;
    std::unique_ptr<qmp_support::qemu_instance> q;
    std::unique_ptr<qmp::sync_client> client;
    qmp::sync_client& cl() { return *client; }
    deep_vm(const qmp_support::qemu_build& b, int depth, qmp_support::qemu_kind kind, qmp_support::chain_layout layout) {
        auto files = qmp_support::make_chain(b, dir, "vda", depth, "1G", layout);
        qmp_support::qemu_config cfg;
        cfg.kind = kind;
        cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
        std::string top = "vda-" + std::to_string(depth - 1) + "-fmt";
        if (kind == qmp_support::qemu_kind::system)
            cfg.extra = {"-device", "virtio-blk-pci,drive=" + top + ",id=virtio-disk0"};
        q = std::make_unique<qmp_support::qemu_instance>(b, dir, cfg);
        qmp::client_options o;
        o.command_timeout = std::chrono::minutes(5);
        client = std::make_unique<qmp::sync_client>(o);
        client->connect(q->qmp_endpoint());
    }
};

template <class F>
double time_median(int rounds, F&& f) {
    std::vector<double> t;
    for (int i = 0; i < rounds; ++i) {
        auto t0 = clock_type::now();
        f();
        t.push_back(ms_since(t0));
    }
    return median(t);
}

void bench_snapshots(const qmp_support::qemu_build& b, int rounds, qmp_support::chain_layout layout) {
    deep_vm vm(b, 128, qmp_support::qemu_kind::system, layout);
    std::cout << std::fixed << std::setprecision(1) << "QEMU " << b.label << ", 128-deep chain, 256 nodes, "
              << qmp_support::to_string(layout) << " backing names:\n";
    for (const auto& query : std::vector<std::pair<std::string, qmp::json>>{
             {"x-debug-query-block-graph", nullptr},
             {"query-blockstats", qmp::json::object()},
             {"query-blockstats", {{"query-nodes", true}}},
             {"query-named-block-nodes", {{"flat", true}}}}) {
        const std::string& cmd = query.first;  // named: clang 14 lambdas cannot capture structured bindings
        const qmp::json& args = query.second;
        int r = cmd == "query-named-block-nodes" ? std::max(3, rounds / 5) : rounds;
        std::cout << "  " << cmd << " " << (args.is_null() ? "" : args.dump()) << ": "
                  << time_median(r, [&] { vm.cl().execute(cmd, args); }) << " ms\n";
    }
    qmp::driver_cache cache;
    auto t0 = clock_type::now();
    qmp::query_block_graph(vm.cl(), {}, &cache);
    std::cout << "  graph snapshot, first (nothing known): " << ms_since(t0) << " ms, " << cache.refreshes
              << " details queries\n";
    std::cout << "  graph snapshot, later: "
              << time_median(rounds, [&] { qmp::query_block_graph(vm.cl(), {}, &cache); }) << " ms\n";
    // What a program does on its first resolve: a snapshot with nothing known, the disks,
    // then one element.
    std::cout << "  resolve of vda[64] from nothing (first snapshot + index): "
              << time_median(std::max(3, rounds / 5),
                             [&] {
                                 qmp::driver_cache fresh;
                                 auto g = qmp::query_block_graph(vm.cl(), {}, &fresh);
                                 qmp::resolver r;
                                 qmp::index_registry reg;
                                 r.update(g, reg);
                                 if (r.disks().empty()) throw std::runtime_error("no disk");
                                 std::error_code ec;
                                 if (!r.resolve(r.disks()[0].name + "[64]", ec)) throw std::runtime_error("resolve: " + ec.message());
                             })
              << " ms\n";
    std::cout << "  graph snapshot, detailed path: "
              << time_median(std::max(3, rounds / 5),
                             [&] { qmp::query_block_graph(vm.cl(), qmp::graph_query_options{qmp::details_need::fresh}, &cache); })
              << " ms\n";
}

// Makes (once) the cached replies; returns their paths.
std::vector<std::string> cached_replies(const qmp_support::qemu_build& b, qmp_support::chain_layout layout) {
    std::string dir = cache_dir();
    std::string stem = dir + (layout == qmp_support::chain_layout::absolute ? "/qnbn-128" : "/qnbn-128-relative");
    std::string flat = stem + "-flat.json", deep = stem + "-nonflat.json";
    if (!std::filesystem::exists(flat) || !std::filesystem::exists(deep)) {
        std::cerr << "generating the cached replies (QEMU may take half a minute for the non-flat one)...\n";
        deep_vm vm(b, 128, qmp_support::qemu_kind::storage_daemon, layout);
        std::ofstream(flat) << vm.cl().execute("query-named-block-nodes", {{"flat", true}}).dump();
        std::ofstream(deep) << vm.cl().execute("query-named-block-nodes", qmp::json::object()).dump();
    }
    return {flat, deep};
}

// nlohmann's own SAX parser with a handler that only counts (and keeps a
// number's text where it has no exact type: what exact numbers would need).
struct counting_sax : qmp::json::json_sax_t {
    std::size_t events = 0, inexact = 0;
    bool null() override { return ++events; }
    bool boolean(bool) override { return ++events; }
    bool number_integer(number_integer_t) override { return ++events; }
    bool number_unsigned(number_unsigned_t) override { return ++events; }
    bool number_float(number_float_t, const string_t& s) override {
        inexact += s.size();
        return ++events;
    }
    bool string(string_t&) override { return ++events; }
    bool binary(binary_t&) override { return ++events; }
    bool start_object(std::size_t) override { return ++events; }
    bool key(string_t&) override { return ++events; }
    bool end_object() override { return ++events; }
    bool start_array(std::size_t) override { return ++events; }
    bool end_array() override { return ++events; }
    bool parse_error(std::size_t, const std::string&, const qmp::json::exception&) override { return false; }
};

// One parser over one cached reply (a child process, so that its peak
// memory is its own): prints the milliseconds and the peak RSS it added (KiB).
//   typed        this library: the reply's text straight into the typed result
//   tree         this library's parse_json: a JSON tree with every number exact
//   tokens       this library's pull reader over every token (nothing built)
//   sax          nlohmann's SAX parser, a handler that only counts (nothing built)
//   dom          nlohmann's json::parse
//   dom-typed    nlohmann's json::parse, then the tree into the typed result
int parse_one(const std::string& path, const std::string& which) {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const long base = qmp_bench::proc_status_kb("VmHWM");
    const auto t0 = clock_type::now();
    std::size_t count = 0;
    if (which == "typed") {
        std::vector<qmp::block_device_info> nodes;
        if (auto ec = qmp::convert_text(text, nodes)) throw std::runtime_error("convert failed: " + ec.message());
        count = nodes.size();
    } else if (which == "tree") {
        qmp::json tree;
        if (auto ec = qmp::parse_json(text, tree)) throw std::runtime_error("parse failed: " + ec.message());
        count = tree.size();
    } else if (which == "tokens") {
        qmp::json_reader r(text);
        r.next();
        if (!r.skip_value()) throw std::runtime_error("read failed");
        count = 1;
    } else if (which == "sax") {
        counting_sax sax;
        if (!qmp::json::sax_parse(text, &sax)) throw std::runtime_error("sax_parse failed");
        count = sax.events;
    } else if (which == "dom" || which == "dom-typed") {
        qmp::json tree = qmp::json::parse(text);
        count = tree.size();
        if (which == "dom-typed") {
            std::vector<qmp::block_device_info> nodes;
            if (auto ec = qmp::convert(tree, nodes)) throw std::runtime_error("convert failed: " + ec.message());
        }
    } else {
        throw std::runtime_error("no parser " + which);
    }
    const double ms = ms_since(t0);
    std::cout << std::fixed << std::setprecision(2) << ms << " " << qmp_bench::proc_status_kb("VmHWM") - base << " "
              << count << "\n";
    return 0;
}

// A monitor that answers one command with the text of FILE (its result),
// in a forked process so the text is not in the client's memory. It
// writes the time it starts sending (CLOCK_MONOTONIC, the steady clock of
// both processes) to `times` before the first byte.
void serve_reply(int listener, const std::string& path, int times) {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) _exit(1);
    auto put = [fd](std::string_view b) {
        while (!b.empty()) {
            ssize_t n = ::write(fd, b.data(), b.size());
            if (n <= 0) _exit(1);
            b.remove_prefix(static_cast<std::size_t>(n));
        }
    };
    // Reads one command; returns what its reply ends with: its id as sent
    // (quotes included) after ", \"id\": ", or nothing for a command sent
    // without one (the client's usual way when it is alone in flight).
    std::string pending;
    auto next_id = [&] {
        char buf[4096];
        for (;;) {
            // Complete when its braces balance (these commands hold no braces in strings).
            const auto opened = std::count(pending.begin(), pending.end(), '{');
            if (opened && opened == std::count(pending.begin(), pending.end(), '}')) {
                auto at = pending.find("\"id\":");
                std::string id;
                if (at != std::string::npos) {
                    auto from = at + 5, to = pending.find_first_of(",}", from);
                    id = ", \"id\": " + pending.substr(from, to - from);
                }
                pending.clear();
                return id;
            }
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) _exit(1);
            pending.append(buf, static_cast<std::size_t>(n));
        }
    };
    put(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}})"
        "\r\n");
    put("{\"return\": {}" + next_id() + "}\r\n");
    std::string head = "{\"return\": ", tail = next_id() + "}\r\n";
    double t = std::chrono::duration<double, std::milli>(clock_type::now().time_since_epoch()).count();
    if (::write(times, &t, sizeof t) != sizeof t) _exit(1);
    put(head);
    put(text);
    put(tail);
    ::close(fd);
    _exit(0);
}

// One command's reply from the forked monitor, typed (or as a JSON tree):
// the client's time after the first byte and its peak RSS against the reply.
int replay_one(const std::string& path, bool tree) {
    const auto size = std::filesystem::file_size(path);
    qmp_support::temp_dir dir;
    const std::string sock = dir.file("m.qmp");
    int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) || ::listen(listener, 1))
        throw std::runtime_error("cannot listen on " + sock);
    int times[2];
    if (::pipe(times)) throw std::runtime_error("pipe failed");
    pid_t pid = ::fork();
    if (pid == 0) serve_reply(listener, path, times[1]);
    ::close(listener);
    qmp::client_options o;
    o.command_timeout = std::chrono::minutes(1);
    qmp::sync_client cl(o);
    cl.connect(asio::local::stream_protocol::endpoint(sock));
    const long base = qmp_bench::proc_status_kb("VmHWM");
    std::size_t nodes = 0;
    if (tree)
        nodes = cl.execute("query-named-block-nodes", qmp::json::object()).size();
    else
        nodes = cl.execute(qmp::query_named_block_nodes{}).size();
    const double done = std::chrono::duration<double, std::milli>(clock_type::now().time_since_epoch()).count();
    double first = 0;
    if (::read(times[0], &first, sizeof first) != sizeof first) throw std::runtime_error("no time from the monitor");
    int status = 0;
    ::waitpid(pid, &status, 0);
    const long peak = qmp_bench::proc_status_kb("VmHWM");
    // For the parent: milliseconds after the first byte, peak and base RSS
    // (KiB), reply bytes, nodes.
    std::cout << std::fixed << std::setprecision(3) << done - first << " " << peak << " " << base << " " << size << " "
              << nodes << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 15;
    bool replies_only = false;
    try {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--parse" && i + 2 < argc) return parse_one(argv[i + 1], argv[i + 2]);
            if ((a == "--replay" || a == "--replay-tree") && i + 1 < argc) return replay_one(argv[++i], a == "--replay-tree");
            if (a == "--rounds" && i + 1 < argc)
                rounds = std::max(1, std::atoi(argv[++i]));
            else if (a == "--replies-only")
                replies_only = true;
            else {
                std::cerr << "usage: qmp-bench-graph [--rounds N] [--replies-only] | --parse FILE PARSER | --replay FILE | "
                             "--replay-tree FILE\n";
                return 2;
            }
        }
        auto builds = qmp_support::qemu_builds();
        const qmp_support::chain_layout layouts[] = {qmp_support::chain_layout::absolute, qmp_support::chain_layout::relative};
        for (const auto& b : builds)
            for (auto layout : layouts)
                if (!replies_only) bench_snapshots(b, rounds, layout);
        std::cout << "parsing query-named-block-nodes replies of the 128-deep chain (QEMU 7.2), median of "
                  << std::min(rounds, 5) << " runs, each parser in a fresh process: ms, peak RSS it added (MiB)\n"
                  << std::flush;
        for (auto layout : layouts)
            for (const auto& f : cached_replies(builds[0], layout)) {
                std::cout << "  " << std::filesystem::path(f).filename().string() << " (" << std::fixed
                          << std::setprecision(1) << std::filesystem::file_size(f) / 1e6 << " MB):";
                for (const char* parser : {"typed", "tree", "tokens", "sax", "dom", "dom-typed"}) {
                    std::vector<double> ms, added;
                    for (int r = 0; r < std::min(rounds, 5); ++r) {
                        std::string out;
                        qmp_support::run({argv[0], "--parse", f, parser}, &out);
                        std::istringstream in(out);
                        double t = 0, kb = 0;
                        if (!(in >> t >> kb)) throw std::runtime_error("parse failed: " + out);
                        ms.push_back(t);
                        added.push_back(kb);
                    }
                    std::cout << " " << parser << " " << std::setprecision(1) << median(ms) << " ms/" << median(added) / 1024
                              << " MiB;";
                }
                std::cout << "\n" << std::flush;
            }
        std::cout << "the same replies through the client, from a monitor that sends them at once (median of "
                  << std::min(rounds, 5) << " runs; each run a fresh process):\n"
                  << std::flush;
        for (auto layout : layouts)
            for (const auto& f : cached_replies(builds[0], layout))
                for (const char* how : {"--replay", "--replay-tree"}) {
                    std::vector<double> ms, peak, during;
                    double size = 0, nodes = 0;
                    for (int r = 0; r < std::min(rounds, 5); ++r) {
                        std::string out;
                        qmp_support::run({argv[0], how, f}, &out);
                        std::istringstream in(out);
                        double t = 0, p = 0, base = 0;
                        if (!(in >> t >> p >> base >> size >> nodes)) throw std::runtime_error("replay failed: " + out);
                        ms.push_back(t);
                        peak.push_back(p);
                        during.push_back(p - base);
                    }
                    std::cout << std::fixed << std::setprecision(1) << "  " << std::filesystem::path(f).filename().string()
                              << (how == std::string("--replay") ? ", typed: " : ", JSON tree: ") << size / 1e6 << " MB, "
                              << static_cast<long>(nodes) << " nodes; " << median(ms) << " ms after the first byte; peak RSS "
                              << median(peak) / 1024 << " MiB (x" << std::setprecision(2)
                              << median(peak) * 1024 / size << " the reply; " << std::setprecision(1) << "+"
                              << median(during) / 1024 << " MiB during the command)\n"
                              << std::flush;
                }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-graph: " << e.what() << "\n";
        return 1;
    }
}
