// qmpctl's command line and shared helpers.
#include "cli.hpp"

#include <qmp/version.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace qmpctl {

const char* usage_text =
    "usage: qmpctl --version | --help\n"
    "       qmpctl (-s SOCKET | -t HOST:PORT) [--timeout SECONDS] exec COMMAND [ARGUMENTS-JSON]\n"
    "       qmpctl -s SOCKET exec COMMAND [ARGUMENTS-JSON] (--pass-fd FILE | --pass-fd-ro FILE)...\n"
    "       qmpctl (-s SOCKET | -t HOST:PORT) events [--count N] [--timeout SECONDS]\n"
    "       qmpctl (-s SOCKET | -t HOST:PORT) describe COMMAND-OR-EVENT\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... chain [DISK] [--details] [--json]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... resolve (TARGET | --node NODE) [--details] [--json]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold set TARGET VALUE [--layer storage|format]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold clear TARGET\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold watch [--count N] [--timeout SECONDS]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold report [--json]\n"
    "VALUE: bytes with an optional binary suffix (512M, 2G), N%, Nppm, or end-SIZE (capacity minus SIZE)\n"
    "--timeout bounds the whole subcommand; for events and threshold watch it is how long to watch.\n"
    "--details: filenames, sizes and thresholds too (QEMU describes every node: slow on deep chains).\n"
    "TLS with -t: --tls-ca FILE (turns TLS on), --tls-cert FILE --tls-key FILE (a client certificate),\n"
    "             --tls-name NAME (the name QEMU's certificate must carry; default: HOST)\n"
    "exit codes: 0 ok, 2 usage, 3 connection/protocol/timeout, 4 QMP error, 5 target or spec, 6 state file\n";

namespace {

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

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) { g_stop = true; }

}  // namespace

cli parse_args(int argc, char** argv) {
    cli c;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw usage_error{"option " + a + " needs a value"};
            return args[++i];
        };
        if (a == "-s" || a == "--socket") {
            c.socket_path = value();
        } else if (a == "-t" || a == "--tcp") {
            c.tcp_address = value();
        } else if (a == "--timeout") {
            c.timeout = parse_seconds(value());
        } else if (a == "--count") {
            c.count = parse_count(value());
        } else if (a == "--state") {
            c.state_file = value();
        } else if (a == "--node") {
            c.node = value();
        } else if (a == "--json") {
            c.json_output = true;
        } else if (a == "--details") {
            c.details = true;
        } else if (a == "--layer") {
            c.layer = value();
            if (c.layer != "storage" && c.layer != "format") throw usage_error{"--layer is storage or format"};
        } else if (a == "--tls-ca") {
            c.tls_ca = value();
        } else if (a == "--tls-cert") {
            c.tls_cert = value();
        } else if (a == "--tls-key") {
            c.tls_key = value();
        } else if (a == "--tls-name") {
            c.tls_name = value();
        } else if (a == "--pass-fd" || a == "--pass-fd-ro") {
            c.pass_fds.emplace_back(value(), a == "--pass-fd-ro");
        } else if (a == "--disk") {
            const std::string& v = value();
            auto eq = v.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) throw usage_error{"--disk needs NAME=ID"};
            c.catalog.entries[v.substr(0, eq)] = v.substr(eq + 1);
        } else if (a == "-h" || a == "--help") {
            std::cout << usage_text;
            std::exit(exit_ok);
        } else if (a == "--version") {
            std::cout << "qmpctl " << QMP_VERSION_STRING << "\n";
            std::exit(exit_ok);
        } else if (a.size() > 1 && a[0] == '-' && c.positional.empty()) {
            throw usage_error{"unknown option " + a};
        } else {
            c.positional.push_back(a);
        }
    }
    if (c.socket_path.empty() == c.tcp_address.empty()) throw usage_error{"give exactly one of -s SOCKET or -t HOST:PORT"};
    if (c.positional.empty()) throw usage_error{"no subcommand"};
    const bool tls_extra = !c.tls_cert.empty() || !c.tls_key.empty() || !c.tls_name.empty();
    if ((!c.tls_ca.empty() || tls_extra) && c.tcp_address.empty()) throw usage_error{"TLS goes with -t HOST:PORT"};
    if (tls_extra && c.tls_ca.empty()) throw usage_error{"--tls-cert, --tls-key and --tls-name need --tls-ca"};
    if (c.tls_cert.empty() != c.tls_key.empty()) throw usage_error{"--tls-cert and --tls-key go together"};
    if (!c.pass_fds.empty() && (c.positional[0] != "exec" || c.socket_path.empty()))
        throw usage_error{"--pass-fd goes with exec over -s SOCKET (descriptors need a unix socket)"};
    return c;
}

std::shared_ptr<qmp::threshold_journal> open_journal(const cli& c) {
    if (c.state_file.empty()) return nullptr;
    return std::make_shared<qmp::threshold_journal>(c.state_file,
                                                    c.timeout ? to_ms(*c.timeout) : std::chrono::milliseconds(30000));
}

qmp::threshold_state load_journal(qmp::threshold_journal* j) {
    qmp::threshold_state s;
    if (!j) return s;
    qmp::diagnostics d;
    if (j->load(s, &d)) throw state_failure{"the state file cannot be used: " + d.message};
    return s;
}

qmp::client_options cli::client_options() const {
    qmp::client_options o;
    if (timeout) o.connect_timeout = o.greeting_timeout = o.command_timeout = to_ms(*timeout);
    return o;
}

std::chrono::milliseconds to_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0 + 0.5));
}

std::string seconds_text(double seconds) {
    std::ostringstream o;
    o << seconds;
    return o.str();
}

std::string dump(const qmp::json& j) { return j.dump(-1, ' ', false, qmp::json::error_handler_t::replace); }

qmp::threshold_spec parse_spec(const std::string& v) {
    std::error_code ec;
    qmp::diagnostics why;
    auto spec = qmp::parse_threshold_spec(v, ec, &why);
    if (!spec) throw usage_error{why.message};
    return *spec;
}

namespace {
qmp::json opt_json(const std::optional<std::uint64_t>& v) { return v ? qmp::json(*v) : qmp::json(nullptr); }
qmp::json opt_json(const std::optional<std::string>& v) { return v ? qmp::json(*v) : qmp::json(nullptr); }
qmp::json node_json(const std::string& s) { return s.empty() ? qmp::json(nullptr) : qmp::json(s); }
}  // namespace

qmp::json element_json(const std::string& disk, const qmp::chain_element& el) {
    return {{"target", qmp::target{disk, el.index}.indexed()},
            {"index", el.index},
            {"depth", el.depth},
            {"mirror", el.mirror},
            {"format_node", node_json(el.format_node)},
            {"storage_node", node_json(el.storage_node)},
            {"filename", opt_json(el.filename)},
            {"format_filename", opt_json(el.format_filename)},
            {"driver", opt_json(el.driver)},
            {"storage_size", opt_json(el.capacity)},
            {"allocation", opt_json(el.allocation)},
            {"threshold", opt_json(el.storage_threshold)},
            {"format_threshold", opt_json(el.format_threshold)}};
}

qmp::json event_line(const qmp::threshold_event& e) {
    return {{"target", e.resolved ? qmp::json(e.where.indexed()) : qmp::json(nullptr)},
            {"node", e.node},
            {"layer", qmp::to_string(e.node_layer)},
            {"threshold", e.threshold},
            {"amount_exceeded", e.amount_exceeded},
            {"recovered", e.recovered()},
            {"origin", qmp::to_string(e.how)},
            {"active", e.active},
            {"tracked", e.tracked}};
}

std::string layer_text(const qmp::chain_element& el) {
    if (el.mirror) return "mirror target, depth " + std::to_string(el.depth);
    return el.depth == 0 ? std::string("active layer") : "backing, depth " + std::to_string(el.depth);
}

std::string text_or_dash(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "-"; }

int exit_code_for(std::error_code ec) {
    if (ec.category() == qmp::server_category()) return exit_qmp_error;
    if (ec == qmp::threshold_error::invalid_state) return exit_state;
    if (ec.category() == qmp::block_category() || ec.category() == qmp::threshold_category() ||
        ec == qmp::error::invalid_argument)
        return exit_target;
    return exit_connection;
}

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: a blocked write returns
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_stop; }

deadline_guard::deadline_guard(std::optional<std::chrono::milliseconds> limit, std::function<void()> on_expire) {
    if (!limit) return;
    thread_ = std::thread([this, limit, f = std::move(on_expire)] {
        std::unique_lock<std::mutex> lk(m_);
        if (cv_.wait_for(lk, *limit, [this] { return done_; })) return;
        expired_ = true;
        lk.unlock();
        f();
    });
}

deadline_guard::~deadline_guard() {
    {
        std::lock_guard<std::mutex> lk(m_);
        done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

}  // namespace qmpctl
