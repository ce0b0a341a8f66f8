// qmpctl: a command-line QMP client built on the public API only.
//
//   qmpctl (-s SOCKET | -t HOST:PORT) [--timeout SECONDS] exec COMMAND [ARGUMENTS-JSON]
//   qmpctl (-s SOCKET | -t HOST:PORT) events [--count N] [--timeout SECONDS]
//
// Exit codes: 0 success; 2 usage error; 3 connection or protocol failure;
// 4 the command got a QMP error. Errors are one line on stderr.
#include <qmp/qmp.hpp>

#include <asio/ip/tcp.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;
constexpr int exit_connection = 3;
constexpr int exit_qmp_error = 4;

const char* usage_text =
    "usage: qmpctl (-s SOCKET | -t HOST:PORT) [--timeout SECONDS] exec COMMAND [ARGUMENTS-JSON]\n"
    "       qmpctl (-s SOCKET | -t HOST:PORT) events [--count N] [--timeout SECONDS]\n";

struct usage_error {
    std::string what;
};

struct cli {
    std::string socket_path;
    std::string tcp_address;
    std::optional<double> timeout;  // seconds
    std::optional<long long> count;
    std::vector<std::string> positional;
};

double parse_seconds(const std::string& s) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(v > 0) || v > 1e7) throw usage_error{"invalid number of seconds: '" + s + "'"};
    return v;
}

long long parse_count(const std::string& s) {
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v <= 0) throw usage_error{"invalid count: '" + s + "'"};
    return v;
}

cli parse_args(int argc, char** argv) {
    cli c;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw usage_error{"option " + a + " needs a value"};
            return args[++i];
        };
        if (a == "-s" || a == "--socket")
            c.socket_path = value();
        else if (a == "-t" || a == "--tcp")
            c.tcp_address = value();
        else if (a == "--timeout")
            c.timeout = parse_seconds(value());
        else if (a == "--count")
            c.count = parse_count(value());
        else if (a == "-h" || a == "--help") {
            std::cout << usage_text;
            std::exit(exit_ok);
        } else if (a.size() > 1 && a[0] == '-' && c.positional.empty())
            throw usage_error{"unknown option " + a};
        else
            c.positional.push_back(a);
    }
    if (c.socket_path.empty() == c.tcp_address.empty()) throw usage_error{"give exactly one of -s SOCKET or -t HOST:PORT"};
    if (c.positional.empty()) throw usage_error{"no subcommand"};
    return c;
}

std::chrono::milliseconds to_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0 + 0.5));
}

std::string dump(const qmp::json& j) { return j.dump(-1, ' ', false, qmp::json::error_handler_t::replace); }

template <class Client>
int run_exec(Client& client, const cli& c) {
    if (c.positional.size() < 2 || c.positional.size() > 3) throw usage_error{"exec needs COMMAND [ARGUMENTS-JSON]"};
    qmp::json args;
    if (c.positional.size() == 3) {
        args = qmp::json::parse(c.positional[2], nullptr, false);
        if (args.is_discarded() || !args.is_object()) throw usage_error{"ARGUMENTS-JSON must be a JSON object"};
    }
    qmp::exec_options opts;
    if (c.timeout) opts.timeout = to_ms(*c.timeout);
    std::error_code ec;
    qmp::diagnostics diag;
    qmp::json ret = client.execute(c.positional[1], std::move(args), ec, diag, opts);
    if (ec.category() == qmp::server_category()) {
        std::cerr << "qmpctl: " << c.positional[1] << ": " << diag.error_class << ": " << diag.message << "\n";
        return exit_qmp_error;
    }
    if (ec) {
        std::cerr << "qmpctl: " << c.positional[1] << ": " << ec.message() << "\n";
        return exit_connection;
    }
    std::cout << dump(ret) << "\n";
    return exit_ok;
}

template <class Client>
int run_events(Client& client, const cli& c) {
    if (c.positional.size() != 1) throw usage_error{"events takes no arguments"};
    using clock = std::chrono::steady_clock;
    std::optional<clock::time_point> deadline;
    if (c.timeout) deadline = clock::now() + to_ms(*c.timeout);
    long long seen = 0;
    for (;;) {
        if (c.count && seen >= *c.count) return exit_ok;
        std::chrono::milliseconds wait(0);
        if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now());
            if (left.count() <= 0) return exit_ok;
            wait = left;
        }
        std::error_code ec;
        qmp::event ev = client.receive_event(wait, ec);
        if (ec == qmp::error::timeout) return exit_ok;
        if (ec == qmp::error::events_lost) {
            std::cerr << "qmpctl: " << ev.lost << " events lost (queue overflow)\n";
            continue;
        }
        if (ec) {
            std::cerr << "qmpctl: events: " << ec.message() << "\n";
            return exit_connection;
        }
        qmp::json line = {{"event", ev.name},
                          {"data", ev.data.is_null() ? qmp::json::object() : ev.data},
                          {"timestamp", {{"seconds", ev.time.seconds}, {"microseconds", ev.time.microseconds}}}};
        std::cout << dump(line) << std::endl;
        ++seen;
    }
}

template <class Client, class Endpoint>
int run_with(const cli& c, const Endpoint& ep) {
    qmp::client_options opts;
    if (c.timeout) {
        opts.connect_timeout = opts.greeting_timeout = to_ms(*c.timeout);
    }
    Client client(opts);
    std::error_code ec;
    client.connect(ep, ec);
    if (ec) {
        std::cerr << "qmpctl: cannot connect to " << (c.socket_path.empty() ? c.tcp_address : c.socket_path) << ": "
                  << ec.message() << "\n";
        return exit_connection;
    }
    const std::string& sub = c.positional[0];
    if (sub == "exec") return run_exec(client, c);
    if (sub == "events") return run_events(client, c);
    throw usage_error{"unknown subcommand '" + sub + "'"};
}

}  // namespace

int main(int argc, char** argv) {
    try {
        cli c = parse_args(argc, argv);
        const std::string& sub = c.positional[0];
        if (sub != "exec" && sub != "events") throw usage_error{"unknown subcommand '" + sub + "'"};
        if (!c.socket_path.empty())
            return run_with<qmp::sync_client>(c, asio::local::stream_protocol::endpoint(c.socket_path));
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
        return run_with<qmp::sync_tcp_client>(c, results.begin()->endpoint());
    } catch (const usage_error& e) {
        std::cerr << "qmpctl: " << e.what << "\n" << usage_text;
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "qmpctl: " << e.what() << "\n";
        return exit_connection;
    }
}
