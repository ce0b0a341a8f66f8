// Fuzz target: the framer, fed the input in chunks whose sizes come from the
// input itself. Every message it returns must be a balanced JSON-ish text
// of the input, within the caps; a failed framer stays failed.
#include <qmp/protocol/framer.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    qmp::framer_limits lim;
    lim.max_message_size = 1 + data[0] * 16u;
    lim.max_depth = 1 + data[1] % 64;
    qmp::framer f(lim);
    const std::string input(reinterpret_cast<const char*>(data) + 2, size - 2);
    std::size_t pos = 0, step = 1;
    bool failed = false;
    while (pos < input.size()) {
        step = 1 + (static_cast<unsigned char>(input[pos]) % 97);
        std::size_t n = std::min(step, input.size() - pos);
        f.feed(input.data() + pos, n);
        pos += n;
        for (;;) {
            std::string_view out;
            std::error_code ec;
            auto st = f.next(out, ec);
            if (st == qmp::framer::status::need_more) break;
            if (st == qmp::framer::status::failed) {
                if (!ec) std::abort();
                failed = true;
                break;
            }
            if (failed) std::abort();  // a failed framer never yields again
            if (out.size() > lim.max_message_size) std::abort();
            if (out.empty() || (out.front() != '{' && out.front() != '[')) std::abort();
            if (out.back() != '}' && out.back() != ']') std::abort();
            if (input.find(out) == std::string::npos) std::abort();
        }
    }
    return 0;
}
