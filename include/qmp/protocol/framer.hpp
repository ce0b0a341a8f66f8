// Splits a QMP byte stream into complete JSON texts. Framing follows braces,
// brackets and strings, never newlines, so a `pretty=on` monitor (one message
// over many lines) frames the same way as the default one-line-CRLF output.
#pragma once

#include <qmp/error.hpp>
#include <qmp/json/detail/text.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace qmp {

/// Limits applied to every message received.
struct framer_limits {
    /// Largest message accepted, in bytes. The default (64 MiB, QEMU's own
    /// input limit) holds a `query-named-block-nodes` without `flat` on a
    /// 64-deep chain (about 9 MB) several times over.
    std::size_t max_message_size = 64u * 1024u * 1024u;
    /// Deepest nesting of objects and arrays accepted (QEMU's limit too).
    std::size_t max_depth = 1024;
};

/// Incremental framer. Bytes go in with feed(); next() hands out complete
/// JSON texts one at a time. Every byte is examined once (the scan resumes
/// where it stopped), so the cost is linear in the bytes received.
class framer {
public:
    enum class status { message, need_more, failed };

    explicit framer(framer_limits limits = {}) : limits_(limits) {}

    /// Appends received bytes.
    void feed(const char* data, std::size_t size) { buf_.append(data, size); }
    void feed(std::string_view bytes) { feed(bytes.data(), bytes.size()); }

    /// Finds the next complete message. On status::message, `out` views it
    /// until the next call to feed() or next(). On status::failed, `ec` says
    /// why (message_too_large, nesting_too_deep, malformed_message) and the
    /// framer stays failed: the stream cannot be resynchronised safely.
    status next(std::string_view& out, std::error_code& ec) {
        if (failed_) {
            ec = failed_;
            return status::failed;
        }
        release_consumed();
        const char* data = buf_.data();
        const std::size_t size = buf_.size();
        while (pos_ < size) {
            const char c = data[pos_];
            if (start_ == npos) {
                // Between messages: whitespace only.
                if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                    ++pos_;
                    consumed_ = pos_;
                    continue;
                }
                if (c != '{' && c != '[') return fail(ec, error::malformed_message);
                start_ = pos_;
                depth_ = 1;
                ++pos_;
                continue;
            }
            if (in_string_) {
                // Skip ordinary string bytes quickly.
                std::size_t i = pos_;
                if (escape_) {
                    escape_ = false;
                    ++i;
                } else {
                    // Control and non-ASCII bytes are the reader's to judge.
                    for (;;) {
                        i = static_cast<std::size_t>(detail::skip_plain_string_bytes(data + i, data + size) - data);
                        if (i >= size || data[i] == '"' || data[i] == '\\') break;
                        ++i;
                    }
                    if (i < size) {
                        if (data[i] == '\\')
                            escape_ = true;
                        else
                            in_string_ = false;
                        ++i;
                    }
                }
                pos_ = i;
            } else {
                switch (c) {
                case '"': in_string_ = true; break;
                case '{':
                case '[':
                    if (++depth_ > limits_.max_depth) return fail(ec, error::nesting_too_deep);
                    break;
                case '}':
                case ']':
                    if (--depth_ == 0) {
                        ++pos_;
                        if (pos_ - start_ > limits_.max_message_size) return fail(ec, error::message_too_large);
                        out = std::string_view(data + start_, pos_ - start_);
                        consumed_ = pos_;
                        start_ = npos;
                        return status::message;
                    }
                    break;
                default: break;
                }
                ++pos_;
            }
            if (pos_ - start_ > limits_.max_message_size) return fail(ec, error::message_too_large);
        }
        if (start_ != npos && pos_ - start_ > limits_.max_message_size)
            return fail(ec, error::message_too_large);
        return status::need_more;
    }

    /// Bytes held but not yet returned as a message.
    std::size_t buffered() const noexcept { return buf_.size() - consumed_; }
    /// True while a message has started but is not complete.
    bool in_message() const noexcept { return start_ != npos; }
    const framer_limits& limits() const noexcept { return limits_; }

    /// Forgets everything (a new connection).
    void reset() {
        buf_.clear();
        pos_ = consumed_ = 0;
        start_ = npos;
        depth_ = 0;
        in_string_ = escape_ = false;
        failed_.clear();
    }

private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    status fail(std::error_code& ec, error e) {
        failed_ = make_error_code(e);
        ec = failed_;
        return status::failed;
    }

    // Drops bytes of messages already handed out. Done only once they are at
    // least half the buffer, so each byte moves O(1) times on average.
    void release_consumed() {
        if (consumed_ == 0) return;
        if (consumed_ == buf_.size()) {
            buf_.clear();
        } else if (consumed_ >= buf_.size() / 2) {
            buf_.erase(0, consumed_);
        } else {
            return;
        }
        pos_ -= consumed_;
        if (start_ != npos) start_ -= consumed_;
        consumed_ = 0;
    }

    framer_limits limits_;
    std::string buf_;
    std::size_t pos_ = 0;       // next byte to examine
    std::size_t consumed_ = 0;  // bytes already returned (or skipped)
    std::size_t start_ = npos;  // first byte of the message being scanned
    std::size_t depth_ = 0;
    bool in_string_ = false;
    bool escape_ = false;
    std::error_code failed_;
};

}  // namespace qmp
