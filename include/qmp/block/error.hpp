// Errors the block layer raises: naming a disk or chain element, and finding
// a node in the graph. They plug into std::error_code in their own category
// ("qmp.block"), so `ec == qmp::block_error::unknown_index` reads as it says.
#pragma once

#include <string>
#include <system_error>

namespace qmp {

enum class block_error {
    invalid_target = 1,  ///< a `vda[N]` string that does not parse
    unknown_disk,        ///< no disk has that name
    ambiguous_disk,      ///< more than one disk matches that name
    unknown_index,       ///< the disk has no chain element with that index
    not_in_chain,        ///< a node that belongs to no disk's chain
    unnamed_nodes,       ///< QEMU gives no node names (no graph command, none in blockstats)
    no_details,          ///< QEMU has no query-named-block-nodes
    registry_full,       ///< every index (1 to 2^32 - 2) was handed out: an element is left without one
};

namespace detail {

class block_category_impl : public std::error_category {
public:
    const char* name() const noexcept override { return "qmp.block"; }
    std::string message(int ev) const override {
        switch (static_cast<block_error>(ev)) {
        case block_error::invalid_target: return "the target does not parse as NAME or NAME[INDEX]";
        case block_error::unknown_disk: return "no disk has that name";
        case block_error::ambiguous_disk: return "more than one disk matches that name";
        case block_error::unknown_index: return "the disk has no chain element with that index";
        case block_error::not_in_chain: return "the node belongs to no disk's backing chain";
        case block_error::unnamed_nodes: return "QEMU names no block nodes, so no chain can be built";
        case block_error::no_details: return "QEMU has no query-named-block-nodes for node details";
        case block_error::registry_full: return "every index was handed out: the element has none";
        }
        return "unknown qmp.block error";
    }
};

}  // namespace detail

inline const std::error_category& block_category() noexcept {
    static const detail::block_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(block_error e) noexcept { return {static_cast<int>(e), block_category()}; }

}  // namespace qmp

template <>
struct std::is_error_code_enum<qmp::block_error> : std::true_type {};
