// qmpctl's subcommands, each templated on the transport (a unix socket or
// TCP) and instantiated for both in its own file.
#pragma once

#include "cli.hpp"

namespace qmpctl {

template <class Client>
int run_exec(Client& client, const cli& c);
template <class Client>
int run_events(Client& client, const cli& c);
template <class Client>
int run_chain(Client& client, const cli& c);
template <class Client>
int run_resolve(Client& client, const cli& c);
template <class Manager>
int run_threshold(const cli& c, const typename Manager::endpoint_type& ep);

}  // namespace qmpctl
