// How QEMU's error class and desc reach the caller of an asynchronous
// operation, whatever the completion token:
//
// - every operation QEMU can refuse (connect, handshake, execute, the
//   block graph query) has an overload taking `diagnostics&`, filled
//   before the completion runs (it must outlive the operation);
// - `bind_diagnostics(diag, handler)` attaches the same to any handler;
// - `with_diagnostics(token)` (asio::use_awaitable, asio::use_future, ...)
//   turns a failure into a qmp_error exception whose what() holds QEMU's
//   text, instead of the bare std::system_error asio would throw;
// - and that is the default: an operation given asio::use_awaitable or
//   asio::use_future (without a diagnostics& of its own) applies
//   with_diagnostics itself (detail::initiate_with_text), so
//   `co_await c.async_execute(cmd, asio::use_awaitable)` throws a qmp_error
//   whose what() is QEMU's "Device 'x' not found", not "GenericError".
//
// Operations find the place to write with get_associated_diagnostics(), the
// way asio finds a handler's executor.
#pragma once

#include <qmp/error.hpp>

#include <asio/associator.hpp>
#include <asio/async_result.hpp>

#include <exception>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

// Declared here so that a header need not include them to recognise them.
namespace asio {
template <typename Executor>
struct use_awaitable_t;
template <typename Allocator>
class use_future_t;
}  // namespace asio

namespace qmp {

/// Where an operation writes QEMU's class and desc for a handler: the
/// handler's get_diagnostics(), when it has one.
template <class T, class = void>
struct associated_diagnostics {
    static diagnostics* get(const T&) noexcept { return nullptr; }
};
template <class T>
struct associated_diagnostics<T, std::void_t<decltype(std::declval<const T&>().get_diagnostics())>> {
    static diagnostics* get(const T& t) noexcept { return t.get_diagnostics(); }
};
template <class T>
diagnostics* get_associated_diagnostics(const T& t) noexcept {
    return associated_diagnostics<T>::get(t);
}

/// A handler with a diagnostics object attached.
template <class Handler>
class diagnostics_binder {
public:
    diagnostics_binder(diagnostics& d, Handler h) : h_(std::move(h)), d_(&d) {}
    template <class... Args>
    auto operator()(Args&&... args) -> decltype(std::declval<Handler&>()(std::forward<Args>(args)...)) {
        return h_(std::forward<Args>(args)...);
    }
    diagnostics* get_diagnostics() const noexcept { return d_; }
    const Handler& get() const noexcept { return h_; }

private:
    Handler h_;
    diagnostics* d_;
};

template <class Handler>
diagnostics_binder<std::decay_t<Handler>> bind_diagnostics(diagnostics& d, Handler&& h) {
    return {d, std::forward<Handler>(h)};
}

/// The token adapter: failures complete with an exception_ptr holding a
/// qmp_error (class, desc and the code), successes as before.
template <class Token>
struct with_diagnostics_t {
    Token token;
};
template <class Token>
with_diagnostics_t<std::decay_t<Token>> with_diagnostics(Token&& t) {
    return {std::forward<Token>(t)};
}

namespace detail {

// Turns (error_code, Args...) into (exception_ptr, Args...) with the text
// the operation wrote into its own diagnostics.
template <class Handler>
class throwing_handler {
public:
    explicit throwing_handler(Handler h) : h_(std::move(h)), d_(std::make_unique<diagnostics>()) {}
    template <class... Args>
    void operator()(std::error_code ec, Args&&... args) {
        std::exception_ptr ex;
        if (ec) ex = std::make_exception_ptr(qmp_error(ec, std::move(*d_)));
        h_(ex, std::forward<Args>(args)...);
    }
    diagnostics* get_diagnostics() const noexcept { return d_.get(); }
    const Handler& get() const noexcept { return h_; }

private:
    Handler h_;
    std::unique_ptr<diagnostics> d_;  // stays put when the handler moves
};

// The tokens that turn a failed operation into an exception: QEMU's text
// goes into it by default.
template <class T>
struct throws_on_error : std::false_type {};
template <class Executor>
struct throws_on_error<asio::use_awaitable_t<Executor>> : std::true_type {};
template <class Allocator>
struct throws_on_error<asio::use_future_t<Allocator>> : std::true_type {};

/// asio::async_initiate for an operation whose caller gave no
/// diagnostics& of its own: a token that throws (use_awaitable,
/// use_future) gets with_diagnostics, so its exception carries QEMU's
/// text; every other token is used as it is. The result type is the same
/// either way (an awaitable<R>, a future<R>).
template <class Token, class Signature, class Initiation, class... Args>
auto initiate_with_text(Initiation&& init, Token& token, Args&&... args) {
    if constexpr (throws_on_error<std::decay_t<Token>>::value) {
        auto wrapped = with_diagnostics(token);
        return asio::async_initiate<decltype(wrapped), Signature>(std::forward<Initiation>(init), wrapped,
                                                                   std::forward<Args>(args)...);
    } else {
        return asio::async_initiate<Token, Signature>(std::forward<Initiation>(init), token,
                                                      std::forward<Args>(args)...);
    }
}

}  // namespace detail
}  // namespace qmp

namespace asio {

// Executor, allocator and cancellation slot come from the wrapped handler.
template <template <typename, typename> class Associator, typename H, typename D>
struct associator<Associator, qmp::diagnostics_binder<H>, D> {
    typedef typename Associator<H, D>::type type;
    static type get(const qmp::diagnostics_binder<H>& b, const D& d = D()) noexcept {
        return Associator<H, D>::get(b.get(), d);
    }
};
template <template <typename, typename> class Associator, typename H, typename D>
struct associator<Associator, qmp::detail::throwing_handler<H>, D> {
    typedef typename Associator<H, D>::type type;
    static type get(const qmp::detail::throwing_handler<H>& b, const D& d = D()) noexcept {
        return Associator<H, D>::get(b.get(), d);
    }
};

template <class Token, class... Args>
struct async_result<qmp::with_diagnostics_t<Token>, void(std::error_code, Args...)> {
    template <class Initiation, class RawToken, class... InitArgs>
    static auto initiate(Initiation&& init, RawToken&& token, InitArgs&&... args) {
        return asio::async_initiate<Token, void(std::exception_ptr, Args...)>(
            [init = std::forward<Initiation>(init)](auto handler, auto&&... a) mutable {
                std::move(init)(qmp::detail::throwing_handler<decltype(handler)>(std::move(handler)),
                                std::forward<decltype(a)>(a)...);
            },
            token.token, std::forward<InitArgs>(args)...);
    }
};

}  // namespace asio
