// Round trips over QMP-over-TLS against a raw TLS client in the same run:
// a qemu-storage-daemon of each QEMU with a TLS monitor on loopback
// (tls-creds-x509, certificates made for the run), `query-version` one
// after another.
//
//   qmp-bench-tls [--count N (5000)] [--rounds R (5)] [--qemu 7.2|10.0|all]
//
// The raw client is the limit: a blocking TCP socket under OpenSSL, no JSON
// parser, each command in one SSL_write without an id (as the library sends
// a command alone in flight), the reply read with SSL_read into 64 KiB
// until its '\n'. For QEMU older than 10.0 it writes the space the library's
// TLS transport writes after each write (docs/client.md: 7.2 leaves the
// last bytes of a record unread until more arrive), in the way --raw-nudge
// says: `record` a record of its own after the command, as the library
// does (the default), or `same` the space inside the command's record.
// The raw client, the async client (one io_context thread, each completion
// starts the next command) and sync_tls_client take turns in R rounds;
// figures are medians of the rounds' rates.
#include "bench_support.hpp"

#include <support/tls_pki.hpp>

#include <qmp/client/tls.hpp>
#include <qmp/qmp.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <iomanip>
#include <iostream>
#include <map>

namespace {

using clock_type = std::chrono::steady_clock;

// ---- the limit: OpenSSL on a blocking socket, no JSON parser ------------------------

class raw_tls_client {
public:
    raw_tls_client(unsigned short port, const std::string& ca_file, bool nudge, bool nudge_in_record)
        : nudge_(nudge), same_record_(nudge_in_record) {
        ctx_ = SSL_CTX_new(TLS_client_method());
        if (!ctx_ || SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) != 1) fail("cannot load the CA");
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("cannot connect");
        const int one = 1;  // each write goes at once, as the library's (a space after a command must not wait)
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        timeval tv{10, 0};  // a reply that never comes ends the run, not the machine's patience
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, fd_);
        SSL_set1_host(ssl_, "localhost");
        if (SSL_connect(ssl_) != 1) fail("TLS handshake failed");
        read_lines(1);  // greeting
        send("{\"execute\":\"qmp_capabilities\"}");
        read_lines(1);
    }
    ~raw_tls_client() {
        SSL_shutdown(ssl_);
        SSL_free(ssl_);
        ::close(fd_);
        SSL_CTX_free(ctx_);
    }
    raw_tls_client(const raw_tls_client&) = delete;
    raw_tls_client& operator=(const raw_tls_client&) = delete;

    void send(std::string cmd) {
        if (nudge_ && same_record_) cmd += ' ';
        write_all(cmd.data(), cmd.size());
        if (nudge_ && !same_record_) write_all(" ", 1);
    }
    void read_lines(int n) {
        while (n > 0) {
            const int r = SSL_read(ssl_, buf_, sizeof buf_);
            if (r <= 0) fail("no reply (closed or 10 s without one)");
            n -= static_cast<int>(std::count(buf_, buf_ + r, '\n'));
        }
    }

private:
    void write_all(const char* p, std::size_t n) {
        if (SSL_write(ssl_, p, static_cast<int>(n)) != static_cast<int>(n)) fail("SSL_write failed");
    }
    [[noreturn]] static void fail(const std::string& what) {
        char err[256] = "";
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        throw std::runtime_error("raw TLS client: " + what + (err[0] ? std::string(" (") + err + ")" : ""));
    }

    bool nudge_, same_record_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    int fd_ = -1;
    char buf_[65536];
};

struct setup {
    unsigned short port;
    std::string ca_file;
    bool nudge;  // QEMU before 10.0
    bool nudge_in_record;
    qmp::tls_tcp_endpoint endpoint() const { return {{asio::ip::make_address("127.0.0.1"), port}, "localhost"}; }
};

void raw_run(const setup& s, int n) {
    raw_tls_client c(s.port, s.ca_file, s.nudge, s.nudge_in_record);
    for (int i = 0; i < n; ++i) {
        c.send("{\"execute\":\"query-version\"}");
        c.read_lines(1);
    }
}

// ---- this library -------------------------------------------------------------------

struct next_command {
    qmp::tls_client* c;
    int* left;
    void operator()(std::error_code ec, const qmp::json&) const {
        if (ec) throw std::system_error(ec, "query-version");
        if (--*left > 0) c->async_execute("query-version", nullptr, *this);
    }
};

void async_run(const setup& s, int n) {
    asio::io_context io{1};
    asio::ssl::context tls = qmp::tls_context({s.ca_file, "", ""});
    qmp::tls_client c(io, qmp::client_options{}, tls);
    bool connected = false;
    c.async_connect(s.endpoint(), [&](std::error_code ec) {
        if (ec) throw std::system_error(ec, "connect");
        connected = true;
    });
    while (!connected) io.run_one();
    int left = n;
    c.async_execute("query-version", nullptr, next_command{&c, &left});
    while (left > 0) io.run_one();
    c.close();
    io.poll();
}

void sync_run(const setup& s, int n) {
    asio::ssl::context tls = qmp::tls_context({s.ca_file, "", ""});
    qmp::sync_tls_client c(qmp::client_options{}, false, tls);
    c.connect(s.endpoint());
    for (int i = 0; i < n; ++i) c.execute("query-version");
}

}  // namespace

int main(int argc, char** argv) {
    int count = 5000, rounds = 5;
    std::string which = "all", raw_nudge = "record";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--count" && i + 1 < argc)
            count = std::max(1, std::atoi(argv[++i]));
        else if (a == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else if (a == "--qemu" && i + 1 < argc)
            which = argv[++i];
        else if (a == "--raw-nudge" && i + 1 < argc && (std::string(argv[i + 1]) == "record" || std::string(argv[i + 1]) == "same"))
            raw_nudge = argv[++i];
        else {
            std::cerr << "usage: qmp-bench-tls [--count N] [--rounds R] [--qemu 7.2|10.0|all] [--raw-nudge record|same]\n";
            return 2;
        }
    }
    try {
        for (const auto& b : qmp_support::qemu_builds()) {
            if (which != "all" && which != b.label) continue;
            qmp_support::temp_dir dir;
            qmp_support::tls_pki pki(dir);
            const setup s{qmp_support::free_tcp_port(), pki.ca_file, b.label != "10.0", raw_nudge == "same"};
            qmp_support::qemu_config cfg;
            cfg.extra = qmp_support::tls_monitor_args(pki, s.port, /*verify_peer=*/false);
            qmp_support::qemu_instance q(b, dir, cfg);
            using fn = void (*)(const setup&, int);
            const std::pair<const char*, fn> ways[] = {{"raw", raw_run}, {"async", async_run}, {"sync", sync_run}};
            std::map<std::string, std::vector<double>> rates;
            for (int r = 0; r < rounds; ++r)
                for (const auto& [name, run] : ways) {
                    const auto t0 = clock_type::now();
                    run(s, count);
                    rates[name].push_back(count / std::chrono::duration<double>(clock_type::now() - t0).count());
                }
            std::cout << "QEMU " << b.label << ", QMP over TLS on loopback, " << count << " query-version one after another, "
                      << rounds << " rounds" << (s.nudge ? " (a space after each command: " + raw_nudge + ")" : "")
                      << ":\n";
            const double raw = qmp_bench::pct(rates["raw"], 0.5);
            for (const auto& [name, run] : ways) {
                (void)run;
                const auto& v = rates[name];
                std::cout << std::fixed << std::setprecision(0) << "  " << std::left << std::setw(6) << name << std::right
                          << std::setw(7) << qmp_bench::pct(v, 0.5) << " round trips/s (rounds: "
                          << *std::min_element(v.begin(), v.end()) << "-" << *std::max_element(v.begin(), v.end())
                          << ")" << std::setprecision(2) << "  x" << qmp_bench::pct(v, 0.5) / raw << " raw\n";
            }
            std::cout << std::flush;
        }
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-tls: " << e.what() << "\n";
        return 1;
    }
}
