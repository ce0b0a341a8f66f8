// basic_client's initiating functions. Each builds its operation where it
// is called (arguments serialised, descriptors duplicated), then hands it
// to the client's executor with dispatch: inline when already there (no
// post, no extra turn of the event loop), posted otherwise. A completion
// never runs inside the initiating call.
#pragma once

#include <qmp/client/basic_client.hpp>

#include <asio/compose.hpp>
#include <asio/steady_timer.hpp>

#include <cerrno>
#include <optional>
#include <string>

namespace qmp {
namespace detail {

template <class Impl>
struct initiate_execute {
    std::shared_ptr<Impl> im;

    template <class Handler, class Command>
    void operator()(Handler&& handler, Command cmd, exec_options opts, diagnostics* diag) const {
        using R = typename Command::result_type;
        using op_type = execute_op<std::decay_t<Handler>, typename Impl::executor_type, R>;
        auto op = std::make_unique<op_type>(std::forward<Handler>(handler), im->get_executor(), diag,
                                            initial_result(cmd));
        json args;
        diagnostics why;  // a command that cannot be sent
        std::string name = name_of(cmd);
        std::error_code ec = arguments_of(cmd, args, &why);
        std::string text;
        if (!ec && !args.is_null()) {
            try {
                text = args.dump();
            } catch (const std::exception& e) {
                ec = error::invalid_argument;
                why = {{}, e.what()};
            }
        }
        // The caller may close its descriptors once this returns.
        owned_fds fds;
        if (!ec && !opts.fds.empty()) ec = fds.assign(opts.fds);
        if (ec) {
            op->refuse(ec, why);
            return op->complete(true);
        }
        opts.fds.clear();
        op_type* raw = op.get();
        raw->on_cancel([wim = std::weak_ptr<Impl>(im), raw](asio::cancellation_type) {
            if (auto s = wim.lock())
                asio::dispatch(s->get_executor(), [s, raw] { s->cancel_execute_op(raw); });
        });
        im->enter([im = im, op = std::move(op), name = std::move(name), text = std::move(text), opts = std::move(opts),
                   fds = std::move(fds)]() mutable { im->submit(std::move(op), name, text, opts, std::move(fds)); });
    }
};

template <class Impl>
struct initiate_receive {
    std::shared_ptr<Impl> im;
    event_router::subscription_id sub;

    template <class Handler>
    void operator()(Handler&& handler, std::chrono::milliseconds timeout) const {
        auto op = std::make_unique<receive_op>(
            completion<std::error_code, event>(std::forward<Handler>(handler), im->get_executor()));
        receive_op* raw = op.get();
        raw->on_cancel([wim = std::weak_ptr<Impl>(im), sub = sub, raw](asio::cancellation_type) {
            if (auto s = wim.lock()) asio::dispatch(s->get_executor(), [s, sub, raw] { s->cancel_receive(sub, raw); });
        });
        asio::dispatch(im->get_executor(), [im = im, op = std::move(op), sub = sub, timeout]() mutable {
            im->receive(std::move(op), sub, timeout);
        });
    }
};

// What a handshake on a connected stream passes for the endpoint.
struct no_endpoint {};

template <class Impl>
struct initiate_connect {
    std::shared_ptr<Impl> im;

    // `endpoint` is null for a handshake on a connected stream.
    template <class Handler, class Endpoint>
    void operator()(Handler&& handler, const Endpoint* endpoint, diagnostics* diag) const {
        // The endpoint first: it may live in the handler (connect_retry_op
        // keeps it), which the operation below moves from.
        std::optional<Endpoint> ep;
        if (endpoint) ep = *endpoint;
        auto op = std::make_unique<connect_op>(completion<std::error_code>(std::forward<Handler>(handler), im->get_executor()),
                                               diag);
        op->on_cancel([wim = std::weak_ptr<Impl>(im)](asio::cancellation_type) {
            if (auto s = wim.lock())
                asio::dispatch(s->get_executor(), [s] {
                    if (s->busy_connecting()) s->close(asio::error::operation_aborted);
                });
        });
        asio::dispatch(im->get_executor(), [im = im, op = std::move(op), ep = std::move(ep)]() mutable {
            if (im->busy_connecting() || im->ready()) {
                op->set(error::already_connected, {});
                return op->complete(true);
            }
            if (!ep) return im->begin_session(std::move(op));
            if constexpr (transport<typename Impl::stream_type>::can_connect && !std::is_same_v<Endpoint, no_endpoint>) {
                im->begin_connect(std::move(op), endpoint_text(*ep));
                transport<typename Impl::stream_type>::async_connect(
                    im->stream(), *ep,
                    [im, gen = im->generation(), keep = im->held()](std::error_code ec) { im->connected(gen, ec); });
            }
        });
    }
};

// Connect attempts until one works or the back-off policy gives up (a QEMU
// that is starting refuses, or closes before the greeting, early
// connections). A failure says how many attempts were made, over how long.
template <class Impl, class Endpoint>
struct connect_retry_op {
    std::shared_ptr<Impl> im;
    Endpoint endpoint;
    backoff_series waits;
    diagnostics* diag;
    std::unique_ptr<diagnostics> own{};  // each attempt's reason, when the caller gave no place for it
    std::unique_ptr<asio::steady_timer> timer{};
    struct again {};

    template <class Self>
    void operator()(Self& self, again = {}) {
        if (!diag) diag = (own = std::make_unique<diagnostics>()).get();
        initiate_connect<Impl>{im}(std::move(self), &endpoint, diag);
    }
    template <class Self>
    void operator()(Self& self, std::error_code ec) {
        if (!ec) return self.complete(ec);
        std::optional<std::chrono::milliseconds> wait;
        if (retriable(ec) && !im->user_closed()) wait = waits.next();
        if (!wait) {
            const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - waits.started());
            const std::string last = diag->message.empty() ? ec.message() : ec.message() + ": " + diag->message;
            diag->message = std::to_string(waits.failures() + (retriable(ec) && !im->user_closed() ? 0 : 1)) +
                            " attempt(s) over " + std::to_string(spent.count()) + " ms; the last: " + last;
            return self.complete(ec);
        }
        if (!timer) timer = std::make_unique<asio::steady_timer>(im->get_executor());
        timer->expires_after(*wait);
        timer->async_wait([s = std::move(self)](std::error_code) mutable { s(again{}); });
    }
    // What a starting QEMU does to early connections: refuses them, has no
    // socket yet, has a full listen backlog (EAGAIN), closes them, never
    // greets, or greets twice (its monitor was set up under the connection).
    static bool retriable(std::error_code ec) {
        if (ec == error::connection_closed || ec == error::greeting_timeout || ec == error::connect_timeout ||
            ec == error::greeted_twice)
            return true;
        const bool system = ec.category() == asio::error::get_system_category() || ec.category() == std::system_category();
        return system && (ec.value() == ECONNREFUSED || ec.value() == ENOENT || ec.value() == EAGAIN);
    }
};

template <class Impl>
struct initiate_connect_retry {
    std::shared_ptr<Impl> im;

    template <class Handler, class Endpoint>
    void operator()(Handler&& handler, const Endpoint& endpoint, const backoff& retry, diagnostics* diag) const {
        if (!diag) diag = get_associated_diagnostics(handler);
        // (asio moves the handler in: async_compose takes the token by reference.)
        asio::async_compose<std::decay_t<Handler>, void(std::error_code)>(
            connect_retry_op<Impl, Endpoint>{im, endpoint, backoff_series(retry), diag}, handler, im->get_executor());
    }
};

// query-qmp-schema, indexed, then offered to the session it was asked on
// (not to a later one: a reconnect may reach another QEMU).
template <class Impl>
struct load_schema_op {
    std::shared_ptr<Impl> im;
    diagnostics* diag;
    std::uint64_t generation = 0;

    template <class Self>
    void operator()(Self& self) {
        generation = im->generation();
        initiate_execute<Impl>{im}(std::move(self), dynamic_command<json>{"query-qmp-schema", nullptr}, exec_options{},
                                   diag);
    }
    template <class Self>
    void operator()(Self& self, std::error_code ec, json reply) {
        if (ec) return self.complete(ec, nullptr);
        auto schema = std::make_shared<const peer_schema>(reply, "QEMU " + im->server_greeting().version.text());
        reply = nullptr;
        if (!im->offer(schema, generation)) return self.complete(make_error_code(error::connection_closed), nullptr);
        self.complete(ec, std::move(schema));
    }
};

template <class Impl>
struct initiate_load_schema {
    std::shared_ptr<Impl> im;

    template <class Handler>
    void operator()(Handler&& handler, diagnostics* diag) const {
        if (!diag) diag = get_associated_diagnostics(handler);
        asio::async_compose<std::decay_t<Handler>, void(std::error_code, std::shared_ptr<const peer_schema>)>(
            load_schema_op<Impl>{im, diag}, handler, im->get_executor());
    }
};

}  // namespace detail

template <class S>
template <class Endpoint, class CompletionToken, class>
auto basic_client<S>::async_connect(const Endpoint& endpoint, CompletionToken&& token) {
    static_assert(transport<S>::can_connect,
                  "this stream cannot be connected by the client: connect it yourself, then async_handshake");
    return detail::initiate_with_text<CompletionToken, void(std::error_code)>(detail::initiate_connect<impl_type>{im_},
                                                                        token, &endpoint, nullptr);
}

template <class S>
template <class Endpoint, class CompletionToken>
auto basic_client<S>::async_connect(const Endpoint& endpoint, diagnostics& diag, CompletionToken&& token) {
    static_assert(transport<S>::can_connect,
                  "this stream cannot be connected by the client: connect it yourself, then async_handshake");
    return asio::async_initiate<CompletionToken, void(std::error_code)>(detail::initiate_connect<impl_type>{im_},
                                                                        token, &endpoint, &diag);
}

template <class S>
template <class Endpoint, class CompletionToken, class>
auto basic_client<S>::async_connect(const Endpoint& endpoint, const backoff& retry, CompletionToken&& token) {
    static_assert(transport<S>::can_connect,
                  "this stream cannot be connected by the client: connect it yourself, then async_handshake");
    return detail::initiate_with_text<CompletionToken, void(std::error_code)>(
        detail::initiate_connect_retry<impl_type>{im_}, token, endpoint, retry, nullptr);
}

template <class S>
template <class Endpoint, class CompletionToken>
auto basic_client<S>::async_connect(const Endpoint& endpoint, const backoff& retry, diagnostics& diag,
                                    CompletionToken&& token) {
    static_assert(transport<S>::can_connect,
                  "this stream cannot be connected by the client: connect it yourself, then async_handshake");
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        detail::initiate_connect_retry<impl_type>{im_}, token, endpoint, retry, &diag);
}

template <class S>
template <class CompletionToken, class, class>
auto basic_client<S>::async_handshake(CompletionToken&& token) {
    const detail::no_endpoint* none = nullptr;
    return detail::initiate_with_text<CompletionToken, void(std::error_code)>(detail::initiate_connect<impl_type>{im_},
                                                                        token, none, nullptr);
}

template <class S>
template <class CompletionToken>
auto basic_client<S>::async_handshake(diagnostics& diag, CompletionToken&& token) {
    const detail::no_endpoint* none = nullptr;
    return asio::async_initiate<CompletionToken, void(std::error_code)>(detail::initiate_connect<impl_type>{im_},
                                                                        token, none, &diag);
}

template <class S>
template <class Command, class CompletionToken, class>
auto basic_client<S>::async_execute(Command cmd, const exec_options& opts, CompletionToken&& token) {
    return detail::initiate_with_text<CompletionToken, void(std::error_code, typename Command::result_type)>(
        detail::initiate_execute<impl_type>{im_}, token, std::move(cmd), opts, static_cast<diagnostics*>(nullptr));
}

template <class S>
template <class Command, class CompletionToken, class>
auto basic_client<S>::async_execute(Command cmd, const exec_options& opts, diagnostics& diag, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, typename Command::result_type)>(
        detail::initiate_execute<impl_type>{im_}, token, std::move(cmd), opts, &diag);
}

template <class S>
template <class CompletionToken, class>
auto basic_client<S>::async_load_schema(CompletionToken&& token) {
    return detail::initiate_with_text<CompletionToken, void(std::error_code, std::shared_ptr<const peer_schema>)>(
        detail::initiate_load_schema<impl_type>{im_}, token, nullptr);
}

template <class S>
template <class CompletionToken>
auto basic_client<S>::async_load_schema(diagnostics& diag, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, std::shared_ptr<const peer_schema>)>(
        detail::initiate_load_schema<impl_type>{im_}, token, &diag);
}

template <class S>
template <class CompletionToken>
auto basic_client<S>::async_receive_event(std::chrono::milliseconds timeout, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, event)>(
        detail::initiate_receive<impl_type>{im_, im_->everything()}, token, timeout);
}

}  // namespace qmp
