// Fuzz target: classifying any bytes as a QMP message, and what the client
// does next with a reply (typed and raw) or an event.
#include <qmp/protocol/command.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/qapi/events.hpp>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    qmp::message m;
    if (qmp::classify(text, m, 256)) return 0;
    std::string id;
    (void)m.id_string(id);
    switch (m.kind) {
    case qmp::message_kind::success: {
        qmp::json j;
        (void)qmp::parse_json(m.value, j);
        qmp::json_text raw;
        (void)qmp::convert_text(m.value, raw);
        qmp::version_info v;
        (void)qmp::convert_text(m.value, v);
        break;
    }
    case qmp::message_kind::event: {
        std::error_code ec;
        qmp::diagnostics d;
        (void)qmp::decode_event(m.event, ec, &d);
        break;
    }
    default: break;
    }
    return 0;
}
