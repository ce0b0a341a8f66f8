// Typed commands that hand file descriptors to QEMU: `getfd`/`closefd`
// (a named descriptor of the monitor) and `add-fd`/`remove-fd`/
// `query-fdsets` (descriptor sets, opened by QEMU as `/dev/fdset/N`). The
// descriptor itself goes in exec_options::fds of the call that runs
// `getfd` or `add-fd`; QEMU takes one per command.
#pragma once

#include <qmp/client/command.hpp>
#include <qmp/qapi/detail/convert.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qmp {

/// Keeps the descriptor sent with this command under `fdname`.
struct getfd {
    static constexpr std::string_view name = "getfd";
    using result_type = empty_result;
    std::string fdname{};
};
inline void to_json(json& j, const getfd& c) { j = {{"fdname", c.fdname}}; }

/// Closes a descriptor kept by `getfd`.
struct closefd {
    static constexpr std::string_view name = "closefd";
    using result_type = empty_result;
    std::string fdname{};
};
inline void to_json(json& j, const closefd& c) { j = {{"fdname", c.fdname}}; }

/// `AddfdInfo`: the set the descriptor went to and its number inside QEMU.
struct addfd_info {
    std::int64_t fdset_id = 0;
    std::int64_t fd = 0;
};
inline void from_json(const json& j, addfd_info& v) {
    j.at("fdset-id").get_to(v.fdset_id);
    j.at("fd").get_to(v.fd);
}

/// Adds the descriptor sent with this command to a descriptor set (a new
/// one when `fdset_id` is absent).
struct add_fd {
    static constexpr std::string_view name = "add-fd";
    using result_type = addfd_info;
    std::optional<std::int64_t> fdset_id{};
    std::optional<std::string> opaque{};
};
inline void to_json(json& j, const add_fd& c) {
    j = json::object();
    detail::put_opt(j, "fdset-id", c.fdset_id);
    detail::put_opt(j, "opaque", c.opaque);
}

/// Removes one descriptor (or, without `fd`, every one) from a set. QEMU
/// closes it once nothing uses it any more.
struct remove_fd {
    static constexpr std::string_view name = "remove-fd";
    using result_type = empty_result;
    std::int64_t fdset_id = 0;
    std::optional<std::int64_t> fd{};
};
inline void to_json(json& j, const remove_fd& c) {
    j = {{"fdset-id", c.fdset_id}};
    detail::put_opt(j, "fd", c.fd);
}

/// `FdsetFdInfo`.
struct fdset_fd_info {
    std::int64_t fd = 0;
    std::optional<std::string> opaque{};
};
inline void from_json(const json& j, fdset_fd_info& v) {
    j.at("fd").get_to(v.fd);
    detail::get_opt(j, "opaque", v.opaque);
}

/// `FdsetInfo`.
struct fdset_info {
    std::int64_t fdset_id = 0;
    std::vector<fdset_fd_info> fds{};
};
inline void from_json(const json& j, fdset_info& v) {
    j.at("fdset-id").get_to(v.fdset_id);
    j.at("fds").get_to(v.fds);
}

struct query_fdsets {
    static constexpr std::string_view name = "query-fdsets";
    using result_type = std::vector<fdset_info>;
};

}  // namespace qmp
