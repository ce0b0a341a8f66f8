// qmp-thin-agent: one watched VM (its client, threshold service, journal,
// reconnector, subscriptions and extensions), shared by the agent and its
// metrics. Everything a peer sends is read typed; a member of the wrong
// type is said and skipped, never thrown.
#pragma once

#include "agent.hpp"

#include <qmp/block/graph_query.hpp>
#include <qmp/client/backoff.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <string>

namespace thin_agent {

// Handlers hold the VM (shared_from_this): one that SIGHUP removed lives
// until its last pending operation or hook has finished.
struct vm : std::enable_shared_from_this<vm> {
    using reconnector = qmp::basic_reconnector<qmp::unix_client, asio::local::stream_protocol::endpoint>;

    agent& a;
    std::string name;
    std::string socket;
    qmp::unix_client client;
    std::shared_ptr<qmp::threshold_journal> journal;
    qmp::threshold_service service;
    reconnector rec;
    qmp::unix_client::subscription io_errors;
    qmp::unix_client::subscription jobs;  // block jobs: arm what they write into
    qmp::driver_cache drivers;
    std::set<std::string> paused_jobs;  // stopped on a full volume, resumed after an extension
    vm_counters counters;
    std::map<std::string, qmp::threshold_report_row> rows;  // target -> last report
    // Targets with an extension under way: the hook running, waiting to be
    // run again, or the re-arming after it. One at a time per target.
    std::set<std::string> extending;
    std::map<std::string, qmp::backoff_series> hook_waits;  // per target: waits between failed hooks
    std::set<std::shared_ptr<asio::steady_timer>> retries;
    // Reports and job checks are coalesced: one runs at a time, and what
    // asks meanwhile shares the next one.
    bool reporting = false;
    bool next_report_fresh = false;  // something waiting wants sizes read now
    std::vector<std::function<void(bool)>> after_report, after_next_report;
    // Targets whose hook succeeded but whose re-arming did not (the
    // connection went): re-armed on the next connection, the hook not run again.
    std::set<std::string> rearm_pending;
    // Targets that left the chain (a live merge pivoted, a mirror completed)
    // while their extension was under way: when its hook ends, nothing more
    // is done for them (no re-arming, no retry).
    std::set<std::string> abandoned;
    bool checking_jobs = false, check_jobs_again = false;
    bool resyncing = false;
    // Job checks and resyncs a peer's events ask for start at most this
    // often: a flood of job news or pauses costs a graph query per interval.
    static constexpr std::chrono::milliseconds job_check_interval{200}, look_again_interval{1000};
    std::chrono::steady_clock::time_point last_job_check{}, last_look{};
    asio::steady_timer job_timer, look_timer;
    bool paused_nospace = false;
    std::map<std::string, write_rate> rates;  // target -> its write rate, from reports
    asio::steady_timer sample_timer;          // reports every --sample-interval while connected
    bool grown_since_resume = false;  // an extension succeeded since the last `cont`
    bool up = false;
    bool stopped = false;

    vm(agent& ag, std::string n, std::string sock)
        : a(ag),
          name(std::move(n)),
          socket(std::move(sock)),
          client(ag.io()),
          journal(ag.opts().state_dir.empty()
                      ? nullptr
                      : std::make_shared<qmp::threshold_journal>(ag.opts().state_dir + "/" + name + ".json")),
          service(client, service_options()),
          rec(client, asio::local::stream_protocol::endpoint(socket), qmp::reconnect_options{},
              [this](const qmp::reconnect_status& s) { on_link(s); }),
          job_timer(ag.io()),
          look_timer(ag.io()),
          sample_timer(ag.io()) {}

    // Runs `f` now, or once `interval` has passed since `last` (on `timer`).
    void spaced(asio::steady_timer& timer, std::chrono::steady_clock::time_point& last, std::chrono::milliseconds interval,
                std::function<void()> f) {
        const auto now = std::chrono::steady_clock::now();
        if (last == std::chrono::steady_clock::time_point{} || now >= last + interval) {
            last = now;
            return f();
        }
        timer.expires_at(last + interval);
        timer.async_wait([this, self = shared_from_this(), &last, f = std::move(f)](std::error_code ec) {
            if (ec || stopped) return;
            last = std::chrono::steady_clock::now();
            f();
        });
    }

    qmp::threshold_service_options service_options();

    void say(qmp::json line) const {
        line["vm"] = name;
        a.out().emit(line);
    }

    void start();

    void stop();

    /// No extension is under way (a stop may go on).
    bool idle() const { return extending.empty(); }

    void on_link(const qmp::reconnect_status& s);

    bool wanted(const std::string& disk) const { return a.opts().disks.empty() || a.opts().disks.count(disk); }

    // Arms the active layer of every (wanted) disk that has nothing armed,
    // and finishes extensions a stop or a crash interrupted; then `then()`
    // (once every arming answered, or the report failed).
    void arm_all(std::function<void()> then = {});

    // An armed element left the chain. Its extension, if one is under way,
    // is abandoned; the chain's new active layer is armed; a guest paused
    // on ENOSPC goes on (its writes go to another element now).
    void on_gone(const std::string& t, const qmp::threshold_event& e);

    // The hook of an abandoned extension ended: said, and nothing more.
    bool drop_if_abandoned(const std::string& t);

    // A threshold the state says fired, with no extension under way: its
    // extension was interrupted (SIGTERM, kill -9, a hook that kept
    // failing). It is run again, as recovered.
    void finish_interrupted();

    // A fresh report, then `then(true)`; `then(false)` when it failed (the
    // rows are as they were). One report runs at a time; who asks
    // meanwhile shares the next one (it must see what happened since).
    // `fresh_sizes`: QEMU describes every node again (a hook just grew
    // storage); otherwise sizes and filenames are the ones kept from the
    // last time (QEMU's expensive query only for elements not seen before).
    void refresh(std::function<void(bool)> then, bool fresh_sizes = false);

    void take_thresholds();

    void take_io_errors();

    void on_nospace(const std::string& device);

    // A job that writes into a chain element other than the active layer (a
    // commit's base, a mirror's target) gets that element armed while it runs.
    void take_jobs();

    // Arms the base or target of every running job that writes into a
    // chain element. One check at a time; a job that starts meanwhile is
    // seen by the next one.
    void check_jobs();

    void query_jobs();

    // Stopped on a full volume with no extension running: a threshold can
    // have been set a moment after the writes passed it (its element was
    // armed while a job wrote into it), and then nothing fires it. A resync
    // finds such a crossing (the high-water mark is past it) and reports it.
    void look_again();

    void on_threshold(const qmp::threshold_event& e);

    // QEMU's timestamp of a live event, `SECONDS.MICROSECONDS`; empty otherwise.
    static std::string event_time(const qmp::threshold_event& e);

    void end_extension(const std::string& t) {
        extending.erase(t);
        abandoned.erase(t);
        a.work_finished();
    }

    void extend(const std::string& t, const qmp::threshold_event& e);

    // The storage grew: read its new size, re-arm with the same spec. What
    // cannot be done now (the connection went) is done on the next one.
    // `hook_done`: when the hook that grew it ended (for the latency of re-arming).
    void rearm(const std::string& t, std::optional<std::chrono::steady_clock::time_point> hook_done = std::nullopt);
    // A report every --sample-interval while connected: allocation, hence write rates and time to full.
    void sample();

    // A failed (or killed) hook runs again after a wait that grows, until
    // it succeeds: the extension is never dropped. Not while stopping: the
    // state says it fired, and the next start runs it again.
    void hook_failed(const std::string& t, const qmp::threshold_event& e, int status, bool timed_out);

    // Jobs stopped on a full volume go on once the storage grew.
    void resume_jobs();

    // A VM stopped on ENOSPC goes on once the storage grew.
    void resume_if_paused();
};

}  // namespace thin_agent
