// Forward declarations of the library's main types, for headers that only
// name them (a reference or pointer member, a parameter): they need neither
// the library's definitions nor asio's, and so cost next to nothing to
// include. A file that calls into a type includes its full header.
#pragma once

#include <asio/ts/netfwd.hpp>

#include <nlohmann/json_fwd.hpp>

namespace asio::local {
class stream_protocol;
}

namespace qmp {

using json = nlohmann::json;

// Errors and messages.
struct diagnostics;
class qmp_error;
struct version_info;
struct greeting;
struct event;

// Clients (qmp/client/clients.hpp, qmp/client/reconnector.hpp).
struct client_options;
struct exec_options;
struct client_stats;
struct backoff;
template <class Stream>
class basic_client;
template <class AsyncStream>
class basic_sync_client;
template <class Client, class Endpoint>
class basic_reconnector;
using unix_client = basic_client<asio::basic_stream_socket<asio::local::stream_protocol>>;
using tcp_client = basic_client<asio::basic_stream_socket<asio::ip::tcp>>;
using sync_client = basic_sync_client<asio::basic_stream_socket<asio::local::stream_protocol>>;
using sync_tcp_client = basic_sync_client<asio::basic_stream_socket<asio::ip::tcp>>;

// The block graph and names like vda[2] (qmp/block.hpp).
class block_graph;
class index_registry;
class resolver;
struct target;
struct disk_chain;

// Thresholds (qmp/threshold.hpp).
struct threshold_spec;
struct threshold_event;
struct threshold_service_options;
struct threshold_manager_options;
template <class Client>
class basic_threshold_service;
template <class Stream>
class basic_threshold_manager;
using threshold_service = basic_threshold_service<unix_client>;
using tcp_threshold_service = basic_threshold_service<tcp_client>;
using threshold_manager = basic_threshold_manager<asio::basic_stream_socket<asio::local::stream_protocol>>;
using tcp_threshold_manager = basic_threshold_manager<asio::basic_stream_socket<asio::ip::tcp>>;

}  // namespace qmp
