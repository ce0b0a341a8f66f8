// qmp-thin-agent: one watched VM (its client, threshold service,
// reconnector, subscriptions and hooks), shared by the agent and its metrics.
#pragma once

#include "agent.hpp"

#include <qmp/block/graph_query.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace thin_agent {

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
                if (hooks_running.empty()) grown_since_resume ? resume_if_paused() : look_again();
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
                    if (hooks_running.empty()) look_again();
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

    // Stopped on a full volume with no hook running: a threshold can have
    // been set a moment after the writes passed it (its element was armed
    // while a job wrote into it), and then nothing fires it. A resync finds
    // such a crossing (the high-water mark is past it) and reports it.
    void look_again() {
        service.async_resync([this, self = shared_from_this()](std::error_code ec, std::vector<qmp::threshold_event> found) {
            if (ec || stopped) return;
            for (const auto& e : found) on_threshold(e);
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

    // QEMU's timestamp of a live event, `SECONDS.MICROSECONDS`; empty otherwise.
    static std::string event_time(const qmp::threshold_event& e) {
        if (e.how != qmp::threshold_event::origin::live || e.time.seconds <= 0) return {};
        char buf[48];
        std::snprintf(buf, sizeof buf, "%lld.%06lld", static_cast<long long>(e.time.seconds),
                      static_cast<long long>(e.time.microseconds));
        return buf;
    }

    void extend(const std::string& t, const qmp::threshold_event& e, std::chrono::milliseconds retry) {
        hooks_running.insert(t);
        auto start = [this, self = shared_from_this(), t, e, retry] {
            auto it = rows.find(t);
            const qmp::threshold_report_row* row = it == rows.end() ? nullptr : &it->second;
            std::vector<std::string> env{
                "QMP_VM=" + name,
                "QMP_TARGET=" + t,
                "QMP_NODE=" + e.node,
                "QMP_FILENAME=" + (row ? row->element.filename.value_or("") : std::string()),
                "QMP_CAPACITY=" + (row && row->capacity ? std::to_string(*row->capacity) : std::string()),
                "QMP_ALLOCATION=" + (e.how == qmp::threshold_event::origin::live ? std::to_string(e.threshold + e.amount_exceeded)
                                     : row && row->element.allocation    ? std::to_string(*row->element.allocation)
                                                                         : std::string()),
                "QMP_THRESHOLD=" + std::to_string(e.threshold),
                "QMP_EXCEEDED=" + std::to_string(e.amount_exceeded),
                "QMP_RECOVERED=" + std::string(e.recovered() ? "1" : "0"),
                "QMP_EVENT_TIME=" + event_time(e)};
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
        };
        // A live event says where the write went (threshold + exceeded); the
        // rest (filename, capacity) is as the agent's last report saw it,
        // which its own extensions keep current: the hook starts at once.
        // Otherwise (first sight, recovered, immediate) read first.
        if (e.how == qmp::threshold_event::origin::live && rows.count(t))
            start();
        else
            refresh(std::move(start));
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

}  // namespace thin_agent
