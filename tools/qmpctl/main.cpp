// qmpctl: a command-line QMP client built on the public API only.
//
//   qmpctl (-s SOCKET | -t HOST:PORT) [--timeout SECONDS] exec COMMAND [ARGUMENTS-JSON]
//   qmpctl -s SOCKET exec COMMAND [ARGUMENTS-JSON] (--pass-fd FILE | --pass-fd-ro FILE)...
//   qmpctl (-s SOCKET | -t HOST:PORT) events [--count N] [--timeout SECONDS]
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] chain [DISK] [--json]
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] resolve TARGET [--json]
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] resolve --node NODE [--json]
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] threshold set TARGET VALUE [--layer storage|format]
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] threshold clear TARGET
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] threshold watch [--count N] [--timeout SECONDS]
//   qmpctl ... [--state FILE] [--disk NAME=ID ...] threshold report [--json]
//
// Exit codes: 0 success; 2 usage error; 3 connection, protocol failure or
// timeout; 4 the command got a QMP error; 5 a target or spec that does not
// parse, resolve or compute; 6 the state file cannot be read, locked or
// written. Errors are one line on stderr.
#include "commands.hpp"

#include <qmp/threshold/manager.hpp>

#include <asio/ip/tcp.hpp>

#include <iostream>

namespace {

using namespace qmpctl;

#ifdef QMPCTL_WITH_TLS
// The TLS context from --tls-ca, --tls-cert and --tls-key; a file that
// cannot be used is a usage error naming it.
asio::ssl::context make_tls_context(const cli& c) {
    try {
        return qmp::tls_context({c.tls_ca, c.tls_cert, c.tls_key});
    } catch (const std::system_error& e) {
        throw usage_error{e.what()};
    }
}
#endif

template <class Client, class Endpoint, class... StreamArgs>
int run_with(const cli& c, const Endpoint& ep, StreamArgs&... stream_args) {
    const std::string& sub = c.positional[0];
    const bool watching = sub == "events";
    // An events reader may stall on its stdout: it keeps draining the monitor
    // meanwhile (losses counted, QEMU never holds them).
    Client client(c.client_options(), watching, stream_args...);
    // --timeout bounds the whole subcommand (for events: how long to watch).
    deadline_guard guard(watching || !c.timeout ? std::nullopt
                                                : std::optional<std::chrono::milliseconds>(to_ms(*c.timeout)),
                         [&] { client.close(); });
    std::error_code ec;
    qmp::diagnostics diag;
    client.connect(ep, ec, diag);
    if (ec) {
        std::cerr << "qmpctl: cannot connect to " << c.where() << ": "
                  << (guard.expired() ? "timed out after " + seconds_text(*c.timeout) + " s" : ec.message())
                  << (diag.message.empty() ? "" : ": " + diag.message) << "\n";
        return exit_connection;
    }
    int rc = exit_usage;
    if (sub == "exec") rc = run_exec(client, c);
    else if (sub == "events") rc = run_events(client, c);
    else if (sub == "describe") rc = run_describe(client, c);
    else if (sub == "chain") rc = run_chain(client, c);
    else if (sub == "resolve") rc = run_resolve(client, c);
    else throw usage_error{"unknown subcommand '" + sub + "'"};
    if (guard.expired() && rc != exit_ok) {
        std::cerr << "qmpctl: " << sub << ": timed out after " << *c.timeout << " s\n";
        return exit_connection;
    }
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    install_signal_handlers();
    try {
        cli c = parse_args(argc, argv);
        const std::string& sub = c.positional[0];
        if (sub != "exec" && sub != "events" && sub != "describe" && sub != "chain" && sub != "resolve" &&
            sub != "threshold")
            throw usage_error{"unknown subcommand '" + sub + "'"};
        if (!c.socket_path.empty()) {
            asio::local::stream_protocol::endpoint ep(c.socket_path);
            if (sub == "threshold") return run_threshold<qmp::threshold_manager>(c, ep);
            return run_with<qmp::sync_client>(c, ep);
        }
        auto colon = c.tcp_address.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == c.tcp_address.size())
            throw usage_error{"-t needs HOST:PORT"};
        std::string host = c.tcp_address.substr(0, colon);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        asio::io_context ctx;
        asio::ip::tcp::resolver resolver(ctx);
        std::error_code ec;
        auto results = resolver.resolve(host, c.tcp_address.substr(colon + 1), ec);
        if (ec || results.empty()) {
            std::cerr << "qmpctl: cannot resolve " << c.tcp_address << ": " << ec.message() << "\n";
            return exit_connection;
        }
        auto ep = results.begin()->endpoint();
        if (!c.tls_ca.empty()) {
#ifdef QMPCTL_WITH_TLS
            asio::ssl::context tls = make_tls_context(c);
            qmp::tls_tcp_endpoint tep{ep, c.tls_name.empty() ? host : c.tls_name};
            if (sub == "threshold") return run_threshold<tls_threshold_manager>(c, tep, tls);
            return run_with<qmp::sync_tls_client>(c, tep, tls);
#else
            throw usage_error{"this qmpctl was built without TLS (OpenSSL)"};
#endif
        }
        if (sub == "threshold") return run_threshold<qmp::tcp_threshold_manager>(c, ep);
        return run_with<qmp::sync_tcp_client>(c, ep);
    } catch (const usage_error& e) {
        std::cerr << "qmpctl: " << e.what << "\n" << usage_text;
        return exit_usage;
    } catch (const state_failure& e) {
        std::cerr << "qmpctl: " << e.what << "\n";
        return exit_state;
    } catch (const qmp::qmp_error& e) {
        std::cerr << "qmpctl: " << e.what() << "\n";
        return exit_code_for(e.code());
    } catch (const std::exception& e) {
        std::cerr << "qmpctl: " << e.what() << "\n";
        return exit_connection;
    }
}
