// Client-generated command ids and the table of commands awaiting a reply.
// Replies are matched by id only, never by order.
#pragma once

#include <qmp/protocol/message.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace qmp {

/// Every id this library sends starts with this prefix; other ids never match.
inline constexpr std::string_view id_prefix = "qmp#";

/// Pending commands keyed by the id sent with them. `T` is whatever the
/// caller needs to complete the command (a handle, an index, a pointer).
template <class T>
class pending_table {
public:
    /// A fresh id, never handed out before by this table.
    std::string next_id() {
        std::string id(id_prefix);
        id += std::to_string(++counter_);
        return id;
    }

    void insert(std::string id, T value) { map_.emplace(std::move(id), std::move(value)); }

    /// Removes and returns the entry a reply's id names (the message's id
    /// member, any JSON value); one that names no pending command counts as
    /// unknown.
    std::optional<T> take(const message& reply) {
        std::string id;
        if (reply.has_id && reply.id_string(id)) {
            auto it = map_.find(id);
            if (it != map_.end()) {
                std::optional<T> v(std::move(it->second));
                map_.erase(it);
                return v;
            }
        }
        ++unknown_;
        return std::nullopt;
    }

    /// Removes an entry by the id we generated (a cancelled, unsent command).
    bool erase(const std::string& id) { return map_.erase(id) != 0; }

    /// Removes and hands every entry to `f` (connection lost: fail them all).
    template <class F>
    void drain(F&& f) {
        auto map = std::move(map_);
        map_.clear();
        for (auto& kv : map) f(kv.second);
    }

    std::size_t size() const noexcept { return map_.size(); }
    bool empty() const noexcept { return map_.empty(); }
    /// Replies whose id named no pending command (dropped).
    std::uint64_t unknown_ids() const noexcept { return unknown_; }

private:
    std::unordered_map<std::string, T> map_;
    std::uint64_t counter_ = 0;
    std::uint64_t unknown_ = 0;
};

}  // namespace qmp
