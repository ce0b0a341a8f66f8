// basic_client::subscription: one consumer's view of the connection's
// events, with its own bounded queue and loss markers (see
// protocol/event_router.hpp). Ends (and its waiters complete with
// operation_aborted) when destroyed.
#pragma once

#include <qmp/client/basic_client.hpp>

namespace qmp {

template <class Stream>
class basic_client<Stream>::subscription {
public:
    subscription() = default;
    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& o) noexcept {
        if (this != &o) {
            reset();
            im_ = std::move(o.im_);
            id_ = o.id_;
        }
        return *this;
    }
    ~subscription() { reset(); }

    /// Takes this subscription's next event. Where its queue overflowed, an
    /// "events lost" marker comes in order (ec clear, `event::lost` > 0).
    /// Once the session ended and nothing is queued: the close reason.
    /// `timeout` 0 waits forever.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive(std::chrono::milliseconds timeout, CompletionToken&& token = CompletionToken{}) {
        return asio::async_initiate<CompletionToken, void(std::error_code, event)>(
            detail::initiate_receive<impl_type>{im_, id_}, token, timeout);
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive(CompletionToken&& token = CompletionToken{}) {
        return async_receive(std::chrono::milliseconds(0), std::forward<CompletionToken>(token));
    }

    /// Events held, and events dropped so far (read on the client's executor).
    std::size_t queued() const {
        auto* q = im_ ? im_->queue(id_) : nullptr;
        return q ? q->size() : 0;
    }
    std::uint64_t dropped() const {
        auto* q = im_ ? im_->queue(id_) : nullptr;
        return q ? q->dropped() : 0;
    }
    explicit operator bool() const noexcept { return static_cast<bool>(im_); }

    /// Ends the subscription (runs on the client's executor).
    void reset() {
        if (!im_) return;
        auto ex = im_->get_executor();
        asio::dispatch(ex, [im = std::move(im_), id = id_] { im->unsubscribe(id); });
    }

private:
    friend class basic_client<Stream>;
    subscription(std::shared_ptr<impl_type> im, event_router::subscription_id id) : im_(std::move(im)), id_(id) {}

    std::shared_ptr<impl_type> im_;
    event_router::subscription_id id_ = 0;
};

}  // namespace qmp
