// What the client needs of a stream beyond AsyncReadStream and
// AsyncWriteStream, each optional and found at compile time:
//
// - connecting: a stream with async_connect (sockets) can be connected by
//   the client (async_connect); any other one is connected by its owner and
//   handed over (async_handshake);
// - closing: close(ec), or the lowest layer's; a stream with neither is
//   left to its owner (the client just stops using it);
// - descriptor passing: unix stream sockets;
// - telling which process is at the other end: unix stream sockets.
//
// Specialise qmp::transport<Stream> to teach the client another stream
// (client/tls.hpp does it for asio::ssl::stream).
#pragma once

#include <qmp/client/detail/fd_passing.hpp>
#include <qmp/client/detail/peer.hpp>

#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

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

}  // namespace detail

template <class Stream, class = void>
struct transport {
    /// The client can connect it to an endpoint (async_connect).
    static constexpr bool can_connect = detail::has_protocol<Stream>::value;
    /// Descriptors can travel with a command (SCM_RIGHTS).
    static constexpr bool can_pass_fds = detail::can_pass_fds<Stream>::value;

    /// Connects the stream to `ep` (only when can_connect).
    template <class Endpoint, class Handler>
    static void async_connect(Stream& s, const Endpoint& ep, Handler&& h) {
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
};

}  // namespace qmp
