// The usual clients: over a unix socket (how QMP monitors are usually
// exposed) and over TCP, asynchronous and blocking.
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
