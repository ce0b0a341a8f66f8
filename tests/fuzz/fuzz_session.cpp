// Fuzz target: the session fed hostile bytes in hostile pieces while the
// "driver" submits, abandons and writes. Whatever comes: every request
// submitted and not abandoned gets exactly one outcome, an abandoned one
// none, on_closed comes at most once and only after every outcome, and the
// session never writes while closed.
//
// Input: byte 0 picks the options; then records of [op][len][len bytes]:
// op % 4 == 0 feeds the bytes, 1 submits (oob when op & 4, with a
// descriptor when op & 8), 2 abandons the oldest open request, 3 writes a
// chunk if there is one.
#include <qmp/protocol/session.hpp>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

namespace {

struct checker : qmp::session_handler {
    std::map<std::uint64_t, int> outcomes;  // id -> how many
    int closed = 0;
    void on_reply(std::uint64_t id, std::error_code, std::string_view, const qmp::diagnostics&) override {
        if (closed) std::abort();  // every outcome comes before on_closed
        ++outcomes[id];
    }
    void on_event(qmp::event&&) override {}
    void on_ready() override {}
    void on_closed(std::error_code ec, const qmp::diagnostics&) override {
        if (!ec) std::abort();  // a session ends for a reason
        ++closed;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    qmp::session_options o;
    o.enable_oob = data[0] & 1;
    o.max_inband_in_flight = 1 + (data[0] >> 1) % 8;
    o.limits.max_message_size = (data[0] & 0x80) ? 64 : o.limits.max_message_size;
    o.idless_commands = !(data[0] & 0x40);  // mostly on, as by default: the mixed cases
    qmp::session s(o);
    checker h;
    s.start();
    std::map<std::uint64_t, bool> submitted;  // id -> abandoned
    std::size_t pos = 1;
    while (pos + 2 <= size) {
        const std::uint8_t op = data[pos];
        const std::size_t len = std::min<std::size_t>(data[pos + 1], size - pos - 2);
        const char* bytes = reinterpret_cast<const char*>(data + pos + 2);
        pos += 2 + len;
        switch (op % 4) {
        case 0: s.on_bytes(bytes, len, h); break;
        case 1: {
            std::error_code ec;
            qmp::diagnostics diag;
            qmp::request_options ro;
            ro.oob = op & 4;
            ro.fd_count = (op & 8) ? 1 : 0;
            const std::uint64_t id = s.submit_text("query-status", std::string_view(), ro, ec, diag);
            if (ec) {
                if (id) std::abort();  // a refused request has no id
            } else {
                if (!id || submitted.count(id)) std::abort();
                submitted[id] = false;
            }
            break;
        }
        case 2:
            for (auto& [id, abandoned] : submitted)
                if (!abandoned && !h.outcomes.count(id)) {
                    s.abandon(id);
                    abandoned = true;
                    break;
                }
            break;
        case 3:
            if (s.want_write()) {
                if (s.current() == qmp::session::state::closed) std::abort();
                auto c = s.next_write();
                if (c.bytes.empty()) std::abort();
                s.written();
            }
            break;
        }
    }
    s.on_transport_error(qmp::error::connection_closed, h);
    if (h.closed > 1) std::abort();
    for (const auto& [id, abandoned] : submitted) {
        auto it = h.outcomes.find(id);
        const int n = it == h.outcomes.end() ? 0 : it->second;
        if (abandoned ? n != 0 : n != 1) std::abort();
    }
    for (const auto& [id, n] : h.outcomes)
        if (!submitted.count(id)) std::abort();
    return 0;
}
