// The one back-off policy of the library and its tools: how long to wait
// between attempts of anything that is retried (connecting while QEMU
// starts, reconnecting a lost session, a failed extension hook, a state
// file another process holds locked). Waits start at `min`, double up to
// `max`, are shortened at random by up to `jitter` (so that many clients
// that failed together do not retry together), and stop once `total` has
// passed since the first attempt (0: never).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>

namespace qmp {

struct backoff {
    std::chrono::milliseconds min{50};     ///< the wait after the first failure
    std::chrono::milliseconds max{5000};   ///< waits double up to this
    double jitter = 0.0;                   ///< 0..1: each wait is shortened by up to this share, at random
    std::chrono::milliseconds total{0};    ///< give up once this has passed since the first attempt; 0: never
};

/// The waits of one series of attempts under a backoff policy.
class backoff_series {
public:
    using clock = std::chrono::steady_clock;

    explicit backoff_series(const backoff& policy, clock::time_point start = clock::now())
        : policy_(policy), start_(start), next_(policy.min), seed_(seed_from(start, this)) {}

    /// The wait before the next attempt after a failure at `now`, or
    /// nullopt when the policy's total is spent (the wait would end past it).
    std::optional<std::chrono::milliseconds> next(clock::time_point now = clock::now()) {
        ++failures_;
        std::chrono::milliseconds wait = next_;
        next_ = std::max(policy_.min, std::min(next_ * 2, policy_.max));
        if (policy_.jitter > 0 && wait.count() > 0) {
            const double share = (policy_.jitter > 1 ? 1.0 : policy_.jitter) * unit();
            wait -= std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(wait.count()) * share));
        }
        if (policy_.total.count() > 0 && now + wait >= start_ + policy_.total) return std::nullopt;
        return wait;
    }

    /// A success: the next failure waits `min` again, and the total starts anew.
    void reset(clock::time_point now = clock::now()) {
        next_ = policy_.min;
        start_ = now;
        failures_ = 0;
    }

    /// Failures since the start or the last reset.
    std::uint64_t failures() const noexcept { return failures_; }
    /// When the series (or its last reset) began.
    clock::time_point started() const noexcept { return start_; }
    const backoff& policy() const noexcept { return policy_; }

private:
    static std::uint64_t seed_from(clock::time_point t, const void* p) {
        return static_cast<std::uint64_t>(t.time_since_epoch().count()) ^ reinterpret_cast<std::uintptr_t>(p);
    }
    // splitmix64: a uniform number in [0, 1) without <random>'s weight.
    double unit() {
        std::uint64_t z = (seed_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        return static_cast<double>(z >> 11) / 9007199254740992.0;
    }

    backoff policy_;
    clock::time_point start_;
    std::chrono::milliseconds next_;
    std::uint64_t failures_ = 0;
    std::uint64_t seed_;
};

}  // namespace qmp
