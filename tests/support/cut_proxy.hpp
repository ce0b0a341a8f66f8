// Test support: a relay between a QMP client and QEMU's monitor that cuts
// one command off from its reply. Bytes pass both ways; once a request
// containing `cut_after` has gone to QEMU, QEMU's replies stop being passed
// on, QEMU gets time to execute it, and the client's connection is closed:
// the command took effect and its reply never arrived. Later connections
// are relayed faithfully. Started and stopped with the test; unix sockets only.
#pragma once

#include <support/process.hpp>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <chrono>
#include <string>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace qmp_support {

class cut_proxy {
public:
    cut_proxy(std::string listen_path, std::string upstream_path, std::string cut_after)
        : path_(std::move(listen_path)), upstream_(std::move(upstream_path)), needle_(std::move(cut_after)) {
        lfd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a = addr(path_);
        if (lfd_ < 0 || ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 4) != 0)
            throw std::runtime_error("cut_proxy: cannot listen on " + path_);
        thread_ = std::thread([this] { run(); });
    }
    ~cut_proxy() {
        stop_ = true;
        thread_.join();
        ::close(lfd_);
        ::unlink(path_.c_str());
    }
    cut_proxy(const cut_proxy&) = delete;
    cut_proxy& operator=(const cut_proxy&) = delete;

    const std::string& path() const noexcept { return path_; }
    /// True once the cut happened.
    bool cut() const noexcept { return cut_; }

private:
    static sockaddr_un addr(const std::string& p) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, p.c_str(), sizeof(a.sun_path) - 1);
        return a;
    }

    void run() {
        while (!stop_) {
            pollfd p{lfd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int c = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            int u = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_un a = addr(upstream_);
            if (u >= 0 && ::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) relay(c, u);
            if (u >= 0) ::close(u);
            ::close(c);
        }
    }

    void relay(int c, int u) {
        std::string seen;  // what the client sent, scanned for the needle
        bool cutting = false;
        std::chrono::steady_clock::time_point cut_at{};
        char buf[65536];
        while (!stop_) {
            if (cutting && std::chrono::steady_clock::now() - cut_at > std::chrono::milliseconds(300)) {
                cut_ = true;
                return;  // QEMU executed it; the client never hears
            }
            pollfd p[2] = {{c, POLLIN, 0}, {u, POLLIN, 0}};
            if (::poll(p, 2, 20) <= 0) continue;
            if (p[0].revents) {
                ssize_t n = ::read(c, buf, sizeof buf);
                if (n <= 0) return;
                if (::send(u, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) return;
                if (!cut_ && !cutting) {
                    seen.append(buf, static_cast<std::size_t>(n));
                    if (seen.find(needle_) != std::string::npos) {
                        cutting = true;
                        cut_at = std::chrono::steady_clock::now();
                    }
                }
            }
            if (p[1].revents) {
                ssize_t n = ::read(u, buf, sizeof buf);
                if (n <= 0) return;
                if (!cutting && ::send(c, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) return;
            }
        }
    }

    std::string path_, upstream_, needle_;
    int lfd_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<bool> cut_{false};
    std::thread thread_;
};

}  // namespace qmp_support
