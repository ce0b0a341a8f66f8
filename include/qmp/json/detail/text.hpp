// Helpers of the JSON reader: hex digits, UTF-8 encoding, and decoding
// the escapes of a string already validated.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qmp::detail {

inline int json_hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
/// Four hex digits (assumed valid).
inline std::uint32_t json_hex4(const char* p) noexcept {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v = v * 16 + static_cast<std::uint32_t>(json_hex_digit(p[k]));
    return v;
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}


/// Decodes the escapes of a string's raw bytes (assumed valid).
inline void json_unescape(std::string_view r, std::string& out) {
    out.reserve(out.size() + r.size());
    std::size_t i = 0;
    while (i < r.size()) {
        std::size_t j = r.find('\\', i);
        if (j == std::string_view::npos) j = r.size();
        out.append(r.data() + i, j - i);
        if (j == r.size()) break;
        const char e = r[j + 1];
        i = j + 2;
        switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
            std::uint32_t cp = json_hex4(r.data() + i);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {  // a valid text pairs it with a low surrogate
                const std::uint32_t lo = json_hex4(r.data() + i + 2);
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
        }
        default: out += e; break;  // '"', '\\', '/'
        }
    }
}


}  // namespace qmp::detail
