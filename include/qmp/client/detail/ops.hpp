// The client's pending operations: a command waiting for its reply, a
// receive waiting for an event, a connect waiting for negotiation, behind
// one small base so the client keeps one table and one deadline timer for
// all of them (no timer, hence no timer system call, per command). Their
// handlers are kept by the helpers of completion.hpp.
#pragma once

#include <qmp/client/detail/completion.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/protocol/command.hpp>
#include <qmp/error.hpp>
#include <qmp/protocol/message.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <utility>

namespace qmp::detail {

using clock = std::chrono::steady_clock;

class op_base;
using deadline_map = std::multimap<clock::time_point, op_base*>;

class op_base {
public:
    enum class kind { execute, receive, connect };
    explicit op_base(kind k) : what(k) {}
    virtual ~op_base() = default;
    op_base(const op_base&) = delete;
    op_base& operator=(const op_base&) = delete;

    /// Runs the handler with what was set: posted when `inside_initiation`.
    virtual void complete(bool inside_initiation) = 0;
    /// The operation ends without a result (timeout, cancellation, closed).
    virtual void fail(std::error_code ec) = 0;

    const kind what;
    std::uint64_t id = 0;  // execute: the session's request id; receive: the subscription
    deadline_map::iterator deadline{};
    bool has_deadline = false;
};

/// A command: its reply is converted to R while the reply's text exists.
class execute_op_base : public op_base {
public:
    execute_op_base() : op_base(kind::execute) {}
    /// The outcome: a value's text (valid only now), or a code with QEMU's text.
    virtual void set(std::error_code ec, std::string_view value, const diagnostics& diag) = 0;
};

template <class Handler, class Executor, class R>
class execute_op final : public execute_op_base {
public:
    execute_op(Handler h, const Executor& ex, diagnostics* diag, R initial = R{})
        : h_(std::move(h), ex), diag_(diag), result_(std::move(initial)) {
        if (!diag_) diag_ = get_associated_diagnostics(h_.get());
    }
    template <class F>
    void on_cancel(F&& f) {
        h_.on_cancel(std::forward<F>(f));
    }
    void set(std::error_code ec, std::string_view value, const diagnostics& diag) override {
        ec_ = ec;
        if (ec) {
            if (diag_) *diag_ = diag;
            return;
        }
        ec_ = read_result(value, result_, diag_);
        if (!ec_ && diag_) diag_->clear();
    }
    void fail(std::error_code ec) override {
        ec_ = ec;
        if (diag_) diag_->clear();
    }
    /// Refused before it was sent, with the reason.
    void refuse(std::error_code ec, const diagnostics& diag) {
        ec_ = ec;
        if (diag_) *diag_ = diag;
    }
    void complete(bool post) override { h_.run(post, ec_, std::move(result_)); }

private:
    handler_holder<Handler, Executor> h_;
    diagnostics* diag_;
    std::error_code ec_;
    R result_;
};

/// A receive on a subscription.
class receive_op_base : public op_base {
public:
    receive_op_base() : op_base(kind::receive) {}
    virtual void set(event ev) = 0;
};

class receive_op final : public receive_op_base {
public:
    explicit receive_op(completion<std::error_code, event> h) : h_(std::move(h)) {}
    template <class F>
    void on_cancel(F&& f) {
        h_.on_cancel(std::forward<F>(f));
    }
    void set(event ev) override { ev_ = std::move(ev); }
    void fail(std::error_code ec) override { ec_ = ec; }
    void complete(bool post) override { h_(post, ec_, std::move(ev_)); }

private:
    completion<std::error_code, event> h_;
    std::error_code ec_;
    event ev_;
};

/// A connect (or handshake): done when the session is ready or ended.
class connect_op_base : public op_base {
public:
    connect_op_base() : op_base(kind::connect) {}
    virtual void set(std::error_code ec, const diagnostics& diag) = 0;
};

class connect_op final : public connect_op_base {
public:
    connect_op(completion<std::error_code> h, diagnostics* diag) : h_(std::move(h)), diag_(diag) {
        if (!diag_) diag_ = h_.diag();
    }
    template <class F>
    void on_cancel(F&& f) {
        h_.on_cancel(std::forward<F>(f));
    }
    void set(std::error_code ec, const diagnostics& diag) override {
        ec_ = ec;
        if (diag_) *diag_ = diag;
    }
    void fail(std::error_code ec) override { set(ec, {}); }
    void complete(bool post) override { h_(post, ec_); }

private:
    completion<std::error_code> h_;
    diagnostics* diag_;
    std::error_code ec_;
};

}  // namespace qmp::detail
