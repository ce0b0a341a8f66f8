// Giving back the memory of a reply's text while a tree is built from it.
//
// A big reply is held whole in the framer's buffer until it is complete; a
// `json` built from it is larger than the text (33 MB of text make 44 MB of
// tree), so text and tree together peaked at 2.7x the reply. The tree copies
// everything it needs and never looks back, so the pages of text it has
// passed can go: the owner of the buffer (the session, for a reply's value)
// opens a spent_text over the text for the time the reply is handed out,
// and the one consumer that reads the whole text forward (the tree builder
// of a `json` result) claims it and spends the pages behind it. Linux only
// (madvise MADV_DONTNEED on memory the buffer owns: a page given back reads
// as zeros if touched again, and nobody reads it again); elsewhere nothing
// is given back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace qmp::detail {

class spent_text {
public:
    /// Spending granularity: a madvise per this many bytes read.
    static constexpr std::size_t step = 1u << 20;

    /// Opens `text` (a view into a buffer the caller owns and will not read
    /// again below what is spent) for the current thread until destroyed.
    explicit spent_text(std::string_view text) noexcept : text_(text), prev_(current_) { current_ = this; }
    ~spent_text() { current_ = prev_; }
    spent_text(const spent_text&) = delete;
    spent_text& operator=(const spent_text&) = delete;

    /// The open text if `text` is exactly it and nobody claimed it yet: the
    /// caller promises to read it once, forward, from its first byte.
    static spent_text* claim(std::string_view text) noexcept {
        spent_text* s = current_;
        if (!s || s->claimed_ || s->text_.data() != text.data() || s->text_.size() != text.size()) return nullptr;
        s->claimed_ = true;
        return s;
    }

    /// The bytes before `offset` will not be read again: whole pages among
    /// them are given back.
    void spend_before(std::size_t offset) noexcept {
#if defined(__linux__)
        static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
        if (offset > text_.size()) offset = text_.size();
        const auto base = reinterpret_cast<std::uintptr_t>(text_.data());
        const std::uintptr_t from = (base + spent_ + page - 1) / page * page;
        const std::uintptr_t to = (base + offset) / page * page;
        if (to > from) {
            ::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
            spent_ = to - base;
        }
#else
        (void)offset;
#endif
    }

private:
    std::string_view text_;
    spent_text* prev_;
    std::size_t spent_ = 0;
    bool claimed_ = false;
    inline static thread_local spent_text* current_ = nullptr;
};

}  // namespace qmp::detail
