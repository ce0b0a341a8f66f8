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
// Exit codes: 0 success; 2 usage error; 3 connection or protocol failure;
// 4 the command got a QMP error; 5 a target that does not parse or resolve.
// Errors are one line on stderr.
#include <qmp/block.hpp>
#include <qmp/qmp.hpp>
#include <qmp/threshold/manager.hpp>

#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_usage = 2;
constexpr int exit_connection = 3;
constexpr int exit_qmp_error = 4;
constexpr int exit_target = 5;

const char* usage_text =
    "usage: qmpctl (-s SOCKET | -t HOST:PORT) [--timeout SECONDS] exec COMMAND [ARGUMENTS-JSON]\n"
    "       qmpctl -s SOCKET exec COMMAND [ARGUMENTS-JSON] (--pass-fd FILE | --pass-fd-ro FILE)...\n"
    "       qmpctl (-s SOCKET | -t HOST:PORT) events [--count N] [--timeout SECONDS]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... chain [DISK] [--json]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... resolve (TARGET | --node NODE) [--json]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold set TARGET VALUE [--layer storage|format]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold clear TARGET\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold watch [--count N] [--timeout SECONDS]\n"
    "       qmpctl ... [--state FILE] [--disk NAME=ID]... threshold report [--json]\n"
    "VALUE: bytes with an optional binary suffix (512M, 2G), N%, Nppm, or end-SIZE (capacity minus SIZE)\n";

struct usage_error {
    std::string what;
};

struct cli {
    std::string socket_path;
    std::string tcp_address;
    std::optional<double> timeout;  // seconds
    std::optional<long long> count;
    std::vector<std::string> positional;
    std::string state_file;
    std::string node;
    bool json_output = false;
    std::string layer = "storage";
    qmp::disk_catalog catalog;
    std::vector<std::pair<std::string, bool>> pass_fds;  // file, read-only
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
        else if (a == "--state")
            c.state_file = value();
        else if (a == "--node")
            c.node = value();
        else if (a == "--json")
            c.json_output = true;
        else if (a == "--layer") {
            c.layer = value();
            if (c.layer != "storage" && c.layer != "format") throw usage_error{"--layer is storage or format"};
        }
        else if (a == "--pass-fd" || a == "--pass-fd-ro")
            c.pass_fds.emplace_back(value(), a == "--pass-fd-ro");
        else if (a == "--disk") {
            const std::string& v = value();
            auto eq = v.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) throw usage_error{"--disk needs NAME=ID"};
            c.catalog.entries[v.substr(0, eq)] = v.substr(eq + 1);
        }
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
    if (!c.pass_fds.empty() && (c.positional[0] != "exec" || c.socket_path.empty()))
        throw usage_error{"--pass-fd goes with exec over -s SOCKET (descriptors need a unix socket)"};
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
    for (const auto& [file, ro] : c.pass_fds) {
        int fd = ::open(file.c_str(), (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0) {
            std::string why = std::strerror(errno);
            for (int f : opts.fds) ::close(f);
            throw usage_error{"cannot open " + file + ": " + why};
        }
        opts.fds.push_back(fd);
    }
    std::error_code ec;
    qmp::diagnostics diag;
    // The reply's exact text: no number is rounded or refused on the way.
    qmp::json_text ret = client.execute(qmp::dynamic_command<qmp::json_text>{c.positional[1], std::move(args)}, ec, diag, opts);
    for (int f : opts.fds) ::close(f);
    if (ec.category() == qmp::server_category()) {
        std::cerr << "qmpctl: " << c.positional[1] << ": " << (diag.error_class.empty() ? "error" : diag.error_class)
                  << ": " << diag.message << "\n";
        return exit_qmp_error;
    }
    if (ec) {
        std::cerr << "qmpctl: " << c.positional[1] << ": " << ec.message()
                  << (diag.message.empty() ? "" : ": " + diag.message) << "\n";
        return exit_connection;
    }
    std::string out;
    if (auto cec = qmp::compact_json(ret.text, out, &diag)) {
        std::cerr << "qmpctl: " << c.positional[1] << ": " << cec.message() << ": " << diag.message << "\n";
        return exit_connection;
    }
    std::cout << out << "\n";
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

qmp::json opt_json(const std::optional<std::uint64_t>& v) { return v ? qmp::json(*v) : qmp::json(nullptr); }
qmp::json opt_json(const std::optional<std::string>& v) { return v ? qmp::json(*v) : qmp::json(nullptr); }
qmp::json node_json(const std::string& s) { return s.empty() ? qmp::json(nullptr) : qmp::json(s); }

qmp::json element_json(const std::string& disk, const qmp::chain_element& el) {
    return {{"target", qmp::target{disk, el.index}.indexed()},
            {"index", el.index},
            {"depth", el.depth},
            {"mirror", el.mirror},
            {"format_node", node_json(el.format_node)},
            {"storage_node", node_json(el.storage_node)},
            {"filename", opt_json(el.filename)},
            {"driver", opt_json(el.driver)},
            {"capacity", opt_json(el.capacity)},
            {"allocation", opt_json(el.allocation)},
            {"threshold", opt_json(el.storage_threshold)},
            {"format_threshold", opt_json(el.format_threshold)}};
}

std::string text_or_dash(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "-"; }

// Loads the registry from --state (a missing file is an empty registry).
qmp::index_registry load_state(const cli& c) {
    qmp::index_registry reg;
    if (c.state_file.empty()) return reg;
    std::ifstream in(c.state_file);
    if (!in) return reg;
    qmp::json j = qmp::json::parse(in, nullptr, false);
    qmp::json r = j.is_object() && j.contains("registry") ? j["registry"] : j;
    if (!reg.from_json(r)) throw std::runtime_error("state file " + c.state_file + " is not a qmpctl state file");
    return reg;
}

// Replaces `path` with `j` atomically (write a sibling, then rename).
void write_json_file(const std::string& path, const qmp::json& j) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        if (!out) throw std::runtime_error("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot replace " + path);
}

// Keeps what else the state file holds (armed thresholds) and updates the registry.
void save_state(const cli& c, const qmp::index_registry& reg) {
    if (c.state_file.empty()) return;
    qmp::json j = qmp::json::object();
    {
        std::ifstream in(c.state_file);
        if (in) {
            j = qmp::json::parse(in, nullptr, false);
            if (!j.is_object()) j = qmp::json::object();
        }
    }
    j["registry"] = reg.to_json();
    write_json_file(c.state_file, j);
}

template <class Client>
bool load_resolver(Client& client, const cli& c, bool details, qmp::resolver& res, qmp::index_registry& reg) {
    std::error_code ec;
    qmp::graph_query_options opts;
    opts.details = details;
    qmp::driver_cache drivers;
    auto g = qmp::query_block_graph(client, opts, &drivers, ec);
    if (ec) {
        std::cerr << "qmpctl: cannot read the block graph: " << ec.message() << "\n";
        return false;
    }
    res = qmp::resolver(c.catalog);
    res.update(g, reg);
    save_state(c, reg);
    return true;
}

template <class Client>
int run_chain(Client& client, const cli& c) {
    if (c.positional.size() > 2) throw usage_error{"chain takes at most one DISK"};
    qmp::index_registry reg = load_state(c);
    qmp::resolver res;
    if (!load_resolver(client, c, true, res, reg)) return exit_connection;
    std::vector<const qmp::disk_chain*> disks;
    if (c.positional.size() == 2) {
        std::error_code ec;
        auto* d = res.find_disk(c.positional[1], ec);
        if (!d) {
            std::cerr << "qmpctl: " << c.positional[1] << ": " << ec.message() << "\n";
            return exit_target;
        }
        disks.push_back(d);
    } else {
        for (const auto& d : res.disks()) disks.push_back(&d);
    }
    if (c.json_output) {
        qmp::json out = qmp::json::array();
        for (const auto* d : disks) {
            qmp::json els = qmp::json::array();
            for (const auto* chain : {&d->elements, &d->mirror})
                for (const auto& el : *chain) els.push_back(element_json(d->name, el));
            out.push_back({{"disk", d->name}, {"elements", els}});
        }
        std::cout << dump(out) << "\n";
        return exit_ok;
    }
    for (const auto* d : disks) {
        std::cout << d->name << " (device '" << d->backend.device << "', qdev '" << d->backend.qdev << "')\n";
        for (const auto* chain : {&d->elements, &d->mirror})
            for (const auto& el : *chain)
                std::cout << "  " << qmp::target{d->name, el.index}.indexed() << (el.mirror ? " mirror" : "")
                          << " depth " << el.depth << " format " << (el.format_node.empty() ? "-" : el.format_node)
                          << " storage " << el.storage_node << " " << el.driver.value_or("?") << " capacity "
                          << text_or_dash(el.capacity) << " allocation " << text_or_dash(el.allocation)
                          << " threshold " << text_or_dash(el.storage_threshold) << " "
                          << el.filename.value_or("") << "\n";
    }
    return exit_ok;
}

template <class Client>
int run_resolve(Client& client, const cli& c) {
    const bool by_node = !c.node.empty();
    if (by_node ? c.positional.size() != 1 : c.positional.size() != 2)
        throw usage_error{"resolve needs TARGET or --node NODE"};
    std::error_code ec;
    std::string why;
    if (!by_node && !qmp::parse_target(c.positional[1], ec, &why)) {
        std::cerr << "qmpctl: " << why << "\n";
        return exit_target;
    }
    qmp::index_registry reg = load_state(c);
    qmp::resolver res;
    if (!load_resolver(client, c, true, res, reg)) return exit_connection;
    if (by_node) {
        auto loc = res.locate(c.node, ec);
        if (!loc) {
            std::cerr << "qmpctl: node " << c.node << ": " << ec.message() << "\n";
            return exit_target;
        }
        if (c.json_output) {
            auto j = element_json(loc->where.disk, loc->where.element);
            j["layer"] = qmp::to_string(loc->node_layer);
            j["active"] = loc->where.active;
            std::cout << dump(j) << "\n";
        } else {
            std::cout << loc->where.canonical().indexed() << " " << qmp::to_string(loc->node_layer)
                      << (loc->where.active ? " (active layer)" : "") << "\n";
        }
        return exit_ok;
    }
    auto r = res.resolve(c.positional[1], ec, &why);
    if (!r) {
        std::cerr << "qmpctl: " << why << "\n";
        return exit_target;
    }
    if (c.json_output) {
        auto j = element_json(r->disk, r->element);
        j["active"] = r->active;
        std::cout << dump(j) << "\n";
    } else {
        std::cout << r->canonical().indexed() << " format " << (r->element.format_node.empty() ? "-" : r->element.format_node)
                  << " storage " << r->element.storage_node << " depth " << r->element.depth << " "
                  << r->element.filename.value_or("") << "\n";
    }
    return exit_ok;
}

// "512M", "2G", "1048576" -> bytes (binary suffixes K, M, G, T).
std::uint64_t parse_size(const std::string& v) {
    if (v.empty() || v[0] < '0' || v[0] > '9') throw usage_error{"invalid size '" + v + "'"};
    std::size_t i = 0;
    std::uint64_t n = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
        if (n > (UINT64_MAX - 9) / 10) throw usage_error{"size '" + v + "' is too large"};
        n = n * 10 + static_cast<std::uint64_t>(v[i++] - '0');
    }
    int shift = 0;
    if (i < v.size()) {
        switch (v[i]) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        case 'T': case 't': shift = 40; break;
        default: throw usage_error{"invalid size suffix in '" + v + "'"};
        }
        if (i + 1 != v.size()) throw usage_error{"invalid size '" + v + "'"};
    }
    if (shift && n > (UINT64_MAX >> shift)) throw usage_error{"size '" + v + "' is too large"};
    return n << shift;
}

qmp::threshold_spec parse_spec(const std::string& v) {
    if (v.rfind("end-", 0) == 0) return qmp::threshold_spec::margin(parse_size(v.substr(4)));
    auto digits = [&](const std::string& d) {
        if (d.empty() || d.find_first_not_of("0123456789") != std::string::npos || d.size() > 9)
            throw usage_error{"invalid value '" + v + "'"};
        return std::stoull(d);
    };
    if (v.size() > 1 && v.back() == '%') return qmp::threshold_spec::percent(digits(v.substr(0, v.size() - 1)));
    if (v.size() > 3 && v.compare(v.size() - 3, 3, "ppm") == 0)
        return qmp::threshold_spec::ppm(digits(v.substr(0, v.size() - 3)));
    return qmp::threshold_spec::bytes(parse_size(v));
}

qmp::json event_line(const qmp::threshold_event& e) {
    return {{"target", e.resolved ? qmp::json(e.where.indexed()) : qmp::json(nullptr)},
            {"node", e.node},
            {"layer", qmp::to_string(e.node_layer)},
            {"threshold", e.threshold},
            {"amount_exceeded", e.amount_exceeded},
            {"recovered", e.recovered()},
            {"origin", e.how == qmp::threshold_event::origin::live        ? "live"
                       : e.how == qmp::threshold_event::origin::recovered ? "recovered"
                       : e.how == qmp::threshold_event::origin::immediate ? "immediate"
                                                                          : "gone"},
            {"active", e.active},
            {"armed_by_manager", e.armed_by_manager}};
}

template <class Manager>
void save_manager(const cli& c, const Manager& m) {
    if (!c.state_file.empty()) write_json_file(c.state_file, m.save_state());
}

template <class Manager>
int run_threshold(const cli& c, const typename Manager::endpoint_type& ep) {
    if (c.positional.size() < 2) throw usage_error{"threshold needs set, clear, watch or report"};
    const std::string& verb = c.positional[1];
    qmp::threshold_manager_options o;
    o.catalog = c.catalog;
    if (c.timeout) o.client.connect_timeout = o.client.greeting_timeout = to_ms(*c.timeout);
    Manager m(ep, o);
    if (!c.state_file.empty()) {
        std::ifstream in(c.state_file);
        if (in) {
            qmp::json j = qmp::json::parse(in, nullptr, false);
            if (!m.load_state(j)) throw std::runtime_error("state file " + c.state_file + " is not a qmpctl state file");
        }
    }
    std::vector<qmp::threshold_event> pending;
    try {
        pending = m.connect();
    } catch (const qmp::qmp_error& e) {
        std::cerr << "qmpctl: cannot connect to " << (c.socket_path.empty() ? c.tcp_address : c.socket_path) << ": "
                  << e.what() << "\n";
        return exit_connection;
    }
    auto fail_target = [&](const qmp::qmp_error& e) {
        std::cerr << "qmpctl: " << e.what() << "\n";
        const auto& ec = e.code();
        if (ec.category() == qmp::server_category()) return exit_qmp_error;
        if (ec == qmp::error::invalid_target || ec == qmp::error::unknown_disk || ec == qmp::error::ambiguous_disk ||
            ec == qmp::error::unknown_index || ec == qmp::error::not_in_chain || ec == qmp::error::invalid_argument)
            return exit_target;
        return exit_connection;
    };
    if (verb == "set") {
        if (c.positional.size() != 4) throw usage_error{"threshold set needs TARGET VALUE"};
        qmp::threshold_spec spec = parse_spec(c.positional[3]);
        spec.on = c.layer == "format" ? qmp::layer::format : qmp::layer::storage;
        std::vector<qmp::threshold_event> now;
        try {
            now = m.arm(c.positional[2], spec);
        } catch (const qmp::qmp_error& e) {
            return fail_target(e);
        }
        save_manager(c, m);
        const auto& a = m.armed().back();
        std::cout << a.where.indexed() << " " << qmp::to_string(a.node_layer) << " node " << a.node << " threshold "
                  << a.threshold << "\n";
        for (const auto& e : now) std::cout << dump(event_line(e)) << "\n";
        return exit_ok;
    }
    if (verb == "clear") {
        if (c.positional.size() != 3) throw usage_error{"threshold clear needs TARGET"};
        try {
            m.disarm(c.positional[2]);
        } catch (const qmp::qmp_error& e) {
            return fail_target(e);
        }
        save_manager(c, m);
        return exit_ok;
    }
    if (verb == "watch") {
        if (c.positional.size() != 2) throw usage_error{"threshold watch takes no arguments"};
        using clock = std::chrono::steady_clock;
        std::optional<clock::time_point> deadline;
        if (c.timeout) deadline = clock::now() + to_ms(*c.timeout);
        long long seen = 0;
        auto emit = [&](const std::vector<qmp::threshold_event>& evs) {
            for (const auto& e : evs) {
                if (c.count && seen >= *c.count) return;
                std::cout << dump(event_line(e)) << std::endl;
                ++seen;
            }
        };
        emit(pending);  // recovered at connect
        save_manager(c, m);
        while (!(c.count && seen >= *c.count)) {
            auto step = std::chrono::milliseconds(1000);
            if (deadline) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now());
                if (left.count() <= 0) break;
                step = std::min(step, left);
            }
            auto evs = m.poll(step);
            if (!evs.empty()) {
                emit(evs);
                save_manager(c, m);
            }
        }
        return exit_ok;
    }
    if (verb == "report") {
        if (c.positional.size() != 2) throw usage_error{"threshold report takes no arguments"};
        auto rows = m.report();
        save_manager(c, m);
        if (c.json_output) {
            qmp::json out = qmp::json::array();
            for (const auto& r : rows) {
                auto j = element_json(r.disk, r.element);
                j["active"] = r.active;
                j["armed"] = r.armed ? qmp::json({{"spec", r.armed->spec.str()},
                                                   {"layer", qmp::to_string(r.armed->node_layer)},
                                                   {"threshold", r.armed->threshold},
                                                   {"state", r.armed->state == qmp::armed_threshold::status::armed ? "armed"
                                                             : r.armed->state == qmp::armed_threshold::status::fired
                                                                 ? "fired"
                                                                 : "gone"}})
                                     : qmp::json(nullptr);
                out.push_back(j);
            }
            std::cout << dump(out) << "\n";
        } else {
            for (const auto& r : rows)
                std::cout << qmp::target{r.disk, r.element.index}.indexed() << (r.active ? " active" : "")
                          << " capacity " << text_or_dash(r.element.capacity) << " allocation "
                          << text_or_dash(r.element.allocation) << " threshold storage "
                          << text_or_dash(r.element.storage_threshold) << " format "
                          << text_or_dash(r.element.format_threshold)
                          << (r.armed ? " armed " + r.armed->spec.str() : std::string()) << "\n";
        }
        return exit_ok;
    }
    throw usage_error{"unknown threshold verb '" + verb + "'"};
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
    if (sub == "chain") return run_chain(client, c);
    if (sub == "resolve") return run_resolve(client, c);
    throw usage_error{"unknown subcommand '" + sub + "'"};
}

}  // namespace

int main(int argc, char** argv) {
    try {
        cli c = parse_args(argc, argv);
        const std::string& sub = c.positional[0];
        if (sub != "exec" && sub != "events" && sub != "chain" && sub != "resolve" && sub != "threshold")
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
        if (sub == "threshold") return run_threshold<qmp::tcp_threshold_manager>(c, ep);
        return run_with<qmp::sync_tcp_client>(c, ep);
    } catch (const usage_error& e) {
        std::cerr << "qmpctl: " << e.what << "\n" << usage_text;
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "qmpctl: " << e.what() << "\n";
        return exit_connection;
    }
}
