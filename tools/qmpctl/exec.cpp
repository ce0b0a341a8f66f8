// qmpctl exec, qmpctl describe and qmpctl events.
#include "commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>

#include <fcntl.h>
#include <unistd.h>

namespace qmpctl {

namespace {

// A command's failure on stderr, and the exit code it gets.
int report_failure(const std::string& what, std::error_code ec, const qmp::diagnostics& diag) {
    if (ec.category() == qmp::server_category()) {
        std::cerr << "qmpctl: " << what << ": " << (diag.error_class.empty() ? "error" : diag.error_class) << ": "
                  << diag.message << "\n";
        return exit_qmp_error;
    }
    std::cerr << "qmpctl: " << what << ": " << ec.message() << (diag.message.empty() ? "" : ": " + diag.message)
              << "\n";
    return exit_connection;
}

}  // namespace

template <class Client>
int run_exec(Client& client, const cli& c) {
    if (c.positional.size() < 2 || c.positional.size() > 3) throw usage_error{"exec needs COMMAND [ARGUMENTS-JSON]"};
    qmp::json args;
    if (c.positional.size() == 3) {
        args = qmp::json::parse(c.positional[2], nullptr, false);
        if (args.is_discarded() || !args.is_object()) throw usage_error{"ARGUMENTS-JSON must be a JSON object"};
    }
    qmp::exec_options opts;
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
    qmp::json_text ret =
        client.execute(qmp::dynamic_command<qmp::json_text>{c.positional[1], std::move(args)}, ec, diag, opts);
    for (int f : opts.fds) ::close(f);
    if (ec) return report_failure(c.positional[1], ec, diag);
    std::string out;
    if (auto cec = qmp::compact_json(ret.text, out, &diag)) {
        std::cerr << "qmpctl: " << c.positional[1] << ": " << cec.message() << ": " << diag.message << "\n";
        return exit_connection;
    }
    std::cout << out << "\n";
    return exit_ok;
}

// A command's arguments and result, or an event's data, as the QEMU in
// front of it has them (its query-qmp-schema).
template <class Client>
int run_describe(Client& client, const cli& c) {
    if (c.positional.size() != 2) throw usage_error{"describe needs one COMMAND or EVENT name"};
    std::error_code ec;
    qmp::diagnostics diag;
    auto schema = client.load_schema(ec, diag);
    if (ec) return report_failure("describe: query-qmp-schema", ec, diag);
    const std::string text = schema->describe(c.positional[1]);
    if (text.empty()) {
        std::cerr << "qmpctl: describe: " << schema->peer() << " has no command or event '" << c.positional[1] << "'\n";
        return exit_qmp_error;
    }
    std::cout << text;
    return exit_ok;
}

namespace {

// One event as a line of JSON; data the JSON tree cannot hold is printed
// as QEMU sent it.
std::string event_text(const qmp::event& ev) {
    std::string data;
    if (!ev.undecoded.empty())
        qmp::compact_json(ev.undecoded, data);
    else
        data = dump(ev.data.is_null() ? qmp::json::object() : ev.data);
    return "{\"event\":" + dump(ev.name) + ",\"data\":" + data + ",\"timestamp\":{\"seconds\":" +
           std::to_string(ev.time.seconds) + ",\"microseconds\":" + std::to_string(ev.time.microseconds) + "}}";
}

}  // namespace

// Prints events as JSON lines. At the end, when anything was lost or left
// unprinted, the exact tally of what the client received goes to stderr:
// printed + lost to queue overflow + still queued = received.
template <class Client>
int run_events(Client& client, const cli& c) {
    if (c.positional.size() != 1) throw usage_error{"events takes no arguments"};
    using clock = std::chrono::steady_clock;
    std::optional<clock::time_point> deadline;
    if (c.timeout) deadline = clock::now() + to_ms(*c.timeout);
    long long printed = 0;
    int rc = exit_ok;
    std::string stop_reason;
    for (;;) {
        if (c.count && printed >= *c.count) break;
        if (stop_requested()) {
            stop_reason = "stopped by a signal";
            break;
        }
        auto wait = std::chrono::milliseconds(200);  // short slices: a signal is noticed
        if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now());
            if (left.count() <= 0) break;
            wait = std::min(wait, left);
        }
        std::error_code ec;
        qmp::event ev = client.receive_event(wait, ec);
        if (ec == qmp::error::timeout) continue;
        if (ec) {
            std::cerr << "qmpctl: events: " << ec.message() << "\n";
            rc = exit_connection;
            break;
        }
        if (ev.lost) {
            std::cerr << "qmpctl: " << ev.lost << " events lost (queue overflow)\n";
            continue;
        }
        std::cout << event_text(ev) << std::endl;
        if (!std::cout) {
            stop_reason = errno == EPIPE ? "stdout was closed" : "writing to stdout failed";
            rc = exit_connection;
            break;
        }
        ++printed;
    }
    if (rc == exit_ok && c.count && printed < *c.count && stop_reason.empty()) {
        std::cerr << "qmpctl: events: " << printed << " of " << *c.count << " event(s) came before the time ran out\n";
        rc = exit_connection;
    }
    const auto st = client.stats();
    const std::uint64_t lost = st.events_dropped;
    const std::uint64_t left = st.events_received - lost - static_cast<std::uint64_t>(printed);
    if (lost || left || !stop_reason.empty())
        std::cerr << "qmpctl: events: " << st.events_received << " received: " << printed << " printed, " << lost
                  << " lost to queue overflow, " << left << " not printed"
                  << (stop_reason.empty() ? "" : " (" + stop_reason + ")") << "\n";
    return rc;
}

#define QMPCTL_INSTANTIATE(C) template int run_exec<C>(C&, const cli&); template int run_events<C>(C&, const cli&); \
    template int run_describe<C>(C&, const cli&);
QMPCTL_FOR_EACH_CLIENT(QMPCTL_INSTANTIATE)

}  // namespace qmpctl
