// Typed commands that hand file descriptors to QEMU: `getfd`/`closefd`
// (a named descriptor of the monitor) and `add-fd`/`remove-fd`/
// `query-fdsets` (descriptor sets, opened by QEMU as `/dev/fdset/N`). The
// descriptor itself goes in exec_options::fds of the call that runs
// `getfd` or `add-fd`; QEMU takes one per command.
#pragma once

#include <qmp/protocol/command.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace qmp {

/// Keeps the descriptor sent with this command under `fdname`.
struct getfd {
    static constexpr std::string_view name = "getfd";
    using result_type = empty_result;
    std::string fdname{};
    static constexpr auto wire_members() { return std::make_tuple(wire::required("fdname", &getfd::fdname)); }
};

/// Closes a descriptor kept by `getfd`.
struct closefd {
    static constexpr std::string_view name = "closefd";
    using result_type = empty_result;
    std::string fdname{};
    static constexpr auto wire_members() { return std::make_tuple(wire::required("fdname", &closefd::fdname)); }
};

/// `AddfdInfo`: the set the descriptor went to and its number inside QEMU.
struct addfd_info {
    std::int64_t fdset_id = 0;
    std::int64_t fd = 0;
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("fdset-id", &addfd_info::fdset_id), wire::required("fd", &addfd_info::fd));
    }
};

/// Adds the descriptor sent with this command to a descriptor set (a new
/// one when `fdset_id` is absent).
struct add_fd {
    static constexpr std::string_view name = "add-fd";
    using result_type = addfd_info;
    std::optional<std::int64_t> fdset_id{};
    std::optional<std::string> opaque{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::optional("fdset-id", &add_fd::fdset_id), wire::optional("opaque", &add_fd::opaque));
    }
};

/// Removes one descriptor (or, without `fd`, every one) from a set. QEMU
/// closes it once nothing uses it any more.
struct remove_fd {
    static constexpr std::string_view name = "remove-fd";
    using result_type = empty_result;
    std::int64_t fdset_id = 0;
    std::optional<std::int64_t> fd{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("fdset-id", &remove_fd::fdset_id), wire::optional("fd", &remove_fd::fd));
    }
};

/// `FdsetFdInfo`.
struct fdset_fd_info {
    std::int64_t fd = 0;
    std::optional<std::string> opaque{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("fd", &fdset_fd_info::fd), wire::optional("opaque", &fdset_fd_info::opaque));
    }
};

/// `FdsetInfo`.
struct fdset_info {
    std::int64_t fdset_id = 0;
    std::vector<fdset_fd_info> fds{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("fdset-id", &fdset_info::fdset_id), wire::required("fds", &fdset_info::fds));
    }
};

struct query_fdsets {
    static constexpr std::string_view name = "query-fdsets";
    using result_type = std::vector<fdset_info>;
};

}  // namespace qmp
