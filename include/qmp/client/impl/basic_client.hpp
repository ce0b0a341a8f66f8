// Bodies of basic_client's asynchronous operations. Each operation first
// hops onto the client's executor (so no completion ever runs inside the
// initiating call, and initiation is safe from other threads), then waits
// on its waiter's timer: the timer expiring is the timeout, a cancel from
// the reader is the completion, a cancel through the operation's
// cancellation slot is the caller giving up.
#pragma once

#include <qmp/client/basic_client.hpp>

namespace qmp {
namespace detail {

template <class Impl, class Endpoint>
struct connect_op {
    std::shared_ptr<Impl> im;
    Endpoint endpoint;
    bool do_connect;
    diagnostics* diag = nullptr;
    typename Impl::waiter_ptr w{};
    int step = 0;

    template <class Self>
    void finish(Self& self, std::error_code ec) {
        if (diag) *diag = ec == error::negotiation_failed ? im->negotiation_diagnostics() : diagnostics{};
        self.complete(ec);
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec = {}) {
        switch (step) {
        case 0: step = 1; return asio::post(im->get_executor(), std::move(self));
        case 1:
            if (im->state == conn_state::connecting || im->state == conn_state::handshaking ||
                im->state == conn_state::ready)
                return self.complete(error::already_connected);
            if (!do_connect) {
                im->begin_attempt(conn_state::handshaking);
                return wait_handshake(self);
            }
            im->begin_attempt(conn_state::connecting);
            im->start_watchdog(im->options.connect_timeout, conn_state::connecting);
            {
                std::error_code ignored;
                im->stream.close(ignored);  // a closed client reconnects on a fresh socket
            }
            step = 2;
            return im->stream.async_connect(endpoint, std::move(self));
        case 2:
            if (im->state != conn_state::connecting) return self.complete(im->close_reason);
            if (ec) {
                if (im->connect_timed_out) ec = error::connect_timeout;
                im->connect_failed(ec);
                return self.complete(ec);
            }
            return wait_handshake(self);
        default:
            if (w->done) return finish(self, w->ec);
            // Cancelled by the caller: the half-open session is of no use.
            im->fail(asio::error::operation_aborted);
            return self.complete(asio::error::operation_aborted);
        }
    }

    template <class Self>
    void wait_handshake(Self& self) {
        w = std::make_shared<typename Impl::waiter_ptr::element_type>(im->get_executor());
        w->arm(std::chrono::milliseconds(0));
        im->begin_handshake(w);
        step = 3;
        w->timer.async_wait(std::move(self));
    }
};

// Sends one command and completes with the exact text of its `return`
// value; the typed operation below converts it.
template <class Impl>
struct execute_op {
    std::shared_ptr<Impl> im;
    std::string name;
    json arguments;
    exec_options opts;
    typename Impl::cmd_ptr cmd{};
    owned_fds fds{};
    std::error_code dup_error{};
    int step = 0;

    template <class Self>
    void operator()(Self& self, std::error_code ec = {}) {
        if (step == 0) {
            // Still inside the initiating call: take copies of the caller's
            // descriptors now, so the caller may close its own.
            step = 1;
            if (!opts.fds.empty()) {
                dup_error = fds.assign(opts.fds);
                opts.fds.clear();
            }
            return asio::post(im->get_executor(), std::move(self));
        }
        if (step == 1) {
            step = 2;
            if (dup_error) return self.complete(dup_error, std::string());
            cmd = std::make_shared<typename Impl::cmd_ptr::element_type>(im->get_executor());
            cmd->arm(opts.timeout.count() < 0 ? im->options.command_timeout : opts.timeout);
            cmd->fds = std::move(fds);
            if (auto err = im->submit(cmd, name, arguments, opts.oob)) {
                if (opts.diag) *opts.diag = std::move(cmd->diag);
                return self.complete(err, std::string());
            }
            json().swap(arguments);
            return cmd->timer.async_wait(std::move(self));
        }
        if (cmd->done) {
            if (opts.diag) {
                if (cmd->ec)
                    *opts.diag = std::move(cmd->diag);
                else
                    opts.diag->clear();
            }
            return self.complete(cmd->ec, std::move(cmd->result));
        }
        im->abandon(cmd);
        if (opts.diag) opts.diag->clear();
        self.complete(ec ? make_error_code(asio::error::operation_aborted) : make_error_code(error::timeout),
                      std::string());
    }
};

template <class Impl, class Command>
struct typed_execute_op {
    std::shared_ptr<Impl> im;
    Command cmd;
    exec_options opts;

    // First step: build the arguments and run the raw command.
    template <class Self>
    void operator()(Self& self) {
        json args;
        if (auto ec = arguments_of(cmd, args, opts.diag)) {
            // Complete through the executor, never inside the initiation.
            return asio::post(im->get_executor(), [s = std::move(self), ec]() mutable { s(ec, std::string()); });
        }
        asio::async_compose<Self, void(std::error_code, std::string)>(
            execute_op<Impl>{im, std::string(cmd.name), std::move(args), opts}, self, im->get_executor());
    }

    template <class Self>
    void operator()(Self& self, std::error_code ec, std::string text) {
        typename Command::result_type out{};
        if (!ec) ec = convert_text(text, out, opts.diag);
        self.complete(ec, std::move(out));
    }
};

template <class Impl>
struct receive_event_op {
    std::shared_ptr<Impl> im;
    std::chrono::milliseconds timeout;
    typename Impl::ev_waiter_ptr w{};
    int step = 0;

    template <class Self>
    void operator()(Self& self, std::error_code ec = {}) {
        if (step == 0) {
            step = 1;
            return asio::post(im->get_executor(), std::move(self));
        }
        if (step == 1) {
            step = 2;
            w = std::make_shared<typename Impl::ev_waiter_ptr::element_type>(im->get_executor());
            w->arm(timeout);
            if (im->try_receive(w)) return self.complete(w->ec, std::move(w->ev));
            return w->timer.async_wait(std::move(self));
        }
        if (w->done) return self.complete(w->ec, std::move(w->ev));
        im->abandon(w);
        self.complete(ec ? make_error_code(asio::error::operation_aborted) : make_error_code(error::timeout), event{});
    }
};

}  // namespace detail

template <class S>
template <class Endpoint, class CompletionToken>
auto basic_client<S>::async_connect(const Endpoint& endpoint, diagnostics& diag, CompletionToken&& token) {
    return asio::async_compose<CompletionToken, void(std::error_code)>(
        detail::connect_op<impl_type, Endpoint>{im_, endpoint, true, &diag}, token, im_->get_executor());
}

template <class S>
template <class Endpoint, class CompletionToken, class>
auto basic_client<S>::async_connect(const Endpoint& endpoint, CompletionToken&& token) {
    return asio::async_compose<CompletionToken, void(std::error_code)>(
        detail::connect_op<impl_type, Endpoint>{im_, endpoint, true}, token, im_->get_executor());
}

template <class S>
template <class CompletionToken>
auto basic_client<S>::async_handshake(diagnostics& diag, CompletionToken&& token) {
    struct no_endpoint {};
    return asio::async_compose<CompletionToken, void(std::error_code)>(
        detail::connect_op<impl_type, no_endpoint>{im_, {}, false, &diag}, token, im_->get_executor());
}

template <class S>
template <class CompletionToken, class>
auto basic_client<S>::async_handshake(CompletionToken&& token) {
    struct no_endpoint {};
    return asio::async_compose<CompletionToken, void(std::error_code)>(
        detail::connect_op<impl_type, no_endpoint>{im_, {}, false}, token, im_->get_executor());
}

template <class S>
template <class CompletionToken>
auto basic_client<S>::async_execute(std::string_view name, json arguments, const exec_options& opts,
                                    CompletionToken&& token) {
    return asio::async_compose<CompletionToken, void(std::error_code, json)>(
        detail::typed_execute_op<impl_type, dynamic_command<json>>{
            im_, dynamic_command<json>{std::string(name), std::move(arguments)}, opts},
        token, im_->get_executor());
}

template <class S>
template <class Command, class CompletionToken, class>
auto basic_client<S>::async_execute(const Command& cmd, const exec_options& opts, CompletionToken&& token) {
    return asio::async_compose<CompletionToken, void(std::error_code, typename Command::result_type)>(
        detail::typed_execute_op<impl_type, Command>{im_, cmd, opts}, token, im_->get_executor());
}

template <class S>
template <class CompletionToken>
auto basic_client<S>::async_receive_event(std::chrono::milliseconds timeout, CompletionToken&& token) {
    return asio::async_compose<CompletionToken, void(std::error_code, event)>(
        detail::receive_event_op<impl_type>{im_, timeout}, token, im_->get_executor());
}

}  // namespace qmp
