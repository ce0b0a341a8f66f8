// Typed commands that change the block graph and run block jobs: what a
// thin-provisioning agent (and our tests) drive. blockdev-add takes its
// options as JSON; typed helpers build the common drivers' options.
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/qapi/light/block_core.hpp>  // blockdev_del, blockdev_snapshot, block_resize, block_job_*, query_block_jobs
#include <qmp/qapi/detail/convert.hpp>
#include <qmp/qapi/job.hpp>  // job_dismiss, job_finalize, query_jobs, job_info

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace qmp {

// ---- blockdev-add and its option builders -----------------------------------------

/// `blockdev-add`. `options` is a BlockdevOptions object; the helpers below
/// build the usual ones, and any JSON object is accepted (escape hatch).
struct blockdev_add {
    static constexpr std::string_view name = "blockdev-add";
    using result_type = empty_result;
    json options = json::object();
};
inline void to_json(json& j, const blockdev_add& c) { j = c.options; }

namespace blockdev {

/// Options every driver shares.
struct common {
    std::optional<bool> read_only{};
    std::optional<bool> auto_read_only{};
    std::optional<std::string> discard{};        ///< "ignore" | "unmap"
    std::optional<std::string> detect_zeroes{};  ///< "off" | "on" | "unmap"
};
inline void apply(json& j, const common& c) {
    detail::put_opt(j, "read-only", c.read_only);
    detail::put_opt(j, "auto-read-only", c.auto_read_only);
    detail::put_opt(j, "discard", c.discard);
    detail::put_opt(j, "detect-zeroes", c.detect_zeroes);
}

/// `file`: a regular file.
inline blockdev_add file(std::string node_name, std::string filename, const common& c = {}) {
    json j = {{"driver", "file"}, {"node-name", std::move(node_name)}, {"filename", std::move(filename)}};
    apply(j, c);
    return {std::move(j)};
}

/// `host_device`: a block device (an LV on thin storage).
inline blockdev_add host_device(std::string node_name, std::string filename, const common& c = {}) {
    json j = {{"driver", "host_device"}, {"node-name", std::move(node_name)}, {"filename", std::move(filename)}};
    apply(j, c);
    return {std::move(j)};
}

/// `qcow2` over the node `file`. `backing`: a node name, or std::nullopt to
/// open the image's own backing file; `no_backing` forces `"backing": null`
/// (what a snapshot overlay needs).
struct qcow2_options {
    std::optional<std::string> backing{};
    bool no_backing = false;
    std::optional<std::string> data_file{};
    common base{};
};
inline blockdev_add qcow2(std::string node_name, std::string file, const qcow2_options& o = {}) {
    json j = {{"driver", "qcow2"}, {"node-name", std::move(node_name)}, {"file", std::move(file)}};
    if (o.no_backing)
        j["backing"] = nullptr;
    else
        detail::put_opt(j, "backing", o.backing);
    detail::put_opt(j, "data-file", o.data_file);
    apply(j, o.base);
    return {std::move(j)};
}

/// `raw` over the node `file`, optionally a window (`offset`, `size`) of it:
/// a size-limited window is how tests model storage that can run out.
struct raw_options {
    std::optional<std::uint64_t> offset{};
    std::optional<std::uint64_t> size{};
    common base{};
};
inline blockdev_add raw(std::string node_name, std::string file, const raw_options& o = {}) {
    json j = {{"driver", "raw"}, {"node-name", std::move(node_name)}, {"file", std::move(file)}};
    detail::put_opt(j, "offset", o.offset);
    detail::put_opt(j, "size", o.size);
    apply(j, o.base);
    return {std::move(j)};
}

/// `throttle` filter over `file`, in throttle group `group` (an object
/// created with object-add or -object throttle-group).
inline blockdev_add throttle(std::string node_name, std::string file, std::string group, const common& c = {}) {
    json j = {{"driver", "throttle"}, {"node-name", std::move(node_name)}, {"file", std::move(file)},
              {"throttle-group", std::move(group)}};
    apply(j, c);
    return {std::move(j)};
}

}  // namespace blockdev

/// `blockdev-reopen`: new options for existing nodes (e.g. a bigger `size`
/// of a raw window after the storage grew).
struct blockdev_reopen {
    static constexpr std::string_view name = "blockdev-reopen";
    using result_type = empty_result;
    std::vector<json> options{};
    static constexpr auto wire_members() { return std::make_tuple(wire::required("options", &blockdev_reopen::options)); }
};

// ---- block jobs -------------------------------------------------------------------------

/// Options shared by the job-starting commands.
struct job_options {
    std::optional<std::string> job_id{};
    std::optional<std::int64_t> speed{};
    std::optional<std::string> filter_node_name{};
    std::optional<bool> auto_finalize{};
    std::optional<bool> auto_dismiss{};
};
namespace detail {
inline void put_job(json& j, const job_options& o) {
    put_opt(j, "job-id", o.job_id);
    put_opt(j, "speed", o.speed);
    put_opt(j, "filter-node-name", o.filter_node_name);
    put_opt(j, "auto-finalize", o.auto_finalize);
    put_opt(j, "auto-dismiss", o.auto_dismiss);
}
}  // namespace detail

/// `block-commit`: merge `top_node` (default: the active layer, which makes
/// it an active commit needing block-job-complete) down into `base_node`.
struct block_commit {
    static constexpr std::string_view name = "block-commit";
    using result_type = empty_result;
    std::string device{};  ///< any node of the chain, or the backend
    std::optional<std::string> base_node{};
    std::optional<std::string> top_node{};
    std::optional<std::string> backing_file{};
    std::optional<std::string> on_error{};  ///< "report" | "ignore" | "enospc" | "stop" (QEMU 5.0+)
    job_options job{};
};
inline void to_json(json& j, const block_commit& c) {
    j = {{"device", c.device}};
    detail::put_opt(j, "base-node", c.base_node);
    detail::put_opt(j, "top-node", c.top_node);
    detail::put_opt(j, "backing-file", c.backing_file);
    detail::put_opt(j, "on-error", c.on_error);
    detail::put_job(j, c.job);
}

/// `block-stream`: copy data from the backing chain (down to `base_node`) into `device`.
struct block_stream {
    static constexpr std::string_view name = "block-stream";
    using result_type = empty_result;
    std::string device{};
    std::optional<std::string> base_node{};
    std::optional<std::string> backing_file{};
    job_options job{};
};
inline void to_json(json& j, const block_stream& c) {
    j = {{"device", c.device}};
    detail::put_opt(j, "base-node", c.base_node);
    detail::put_opt(j, "backing-file", c.backing_file);
    detail::put_job(j, c.job);
}

/// `blockdev-mirror`: copy `device` to the existing node `target`.
struct blockdev_mirror {
    static constexpr std::string_view name = "blockdev-mirror";
    using result_type = empty_result;
    std::string device{};
    std::string target{};
    std::string sync = "full";  ///< "top" | "full" | "none" | "incremental"
    std::optional<std::string> replaces{};
    std::optional<std::string> copy_mode{};  ///< "background" | "write-blocking"
    job_options job{};
};
inline void to_json(json& j, const blockdev_mirror& c) {
    j = {{"device", c.device}, {"target", c.target}, {"sync", c.sync}};
    detail::put_opt(j, "replaces", c.replaces);
    detail::put_opt(j, "copy-mode", c.copy_mode);
    detail::put_job(j, c.job);
}

}  // namespace qmp
