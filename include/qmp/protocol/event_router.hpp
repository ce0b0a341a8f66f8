// Events for several consumers of one connection (QEMU serves one client
// per monitor, so everything that needs events shares it). Each
// subscription names the events it wants (and optionally a predicate) and
// has its own bounded queue with its own in-order "events lost" marker, so
// a slow consumer never holds up the reader or another consumer, and never
// loses silently. Sans-io: the client keeps who waits on which subscription.
#pragma once

#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/message.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace qmp {

/// Which events a subscription takes.
struct event_filter {
    std::vector<std::string> names;  ///< empty: every event
    /// Optional, applied after the names; called where the client runs,
    /// inside the read of the connection. It must not throw: one that does
    /// takes the event (nothing is lost, and nothing escapes into the
    /// reader). Read data typed (event_as), never with throwing accessors.
    std::function<bool(const event&)> predicate;

    bool matches(const event& ev) const noexcept {
        if (!names.empty() && std::find(names.begin(), names.end(), ev.name) == names.end()) return false;
        if (!predicate) return true;
        try {
            return predicate(ev);
        } catch (...) {
            return true;
        }
    }
};

class event_router {
public:
    using subscription_id = std::uint64_t;

    /// A new subscription; it sees events pushed from now on.
    subscription_id add(event_filter filter, std::size_t capacity = event_queue::default_capacity) {
        const subscription_id id = ++last_;
        subs_.emplace(id, entry{std::move(filter), event_queue(capacity)});
        return id;
    }
    void remove(subscription_id id) { subs_.erase(id); }
    bool contains(subscription_id id) const { return subs_.count(id) != 0; }

    /// Hands `ev` to every subscription that wants it. Returns how many took
    /// it (a full queue counts: the loss is in its marker).
    std::size_t push(event ev) {
        entry* last = nullptr;
        std::size_t n = 0;
        for (auto& [id, s] : subs_) {
            if (!s.filter.matches(ev)) continue;
            if (last) last->queue.push(ev);  // a copy for all but the last
            last = &s;
            ++n;
        }
        if (last) last->queue.push(std::move(ev));
        return n;
    }

    /// The subscription's queue (nullptr once removed).
    event_queue* queue(subscription_id id) {
        auto it = subs_.find(id);
        return it == subs_.end() ? nullptr : &it->second.queue;
    }

    /// Every subscription, for those who wake waiters after a push.
    template <class F>
    void for_each(F&& f) {
        for (auto& [id, s] : subs_) f(id, s.queue);
    }

    std::size_t size() const noexcept { return subs_.size(); }

private:
    struct entry {
        event_filter filter;
        event_queue queue;
    };
    std::map<subscription_id, entry> subs_;
    subscription_id last_ = 0;
};

}  // namespace qmp
