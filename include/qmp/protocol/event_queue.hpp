// The bounded event queue between the reader and the consumer. The reader
// never waits: when the queue is full the oldest event is dropped, counted,
// and an "events lost" marker takes its place, so the consumer learns of the
// loss in order and can resync (a missed one-shot threshold event matters).
#pragma once

#include <qmp/protocol/message.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace qmp {

class event_queue {
public:
    /// Default capacity: events held before the oldest is dropped.
    static constexpr std::size_t default_capacity = 1024;

    explicit event_queue(std::size_t capacity = default_capacity) : capacity_(capacity ? capacity : 1) {}

    void push(event ev) {
        ++received_;
        if (events_ == capacity_) drop_oldest();
        q_.push_back(std::move(ev));
        ++events_;
    }

    bool empty() const noexcept { return q_.empty(); }
    /// Events held (a marker is not counted).
    std::size_t size() const noexcept { return events_; }
    std::size_t capacity() const noexcept { return capacity_; }
    void set_capacity(std::size_t c) {
        capacity_ = c ? c : 1;
        while (events_ > capacity_) drop_oldest();
    }

    /// Takes the front entry: an event, or a marker (`lost` > 0, empty name).
    event pop() {
        event ev = std::move(q_.front());
        q_.pop_front();
        if (ev.lost == 0) --events_;
        return ev;
    }

    std::uint64_t dropped() const noexcept { return dropped_; }
    std::uint64_t received() const noexcept { return received_; }

private:
    static bool is_marker(const event& e) noexcept { return e.lost != 0; }

    // The marker always sits in front of the surviving events, because what
    // was lost is older than anything still queued.
    void drop_oldest() {
        ++dropped_;
        --events_;
        if (!q_.empty() && is_marker(q_.front())) {
            q_.erase(q_.begin() + 1);
            ++q_.front().lost;
        } else {
            q_.pop_front();
            event marker;
            marker.lost = 1;
            q_.push_front(std::move(marker));
        }
    }

    std::deque<event> q_;
    std::size_t capacity_;
    std::size_t events_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t received_ = 0;
};

}  // namespace qmp
