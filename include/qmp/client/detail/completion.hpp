// The library's one helper for a completion handler kept until an
// operation completes: handler_holder keeps the handler and its work guard
// and runs it on its associated executor (dispatched when the operation
// completes later, posted when it completes inside its initiation);
// completion<Args...> erases the handler's type behind it, for operations
// that wait in a table (a receive, a connect, a threshold request). The one
// hot path, a command waiting for its reply, holds its handler_holder
// inline (ops.hpp): one allocation per command instead of two.
#pragma once

#include <qmp/client/diagnostics.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <functional>
#include <memory>
#include <tuple>
#include <utility>

namespace qmp::detail {

/// A handler with its work guard; runs it on its associated executor.
template <class Handler, class Executor>
class handler_holder {
public:
    handler_holder(Handler h, const Executor& fallback)
        : h_(std::move(h)), work_(asio::make_work_guard(asio::get_associated_executor(h_, fallback))) {}

    Handler& get() noexcept { return h_; }
    const Handler& get() const noexcept { return h_; }

    /// Installs `on_cancel` in the handler's cancellation slot, if it has one.
    template <class F>
    void on_cancel(F&& f) {
        auto slot = asio::get_associated_cancellation_slot(h_);
        if (slot.is_connected()) slot.assign(std::forward<F>(f));
    }

    template <class... Args>
    void run(bool post, Args&&... args) {
        auto slot = asio::get_associated_cancellation_slot(h_);
        if (slot.is_connected()) slot.clear();
        auto ex = work_.get_executor();
        work_.reset();
        auto f = [h = std::move(h_), t = std::make_tuple(std::forward<Args>(args)...)]() mutable {
            std::apply([&](auto&&... a) { std::move(h)(std::move(a)...); }, std::move(t));
        };
        if (post)
            asio::post(ex, std::move(f));
        else
            asio::dispatch(ex, std::move(f));
    }

private:
    Handler h_;
    asio::executor_work_guard<asio::associated_executor_t<Handler, Executor>> work_;
};

/// A completion handler of signature void(Args...), its type erased. Runs
/// once; `post` when it completes inside its own initiation.
template <class... Args>
class completion {
public:
    completion() = default;
    template <class Handler, class Executor>
    completion(Handler h, const Executor& fallback)
        : p_(std::make_unique<impl<Handler, Executor>>(std::move(h), fallback)) {}

    explicit operator bool() const noexcept { return static_cast<bool>(p_); }

    /// Where the handler wants QEMU's class and desc (get_associated_diagnostics).
    diagnostics* diag() const noexcept { return p_ ? p_->diag() : nullptr; }

    /// Installs `f` in the handler's cancellation slot, if it has one.
    template <class F>
    void on_cancel(F&& f) {
        if (p_) p_->on_cancel(std::function<void(asio::cancellation_type)>(std::forward<F>(f)));
    }

    void operator()(bool post, Args... args) {
        auto p = std::move(p_);
        if (p) p->run(post, std::move(args)...);
    }

private:
    struct base {
        virtual ~base() = default;
        virtual void run(bool post, Args... args) = 0;
        virtual diagnostics* diag() const noexcept = 0;
        virtual void on_cancel(std::function<void(asio::cancellation_type)> f) = 0;
    };
    template <class Handler, class Executor>
    struct impl final : base {
        impl(Handler h, const Executor& ex) : h_(std::move(h), ex) {}
        void run(bool post, Args... args) override { h_.run(post, std::move(args)...); }
        diagnostics* diag() const noexcept override { return get_associated_diagnostics(h_.get()); }
        void on_cancel(std::function<void(asio::cancellation_type)> f) override { h_.on_cancel(std::move(f)); }
        handler_holder<Handler, Executor> h_;
    };
    std::unique_ptr<base> p_;
};

}  // namespace qmp::detail
