// Fuzz target: the JSON reader against nlohmann's parser. Both must agree
// on what is valid JSON (nlohmann also refuses numbers no double holds,
// which the reader accepts as text and reports as out of range); what
// parse_json builds must equal nlohmann's tree; compact_json must keep the
// value; unescaping must give what nlohmann gives.
#include <qmp/json/parse.hpp>
#include <qmp/json/reader.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

// Walks the text; true when it is one valid JSON value. `huge` is set when
// some number fits no 64-bit integer or double.
bool reader_valid(std::string_view text, bool& huge) {
    qmp::json_reader r(text, 512);
    huge = false;
    for (;;) {
        auto t = r.next();
        if (t == qmp::json_token::end) return true;
        if (t == qmp::json_token::error) return false;
        if (t == qmp::json_token::number && r.number_kind() == qmp::json_number_kind::out_of_range) huge = true;
        if (t == qmp::json_token::string || t == qmp::json_token::key) (void)r.string_value();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    bool huge = false;
    const bool ours = reader_valid(text, huge);
    qmp::json theirs = qmp::json::parse(text, nullptr, false);
    const bool nl_ok = !theirs.is_discarded();
    // nlohmann stops at a NUL byte as if the text ended there; ours (like
    // the framer) refuses it. Depth: nlohmann has no cap; ours is 512 here.
    // Disagreements on such input are not bugs.
    const bool deep = text.find('\0') != std::string::npos || text.find(std::string(400, '[')) != std::string::npos ||
                      text.find(std::string(400, '{')) != std::string::npos;
    if (!deep) {
        if (nl_ok && !ours) std::abort();
        if (ours && !nl_ok && !huge) std::abort();
    }
    if (ours && nl_ok) {
        qmp::json mine;
        qmp::diagnostics d;
        if (qmp::parse_json(text, mine, &d, 512)) {
            if (!huge && !deep) std::abort();
        } else if (mine != theirs) {
            // Floats may differ in the last bit between parsers; compare text forms.
            if (mine.dump() != theirs.dump()) std::abort();
        }
        std::string compact;
        if (!qmp::compact_json(text, compact, nullptr, 512)) {
            qmp::json again = qmp::json::parse(compact, nullptr, false);
            if (again.is_discarded() || again.dump() != theirs.dump()) std::abort();
        }
    }
    return 0;
}
