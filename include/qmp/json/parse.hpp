// JSON text to the nlohmann DOM, through json_reader: every number is held
// exactly or refused (error::unrepresentable_number, naming where it is),
// so raw output never prints 2^64 as 1.8446744073709552e+19 and a stray
// 1e999 is one clear error rather than a parser failure.
#pragma once

#include <qmp/error.hpp>
#include <qmp/json/detail/spent_text.hpp>
#include <qmp/json/reader.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace qmp {

using json = nlohmann::json;

namespace detail {

/// Renders a member path: keys joined with '.', array positions as [i].
inline std::string render_path(const std::vector<std::string>& segments) {
    std::string p;
    for (const auto& s : segments) {
        if (!p.empty() && s[0] != '[') p += '.';
        p += s;
    }
    return p;
}

class dom_builder {
public:
    // A builder that starts at the first byte of a reply's value may give
    // back the pages of text it has passed (see spent_text).
    explicit dom_builder(json_reader& r) : r_(r), spent_(r.begin_offset() == 0 ? spent_text::claim(r.text()) : nullptr) {}
    ~dom_builder() {
        if (spent_) spent_->spend_before(r_.begin_offset());
    }
    dom_builder(const dom_builder&) = delete;
    dom_builder& operator=(const dom_builder&) = delete;

    /// Builds the value whose first token is the reader's current one.
    bool value(json& out) {
        if (spent_ && r_.begin_offset() >= next_spend_) {
            spent_->spend_before(r_.begin_offset());
            next_spend_ = r_.begin_offset() + spent_text::step;
        }
        switch (r_.current()) {
        case json_token::begin_object: {
            out = json::object();
            auto& obj = out.get_ref<json::object_t&>();
            for (;;) {
                const json_token t = r_.next();
                if (t == json_token::end_object) return true;
                if (t != json_token::key) return reader_failed();
                std::string k;
                r_.string_value(k);
                r_.next();
                // A repeated member: the last one wins. The path holds the
                // map's own key: nothing is copied unless an error names it.
                auto slot = obj.insert_or_assign(std::move(k), nullptr).first;
                path_.push_back({&slot->first, 0});
                if (!value(slot->second)) return false;
                path_.pop_back();
            }
        }
        case json_token::begin_array: {
            out = json::array();
            auto& arr = out.get_ref<json::array_t&>();
            for (std::size_t i = 0;; ++i) {
                const json_token t = r_.next();
                if (t == json_token::end_array) return true;
                if (t == json_token::error) return reader_failed();
                path_.push_back({nullptr, i});
                arr.emplace_back();
                if (!value(arr.back())) return false;
                path_.pop_back();
            }
        }
        case json_token::string: {
            out = json::string_t();
            r_.string_value(out.get_ref<json::string_t&>());
            return true;
        }
        case json_token::number:
            switch (r_.number_kind()) {
            case json_number_kind::unsigned_integer: out = r_.unsigned_value(); return true;
            case json_number_kind::negative_integer: out = r_.signed_value(); return true;
            case json_number_kind::floating: out = r_.double_value(); return true;
            case json_number_kind::out_of_range:
                ec_ = error::unrepresentable_number;
                why_ = "the number " + abbreviate(r_.raw()) + " fits neither a 64-bit integer nor a double" +
                       (path_.empty() ? std::string() : " (at " + path() + ")") +
                       "; the JSON tree cannot hold it exactly";
                return false;
            }
            return false;
        case json_token::boolean: out = r_.boolean_value(); return true;
        case json_token::null: out = nullptr; return true;
        default: return reader_failed();
        }
    }

    std::error_code error() const noexcept { return ec_; }
    const std::string& why() const noexcept { return why_; }

    static std::string abbreviate(std::string_view s) {
        if (s.size() <= 40) return std::string(s);
        return std::string(s.substr(0, 20)) + "..." + std::string(s.substr(s.size() - 10)) + " (" +
               std::to_string(s.size()) + " characters)";
    }

private:
    bool reader_failed() {
        ec_ = r_.error() ? r_.error() : make_error_code(error::malformed_message);
        why_ = r_.error_message().empty() ? "invalid JSON" : r_.error_message();
        return false;
    }

    // Where the builder is, rendered only for an error message.
    std::string path() const {
        std::vector<std::string> segments;
        for (const auto& s : path_) segments.push_back(s.key ? *s.key : "[" + std::to_string(s.index) + "]");
        return render_path(segments);
    }

    struct segment {
        const std::string* key;  // a member (the key in its object), or
        std::size_t index;       // an array position
    };
    json_reader& r_;
    spent_text* spent_;
    std::size_t next_spend_ = spent_text::step;
    std::vector<segment> path_;
    std::error_code ec_;
    std::string why_;
};

}  // namespace detail

/// Parses one complete JSON text into `out`. Errors: malformed_message and
/// nesting_too_deep for invalid text, unrepresentable_number for a number
/// the DOM cannot hold exactly; `diag` (optional) gets the sentence.
inline std::error_code parse_json(std::string_view text, json& out, diagnostics* diag = nullptr,
                                  std::size_t max_depth = 1024) {
    json_reader r(text, max_depth);
    detail::dom_builder b(r);
    r.next();
    if (!b.value(out) || r.next() != json_token::end) {
        std::error_code ec = b.error() ? b.error() : r.error();
        if (!ec) ec = error::malformed_message;
        if (diag) {
            diag->error_class.clear();
            diag->message = b.error() ? b.why() : r.error_message();
        }
        out = nullptr;
        return ec;
    }
    return {};
}

/// Copies one JSON text without its insignificant whitespace, every token
/// as it was written: numbers keep their digits (2^64 stays
/// 18446744073709551616) and strings their escapes. What `qmpctl exec`
/// prints. Errors as parse_json.
inline std::error_code compact_json(std::string_view text, std::string& out, diagnostics* diag = nullptr,
                                    std::size_t max_depth = 1024) {
    json_reader r(text, max_depth);
    out.clear();
    out.reserve(text.size());
    bool need_comma = false;
    for (;;) {
        const json_token t = r.next();
        switch (t) {
        case json_token::end: return {};
        case json_token::error:
            if (diag) {
                diag->error_class.clear();
                diag->message = r.error_message();
            }
            out.clear();
            return r.error();
        case json_token::end_object:
        case json_token::end_array:
            out += t == json_token::end_object ? '}' : ']';
            need_comma = true;
            continue;
        default: break;
        }
        if (need_comma) out += ',';
        switch (t) {
        case json_token::begin_object: out += '{'; need_comma = false; break;
        case json_token::begin_array: out += '['; need_comma = false; break;
        case json_token::key:
            out += text.substr(r.begin_offset(), r.end_offset() - r.begin_offset());
            out += ':';
            need_comma = false;
            break;
        default:
            out += text.substr(r.begin_offset(), r.end_offset() - r.begin_offset());
            need_comma = true;
            break;
        }
    }
}

}  // namespace qmp
