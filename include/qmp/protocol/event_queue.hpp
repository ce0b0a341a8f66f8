// The bounded event queue between the reader and a consumer. The reader
// never waits: when the queue is full, arriving events are dropped and
// counted in one "events lost" marker placed exactly where the gap is
// (after everything received before it), so the consumer learns of the
// loss in order and can resync (a missed one-shot threshold event matters).
//
// Once full, the queue keeps dropping until the consumer has drained it to
// half its capacity; every loss in that stretch goes into the same marker.
// Under a sustained flood a consumer that keeps reading therefore gets long
// runs of events between markers, never a marker per event.
#pragma once

#include <qmp/protocol/message.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace qmp {

class event_queue {
public:
    /// Default capacity: events held before arriving ones are dropped.
    static constexpr std::size_t default_capacity = 1024;

    explicit event_queue(std::size_t capacity = default_capacity) : capacity_(capacity ? capacity : 1) {}

    void push(event ev) {
        ++received_;
        if (dropping_ && events_ <= capacity_ / 2) dropping_ = false;
        if (!dropping_ && events_ < capacity_) {
            q_.push_back(std::move(ev));
            ++events_;
            return;
        }
        dropping_ = true;
        drop_one();
    }

    bool empty() const noexcept { return q_.empty(); }
    /// Events held (a marker is not counted).
    std::size_t size() const noexcept { return events_; }
    std::size_t capacity() const noexcept { return capacity_; }
    /// A smaller capacity drops the newest events held beyond it (into a marker).
    void set_capacity(std::size_t c) {
        capacity_ = c ? c : 1;
        std::uint64_t cut = 0;
        while (events_ > capacity_) {
            if (q_.back().lost) {
                cut += q_.back().lost;
                q_.pop_back();
                continue;
            }
            q_.pop_back();
            --events_;
            ++cut;
            ++dropped_;
        }
        if (cut) {
            event marker;
            marker.lost = cut;
            q_.push_back(std::move(marker));
        }
    }

    /// Takes the front entry: an event, or a marker (`lost` > 0, empty name).
    event pop() {
        event ev = std::move(q_.front());
        q_.pop_front();
        if (ev.lost == 0) --events_;
        return ev;
    }

    /// Events dropped so far, and received so far (dropped ones included).
    std::uint64_t dropped() const noexcept { return dropped_; }
    std::uint64_t received() const noexcept { return received_; }

private:
    void drop_one() {
        ++dropped_;
        if (!q_.empty() && q_.back().lost) {
            ++q_.back().lost;
            return;
        }
        event marker;
        marker.lost = 1;
        q_.push_back(std::move(marker));
    }

    std::deque<event> q_;
    std::size_t capacity_;
    std::size_t events_ = 0;
    bool dropping_ = false;
    std::uint64_t dropped_ = 0;
    std::uint64_t received_ = 0;
};

}  // namespace qmp
