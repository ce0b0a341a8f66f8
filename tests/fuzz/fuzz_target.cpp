// Fuzz target: `vda[N]` parsing. Whatever parses prints back to text that
// parses to the same target.
#include <qmp/block/target.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::error_code ec;
    qmp::diagnostics why;
    auto t = qmp::parse_target(text, ec, &why);
    if (!t) {
        if (!ec || why.message.empty()) std::abort();
        return 0;
    }
    if (qmp::parse_target(t->str(), ec) != t) std::abort();
    if (qmp::parse_target(t->indexed(), ec) != t) std::abort();
    return 0;
}
