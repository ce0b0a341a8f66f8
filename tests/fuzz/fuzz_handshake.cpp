// Fuzz target: the handshake fed a sequence of messages (one per line of
// the input): whatever comes, it ends ready, failed or still waiting, and
// sends at most one negotiation request.
#include <qmp/protocol/handshake.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    qmp::handshake h(size % 2 == 0);
    int requests = 0;
    std::size_t pos = 0;
    while (pos <= input.size()) {
        std::size_t nl = input.find('\n', pos);
        if (nl == std::string::npos) nl = input.size();
        qmp::message m;
        if (!qmp::classify(std::string_view(input).substr(pos, nl - pos), m)) {
            std::string out;
            bool handled = false;
            auto ec = h.on_message(m, out, handled);
            if (!out.empty()) ++requests;
            if (ec && h.current() != qmp::handshake::state::failed) std::abort();
        }
        pos = nl + 1;
    }
    if (requests > 1) std::abort();
    return 0;
}
