// Fuzz target: the typed conversions of every query reply the block layer
// reads, and the graph, chains and resolver built from them. The input is
// up to four JSON texts separated by form feeds: the graph command's reply,
// blockstats with and without query-nodes, and flat named-block-nodes.
#include <qmp/block.hpp>
#include <qmp/qapi.hpp>

#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    std::vector<std::string_view> parts;
    std::size_t pos = 0;
    while (parts.size() < 4) {
        std::size_t ff = input.find('\f', pos);
        parts.push_back(std::string_view(input).substr(pos, ff == std::string::npos ? std::string::npos : ff - pos));
        if (ff == std::string::npos) break;
        pos = ff + 1;
    }
    qmp::graph_replies r;
    qmp::x_dbg_block_graph g;
    if (!qmp::convert_text(parts[0], g)) r.graph = std::move(g);
    std::vector<qmp::block_stats> s;
    if (parts.size() > 1 && !qmp::convert_text(parts[1], s)) r.node_stats = std::move(s);
    if (parts.size() > 2 && !qmp::convert_text(parts[2], s)) r.backend_stats = std::move(s);
    std::vector<qmp::block_device_info> d;
    if (parts.size() > 3 && !qmp::convert_text(parts[3], d)) r.details = std::move(d);
    std::vector<qmp::block_info> blocks;
    (void)qmp::convert_text(parts[0], blocks);
    qmp::block_graph graph = qmp::build_block_graph(r);
    qmp::index_registry reg;
    qmp::resolver res;
    res.update(graph, reg);
    std::error_code ec;
    for (const auto& disk : res.disks()) {
        (void)res.resolve(qmp::target{disk.name, 0}, ec);
        for (const auto& el : disk.elements) (void)res.locate(el.node(), ec);
    }
    return 0;
}
