// qmpctl threshold set | clear | report | watch, over the blocking manager.
//
// set, clear and report hold the state file's lock for their whole
// read-modify-write; every intent is written before QEMU hears of it, so a
// folder that cannot be written stops them before anything changes. Only
// watch consumes events: the one-shot verbs do not resync (a resync marks
// what it finds as reported, and they would swallow it).
#include "commands.hpp"

#include <qmp/threshold/manager.hpp>

#include <iostream>

namespace qmpctl {

namespace {

struct parsed_verb {
    std::string verb;
    std::string target;
    qmp::threshold_spec spec;
};

parsed_verb parse_verb(const cli& c) {
    if (c.positional.size() < 2) throw usage_error{"threshold needs set, clear, watch or report"};
    parsed_verb v;
    v.verb = c.positional[1];
    if (v.verb == "set") {
        if (c.positional.size() != 4) throw usage_error{"threshold set needs TARGET VALUE"};
        v.target = c.positional[2];
        v.spec = parse_spec(c.positional[3]);
        v.spec.on = c.layer == "format" ? qmp::layer::format : qmp::layer::storage;
    } else if (v.verb == "clear") {
        if (c.positional.size() != 3) throw usage_error{"threshold clear needs TARGET"};
        v.target = c.positional[2];
    } else if (v.verb == "watch" || v.verb == "report") {
        if (c.positional.size() != 2) throw usage_error{"threshold " + v.verb + " takes no arguments"};
    } else {
        throw usage_error{"unknown threshold verb '" + v.verb + "'"};
    }
    return v;
}

void print_report(const cli& c, const std::vector<qmp::threshold_report_row>& rows) {
    if (c.json_output) {
        qmp::json out = qmp::json::array();
        for (const auto& r : rows) {
            auto j = element_json(r.disk, r.element);
            j["active"] = r.active;
            j["capacity"] = r.capacity ? qmp::json(*r.capacity) : qmp::json(nullptr);
            j["capacity_from"] = qmp::to_string(r.capacity_from);
            j["armed"] = r.armed ? qmp::json({{"spec", r.armed->spec.str()},
                                              {"layer", qmp::to_string(r.armed->node_layer)},
                                              {"threshold", r.armed->threshold},
                                              {"state", qmp::to_string(r.armed->state)}})
                                 : qmp::json(nullptr);
            out.push_back(j);
        }
        std::cout << dump(out) << "\n";
        return;
    }
    for (const auto& r : rows)
        std::cout << qmp::target{r.disk, r.element.index}.indexed() << (r.active ? " active" : "") << " capacity "
                  << text_or_dash(r.capacity) << " (" << qmp::to_string(r.capacity_from) << ") allocation "
                  << text_or_dash(r.element.allocation) << " threshold storage "
                  << text_or_dash(r.element.storage_threshold) << " format " << text_or_dash(r.element.format_threshold)
                  << (r.armed ? " armed " + r.armed->spec.str() + " (" + qmp::to_string(r.armed->state) + ")"
                              : std::string())
                  << "\n";
}

}  // namespace

template <class Manager, class... StreamArgs>
int run_threshold(const cli& c, const typename Manager::endpoint_type& ep, StreamArgs&... stream_args) {
    const parsed_verb v = parse_verb(c);
    const bool watch = v.verb == "watch";
    auto journal = open_journal(c);
    if (journal && (v.verb == "set" || v.verb == "clear")) {  // throughout: nothing changes under us
        qmp::diagnostics d;
        if (journal->lock(&d)) throw state_failure{"cannot lock the state file: " + d.message};
    }
    const qmp::threshold_state loaded = load_journal(journal.get());

    qmp::threshold_manager_options o;
    o.service.tracker.catalog = c.catalog;
    o.service.resync_on_connect = watch;
    o.service.journal = journal;
    o.client = c.client_options();
    if (watch)
        o.service.on_decode_error = [&](const std::string& event, const qmp::diagnostics& why) {
            std::cerr << "qmpctl: an unreadable " << event << " (" << why.message << "); resyncing\n";
        };
    if (watch)
        o.service.on_connection = [&](bool up, std::error_code why) {
            if (up)
                std::cerr << "qmpctl: reconnected to " << c.where() << "\n";
            else
                std::cerr << "qmpctl: lost the connection to " << c.where() << ": " << why.message()
                          << "; reconnecting\n";
        };
    Manager m(ep, o, stream_args...);
    m.load(loaded);

    // --timeout bounds the one-shot verbs as a whole; for watch it is how long to watch.
    deadline_guard guard(watch || !c.timeout ? std::nullopt : std::optional<std::chrono::milliseconds>(to_ms(*c.timeout)),
                         [&] { m.client().close(); });
    auto failed = [&](const qmp::qmp_error& e) {
        if (e.code() == qmp::threshold_error::journal_failed || e.code() == qmp::threshold_error::invalid_state) {
            std::cerr << "qmpctl: nothing changed in QEMU: " << e.what() << "\n";
            return exit_state;
        }
        if (guard.expired()) {
            std::cerr << "qmpctl: threshold " << v.verb << ": timed out after " << *c.timeout << " s\n";
            return exit_connection;
        }
        std::cerr << "qmpctl: " << e.what() << "\n";
        return exit_code_for(e.code());
    };

    std::vector<qmp::threshold_event> pending;
    try {
        pending = m.connect();
    } catch (const qmp::qmp_error& e) {
        if (guard.expired() || e.code().category() == qmp::threshold_category()) return failed(e);
        std::cerr << "qmpctl: cannot connect to " << c.where() << ": " << e.what() << "\n";
        return exit_connection;
    }

    try {
        if (v.verb == "set") {
            auto now = m.arm(v.target, v.spec);
            std::error_code ec;
            auto el = m.chains().resolve(v.target, ec);
            const std::string node = !el ? std::string()
                                     : v.spec.on == qmp::layer::format ? el->element.format_node
                                                                       : el->element.storage_node;
            for (const auto& a : m.armed())
                if (a.node == node)
                    std::cout << a.where.indexed() << " (" << (el ? layer_text(el->element) : std::string("?")) << ") "
                              << qmp::to_string(a.node_layer) << " node " << a.node << " threshold " << a.threshold
                              << "\n";
            for (const auto& e : now) std::cout << dump(event_line(e)) << "\n";
            return exit_ok;
        }
        if (v.verb == "clear") {
            m.disarm(v.target);
            return exit_ok;
        }
        if (v.verb == "report") {
            print_report(c, m.report());
            return exit_ok;
        }
    } catch (const qmp::qmp_error& e) {
        return failed(e);
    }

    // watch: what another qmpctl (or the agent) arms through the same state
    // file is taken in before each threshold event is judged (the service
    // does it), and saves merge with what others wrote.
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
    while (!(c.count && seen >= *c.count) && !stop_requested()) {
        auto step = std::chrono::milliseconds(500);
        if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock::now());
            if (left.count() <= 0) break;
            step = std::min(step, left);
        }
        emit(m.poll(step));
    }
    if (!m.connected()) {
        std::cerr << "qmpctl: threshold watch: still not connected to " << c.where() << " when the time ran out ("
                  << m.last_error().message() << ")\n";
        return exit_connection;
    }
    if (m.service().stats().save_failures) {
        std::cerr << "qmpctl: threshold watch: the state file was not kept: " << m.service().last_save_failure().message
                  << "\n";
        return exit_state;
    }
    if (c.count && seen < *c.count && !stop_requested()) {
        std::cerr << "qmpctl: threshold watch: " << seen << " of " << *c.count << " event(s) came before the time ran out\n";
        return exit_connection;
    }
    return exit_ok;
}

template int run_threshold<qmp::threshold_manager>(const cli&, const qmp::threshold_manager::endpoint_type&);
template int run_threshold<qmp::tcp_threshold_manager>(const cli&, const qmp::tcp_threshold_manager::endpoint_type&);
#ifdef QMPCTL_WITH_TLS
template int run_threshold<tls_threshold_manager, asio::ssl::context>(const cli&,
                                                                      const tls_threshold_manager::endpoint_type&,
                                                                      asio::ssl::context&);
#endif

}  // namespace qmpctl
