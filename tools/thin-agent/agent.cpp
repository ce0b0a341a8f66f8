#include "agent.hpp"

#include <qmp/block/graph_query.hpp>

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

extern char** environ;

namespace thin_agent {

void output::emit(const qmp::json& line) const {
    if (!text_) {
        std::cout << line.dump() << std::endl;
        return;
    }
    std::string s = line.value("vm", "") + ": " + line.value("what", "");
    for (const auto& [k, v] : line.items())
        if (k != "vm" && k != "what") s += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    std::cout << s << std::endl;
}

// ---- one VM ---------------------------------------------------------------------------

// Handlers hold the VM (shared_from_this): one that SIGHUP removed lives
// until its last pending operation or hook has finished.
struct vm : std::enable_shared_from_this<vm> {
    using reconnector = qmp::basic_reconnector<qmp::unix_client, asio::local::stream_protocol::endpoint>;

    agent& a;
    std::string name;
    std::string socket;
    qmp::unix_client client;
    std::unique_ptr<qmp::state_file> state;
    qmp::threshold_service service;
    reconnector rec;
    qmp::unix_client::subscription io_errors;
    qmp::unix_client::subscription jobs;  // block jobs: arm what they write into
    qmp::driver_cache drivers;
    std::set<std::string> paused_jobs;  // stopped on a full volume, resumed after an extension
    vm_counters counters;
    std::map<std::string, qmp::threshold_report_row> rows;  // target -> last report
    std::set<std::string> hooks_running;                    // targets
    std::set<std::shared_ptr<asio::steady_timer>> retries;  // failed hooks waiting to run again
    bool paused_nospace = false;
    bool grown_since_resume = false;  // an extension succeeded since the last `cont`
    bool up = false;
    bool stopped = false;

    vm(agent& ag, std::string n, std::string sock)
        : a(ag),
          name(std::move(n)),
          socket(std::move(sock)),
          client(ag.io()),
          state(ag.opts().state_dir.empty() ? nullptr
                                            : std::make_unique<qmp::state_file>(ag.opts().state_dir + "/" + name + ".json")),
          service(client, service_options()),
          rec(client, asio::local::stream_protocol::endpoint(socket), qmp::reconnect_options{},
              [this](const qmp::reconnect_status& s) { on_link(s); }) {}

    qmp::threshold_service_options service_options() {
        qmp::threshold_service_options o;
        if (state)
            o.journal = [this](const qmp::threshold_state& s, qmp::diagnostics& d) {
                return state->write(qmp::json(s), &d);
            };
        o.on_decode_error = [this](const std::string& ev, const qmp::diagnostics& why) {
            say({{"what", "error"}, {"error", "an unreadable " + ev + ": " + why.message}});
        };
        return o;
    }

    void say(qmp::json line) const {
        line["vm"] = name;
        a.out().emit(line);
    }

    void start() {
        if (state) {
            std::optional<qmp::json> j;
            qmp::diagnostics d;
            if (auto ec = state->read(j, &d)) {
                std::cerr << "qmp-thin-agent: " << name << ": " << d.message << "; starting without it\n";
            } else if (j) {
                if (service.load_state(*j, &d))
                    std::cerr << "qmp-thin-agent: " << name << ": " << state->path() << ": " << d.message
                              << "; starting without it\n";
            }
        }
        io_errors = client.subscribe({{"BLOCK_IO_ERROR"}, {}});
        take_io_errors();
        jobs = client.subscribe({{"JOB_STATUS_CHANGE", "BLOCK_JOB_ERROR"}, {}});
        take_jobs();
        take_thresholds();
        rec.start();
    }

    void stop() {
        stopped = true;
        for (auto& t : retries) t->cancel();
        retries.clear();
        io_errors.reset();
        jobs.reset();
        service.stop();
        rec.stop();
    }

    void on_link(const qmp::reconnect_status& s) {
        if (stopped) return;
        if (!s.up) {
            if (up) say({{"what", "disconnected"}, {"error", s.ec.message()}});
            up = false;
            return;
        }
        ++counters.reconnects;  // a session begins only after the last one ended
        up = true;
        say({{"what", "connected"}});
        service.on_connected();  // resyncs: what fired meanwhile comes back, recovered
        arm_all();
    }

    bool wanted(const std::string& disk) const { return a.opts().disks.empty() || a.opts().disks.count(disk); }

    // Arms the active layer of every (wanted) disk that has nothing armed.
    void arm_all() {
        refresh([this, self = shared_from_this()] {
            for (const auto& [target, row] : rows) {
                if (!row.active || !wanted(row.disk) || row.armed) continue;
                const std::string t = target;
                service.async_arm(row.disk, a.opts().spec, qmp::rearm_policy::on_extend, 0,
                                  [this, self = shared_from_this(), t](std::error_code ec, std::vector<qmp::threshold_event> now) {
                                      if (ec) return say({{"what", "error"}, {"target", t}, {"error", ec.message()}});
                                      refresh([this, self = shared_from_this(), t, now] {
                                          auto it = rows.find(t);
                                          qmp::json line{{"what", "armed"}, {"target", t}};
                                          if (it != rows.end() && it->second.armed) {
                                              line["node"] = it->second.armed->node;
                                              line["threshold"] = it->second.armed->threshold;
                                          }
                                          say(line);
                                          for (const auto& e : now) on_threshold(e);
                                      });
                                  });
            }
        });
    }

    // A fresh report, then `then`.
    void refresh(std::function<void()> then) {
        service.async_report([this, self = shared_from_this(), then = std::move(then)](std::error_code ec, std::vector<qmp::threshold_report_row> r) {
            if (stopped) return;
            if (ec) return say({{"what", "error"}, {"error", "report: " + ec.message()}});
            rows.clear();
            for (auto& row : r) rows[qmp::target{row.disk, row.element.index}.indexed()] = std::move(row);
            then();
        });
    }

    void take_thresholds() {
        service.async_receive([this, self = shared_from_this()](std::error_code ec, qmp::threshold_event e) {
            if (ec == asio::error::operation_aborted || stopped) return;
            if (!ec) on_threshold(e);
            take_thresholds();
        });
    }

    void take_io_errors() {
        io_errors.async_receive([this, self = shared_from_this()](std::error_code ec, qmp::event ev) {
            if (ec == asio::error::operation_aborted || stopped) return;
            if (!ec && !ev.lost && ev.data.value("nospace", false) && ev.data.value("action", "") == "stop") {
                if (!paused_nospace) say({{"what", "paused"}, {"device", ev.data.value("device", "")}, {"reason", "ENOSPC"}});
                paused_nospace = true;
                // A write that was under way while the storage grew can fail
                // after the extension: with no hook running, resume once per
                // extension (never in a loop on storage that stays full).
                if (hooks_running.empty() && grown_since_resume) resume_if_paused();
            }
            take_io_errors();
        });
    }

    // A job that writes into a chain element other than the active layer (a
    // commit's base, a mirror's target) gets that element armed while it runs.
    void take_jobs() {
        jobs.async_receive([this, self = shared_from_this()](std::error_code ec, qmp::event ev) {
            if (ec == asio::error::operation_aborted || stopped) return;
            if (!ec && !ev.lost) {
                const std::string id = ev.data.value("id", ev.data.value("device", ""));
                if (ev.name == "BLOCK_JOB_ERROR" && ev.data.value("action", "") == "stop") {
                    paused_jobs.insert(id);
                } else if (ev.name == "JOB_STATUS_CHANGE" && ev.data.value("status", "") == "running") {
                    arm_job_targets(id);
                }
            }
            take_jobs();
        });
    }

    void arm_job_targets(const std::string& job) {
        auto diag = std::make_shared<qmp::diagnostics>();
        qmp::async_query_block_graph(client, {}, &drivers, *diag, [this, self = shared_from_this(), job, diag](std::error_code ec, qmp::block_graph g) {
            if (ec || stopped) return;
            std::vector<std::string> nodes;
            for (const auto& e : g.edges)
                if (g.nodes[e.parent].kind == qmp::node_kind::job && g.nodes[e.parent].name == job &&
                    (e.name == "base" || e.name == "target"))
                    nodes.push_back(g.nodes[e.child].name);
            if (nodes.empty()) return;
            refresh([this, self = shared_from_this(), job, nodes] {
                for (const auto& node : nodes) {
                    std::error_code ec2;
                    auto loc = service.chains().locate(node, ec2);
                    if (!loc || !wanted(loc->where.disk)) continue;
                    const std::string t = loc->where.canonical().indexed();
                    auto it = rows.find(t);
                    if (it == rows.end() || it->second.armed) continue;
                    service.async_arm(t, a.opts().spec, qmp::rearm_policy::on_extend, 0,
                                      [this, self = shared_from_this(), t, job](std::error_code ec3, std::vector<qmp::threshold_event> now) {
                                          if (ec3) return say({{"what", "error"}, {"target", t}, {"error", ec3.message()}});
                                          say({{"what", "armed"}, {"target", t}, {"job", job}});
                                          for (const auto& e : now) on_threshold(e);
                                      });
                }
            });
        });
    }

    void on_threshold(const qmp::threshold_event& e) {
        const std::string t = e.where.indexed();
        if (e.how == qmp::threshold_event::origin::gone) return say({{"what", "gone"}, {"target", t}, {"node", e.node}});
        if (e.recovered())
            ++counters.events_recovered;
        else
            ++counters.events_live;
        say({{"what", "threshold"},
             {"target", t},
             {"node", e.node},
             {"threshold", e.threshold},
             {"exceeded", e.amount_exceeded},
             {"recovered", e.recovered()},
             {"origin", qmp::to_string(e.how)}});
        if (!e.armed_by_manager || a.opts().extend_cmd.empty() || hooks_running.count(t)) return;
        extend(t, e, a.opts().hook_retry_min);
    }

    void extend(const std::string& t, const qmp::threshold_event& e, std::chrono::milliseconds retry) {
        hooks_running.insert(t);
        refresh([this, self = shared_from_this(), t, e, retry] {
            auto it = rows.find(t);
            const qmp::threshold_report_row* row = it == rows.end() ? nullptr : &it->second;
            std::vector<std::string> env{
                "QMP_VM=" + name,
                "QMP_TARGET=" + t,
                "QMP_NODE=" + e.node,
                "QMP_FILENAME=" + (row ? row->element.filename.value_or("") : std::string()),
                "QMP_CAPACITY=" + (row && row->capacity ? std::to_string(*row->capacity) : std::string()),
                "QMP_ALLOCATION=" + (row && row->element.allocation ? std::to_string(*row->element.allocation) : std::string()),
                "QMP_THRESHOLD=" + std::to_string(e.threshold),
                "QMP_EXCEEDED=" + std::to_string(e.amount_exceeded),
                "QMP_RECOVERED=" + std::string(e.recovered() ? "1" : "0")};
            a.run_hook(env, [this, self = shared_from_this(), t, e, retry](int status) {
                if (stopped) {
                    hooks_running.erase(t);
                    return a.hook_finished();
                }
                if (status != 0) {
                    ++counters.extensions_failed;
                    say({{"what", "extend-failed"}, {"target", t}, {"status", status}, {"retry_ms", retry.count()}});
                    auto timer = std::make_shared<asio::steady_timer>(a.io(), retry);
                    retries.insert(timer);
                    timer->async_wait([this, self = shared_from_this(), timer, t, e, retry](std::error_code ec) {
                        retries.erase(timer);
                        hooks_running.erase(t);
                        a.hook_finished();
                        if (ec || stopped) return;
                        extend(t, e, std::min(retry * 2, a.opts().hook_retry_max));
                    });
                    return;
                }
                ++counters.extensions_ok;
                // The storage grew: read its new size, re-arm with the same spec.
                refresh([this, self = shared_from_this(), t] {
                    auto it = rows.find(t);
                    const std::uint64_t cap = it != rows.end() && it->second.capacity ? *it->second.capacity : 0;
                    service.async_extended(t, cap, [this, self = shared_from_this(), t, cap](std::error_code ec, std::vector<qmp::threshold_event> now) {
                        hooks_running.erase(t);
                        a.hook_finished();
                        if (ec) return say({{"what", "error"}, {"target", t}, {"error", "re-arm: " + ec.message()}});
                        say({{"what", "extended"}, {"target", t}, {"capacity", cap}});
                        grown_since_resume = true;
                        resume_if_paused();
                        resume_jobs();
                        for (const auto& e2 : now) on_threshold(e2);
                    });
                });
            });
        });
    }

    // Jobs stopped on a full volume go on once the storage grew.
    void resume_jobs() {
        for (const auto& id : paused_jobs)
            client.async_execute(qmp::block_job_resume{id}, [this, self = shared_from_this(), id](std::error_code ec, qmp::empty_result) {
                if (!ec) say({{"what", "resumed"}, {"job", id}});
            });
        paused_jobs.clear();
    }

    // A VM stopped on ENOSPC goes on once the storage grew.
    void resume_if_paused() {
        if (!paused_nospace) return;
        client.async_execute("query-status", nullptr, [this, self = shared_from_this()](std::error_code ec, qmp::json st) {
            if (ec || stopped) return;
            if (st.value("running", false)) {
                paused_nospace = false;
                return;
            }
            if (st.value("status", "") != "io-error") return;
            client.async_execute("cont", nullptr, [this, self = shared_from_this()](std::error_code ec2, qmp::json) {
                if (ec2) return say({{"what", "error"}, {"error", "cont: " + ec2.message()}});
                paused_nospace = false;
                grown_since_resume = false;
                ++counters.resumed;
                say({{"what", "resumed"}});
            });
        });
    }
};

// ---- the agent ----------------------------------------------------------------------

agent::agent(asio::io_context& io, options o)
    : io_(io), opts_(std::move(o)), out_(opts_.text_log), signals_(io, SIGTERM, SIGINT, SIGHUP), children_(io, SIGCHLD) {}

agent::~agent() = default;

void agent::start() {
    for (const auto& [n, s] : opts_.vms) add_vm(n, s);
    if (!opts_.vms_file.empty())
        for (const auto& [n, s] : read_vms_file()) add_vm(n, s);
    wait_signals();
    children_.async_wait([this](std::error_code ec, int) {
        if (!ec) reap();
    });
    if (!opts_.metrics.empty()) serve_metrics();
}

void agent::add_vm(const std::string& name, const std::string& socket) {
    if (vms_.count(name)) return;
    auto v = std::make_shared<vm>(*this, name, socket);
    v->start();
    vms_.emplace(name, std::move(v));
}

void agent::remove_vm(const std::string& name) {
    auto it = vms_.find(name);
    if (it == vms_.end()) return;
    it->second->stop();
    it->second->say({{"what", "removed"}});
    vms_.erase(it);  // what is pending still holds it
}

std::vector<std::pair<std::string, std::string>> agent::read_vms_file() const {
    std::vector<std::pair<std::string, std::string>> out;
    std::ifstream f(opts_.vms_file);
    if (!f) {
        std::cerr << "qmp-thin-agent: cannot read " << opts_.vms_file << "\n";
        return out;
    }
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto eq = line.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == line.size()) {
            std::cerr << "qmp-thin-agent: " << opts_.vms_file << ": not NAME=SOCKET: " << line << "\n";
            continue;
        }
        out.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    }
    return out;
}

void agent::reload() {
    if (opts_.vms_file.empty()) return;
    auto listed = read_vms_file();
    std::set<std::string> names;
    for (const auto& [n, s] : opts_.vms) names.insert(n);
    for (const auto& [n, s] : listed) names.insert(n);
    std::vector<std::string> drop;
    for (const auto& [n, v] : vms_)
        if (!names.count(n)) drop.push_back(n);
    for (const auto& n : drop) remove_vm(n);
    for (const auto& [n, s] : listed) add_vm(n, s);
}

void agent::wait_signals() {
    signals_.async_wait([this](std::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            reload();
            return wait_signals();
        }
        stop();
    });
}

void agent::stop() {
    if (stopping_) return;
    stopping_ = true;
    for (auto& [n, v] : vms_) v->stop();
    if (acceptor_) acceptor_->close();
    hook_finished();  // ends now when no hook runs
}

void agent::hook_finished() {
    if (!stopping_ || !hooks_.empty()) return;
    signals_.cancel();
    children_.cancel();
    asio::post(io_, [this] { vms_.clear(); });
}

void agent::run_hook(const std::vector<std::string>& env, std::function<void(int)> done) {
    std::vector<std::string> all;
    for (char** e = environ; *e; ++e) all.emplace_back(*e);
    all.insert(all.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& s : all) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string sh = "/bin/sh", c = "-c", cmd = opts_.extend_cmd;
    char* argv[] = {sh.data(), c.data(), cmd.data(), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);  // the hook's output goes to stderr, never into the JSON lines
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, "/bin/sh", &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return asio::post(io_, [done = std::move(done)] { done(127); });
    hooks_.emplace(pid, std::move(done));
}

void agent::reap() {
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        auto it = hooks_.find(pid);
        if (it == hooks_.end()) continue;
        auto done = std::move(it->second);
        hooks_.erase(it);
        done(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    if (stopping_ && hooks_.empty()) return hook_finished();
    children_.async_wait([this](std::error_code ec, int) {
        if (!ec) reap();
    });
}

// ---- metrics: the Prometheus text format on /metrics ----------------------------------

std::string agent::metrics_text() const {
    std::ostringstream m;
    auto family = [&](const char* name, const char* type, const char* help) {
        m << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    };
    auto esc = [](const std::string& s) {
        std::string o;
        for (char ch : s) {
            if (ch == '\\' || ch == '"') o += '\\';
            if (ch == '\n') {
                o += "\\n";
                continue;
            }
            o += ch;
        }
        return o;
    };
    struct gauge {
        const char* name;
        const char* help;
        std::function<std::optional<std::uint64_t>(const qmp::threshold_report_row&)> get;
    };
    const gauge gauges[] = {
        {"qmp_thin_capacity_bytes", "Capacity a spec computes against, per chain element.",
         [](const qmp::threshold_report_row& r) { return r.capacity; }},
        {"qmp_thin_allocation_bytes", "Highest offset written on the element's storage (wr_highest_offset).",
         [](const qmp::threshold_report_row& r) { return r.element.allocation; }},
        {"qmp_thin_threshold_bytes", "Write threshold the agent armed on the element (0: none).",
         [](const qmp::threshold_report_row& r) { return std::optional<std::uint64_t>(r.armed ? r.armed->threshold : 0); }},
    };
    for (const auto& g : gauges) {
        family(g.name, "gauge", g.help);
        for (const auto& [n, v] : vms_)
            for (const auto& [t, row] : v->rows)
                if (auto x = g.get(row)) m << g.name << "{vm=\"" << esc(n) << "\",target=\"" << esc(t) << "\"} " << *x << "\n";
    }
    struct counter {
        const char* name;
        const char* help;
        std::uint64_t vm_counters::*field;
    };
    const counter counters[] = {
        {"qmp_thin_events_live_total", "Threshold events received as they happened.", &vm_counters::events_live},
        {"qmp_thin_events_recovered_total", "Threshold events found by a resync (fired while nobody listened).",
         &vm_counters::events_recovered},
        {"qmp_thin_extensions_ok_total", "Extension hooks that succeeded.", &vm_counters::extensions_ok},
        {"qmp_thin_extensions_failed_total", "Extension hooks that failed (retried).", &vm_counters::extensions_failed},
        {"qmp_thin_reconnects_total", "Connections made to the VM's monitor.", &vm_counters::reconnects},
        {"qmp_thin_resumed_total", "VMs resumed after a pause on ENOSPC.", &vm_counters::resumed},
    };
    for (const auto& c : counters) {
        family(c.name, "counter", c.help);
        for (const auto& [n, v] : vms_) m << c.name << "{vm=\"" << esc(n) << "\"} " << v->counters.*c.field << "\n";
    }
    family("qmp_thin_loss_markers_total", "counter", "Event-loss markers the threshold service received.");
    for (const auto& [n, v] : vms_)
        m << "qmp_thin_loss_markers_total{vm=\"" << esc(n) << "\"} " << v->service.stats().loss_markers << "\n";
    family("qmp_thin_connected", "gauge", "1 while the VM's monitor is connected.");
    for (const auto& [n, v] : vms_) m << "qmp_thin_connected{vm=\"" << esc(n) << "\"} " << (v->up ? 1 : 0) << "\n";
    return m.str();
}

void agent::serve_metrics() {
    auto colon = opts_.metrics.rfind(':');
    const std::string host = opts_.metrics.substr(0, colon);
    const auto port = static_cast<unsigned short>(std::stoi(opts_.metrics.substr(colon + 1)));
    asio::ip::tcp::endpoint ep(asio::ip::make_address(host.empty() ? "127.0.0.1" : host), port);
    acceptor_.emplace(io_, ep);
    accept_metrics();
}

void agent::accept_metrics() {
    acceptor_->async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
        if (ec) return;  // closed
        auto sock = std::make_shared<asio::ip::tcp::socket>(std::move(s));
        auto buf = std::make_shared<asio::streambuf>(16 * 1024);
        asio::async_read_until(*sock, *buf, "\r\n\r\n", [this, sock, buf](std::error_code ec2, std::size_t) {
            if (ec2) return;
            std::istream in(buf.get());
            std::string method, path;
            in >> method >> path;
            std::string body, status = "200 OK";
            if (method == "GET" && (path == "/metrics" || path.rfind("/metrics?", 0) == 0))
                body = metrics_text();
            else {
                status = "404 Not Found";
                body = "only /metrics is served here\n";
            }
            auto reply = std::make_shared<std::string>("HTTP/1.1 " + status +
                                                       "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                                       "Content-Length: " +
                                                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
            asio::async_write(*sock, asio::buffer(*reply), [sock, reply](std::error_code, std::size_t) {});
        });
        accept_metrics();
    });
}

}  // namespace thin_agent
