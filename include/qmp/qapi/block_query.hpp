// Typed block queries and their results: query-named-block-nodes,
// query-block, query-blockstats, x-debug-query-block-graph, and the
// write-threshold command. Names follow the wire names (dashes become
// underscores); optional members are std::optional; recursive members are
// shared_ptr (null when absent). Members QEMU adds later are ignored.
#pragma once

#include <qmp/client/command.hpp>
#include <qmp/qapi/detail/convert.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qmp {

// ---- block-set-write-threshold -------------------------------------------

/// Arms (or with 0 disarms) the one-shot write threshold of a node.
struct block_set_write_threshold {
    static constexpr std::string_view name = "block-set-write-threshold";
    using result_type = empty_result;
    std::string node_name{};
    std::uint64_t write_threshold = 0;
};
inline void to_json(json& j, const block_set_write_threshold& c) {
    j = {{"node-name", c.node_name}, {"write-threshold", c.write_threshold}};
}

// ---- ImageInfo / BlockDeviceInfo -------------------------------------------

struct image_info {
    std::string filename{};
    std::string format{};
    std::int64_t virtual_size = 0;
    std::optional<std::int64_t> actual_size{};
    std::optional<std::int64_t> cluster_size{};
    std::optional<bool> dirty_flag{};
    std::optional<std::string> backing_filename{};
    std::optional<std::string> full_backing_filename{};
    std::optional<std::string> backing_filename_format{};
    std::shared_ptr<image_info> backing_image{};  ///< absent with `flat`
};
inline void from_json(const json& j, image_info& v) {
    j.at("filename").get_to(v.filename);
    j.at("format").get_to(v.format);
    j.at("virtual-size").get_to(v.virtual_size);
    detail::get_opt(j, "actual-size", v.actual_size);
    detail::get_opt(j, "cluster-size", v.cluster_size);
    detail::get_opt(j, "dirty-flag", v.dirty_flag);
    detail::get_opt(j, "backing-filename", v.backing_filename);
    detail::get_opt(j, "full-backing-filename", v.full_backing_filename);
    detail::get_opt(j, "backing-filename-format", v.backing_filename_format);
    detail::get_box(j, "backing-image", v.backing_image);
}

/// `BlockdevChild` (QEMU 10.1+): a child edge of a node.
struct blockdev_child {
    std::string child{};  ///< role: "file", "backing", ...
    std::string node_name{};
};
inline void from_json(const json& j, blockdev_child& v) {
    j.at("child").get_to(v.child);
    detail::get_or(j, "node-name", v.node_name, std::string());
}

struct block_device_info {
    std::string file{};
    std::optional<std::string> node_name{};
    bool ro = false;
    std::string drv{};
    std::optional<std::string> backing_file{};
    std::int64_t backing_file_depth = 0;
    bool encrypted = false;
    std::string detect_zeroes{};
    image_info image{};
    std::int64_t write_threshold = 0;  ///< 0: disarmed (or fired)
    std::optional<bool> active{};                         ///< QEMU 10.0+
    std::optional<std::vector<blockdev_child>> children{};  ///< QEMU 10.1+
};
inline void from_json(const json& j, block_device_info& v) {
    j.at("file").get_to(v.file);
    detail::get_opt(j, "node-name", v.node_name);
    j.at("ro").get_to(v.ro);
    j.at("drv").get_to(v.drv);
    detail::get_opt(j, "backing_file", v.backing_file);
    detail::get_or<std::int64_t>(j, "backing_file_depth", v.backing_file_depth, 0);
    detail::get_or(j, "encrypted", v.encrypted, false);
    detail::get_or(j, "detect_zeroes", v.detect_zeroes, std::string());
    j.at("image").get_to(v.image);
    j.at("write_threshold").get_to(v.write_threshold);
    detail::get_opt(j, "active", v.active);
    detail::get_opt(j, "children", v.children);
}

/// `query-named-block-nodes`. Without `flat` the reply repeats every
/// backing image under each node (quadratic in chain depth).
struct query_named_block_nodes {
    static constexpr std::string_view name = "query-named-block-nodes";
    using result_type = std::vector<block_device_info>;
    std::optional<bool> flat{};
};
inline void to_json(json& j, const query_named_block_nodes& c) {
    j = json::object();
    detail::put_opt(j, "flat", c.flat);
}

// ---- query-block --------------------------------------------------------------

struct block_info {
    std::string device{};  ///< "" for -blockdev + -device
    std::optional<std::string> qdev{};
    std::string type{};
    bool removable = false;
    bool locked = false;
    std::optional<block_device_info> inserted{};
    std::optional<bool> tray_open{};
    std::optional<std::string> io_status{};
};
inline void from_json(const json& j, block_info& v) {
    j.at("device").get_to(v.device);
    detail::get_opt(j, "qdev", v.qdev);
    detail::get_or(j, "type", v.type, std::string());
    j.at("removable").get_to(v.removable);
    j.at("locked").get_to(v.locked);
    detail::get_opt(j, "inserted", v.inserted);
    detail::get_opt(j, "tray_open", v.tray_open);
    detail::get_opt(j, "io-status", v.io_status);
}

struct query_block {
    static constexpr std::string_view name = "query-block";
    using result_type = std::vector<block_info>;
};

// ---- query-blockstats ---------------------------------------------------------

struct block_device_stats {
    std::int64_t rd_bytes = 0;
    std::int64_t wr_bytes = 0;
    std::int64_t unmap_bytes = 0;
    std::int64_t rd_operations = 0;
    std::int64_t wr_operations = 0;
    std::int64_t flush_operations = 0;
    std::int64_t unmap_operations = 0;
    std::int64_t failed_wr_operations = 0;
    /// Offset after the greatest byte written to the node (its high-water mark).
    std::int64_t wr_highest_offset = 0;
};
inline void from_json(const json& j, block_device_stats& v) {
    j.at("rd_bytes").get_to(v.rd_bytes);
    j.at("wr_bytes").get_to(v.wr_bytes);
    detail::get_or<std::int64_t>(j, "unmap_bytes", v.unmap_bytes, 0);
    j.at("rd_operations").get_to(v.rd_operations);
    j.at("wr_operations").get_to(v.wr_operations);
    detail::get_or<std::int64_t>(j, "flush_operations", v.flush_operations, 0);
    detail::get_or<std::int64_t>(j, "unmap_operations", v.unmap_operations, 0);
    detail::get_or<std::int64_t>(j, "failed_wr_operations", v.failed_wr_operations, 0);
    j.at("wr_highest_offset").get_to(v.wr_highest_offset);
}

struct block_stats {
    std::optional<std::string> device{};
    std::optional<std::string> qdev{};
    std::optional<std::string> node_name{};
    block_device_stats stats{};
    std::optional<std::string> driver{};      ///< from `driver-specific`, when present
    std::shared_ptr<block_stats> parent{};    ///< the node's `file` child
    std::shared_ptr<block_stats> backing{};   ///< the node's `backing` child
};
inline void from_json(const json& j, block_stats& v) {
    detail::get_opt(j, "device", v.device);
    detail::get_opt(j, "qdev", v.qdev);
    detail::get_opt(j, "node-name", v.node_name);
    j.at("stats").get_to(v.stats);
    v.driver.reset();
    if (auto ds = j.find("driver-specific"); ds != j.end() && ds->is_object()) detail::get_opt(*ds, "driver", v.driver);
    detail::get_box(j, "parent", v.parent);
    detail::get_box(j, "backing", v.backing);
}

struct query_blockstats {
    static constexpr std::string_view name = "query-blockstats";
    using result_type = std::vector<block_stats>;
    std::optional<bool> query_nodes{};
};
inline void to_json(json& j, const query_blockstats& c) {
    j = json::object();
    detail::put_opt(j, "query-nodes", c.query_nodes);
}

// ---- x-debug-query-block-graph -------------------------------------------------

struct x_dbg_block_graph_node {
    std::uint64_t id = 0;
    std::string type{};  ///< "block-backend", "block-job", "block-driver"
    std::string name{};
};
inline void from_json(const json& j, x_dbg_block_graph_node& v) {
    j.at("id").get_to(v.id);
    j.at("type").get_to(v.type);
    j.at("name").get_to(v.name);
}

struct x_dbg_block_graph_edge {
    std::uint64_t parent = 0;
    std::uint64_t child = 0;
    std::string name{};  ///< the child's role as QEMU names it
    std::vector<std::string> perm{};
    std::vector<std::string> shared_perm{};
};
inline void from_json(const json& j, x_dbg_block_graph_edge& v) {
    j.at("parent").get_to(v.parent);
    j.at("child").get_to(v.child);
    j.at("name").get_to(v.name);
    detail::get_or(j, "perm", v.perm, {});
    detail::get_or(j, "shared-perm", v.shared_perm, {});
}

struct x_dbg_block_graph {
    std::vector<x_dbg_block_graph_node> nodes{};
    std::vector<x_dbg_block_graph_edge> edges{};
};
inline void from_json(const json& j, x_dbg_block_graph& v) {
    j.at("nodes").get_to(v.nodes);
    j.at("edges").get_to(v.edges);
}

/// Unstable (x-) but cheap: the whole graph with roles, 4-5 ms on 256 nodes.
struct x_debug_query_block_graph {
    static constexpr std::string_view name = "x-debug-query-block-graph";
    using result_type = x_dbg_block_graph;
};

}  // namespace qmp
