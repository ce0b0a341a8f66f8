// Fuzz target: threshold specs as operators write them, and the threshold
// they compute for a capacity taken from the input: never 0, never past
// the capacity, never a crash.
#include <qmp/threshold/spec.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    std::uint64_t capacity;
    std::memcpy(&capacity, data, 8);
    const std::string text(reinterpret_cast<const char*>(data) + 8, size - 8);
    std::error_code ec;
    qmp::diagnostics why;
    auto spec = qmp::parse_threshold_spec(text, ec, &why);
    if (!spec) {
        if (!ec || why.message.empty()) std::abort();
        return 0;
    }
    for (std::optional<std::uint64_t> cap : {std::optional<std::uint64_t>(capacity), std::optional<std::uint64_t>()}) {
        auto v = qmp::compute_threshold(*spec, cap, ec, &why);
        if (!v) continue;
        if (*v == 0) std::abort();
        if (cap && *v > *cap) std::abort();
    }
    return 0;
}
