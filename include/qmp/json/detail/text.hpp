// Helpers of the JSON reader: the plain-byte scan, hex digits, UTF-8 encoding, and decoding
// the escapes of a string already validated.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace qmp::detail {

/// The first byte in [p, end) that ends a run of plain string characters:
/// '"', '\\', a control character (< 0x20) or a non-ASCII byte (>= 0x80);
/// `end` when there is none. Eight bytes at a time: JSON from QEMU is mostly
/// long ASCII strings (file names, nested json: names), and this is the
/// scan that every byte of them goes through, in the framer and the reader.
inline const char* skip_plain_string_bytes(const char* p, const char* end) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
    while (end - p >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        // Bytes below 0x20 borrow; '"' and '\\' become zero; any high bit is
        // non-ASCII. A borrow can only mark bytes after a true hit, so the
        // first marked byte is found again below, one at a time.
        const std::uint64_t hit =
            ((w - ones * 0x20) & ~w & highs) | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\')) | (w & highs);
        if (hit) break;
        p += 8;
    }
    while (p < end) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
        ++p;
    }
    return end;
}

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

/// Writes `cp` as UTF-8 at `o` (room for four bytes); returns the end.
inline char* put_utf8(char* o, std::uint32_t cp) noexcept {
    if (cp < 0x80) {
        *o++ = static_cast<char>(cp);
    } else if (cp < 0x800) {
        *o++ = static_cast<char>(0xC0 | (cp >> 6));
        *o++ = static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = static_cast<char>(0xE0 | (cp >> 12));
        *o++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        *o++ = static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        *o++ = static_cast<char>(0xF0 | (cp >> 18));
        *o++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        *o++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        *o++ = static_cast<char>(0x80 | (cp & 0x3F));
    }
    return o;
}

/// Decodes the escapes of a string's raw bytes (assumed valid).
inline void json_unescape(std::string_view r, std::string& out) {
    // Decoded text is never longer than its escaped form: written in place
    // into room made once, then cut to length (no per-character appends).
    const std::size_t base = out.size();
    out.resize(base + r.size());
    char* o = out.data() + base;
    const char* p = r.data();
    const char* const end = p + r.size();
    while (p < end) {
        const char* bs = static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(end - p)));
        const std::size_t run = static_cast<std::size_t>((bs ? bs : end) - p);
        std::memcpy(o, p, run);
        o += run;
        if (!bs) break;
        const char e = bs[1];
        p = bs + 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            std::uint32_t cp = json_hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {  // a valid text pairs it with a low surrogate
                const std::uint32_t lo = json_hex4(p + 2);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o = put_utf8(o, cp);
            break;
        }
        default: *o++ = e; break;  // '"', '\\', '/'
        }
    }
    out.resize(static_cast<std::size_t>(o - out.data()));
}


}  // namespace qmp::detail
