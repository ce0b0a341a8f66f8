// A pull parser over one complete JSON text. It validates as it goes (the
// RFC 8259 grammar, UTF-8, escapes and surrogate pairs, a depth cap) and
// hands out tokens without building a tree, so a message can be classified,
// a typed result read, or a value's exact text kept, each in one pass.
// Numbers are checked for exactness on request: an integer beyond 64 bits or
// a float beyond a double's range is reported, never rounded.
#pragma once

#include <qmp/json/detail/text.hpp>
#include <qmp/error.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace qmp {

enum class json_token : std::uint8_t {
    none,
    begin_object,
    end_object,
    begin_array,
    end_array,
    key,  ///< an object member's name; the value follows
    string,
    number,
    boolean,
    null,
    end,    ///< the text is complete
    error,  ///< see json_reader::error()
};

/// What a number token holds, as far as exact machine types go.
enum class json_number_kind : std::uint8_t {
    unsigned_integer,  ///< an integer in [0, 2^64)
    negative_integer,  ///< an integer in [-2^63, 0)
    floating,          ///< has a fraction or exponent and is a finite, non-underflowing double
    out_of_range,      ///< an integer beyond 64 bits, or a float no double holds
};

class json_reader {
public:
    explicit json_reader(std::string_view text, std::size_t max_depth = 1024) : text_(text), max_depth_(max_depth) {}

    /// Advances to the next token.
    json_token next() {
        if (tok_ == json_token::error || tok_ == json_token::end) return tok_;
        for (;;) {
            skip_ws();
            switch (state_) {
            case state::value: return value_start();
            case state::first_value:
                if (peek() == ']') return close(']');
                return value_start();
            case state::first_key:
                if (peek() == '}') return close('}');
                return key();
            case state::key: return key();
            case state::after_value:
                if (stack_.empty()) {
                    if (pos_ != text_.size()) return fail("unexpected text after the JSON value");
                    return set(json_token::end, pos_, pos_);
                }
                if (pos_ >= text_.size()) return fail("the text ends inside a value");
                if (text_[pos_] == ',') {
                    ++pos_;
                    state_ = stack_.back() == '{' ? state::key : state::value;
                    continue;
                }
                return close(stack_.back() == '{' ? '}' : ']');
            }
        }
    }

    json_token current() const noexcept { return tok_; }
    /// A string or key: the bytes between the quotes, still escaped.
    /// A number or literal: its text.
    std::string_view raw() const noexcept {
        if (tok_ == json_token::string || tok_ == json_token::key)
            return text_.substr(tok_begin_ + 1, tok_end_ - tok_begin_ - 2);
        return text_.substr(tok_begin_, tok_end_ - tok_begin_);
    }
    /// Where the current token starts, and where it ends (one past), in the
    /// text; a string's quotes are part of it.
    std::size_t begin_offset() const noexcept { return tok_begin_; }
    std::size_t end_offset() const noexcept { return tok_end_; }
    /// Depth of nesting at the current token (0 at the top level).
    std::size_t depth() const noexcept { return stack_.size(); }
    std::string_view text() const noexcept { return text_; }

    /// A string or key: true when it contains escapes (raw() is not its value).
    bool escaped() const noexcept { return escaped_; }
    /// A string or key, unescaped.
    std::string string_value() const {
        std::string s;
        string_value(s);
        return s;
    }
    void string_value(std::string& out) const {
        const std::string_view r = raw();
        if (!escaped_) {
            out.assign(r.data(), r.size());
            return;
        }
        out.clear();
        unescape(r, out);
    }
    /// A boolean's value.
    bool boolean_value() const noexcept { return text_[tok_begin_] == 't'; }

    /// A number: which exact type holds it (computed on demand).
    json_number_kind number_kind() const {
        if (!number_done_) classify_number();
        return number_kind_;
    }
    std::uint64_t unsigned_value() const { return (void)number_kind(), uvalue_; }
    std::int64_t signed_value() const { return (void)number_kind(), svalue_; }
    double double_value() const { return (void)number_kind(), dvalue_; }

    /// After a token that starts a value (a scalar, `{` or `[`), consumes
    /// the rest of that value. Returns false when the text is invalid.
    bool skip_value() {
        if (tok_ != json_token::begin_object && tok_ != json_token::begin_array) return tok_ != json_token::error;
        const std::size_t d = stack_.size() - 1;
        while (stack_.size() > d) {
            if (next() == json_token::error) return false;
        }
        return true;
    }

    /// The error, once next() returned json_token::error: malformed_message
    /// or nesting_too_deep, and a sentence with the byte offset.
    std::error_code error() const noexcept { return ec_; }
    const std::string& error_message() const noexcept { return why_; }

    /// Decodes the escapes of a string's raw bytes (assumed valid).
    static void unescape(std::string_view r, std::string& out) { detail::json_unescape(r, out); }

private:
    enum class state : std::uint8_t { value, first_value, first_key, key, after_value };

    char peek() const noexcept { return pos_ < text_.size() ? text_[pos_] : '\0'; }

    void skip_ws() noexcept {
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
            ++pos_;
        }
    }

    json_token set(json_token t, std::size_t b, std::size_t e) {
        tok_ = t;
        tok_begin_ = b;
        tok_end_ = e;
        return t;
    }

    json_token fail(const char* what, qmp::error e = qmp::error::malformed_message) {
        ec_ = e;
        why_ = "invalid JSON at byte " + std::to_string(pos_) + ": " + what;
        tok_ = json_token::error;
        return tok_;
    }

    json_token close(char c) {
        if (peek() != c) return fail(c == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        stack_.pop_back();
        const std::size_t b = pos_++;
        state_ = state::after_value;
        return set(c == '}' ? json_token::end_object : json_token::end_array, b, pos_);
    }

    json_token open(char c) {
        if (stack_.size() >= max_depth_) return fail("nested too deeply", qmp::error::nesting_too_deep);
        stack_.push_back(c);
        const std::size_t b = pos_++;
        state_ = c == '{' ? state::first_key : state::first_value;
        return set(c == '{' ? json_token::begin_object : json_token::begin_array, b, pos_);
    }

    json_token key() {
        if (peek() != '"') return fail("expected a member name");
        if (!scan_string()) return tok_;
        const std::size_t b = tok_begin_, e = tok_end_;
        skip_ws();
        if (peek() != ':') return fail("expected ':'");
        ++pos_;
        state_ = state::value;
        return set(json_token::key, b, e);
    }

    json_token value_start() {
        if (pos_ >= text_.size()) return fail("expected a value");
        const char c = text_[pos_];
        switch (c) {
        case '{':
        case '[': return open(c);
        case '"':
            if (!scan_string()) return tok_;
            state_ = state::after_value;
            return set(json_token::string, tok_begin_, tok_end_);
        case 't': return literal("true", json_token::boolean);
        case 'f': return literal("false", json_token::boolean);
        case 'n': return literal("null", json_token::null);
        default:
            if (c == '-' || (c >= '0' && c <= '9')) return number();
            return fail("expected a value");
        }
    }

    json_token literal(std::string_view word, json_token t) {
        if (text_.substr(pos_, word.size()) != word) return fail("invalid literal");
        const std::size_t b = pos_;
        pos_ += word.size();
        state_ = state::after_value;
        return set(t, b, pos_);
    }

    static bool digit(char c) noexcept { return c >= '0' && c <= '9'; }

    json_token number() {
        const std::size_t b = pos_;
        if (peek() == '-') ++pos_;
        if (peek() == '0') {
            ++pos_;
        } else if (digit(peek())) {
            while (digit(peek())) ++pos_;
        } else {
            return fail("invalid number");
        }
        is_integer_ = true;
        if (peek() == '.') {
            ++pos_;
            if (!digit(peek())) return fail("invalid number: no digit after '.'");
            while (digit(peek())) ++pos_;
            is_integer_ = false;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (!digit(peek())) return fail("invalid number: no digit in the exponent");
            while (digit(peek())) ++pos_;
            is_integer_ = false;
        }
        number_done_ = false;
        state_ = state::after_value;
        return set(json_token::number, b, pos_);
    }

    void classify_number() const {
        number_done_ = true;
        const std::string_view r = raw();
        if (is_integer_) {
            const bool neg = r[0] == '-';
            std::uint64_t v = 0;
            bool overflow = false;
            for (std::size_t i = neg ? 1 : 0; i < r.size(); ++i) {
                const auto d = static_cast<std::uint64_t>(r[i] - '0');
                if (v > (UINT64_MAX - d) / 10) {
                    overflow = true;
                    break;
                }
                v = v * 10 + d;
            }
            if (!neg) {
                number_kind_ = overflow ? json_number_kind::out_of_range : json_number_kind::unsigned_integer;
                uvalue_ = v;
                svalue_ = static_cast<std::int64_t>(v);
                dvalue_ = static_cast<double>(v);
            } else if (overflow || v > std::uint64_t(INT64_MAX) + 1) {
                number_kind_ = json_number_kind::out_of_range;
            } else if (v == 0) {  // "-0": zero
                number_kind_ = json_number_kind::unsigned_integer;
                uvalue_ = 0;
                svalue_ = 0;
                dvalue_ = 0;
            } else {
                number_kind_ = json_number_kind::negative_integer;
                svalue_ = v == std::uint64_t(INT64_MAX) + 1 ? INT64_MIN : -static_cast<std::int64_t>(v);
                dvalue_ = static_cast<double>(svalue_);
            }
            return;
        }
        double d = 0;
        auto res = std::from_chars(r.data(), r.data() + r.size(), d);
        if (res.ec != std::errc() || res.ptr != r.data() + r.size()) {
            number_kind_ = json_number_kind::out_of_range;  // overflow or underflow: no double holds it
            return;
        }
        number_kind_ = json_number_kind::floating;
        dvalue_ = d;
    }

    bool read_hex4(std::uint32_t& v) {
        if (text_.size() - pos_ < 4) return false;
        v = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = detail::json_hex_digit(text_[pos_ + static_cast<std::size_t>(k)]);
            if (h < 0) return false;
            v = v * 16 + static_cast<std::uint32_t>(h);
        }
        pos_ += 4;
        return true;
    }

    // One multi-byte UTF-8 sequence at pos_ (first byte >= 0x80): the
    // shortest form of a scalar value, as RFC 3629 allows.
    bool utf8_sequence() {
        const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text_[pos_ + k]); };
        const unsigned char c = b(0);
        std::size_t n;
        unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;        // no overlong forms
            else if (c == 0xED) hi = 0x9F;   // no surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;   // nothing above U+10FFFF
        } else {
            return false;
        }
        if (text_.size() - pos_ < n) return false;
        if (b(1) < lo || b(1) > hi) return false;
        for (std::size_t k = 2; k < n; ++k)
            if (b(k) < 0x80 || b(k) > 0xBF) return false;
        pos_ += n;
        return true;
    }

    // A string starting at the quote at pos_. Sets the token bounds to its
    // contents; false (and the error state) when it is invalid.
    bool scan_string() {
        const std::size_t b = ++pos_;
        escaped_ = false;
        const std::size_t size = text_.size();
        const char* d = text_.data();
        for (;;) {
            // Plain ASCII runs are the common case.
            pos_ = static_cast<std::size_t>(detail::skip_plain_string_bytes(d + pos_, d + size) - d);
            if (pos_ >= size) return fail("the text ends inside a string"), false;
            const auto c = static_cast<unsigned char>(d[pos_]);
            if (c == '"') {
                tok_begin_ = b - 1;
                tok_end_ = ++pos_;
                return true;
            }
            if (c < 0x20) return fail("a control character inside a string"), false;
            if (c >= 0x80) {
                if (!utf8_sequence()) return fail("invalid UTF-8 inside a string"), false;
                continue;
            }
            // A backslash.
            escaped_ = true;
            ++pos_;
            if (pos_ >= size) return fail("the text ends inside an escape"), false;
            const char e = d[pos_++];
            switch (e) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': break;
            case 'u': {
                std::uint32_t cp;
                if (!read_hex4(cp)) return fail("invalid \\u escape"), false;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("a lone low surrogate"), false;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    std::uint32_t lo;
                    if (text_.substr(pos_, 2) != "\\u") return fail("a high surrogate without its low half"), false;
                    pos_ += 2;
                    if (!read_hex4(lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail("a high surrogate without its low half"), false;
                }
                break;
            }
            default: return fail("invalid escape"), false;
            }
        }
    }

    std::string_view text_;
    std::size_t max_depth_;
    std::size_t pos_ = 0;
    state state_ = state::value;
    std::vector<char> stack_;
    json_token tok_ = json_token::none;
    std::size_t tok_begin_ = 0, tok_end_ = 0;
    bool escaped_ = false;
    bool is_integer_ = false;
    mutable bool number_done_ = false;
    mutable json_number_kind number_kind_ = json_number_kind::unsigned_integer;
    mutable std::uint64_t uvalue_ = 0;
    mutable std::int64_t svalue_ = 0;
    mutable double dvalue_ = 0;
    std::error_code ec_;
    std::string why_;
};

}  // namespace qmp
