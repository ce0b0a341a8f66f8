// File descriptors sent with a command's bytes (SCM_RIGHTS) for `getfd` and
// `add-fd`. POSIX unix sockets only: owned_fds keeps the client's own
// duplicates (closed when the command is sent or dropped), send_with_fds
// writes the first part of a message with the descriptors attached.
#pragma once

#include <qmp/error.hpp>

#include <asio/local/stream_protocol.hpp>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(ASIO_HAS_LOCAL_SOCKETS)
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace qmp::detail {

/// Duplicates of the caller's descriptors, closed on destruction.
class owned_fds {
public:
    owned_fds() = default;
    owned_fds(const owned_fds&) = delete;
    owned_fds& operator=(const owned_fds&) = delete;
    owned_fds(owned_fds&& o) noexcept : fds_(std::move(o.fds_)) { o.fds_.clear(); }
    owned_fds& operator=(owned_fds&& o) noexcept {
        if (this != &o) {
            reset();
            fds_ = std::move(o.fds_);
            o.fds_.clear();
        }
        return *this;
    }
    ~owned_fds() { reset(); }

    /// Duplicates every descriptor in `borrowed` (close-on-exec). On failure
    /// nothing is kept and the errno is returned.
    std::error_code assign(const std::vector<int>& borrowed) {
        reset();
#if defined(ASIO_HAS_LOCAL_SOCKETS)
        for (int fd : borrowed) {
            int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (d < 0) {
                std::error_code ec(errno, std::system_category());
                reset();
                return ec;
            }
            fds_.push_back(d);
        }
        return {};
#else
        return borrowed.empty() ? std::error_code() : make_error_code(error::fd_passing_unsupported);
#endif
    }

    void reset() noexcept {
#if defined(ASIO_HAS_LOCAL_SOCKETS)
        for (int fd : fds_) ::close(fd);
#endif
        fds_.clear();
    }

    bool empty() const noexcept { return fds_.empty(); }
    std::size_t size() const noexcept { return fds_.size(); }
    const std::vector<int>& get() const noexcept { return fds_; }

private:
    std::vector<int> fds_;
};

/// True for asio's unix stream sockets: they can carry descriptors, and
/// tell who is at the other end.
template <class Stream, class = void>
struct is_unix_socket : std::false_type {};
#if defined(ASIO_HAS_LOCAL_SOCKETS)
template <class Stream>
struct is_unix_socket<Stream, std::void_t<typename Stream::protocol_type>>
    : std::is_same<typename Stream::protocol_type, asio::local::stream_protocol> {};
#endif

/// True for streams that can carry descriptors.
template <class Stream>
using can_pass_fds = is_unix_socket<Stream>;

#if defined(ASIO_HAS_LOCAL_SOCKETS)
/// One non-blocking sendmsg of `data[0, size)` with `fds` attached. Returns
/// the bytes written (at least one when it succeeds: the descriptors travel
/// with the first byte); `ec` is would_block when the socket is full.
template <class Socket>
std::size_t send_with_fds(Socket& socket, const char* data, std::size_t size, const std::vector<int>& fds,
                          std::error_code& ec) {
    ec.clear();
    socket.native_non_blocking(true, ec);
    if (ec) return 0;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    iovec iov{const_cast<char*>(data), size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
    for (;;) {
        ssize_t n = ::sendmsg(socket.native_handle(), &msg, MSG_NOSIGNAL);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            ec = asio::error::would_block;
        else
            ec = std::error_code(errno, std::system_category());
        return 0;
    }
}
#endif

}  // namespace qmp::detail
