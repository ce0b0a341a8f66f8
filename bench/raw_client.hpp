// A blocking QMP client on the raw socket with no JSON parser: the limit
// the benchmarks measure the library against, and a probe of QEMU's main
// loop (a command on a second monitor waits while the loop is busy).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace qmp_bench {

class raw_client {
public:
    raw_client(const std::string& path, bool oob) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
            throw std::runtime_error("raw client: cannot connect to " + path);
        read_lines(1);  // greeting
        const char* caps = oob ? "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\r\n"
                               : "{\"execute\":\"qmp_capabilities\"}\r\n";
        write_all(caps, std::strlen(caps));
        read_lines(1);
    }
    ~raw_client() { ::close(fd_); }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    void write_all(const char* p, std::size_t n) {
        while (n) {
            ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
            if (w <= 0) throw std::runtime_error("raw client: write failed");
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }
    // QEMU ends every message with "\r\n" and escapes control characters
    // inside strings, so counting '\n' counts messages.
    void read_lines(int n) {
        read_lines_counted(n, [](std::size_t) {});
    }
    // The same, telling `on_recv(bytes)` of each read (nothing is kept).
    template <class OnRecv>
    void read_lines_counted(int n, OnRecv&& on_recv) {
        while (n > 0) {
            ssize_t r = ::recv(fd_, buf_, sizeof(buf_), 0);
            if (r <= 0) throw std::runtime_error("raw client: connection closed");
            on_recv(static_cast<std::size_t>(r));
            n -= static_cast<int>(std::count(buf_, buf_ + r, '\n'));
        }
    }
    // The same, handing each whole line to `on_line(line, t)` with `t` the
    // time its last bytes were received.
    template <class OnLine, class Clock>
    void read_lines(int n, OnLine&& on_line, Clock&& clock) {
        while (n > 0) {
            ssize_t r = ::recv(fd_, buf_, sizeof(buf_), 0);
            if (r <= 0) throw std::runtime_error("raw client: connection closed");
            const auto at = clock();
            pending_.append(buf_, static_cast<std::size_t>(r));
            std::size_t start = 0, nl;
            while ((nl = pending_.find('\n', start)) != std::string::npos) {
                on_line(std::string_view(pending_).substr(start, nl - start), at);
                start = nl + 1;
                --n;
            }
            pending_.erase(0, start);
        }
    }

private:
    int fd_ = -1;
    char buf_[65536];
    std::string pending_;
};

}  // namespace qmp_bench
