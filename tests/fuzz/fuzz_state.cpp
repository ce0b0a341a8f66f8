// Fuzz target: the state loaders. A threshold state or an index registry is
// loaded strictly from any text; what loads saves and loads again to the
// same thing, merges with itself to itself, and the registry hands out
// numbers without wrapping or reuse.
#include <qmp/block/index_registry.hpp>
#include <qmp/threshold/types.hpp>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    qmp::threshold_state s;
    if (!qmp::convert_text(text, s)) {
        const std::string saved = qmp::json(s).dump();
        qmp::threshold_state back;
        if (qmp::convert_text(saved, back)) std::abort();
        if (qmp::json(back).dump() != saved) std::abort();
        if (qmp::json(qmp::merge_states(s, s, s)).dump() != saved) std::abort();
    }
    qmp::index_registry reg;
    if (!qmp::convert_text(text, reg)) {
        // Assign numbers to a few new elements: unique, never 0, never reused.
        std::vector<qmp::disk_chain> disks(1);
        for (int i = 0; i < 3; ++i) {
            qmp::chain_element el;
            el.format_node = "new-" + std::to_string(i);
            disks[0].elements.push_back(el);
        }
        const auto next = reg.next();
        reg.assign(disks);
        std::set<std::uint32_t> seen;
        for (const auto& el : disks[0].elements) {
            if (el.index == 0) continue;  // the numbers ran out: nothing handed out
            if (el.index < next || !seen.insert(el.index).second) std::abort();
        }
        qmp::index_registry back;
        if (qmp::convert_text(qmp::json(reg).dump(), back)) std::abort();
    }
    return 0;
}
