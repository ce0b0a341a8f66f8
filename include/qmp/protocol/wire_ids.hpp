// The ids a session writes on the wire. They are not the request ids the
// client hands out: each sent command holds the smallest number no other
// unanswered command of the session holds, and gives it back only when its
// reply arrives.
//
// Why so short: QEMU's monitor reads its input one byte per system call and
// main-loop turn, so a command costs QEMU time in proportion to its length
// (about 8 us per byte on this project's test machine). One or two digits
// instead of a string id growing with the connection's age was most of
// what separated this client's round trips from a raw socket's
// (docs/performance.md, "What the gap was").
//
// Why only on reply: a command whose caller gave up (abandoned) keeps its
// number until QEMU answers it, so that late answer can never be taken for
// a newer command's.
#pragma once

#include <charconv>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

namespace qmp {

class wire_ids {
public:
    /// The smallest free number, now held by `request` (non-zero).
    std::uint32_t take(std::uint64_t request) {
        std::uint32_t t;
        if (!free_.empty()) {
            t = free_.top();
            free_.pop();
        } else {
            t = static_cast<std::uint32_t>(owner_.size());
            owner_.push_back(0);
        }
        owner_[t] = request;
        return t;
    }

    /// The reply of the command holding `t` arrived: the number is free.
    void release(std::uint32_t t) {
        if (t >= owner_.size() || owner_[t] == 0) return;
        owner_[t] = 0;
        free_.push(t);
    }

    /// A new connection: every number is free.
    void clear() {
        owner_.clear();
        free_ = {};
    }

    /// The request holding the id whose JSON text is `id`, or 0. QEMU
    /// echoes the id as it was written: decimal digits, no sign, no leading
    /// zero, no exponent, no quotes; any other text is not one of ours.
    std::uint64_t owner(std::string_view id) const {
        if (id.empty() || id.size() > 9 || (id.size() > 1 && id[0] == '0')) return 0;
        std::uint32_t t = 0;
        for (char c : id) {
            if (c < '0' || c > '9') return 0;
            t = t * 10 + static_cast<std::uint32_t>(c - '0');
        }
        return t < owner_.size() ? owner_[t] : 0;
    }

    /// How many numbers are held (sent commands not yet answered).
    std::size_t held() const { return owner_.size() - free_.size(); }

    /// Appends `,"id":T}`: the end of a command whose text lacks its id.
    static void append_id(std::string& out, std::uint32_t t) {
        char digits[16];
        const auto end = std::to_chars(digits, digits + sizeof(digits), t).ptr;
        out += ",\"id\":";
        out.append(digits, end);
        out += '}';
    }

private:
    std::vector<std::uint64_t> owner_;  // number -> request (0: free)
    std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<>> free_;
};

}  // namespace qmp
