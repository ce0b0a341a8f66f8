// Benchmark support: a blocking NBD client that only writes, so a benchmark
// can make many QEMUs cross their thresholds at once without starting a
// process per write.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace qmp_bench {

// Just enough of the NBD protocol to write: fixed newstyle handshake,
// NBD_OPT_EXPORT_NAME, NBD_CMD_WRITE.
class nbd_writer {
public:
    nbd_writer(const std::string& path, const std::string& name) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
        if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            throw std::runtime_error("nbd: cannot connect to " + path);
        char hello[18];
        read_all(hello, sizeof hello);  // NBDMAGIC IHAVEOPT flags
        if (std::memcmp(hello, "NBDMAGIC", 8) != 0) throw std::runtime_error("nbd: no NBD server");
        const std::uint16_t server_flags = static_cast<std::uint16_t>((hello[16] & 0xff) << 8 | (hello[17] & 0xff));
        const bool no_zeroes = server_flags & 2;
        std::string out;
        put32(out, 1 | (no_zeroes ? 2 : 0));  // fixed newstyle (+ no zeroes)
        out += "IHAVEOPT";
        put32(out, 1);  // NBD_OPT_EXPORT_NAME
        put32(out, static_cast<std::uint32_t>(name.size()));
        out += name;
        write_all(out.data(), out.size());
        char reply[8 + 2 + 124];
        read_all(reply, no_zeroes ? 10 : sizeof reply);
    }
    nbd_writer(nbd_writer&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    nbd_writer(const nbd_writer&) = delete;
    ~nbd_writer() {
        if (fd_ >= 0) close(fd_);
    }

    void send_write(std::uint64_t offset, std::uint32_t len) {
        std::string req;
        put32(req, 0x25609513);
        put16(req, 0);  // flags
        put16(req, 1);  // NBD_CMD_WRITE
        put64(req, 1);  // handle
        put64(req, offset);
        put32(req, len);
        req.append(len, '\xab');
        write_all(req.data(), req.size());
    }
    /// The next reply's error: 0 when the write succeeded, else an errno
    /// value (28: ENOSPC).
    std::uint32_t read_reply() {
        unsigned char r[16];
        read_all(reinterpret_cast<char*>(r), sizeof r);
        return static_cast<std::uint32_t>(r[4]) << 24 | static_cast<std::uint32_t>(r[5]) << 16 |
               static_cast<std::uint32_t>(r[6]) << 8 | r[7];
    }
    void wait_reply() {
        if (read_reply() != 0) throw std::runtime_error("nbd: the write failed");
    }

private:
    static void put16(std::string& s, std::uint16_t v) {
        for (int i = 1; i >= 0; --i) s += static_cast<char>(v >> (8 * i));
    }
    static void put32(std::string& s, std::uint32_t v) {
        for (int i = 3; i >= 0; --i) s += static_cast<char>(v >> (8 * i));
    }
    static void put64(std::string& s, std::uint64_t v) {
        for (int i = 7; i >= 0; --i) s += static_cast<char>(v >> (8 * i));
    }
    void read_all(char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t r = read(fd_, p, n);
            if (r <= 0) throw std::runtime_error("nbd: connection closed");
            p += r;
            n -= static_cast<std::size_t>(r);
        }
    }
    void write_all(const char* p, std::size_t n) {
        while (n > 0) {
            const ssize_t r = write(fd_, p, n);
            if (r <= 0) throw std::runtime_error("nbd: cannot write");
            p += r;
            n -= static_cast<std::size_t>(r);
        }
    }
    int fd_ = -1;
};

}  // namespace qmp_bench
