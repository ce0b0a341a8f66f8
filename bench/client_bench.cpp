// Benchmarks of the protocol and client layers.
//
//   qmp-bench-client [--rounds N]
//
// 1. framing: a 34 MB pretty-printed message (the size of a non-flat
//    query-named-block-nodes on a 128-deep chain) fed in 64 KiB reads,
//    framed, then classified (parsed into JSON);
// 2. pipelining against a real qemu-storage-daemon of each QEMU: 64
//    commands one after another, and 64 in flight at once with and without
//    oob negotiated.
// Prints one line per measurement: the median over the rounds.
#include <support/qemu.hpp>

#include <qmp/qmp.hpp>

#include <asio/use_future.hpp>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

namespace {

using clock_type = std::chrono::steady_clock;

double median_ms(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class F>
double time_ms(F&& f) {
    auto t0 = clock_type::now();
    f();
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

std::string big_pretty_message(std::size_t target) {
    qmp::json arr = qmp::json::array();
    std::string payload;
    while (payload.size() < target) {
        arr.push_back({{"node-name", "libvirt-" + std::to_string(arr.size()) + "-format"},
                       {"file", "/var/lib/images/a \"quoted\" {brace} path.qcow2"},
                       {"image", {{"virtual-size", 1073741824}, {"format", "qcow2"}, {"dirty-flag", false}}},
                       {"write_threshold", 0}});
        if (arr.size() % 2048 == 0) payload = qmp::json({{"return", arr}, {"id", "qmp#1"}}).dump(4);
    }
    return payload + "\r\n";
}

void bench_framing(int rounds) {
    const std::string msg = big_pretty_message(34u * 1000u * 1000u);
    std::vector<double> frame_t, classify_t;
    for (int r = 0; r < rounds; ++r) {
        qmp::framer f;
        std::string_view out;
        frame_t.push_back(time_ms([&] {
            std::error_code ec;
            for (std::size_t i = 0; i < msg.size(); i += 65536) {
                f.feed(msg.data() + i, std::min<std::size_t>(65536, msg.size() - i));
                if (f.next(out, ec) == qmp::framer::status::message) break;
            }
        }));
        if (out.size() + 2 != msg.size()) throw std::runtime_error("framing failed");
        qmp::message m;
        classify_t.push_back(time_ms([&] {
            if (qmp::classify(out, m)) throw std::runtime_error("classify failed");
        }));
    }
    double mb = msg.size() / 1e6;
    std::cout << std::fixed << std::setprecision(1) << "framing: " << mb << " MB pretty message in 64 KiB reads: "
              << median_ms(frame_t) << " ms (" << mb / (median_ms(frame_t) / 1000) << " MB/s); classify (JSON parse): "
              << median_ms(classify_t) << " ms\n";
}

void bench_pipeline(const qmp_support::qemu_build& b, int rounds) {
    qmp_support::temp_dir dir;
    auto files = qmp_support::make_chain(b, dir, "vda", 3);
    qmp_support::qemu_config cfg;
    cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
    qmp_support::qemu_instance q(b, dir, cfg);
    const int n = 64;
    const qmp::json args = {{"flat", true}};
    for (bool oob : {false, true}) {
        qmp::client_options o;
        o.enable_oob = oob;
        qmp::sync_client cl(o);
        cl.connect(q.qmp_endpoint());
        auto& ac = cl.async_client();
        std::vector<double> seq, pipe;
        for (int r = 0; r < rounds; ++r) {
            seq.push_back(time_ms([&] {
                for (int i = 0; i < n; ++i) cl.execute("query-named-block-nodes", args);
            }));
            pipe.push_back(time_ms([&] {
                std::vector<std::future<qmp::json>> fs;
                for (int i = 0; i < n; ++i) fs.push_back(ac.async_execute("query-named-block-nodes", args, asio::use_future));
                for (auto& f : fs) f.get();
            }));
        }
        std::cout << std::fixed << std::setprecision(2) << "QEMU " << b.label << ", oob " << (oob ? "on " : "off")
                  << ": 64 x query-named-block-nodes: one at a time " << median_ms(seq) << " ms, pipelined "
                  << median_ms(pipe) << " ms (x" << median_ms(seq) / median_ms(pipe) << ")\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 15;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else {
            std::cerr << "usage: qmp-bench-client [--rounds N]\n";
            return 2;
        }
    }
    try {
        bench_framing(std::max(3, rounds / 5));
        for (const auto& b : qmp_support::qemu_builds()) bench_pipeline(b, rounds);
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-client: " << e.what() << "\n";
        return 1;
    }
}
