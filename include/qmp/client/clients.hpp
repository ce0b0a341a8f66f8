// The usual clients: over a unix socket (how QMP monitors are usually
// exposed) and over TCP, asynchronous and blocking.
//
// With QMP_SEPARATE_COMPILATION defined in every translation unit, these
// four are declared `extern template` here: their code (the client core,
// the session, the blocking client's connect, execute and receive_event)
// is compiled once, in the one file that includes <qmp/src.hpp>, instead of
// in every file that uses them. Anything else (other streams, TLS,
// completion tokens) is still instantiated where it is used.
#pragma once

#include <qmp/client/basic_client.hpp>
#include <qmp/client/sync_client.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

namespace qmp {

using unix_client = basic_client<asio::local::stream_protocol::socket>;
using tcp_client = basic_client<asio::ip::tcp::socket>;
using sync_client = basic_sync_client<asio::local::stream_protocol::socket>;
using sync_tcp_client = basic_sync_client<asio::ip::tcp::socket>;

}  // namespace qmp

// The list of what <qmp/src.hpp> instantiates: QMP_INSTANTIATE(X) once for
// each class template specialisation.
#define QMP_SYNC_STREAM(S) ::qmp::detail::rebound_stream_t<S, ::asio::io_context::executor_type>
#define QMP_COMMON_CLIENTS(QMP_INSTANTIATE)                                                          \
    QMP_INSTANTIATE(::qmp::detail::client_impl<::asio::local::stream_protocol::socket>)             \
    QMP_INSTANTIATE(::qmp::detail::client_impl<::asio::ip::tcp::socket>)                            \
    QMP_INSTANTIATE(::qmp::basic_client<::asio::local::stream_protocol::socket>)                    \
    QMP_INSTANTIATE(::qmp::basic_client<::asio::ip::tcp::socket>)                                   \
    QMP_INSTANTIATE(::qmp::detail::client_impl<QMP_SYNC_STREAM(::asio::local::stream_protocol::socket)>) \
    QMP_INSTANTIATE(::qmp::detail::client_impl<QMP_SYNC_STREAM(::asio::ip::tcp::socket)>)            \
    QMP_INSTANTIATE(::qmp::basic_client<QMP_SYNC_STREAM(::asio::local::stream_protocol::socket)>)    \
    QMP_INSTANTIATE(::qmp::basic_client<QMP_SYNC_STREAM(::asio::ip::tcp::socket)>)                   \
    QMP_INSTANTIATE(::qmp::basic_sync_client<::asio::local::stream_protocol::socket>)               \
    QMP_INSTANTIATE(::qmp::basic_sync_client<::asio::ip::tcp::socket>)

#ifdef QMP_SEPARATE_COMPILATION
#define QMP_EXTERN_TEMPLATE(...) extern template class __VA_ARGS__;
QMP_COMMON_CLIENTS(QMP_EXTERN_TEMPLATE)
#undef QMP_EXTERN_TEMPLATE
#endif
