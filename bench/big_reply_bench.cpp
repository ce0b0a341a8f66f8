// A big reply from a real QEMU into the caller's hands, against a raw client
// reading the same reply in the same run: `query-named-block-nodes` without
// `flat` on a 128-deep qcow2 chain with relative backing names (about 34 MB;
// QEMU computes it for about 25 s before the first byte, which no client can
// shorten, so every figure is taken from the first byte read to the end).
//
//   qmp-bench-big-reply [--rounds N] [--qemu 7.2|10.0|all] [--depth D]
//
// Each round runs each way once, in turn, each in a fresh process (so its
// peak RSS is its own), against the same qemu-storage-daemon:
//   raw          a blocking socket, no JSON parser, recv into 64 KiB until '\n'
//   sync-tree    sync_client::execute(name, args): the reply as a `json`
//   async-tree   basic_client::async_execute(name, args, handler): the same
//   sync-typed   sync_client::execute(query_named_block_nodes{}): typed
//
// Internal: qmp-bench-big-reply --client WAY SOCKET (prints ms after the
// first byte, peak RSS KiB, RSS KiB before the command, reply bytes).
#include "bench_support.hpp"
#include "raw_client.hpp"

#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>

namespace {

using clock_type = std::chrono::steady_clock;

// The socket, noting when the first read after `arm()` completed and how
// many bytes the reads brought.
template <class Next>
class first_read_timed {
public:
    using executor_type = typename Next::executor_type;
    template <class... Args>
    explicit first_read_timed(Args&&... args) : next_(std::forward<Args>(args)...) {}
    executor_type get_executor() { return next_.get_executor(); }
    Next& next_layer() { return next_; }

    template <class Buffers, class Token>
    auto async_read_some(const Buffers& b, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, const Buffers& bufs) {
                next_.async_read_some(bufs, [this, h = std::move(handler)](std::error_code ec, std::size_t n) mutable {
                    if (!ec && armed_) {
                        if (!bytes_) first_ = clock_type::now();
                        bytes_ += n;
                    }
                    std::move(h)(ec, n);
                });
            },
            token, b);
    }
    template <class Buffers, class Token>
    auto async_write_some(const Buffers& b, Token&& token) {
        return next_.async_write_some(b, std::forward<Token>(token));
    }

    void arm() { armed_ = true; }
    clock_type::time_point first() const { return first_; }
    std::size_t bytes() const { return bytes_; }

private:
    Next next_;
    bool armed_ = false;
    clock_type::time_point first_{};
    std::size_t bytes_ = 0;
};

}  // namespace

template <class Next>
struct qmp::transport<first_read_timed<Next>> : qmp::forwarding_transport<first_read_timed<Next>, true> {};

namespace {

using timed_socket = first_read_timed<asio::local::stream_protocol::socket>;

struct outcome {
    double ms = 0;
    std::size_t bytes = 0;
};

outcome run_raw(const std::string& sock) {
    qmp_bench::raw_client c(sock, false);
    const std::string cmd = "{\"execute\":\"query-named-block-nodes\"}\r\n";
    c.write_all(cmd.data(), cmd.size());
    clock_type::time_point first{}, last{};
    std::size_t bytes = 0;
    c.read_lines_counted(1, [&](std::size_t n) {
        last = clock_type::now();
        if (!bytes) first = last;
        bytes += n;
    });
    return {std::chrono::duration<double, std::milli>(last - first).count(), bytes};
}

template <class Stream>
outcome finish(const Stream& s, clock_type::time_point done) {
    return {std::chrono::duration<double, std::milli>(done - s.first()).count(), s.bytes()};
}

int client_main(const std::string& way, const std::string& sock) {
    qmp::client_options o;
    o.command_timeout = std::chrono::minutes(10);
    outcome out;
    std::size_t items = 0;
    const long before = qmp_bench::proc_status_kb("VmRSS");
    if (way == "raw") {
        out = run_raw(sock);
    } else if (way == "sync-tree" || way == "sync-typed") {
        qmp::basic_sync_client<timed_socket> c(o);
        c.connect(asio::local::stream_protocol::endpoint(sock));
        c.async_client().stream().arm();
        // Timed before the result is destroyed, as in the asynchronous way.
        if (way == "sync-tree") {
            const auto r = c.execute("query-named-block-nodes", qmp::json::object());
            out = finish(c.async_client().stream(), clock_type::now());
            items = r.size();
        } else {
            const auto r = c.execute(qmp::query_named_block_nodes{});
            out = finish(c.async_client().stream(), clock_type::now());
            items = r.size();
        }
    } else if (way == "async-tree") {
        asio::io_context io;
        qmp::basic_client<timed_socket> c(io, o);
        clock_type::time_point done{};
        c.async_connect(asio::local::stream_protocol::endpoint(sock), [&](std::error_code ec) {
            if (ec) throw std::system_error(ec, "connect");
            c.stream().arm();
            c.async_execute("query-named-block-nodes", qmp::json::object(), [&](std::error_code e, qmp::json r) {
                if (e) throw std::system_error(e, "query-named-block-nodes");
                done = clock_type::now();
                items = r.size();
                c.close();
            });
        });
        io.run();
        out = finish(c.stream(), done);
    } else {
        throw std::runtime_error("no way " + way);
    }
    if (way != "raw" && items == 0) throw std::runtime_error("an empty reply");
    std::cout << std::fixed << std::setprecision(3) << out.ms << " " << qmp_bench::proc_status_kb("VmHWM") << " "
              << before << " " << out.bytes << "\n";
    return 0;
}

struct sample {
    std::vector<double> ms, peak_kb, added_kb;
    double bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
    int rounds = 3, depth = 128;
    std::string which = "all";
    try {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--client" && i + 2 < argc) return client_main(argv[i + 1], argv[i + 2]);
            if (a == "--rounds" && i + 1 < argc)
                rounds = std::max(1, std::atoi(argv[++i]));
            else if (a == "--depth" && i + 1 < argc)
                depth = std::max(2, std::atoi(argv[++i]));
            else if (a == "--qemu" && i + 1 < argc)
                which = argv[++i];
            else {
                std::cerr << "usage: qmp-bench-big-reply [--rounds N] [--qemu 7.2|10.0|all] [--depth D]\n";
                return 2;
            }
        }
        const std::vector<std::string> ways{"raw", "sync-tree", "async-tree", "sync-typed"};
        for (const auto& b : qmp_support::qemu_builds()) {
            if (which != "all" && which != b.label) continue;
            qmp_support::temp_dir dir;
            auto files = qmp_support::make_chain(b, dir, "vda", depth, "1G", qmp_support::chain_layout::relative);
            qmp_support::qemu_config cfg;
            cfg.blockdevs = qmp_support::chain_blockdevs(files, "vda");
            qmp_support::qemu_instance q(b, dir, cfg);
            const std::string sock = q.qmp_endpoint().path();
            std::cout << "QEMU " << b.label << ", query-named-block-nodes of a " << depth
                      << "-deep chain with relative backing names, " << rounds << " rounds:\n"
                      << std::flush;
            std::map<std::string, sample> got;
            for (int r = 0; r < rounds; ++r)
                for (const auto& w : ways) {
                    std::string out;
                    qmp_support::run({argv[0], "--client", w, sock}, &out);
                    std::istringstream in(out);
                    double ms = 0, peak = 0, before = 0, bytes = 0;
                    if (!(in >> ms >> peak >> before >> bytes)) throw std::runtime_error(w + " failed: " + out);
                    auto& s = got[w];
                    s.ms.push_back(ms);
                    s.peak_kb.push_back(peak);
                    s.added_kb.push_back(peak - before);
                    s.bytes = bytes;
                    std::cerr << "  round " << r + 1 << " " << w << ": " << ms << " ms\n";
                }
            const double raw = qmp_bench::pct(got["raw"].ms, 0.5);
            for (const auto& w : ways) {
                const auto& s = got[w];
                const double ms = qmp_bench::pct(s.ms, 0.5), peak = qmp_bench::pct(s.peak_kb, 0.5);
                std::cout << std::fixed << std::setprecision(1) << "  " << std::left << std::setw(11) << w << std::right
                          << s.bytes / 1e6 << " MB: " << ms << " ms after the first byte (x" << std::setprecision(2)
                          << ms / raw << " raw), peak RSS " << std::setprecision(1) << peak / 1024 << " MiB (x"
                          << std::setprecision(2) << peak * 1024 / s.bytes << " the reply; +" << std::setprecision(1)
                          << qmp_bench::pct(s.added_kb, 0.5) / 1024 << " MiB during the command)\n";
            }
            std::cout << std::flush;
        }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-big-reply: " << e.what() << "\n";
        return 1;
    }
}
