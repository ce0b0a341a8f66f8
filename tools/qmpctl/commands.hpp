// qmpctl's subcommands, each templated on the transport (a unix socket,
// TCP, or TLS over TCP) and instantiated for each in its own file.
#pragma once

#include "cli.hpp"

#include <qmp/threshold/manager.hpp>
#ifdef QMPCTL_WITH_TLS
#include <qmp/client/tls.hpp>
#endif

namespace qmpctl {

template <class Client>
int run_exec(Client& client, const cli& c);
template <class Client>
int run_events(Client& client, const cli& c);
template <class Client>
int run_describe(Client& client, const cli& c);
template <class Client>
int run_chain(Client& client, const cli& c);
template <class Client>
int run_resolve(Client& client, const cli& c);
template <class Manager, class... StreamArgs>
int run_threshold(const cli& c, const typename Manager::endpoint_type& ep, StreamArgs&... stream_args);

#ifdef QMPCTL_WITH_TLS
using tls_threshold_manager = qmp::basic_threshold_manager<qmp::tls_stream>;
#define QMPCTL_TLS_INSTANCES(X) X(qmp::sync_tls_client)
#else
#define QMPCTL_TLS_INSTANCES(X)
#endif
/// Instantiates X(client type) for every blocking client qmpctl uses.
#define QMPCTL_FOR_EACH_CLIENT(X) X(qmp::sync_client) X(qmp::sync_tcp_client) QMPCTL_TLS_INSTANCES(X)

}  // namespace qmpctl
