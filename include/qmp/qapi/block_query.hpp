// Typed block queries and their results, as projections: query-named-block-nodes,
// query-block, query-blockstats, x-debug-query-block-graph. Each result type
// holds the members the library's graph reads, not all of QEMU's (the
// replies reach 33 MB on deep chains); the structural test checks each
// against QEMU 7.2's and 10.0's schemas. Names follow the wire names (dashes
// become underscores); optional members are std::optional; recursive members
// are shared_ptr (null when absent). Members QEMU adds later are ignored.
// The write-threshold command (block_set_write_threshold) is generated, in
// the light part of block_core.hpp, included here.
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/qapi/light/block_core.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace qmp {

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
    static constexpr auto wire_members() {
        using T = image_info;
        return std::make_tuple(
            wire::required("filename", &T::filename), wire::required("format", &T::format),
            wire::required("virtual-size", &T::virtual_size), wire::optional("actual-size", &T::actual_size),
            wire::optional("cluster-size", &T::cluster_size), wire::optional("dirty-flag", &T::dirty_flag),
            wire::optional("backing-filename", &T::backing_filename),
            wire::optional("full-backing-filename", &T::full_backing_filename),
            wire::optional("backing-filename-format", &T::backing_filename_format),
            wire::optional("backing-image", &T::backing_image));
    }
};

/// `BlockdevChild` (QEMU 10.1+): a child edge of a node.
struct blockdev_child {
    std::string child{};  ///< role: "file", "backing", ...
    std::string node_name{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("child", &blockdev_child::child),
                               wire::optional("node-name", &blockdev_child::node_name));
    }
};

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
    static constexpr auto wire_members() {
        using T = block_device_info;
        return std::make_tuple(
            wire::required("file", &T::file), wire::optional("node-name", &T::node_name), wire::required("ro", &T::ro),
            wire::required("drv", &T::drv), wire::optional("backing_file", &T::backing_file),
            wire::optional("backing_file_depth", &T::backing_file_depth), wire::optional("encrypted", &T::encrypted),
            wire::optional("detect_zeroes", &T::detect_zeroes), wire::required("image", &T::image),
            wire::required("write_threshold", &T::write_threshold), wire::optional("active", &T::active),
            wire::optional("children", &T::children));
    }
};

/// `query-named-block-nodes`. Without `flat` the reply repeats every
/// backing image under each node (quadratic in chain depth).
struct query_named_block_nodes {
    static constexpr std::string_view name = "query-named-block-nodes";
    using result_type = std::vector<block_device_info>;
    std::optional<bool> flat{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::optional("flat", &query_named_block_nodes::flat));
    }
};

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
    static constexpr auto wire_members() {
        using T = block_info;
        return std::make_tuple(wire::required("device", &T::device), wire::optional("qdev", &T::qdev),
                               wire::optional("type", &T::type), wire::required("removable", &T::removable),
                               wire::required("locked", &T::locked), wire::optional("inserted", &T::inserted),
                               wire::optional("tray_open", &T::tray_open), wire::optional("io-status", &T::io_status));
    }
};

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
    static constexpr auto wire_members() {
        using T = block_device_stats;
        return std::make_tuple(
            wire::required("rd_bytes", &T::rd_bytes), wire::required("wr_bytes", &T::wr_bytes),
            wire::optional("unmap_bytes", &T::unmap_bytes), wire::required("rd_operations", &T::rd_operations),
            wire::required("wr_operations", &T::wr_operations), wire::optional("flush_operations", &T::flush_operations),
            wire::optional("unmap_operations", &T::unmap_operations),
            wire::optional("failed_wr_operations", &T::failed_wr_operations),
            wire::required("wr_highest_offset", &T::wr_highest_offset));
    }
};

struct block_stats {
    std::optional<std::string> device{};
    std::optional<std::string> qdev{};
    std::optional<std::string> node_name{};
    block_device_stats stats{};
    std::optional<std::string> driver{};      ///< from `driver-specific`, when present
    std::shared_ptr<block_stats> parent{};    ///< the node's `file` child
    std::shared_ptr<block_stats> backing{};   ///< the node's `backing` child
    static constexpr auto wire_members() {
        using T = block_stats;
        return std::make_tuple(wire::optional("device", &T::device), wire::optional("qdev", &T::qdev),
                               wire::optional("node-name", &T::node_name), wire::required("stats", &T::stats),
                               wire::nested("driver-specific", "driver", &T::driver),
                               wire::optional("parent", &T::parent), wire::optional("backing", &T::backing));
    }
};

struct query_blockstats {
    static constexpr std::string_view name = "query-blockstats";
    using result_type = std::vector<block_stats>;
    std::optional<bool> query_nodes{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::optional("query-nodes", &query_blockstats::query_nodes));
    }
};

// ---- x-debug-query-block-graph -------------------------------------------------

struct x_dbg_block_graph_node {
    std::uint64_t id = 0;
    std::string type{};  ///< "block-backend", "block-job", "block-driver"
    std::string name{};
    static constexpr auto wire_members() {
        using T = x_dbg_block_graph_node;
        return std::make_tuple(wire::required("id", &T::id), wire::required("type", &T::type),
                               wire::required("name", &T::name));
    }
};

struct x_dbg_block_graph_edge {
    std::uint64_t parent = 0;
    std::uint64_t child = 0;
    std::string name{};  ///< the child's role as QEMU names it
    std::vector<std::string> perm{};
    std::vector<std::string> shared_perm{};
    static constexpr auto wire_members() {
        using T = x_dbg_block_graph_edge;
        return std::make_tuple(wire::required("parent", &T::parent), wire::required("child", &T::child),
                               wire::required("name", &T::name), wire::optional("perm", &T::perm),
                               wire::optional("shared-perm", &T::shared_perm));
    }
};

struct x_dbg_block_graph {
    std::vector<x_dbg_block_graph_node> nodes{};
    std::vector<x_dbg_block_graph_edge> edges{};
    static constexpr auto wire_members() {
        return std::make_tuple(wire::required("nodes", &x_dbg_block_graph::nodes),
                               wire::required("edges", &x_dbg_block_graph::edges));
    }
};

/// Unstable (x-) but cheap: the whole graph with roles, 4-5 ms on 256 nodes.
struct x_debug_query_block_graph {
    static constexpr std::string_view name = "x-debug-query-block-graph";
    using result_type = x_dbg_block_graph;
};

}  // namespace qmp
