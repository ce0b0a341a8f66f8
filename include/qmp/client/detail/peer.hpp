// Which process is at the other end of a unix socket: its pid and start
// time (Linux: SO_PEERCRED and /proc/PID/stat), so a QEMU restarted on the
// same socket path is told from the one that was there before. Other
// streams cannot tell: nullopt.
#pragma once

#include <qmp/client/detail/fd_passing.hpp>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#if defined(__linux__)
#include <sys/socket.h>
#endif

namespace qmp::detail {

/// "pid:START" for the peer of a connected unix socket, else nullopt.
template <class Stream>
std::optional<std::string> peer_instance(Stream& s) {
#if defined(__linux__) && defined(ASIO_HAS_LOCAL_SOCKETS)
    if constexpr (is_unix_socket<Stream>::value) {
        if (!s.is_open()) return std::nullopt;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0)
            return std::nullopt;
        // Field 22 of /proc/PID/stat: the start time, after the command
        // name (which may hold spaces and parentheses: skip to the last ')').
        std::ifstream in("/proc/" + std::to_string(cred.pid) + "/stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto close = stat.rfind(')');
        if (close == std::string::npos) return std::to_string(cred.pid);
        std::istringstream fields(stat.substr(close + 2));
        std::string f;
        for (int i = 3; i <= 22 && (fields >> f); ++i) {
        }
        return std::to_string(cred.pid) + ":" + f;
    }
#endif
    (void)s;
    return std::nullopt;
}

}  // namespace qmp::detail
