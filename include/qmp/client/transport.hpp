// What the client needs of a stream beyond AsyncReadStream and
// AsyncWriteStream, each optional, in transport<Stream>:
//
// - connecting: a stream with async_connect (sockets) can be connected by
//   the client (async_connect); any other one is connected by its owner and
//   handed over (async_handshake);
// - closing: close(ec), or the lowest layer's; a stream with neither is
//   left to its owner (the client just stops using it);
// - writing at once: write_now() writes what the stream takes without
//   waiting or a completion to run (plain sockets: one system call per
//   command); 0 means "go the asynchronous way", always correct;
// - descriptor passing: unix stream sockets (send_with_fds, and
//   async_wait_writable when the socket is full);
// - telling which process is at the other end: unix stream sockets;
// - renewing: a stream that cannot be connected twice (TLS: its SSL object
//   remembers the last session) is replaced by a fresh one before each
//   connect; the old one lives until the operations on it are done.
//
// The primary template finds these at compile time for sockets and for
// plain AsyncStreams. A wrapper around another stream (it has
// next_layer()) gets connect, close, is_open and the peer's identity from
// its next layer by default (forwarding_transport); one whose writes reach
// the next layer unchanged says so to get immediate writes and descriptor
// passing too:
//
//   template <class Next>
//   struct qmp::transport<my_wrapper<Next>> : qmp::forwarding_transport<my_wrapper<Next>, true> {};
//
// Specialise qmp::transport<Stream> to teach the client any other stream
// (client/tls.hpp does it for asio::ssl::stream).
#pragma once

#include <qmp/client/detail/fd_passing.hpp>
#include <qmp/client/detail/peer.hpp>
#include <qmp/protocol/message.hpp>

#include <asio/buffer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace qmp {

namespace detail {

template <class S, class = void>
struct has_close : std::false_type {};
template <class S>
struct has_close<S, std::void_t<decltype(std::declval<S&>().close(std::declval<std::error_code&>()))>> : std::true_type {};

template <class S, class = void>
struct has_lowest_layer : std::false_type {};
template <class S>
struct has_lowest_layer<S, std::void_t<decltype(std::declval<S&>().lowest_layer())>> : std::true_type {};

template <class S, class = void>
struct has_protocol : std::false_type {};
template <class S>
struct has_protocol<S, std::void_t<typename S::protocol_type>> : std::true_type {};

template <class S, class = void>
struct can_write_now : std::false_type {};
template <class S>
struct can_write_now<S, std::void_t<decltype(std::declval<S&>().non_blocking(true, std::declval<std::error_code&>())),
                                    decltype(std::declval<S&>().write_some(asio::const_buffer(), std::declval<std::error_code&>()))>>
    : std::true_type {};

template <class S, class = void>
struct has_next_layer : std::false_type {};
template <class S>
struct has_next_layer<S, std::void_t<decltype(std::declval<S&>().next_layer())>> : std::true_type {};

/// A stream that wraps another (next_layer()) and is no socket itself.
template <class S>
struct is_wrapper : std::bool_constant<has_next_layer<S>::value && !has_protocol<S>::value> {};

template <class S, class = void>
struct endpoint_of {
    using type = void;
};
template <class S>
struct endpoint_of<S, std::void_t<typename S::protocol_type::endpoint>> {
    using type = typename S::protocol_type::endpoint;
};

/// Marks a descriptor close-on-exec (POSIX).
inline void close_on_exec(int fd) noexcept {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/// Writes what `s` takes at once, without waiting and without a completion
/// to run (plain sockets, put in non-blocking mode): a command that fits
/// the socket's buffer costs its one system call. Returns the bytes
/// written: 0 when the stream would block, failed (the asynchronous write
/// that follows meets and reports the error) or cannot write this way
/// (TLS, other streams).
template <class Stream>
std::size_t try_write_now(Stream& s, const char* data, std::size_t size) {
    if constexpr (can_write_now<Stream>::value) {
        std::error_code ec;
        if (!s.non_blocking()) s.non_blocking(true, ec);
        if (ec) return 0;
        std::size_t n = s.write_some(asio::const_buffer(data, size), ec);
        return ec ? 0 : n;
    } else {
        (void)s, (void)data, (void)size;
        return 0;
    }
}

}  // namespace detail

template <class Stream, class = void>
struct transport;

namespace detail {

template <class E, class = void>
struct has_path : std::false_type {};
template <class E>
struct has_path<E, std::void_t<decltype(std::declval<const E&>().path())>> : std::true_type {};
template <class E, class = void>
struct has_address : std::false_type {};
template <class E>
struct has_address<E, std::void_t<decltype(std::declval<const E&>().address().to_string()),
                                  decltype(std::declval<const E&>().port())>> : std::true_type {};
template <class E, class = void>
struct has_inner_endpoint : std::false_type {};
template <class E>
struct has_inner_endpoint<E, std::void_t<decltype(std::declval<const E&>().endpoint)>> : std::true_type {};

/// What an endpoint is, for messages: a unix socket's path, an address and
/// port, the endpoint inside a wrapper's (tls_endpoint), or "the endpoint".
template <class Endpoint>
std::string endpoint_text(const Endpoint& ep) {
    if constexpr (has_path<Endpoint>::value) {
        return std::string(ep.path());
    } else if constexpr (has_address<Endpoint>::value) {
        const std::string a = ep.address().to_string();
        return (a.find(':') == std::string::npos ? a : "[" + a + "]") + ":" + std::to_string(ep.port());
    } else if constexpr (has_inner_endpoint<Endpoint>::value) {
        return endpoint_text(ep.endpoint);
    } else {
        return "the endpoint";
    }
}

template <class Stream, class = void>
struct transport_renews : std::false_type {};
template <class Stream>
struct transport_renews<Stream, std::enable_if_t<transport<Stream>::renews>> : std::true_type {};

template <class Stream, class = void>
struct transport_has_peer_gone : std::false_type {};
template <class Stream>
struct transport_has_peer_gone<Stream, std::void_t<decltype(transport<Stream>::peer_gone(std::error_code()))>>
    : std::true_type {};

template <class Stream, class = void>
struct transport_has_nudge : std::false_type {};
template <class Stream>
struct transport_has_nudge<Stream, std::void_t<decltype(transport<Stream>::nudge(std::declval<const greeting&>()))>>
    : std::true_type {};

/// Whether the peer that sent `g` needs a space after each write to read
/// all of it (transport<S>::nudge; none by default).
template <class Stream>
bool transport_nudges(const greeting& g) {
    if constexpr (transport_has_nudge<Stream>::value)
        return transport<Stream>::nudge(g);
    else
        return ((void)g, false);
}

/// The transport's immediate write where it has one (0: none).
template <class S, class = void>
struct transport_has_write_now : std::false_type {};
template <class S>
struct transport_has_write_now<S, std::void_t<decltype(transport<S>::write_now(std::declval<S&>(), nullptr, 0))>>
    : std::true_type {};
template <class Stream>
std::size_t transport_write_now(Stream& s, const char* data, std::size_t size) {
    if constexpr (transport_has_write_now<Stream>::value)
        return transport<Stream>::write_now(s, data, size);
    else
        return ((void)s, (void)data, (void)size, 0);
}

/// The transport's own word on whether an error means the peer went away.
template <class Stream>
bool transport_peer_gone(const std::error_code& ec) {
    if constexpr (transport_has_peer_gone<Stream>::value)
        return transport<Stream>::peer_gone(ec);
    else
        return ((void)ec, false);
}

}  // namespace detail

/// What a stream wrapper's transport can derive from: connect, close,
/// is_open and the peer's identity go to s.next_layer(); so do immediate
/// writes and descriptors when `PassesWritesThrough` (the wrapper writes
/// the client's bytes to its next layer as they are: a wrapper that only
/// watches, or times, its reads). The primary template uses it with
/// `false` for any wrapper not specialised otherwise.
template <class Wrapper, bool PassesWritesThrough = false>
struct forwarding_transport {
    using next_type = std::remove_reference_t<decltype(std::declval<Wrapper&>().next_layer())>;
    using next = transport<next_type>;
    using endpoint_type = typename next::endpoint_type;

    static constexpr bool can_connect = next::can_connect;
    static constexpr bool can_pass_fds = PassesWritesThrough && next::can_pass_fds;
    static constexpr bool renews = false;

    template <class Endpoint, class Handler>
    static void async_connect(Wrapper& s, const Endpoint& ep, Handler&& h) {
        next::async_connect(s.next_layer(), ep, std::forward<Handler>(h));
    }
    static void close(Wrapper& s) { next::close(s.next_layer()); }
    static bool is_open(Wrapper& s) { return next::is_open(s.next_layer()); }
    static std::optional<std::string> peer_instance(Wrapper& s) { return next::peer_instance(s.next_layer()); }
    static bool peer_gone(const std::error_code& ec) noexcept { return detail::transport_peer_gone<next_type>(ec); }

    static std::size_t write_now(Wrapper& s, const char* data, std::size_t size) {
        if constexpr (PassesWritesThrough)
            return detail::transport_write_now(s.next_layer(), data, size);
        else
            return ((void)s, (void)data, (void)size, 0);
    }
    static std::size_t send_with_fds(Wrapper& s, const char* data, std::size_t size, const std::vector<int>& fds,
                                     std::error_code& ec) {
        return next::send_with_fds(s.next_layer(), data, size, fds, ec);
    }
    template <class Handler>
    static void async_wait_writable(Wrapper& s, Handler&& h) {
        next::async_wait_writable(s.next_layer(), std::forward<Handler>(h));
    }
};

namespace detail {

/// A stream that is not a wrapper: what it offers, found at compile time.
template <class Stream>
struct stream_transport {
    /// The client can connect it to an endpoint (async_connect).
    static constexpr bool can_connect = detail::has_protocol<Stream>::value;
    /// Descriptors can travel with a command (SCM_RIGHTS).
    static constexpr bool can_pass_fds = detail::can_pass_fds<Stream>::value;

    /// Connects the stream to `ep` (only when can_connect). A socket is
    /// opened close-on-exec first: a program that starts others (a hook, a
    /// helper) never hands them its QMP connections. A TCP socket sends
    /// each write at once (TCP_NODELAY): QMP is small requests waiting for
    /// answers, and Nagle's wait for an acknowledgement is pure delay there
    /// (over TLS to QEMU 7.2, whose monitor acknowledges late, the space
    /// written after each command waited ~40 ms: 22 round trips/s).
    template <class Endpoint, class Handler>
    static void async_connect(Stream& s, const Endpoint& ep, Handler&& h) {
        if constexpr (detail::has_protocol<Stream>::value) {
            if (!s.is_open()) {
                std::error_code ec;
                s.open(ep.protocol(), ec);  // on failure, async_connect reports it
                if (!ec) {
                    detail::close_on_exec(s.native_handle());
                    if (ep.protocol().protocol() == IPPROTO_TCP) {
                        const int one = 1;
                        ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    }
                }
            }
        }
        s.async_connect(ep, std::forward<Handler>(h));
    }

    /// Closes the stream where it can be closed; otherwise its owner does.
    static void close(Stream& s) {
        std::error_code ignored;
        if constexpr (detail::has_close<Stream>::value)
            s.close(ignored);
        else if constexpr (detail::has_lowest_layer<Stream>::value)
            s.lowest_layer().close(ignored);
        else
            (void)s;
    }

    /// Whether the stream is open (true when it cannot tell).
    static bool is_open(Stream& s) {
        if constexpr (detail::has_protocol<Stream>::value)
            return s.is_open();
        else
            return ((void)s, true);
    }

    /// The peer's process identity where the stream can tell.
    static std::optional<std::string> peer_instance(Stream& s) { return detail::peer_instance(s); }

    /// What async_connect takes (void: the stream cannot be connected).
    using endpoint_type = typename detail::endpoint_of<Stream>::type;

    /// A read or write error that means the peer went away (beyond EOF,
    /// reset and the like, which every stream shares).
    static bool peer_gone(const std::error_code&) noexcept { return false; }

    /// Streams are reused as they are for the next connection. A transport
    /// that sets this true has `static std::shared_ptr<Stream> renew(Stream&)`.
    static constexpr bool renews = false;

    /// Writes what the stream takes at once (see detail::try_write_now).
    static std::size_t write_now(Stream& s, const char* data, std::size_t size) {
        return detail::try_write_now(s, data, size);
    }

    /// One non-blocking send with descriptors (only when can_pass_fds).
    static std::size_t send_with_fds(Stream& s, const char* data, std::size_t size, const std::vector<int>& fds,
                                     std::error_code& ec) {
        if constexpr (can_pass_fds) {
            return detail::send_with_fds(s, data, size, fds, ec);
        } else {
            (void)s, (void)data, (void)size, (void)fds;
            ec = asio::error::operation_not_supported;
            return 0;
        }
    }
    /// Waits until the socket takes more (only when can_pass_fds).
    template <class Handler>
    static void async_wait_writable(Stream& s, Handler&& h) {
        if constexpr (can_pass_fds)
            s.async_wait(Stream::wait_write, std::forward<Handler>(h));
        else
            (void)s, (void)h;
    }
};

}  // namespace detail

/// By default: a wrapper around another stream forwards (connect, close,
/// the peer's identity through next_layer(); its reads and writes its own),
/// any other stream offers what it has. Specialise it for more.
template <class Stream, class>
struct transport : std::conditional_t<detail::is_wrapper<Stream>::value, forwarding_transport<Stream, false>,
                                      detail::stream_transport<Stream>> {};

}  // namespace qmp
