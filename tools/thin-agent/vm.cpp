// qmp-thin-agent: one VM's bodies (vm.hpp declares them): connecting,
// arming, extending through the hook, re-arming, resuming.
#include "vm.hpp"

namespace thin_agent {

qmp::threshold_service_options vm::service_options() {
    qmp::threshold_service_options o;
    o.journal = journal;
    o.journal_executor = a.journal_pool().get_executor();
    o.audit_interval = a.opts().audit_interval;
    o.on_resync = [this](const qmp::threshold_resync_info& r) {
        counters.resync.observe(std::chrono::duration<double>(r.took).count());
    };
    o.on_decode_error = [this](const std::string& ev, const qmp::diagnostics& why) {
        say({{"what", "error"}, {"error", "an unreadable " + ev + ": " + why.message}});
    };
    return o;
}

void vm::start() {
    qmp::diagnostics d;
    if (auto ec = service.load_journal(&d)) {
        // A file that does not validate is kept aside, never overwritten;
        // one that cannot be read is retried by every save.
        if (ec == qmp::threshold_error::invalid_state) {
            const std::string aside = journal->path() + ".invalid-" + std::to_string(std::time(nullptr));
            const bool moved = std::rename(journal->path().c_str(), aside.c_str()) == 0;
            say({{"what", "error"},
                 {"error", d.message + (moved ? "; kept as " + aside + ", starting afresh" : "; starting without it")}});
        } else {
            say({{"what", "error"}, {"error", d.message + "; starting without it"}});
        }
    }
    io_errors = client.subscribe(qmp::filter_for<qmp::block_io_error_event>(), 64);
    take_io_errors();
    jobs = client.subscribe(qmp::filter_for<qmp::job_status_change_event, qmp::block_job_error_event>(), 64);
    take_jobs();
    take_thresholds();
    rec.start();
}

void vm::stop() {
    stopped = true;
    job_timer.cancel();
    look_timer.cancel();
    sample_timer.cancel();
    for (auto& t : retries) t->cancel();
    retries.clear();
    io_errors.reset();
    jobs.reset();
    service.stop();
    rec.stop();
    // What waits for a report holds the VM: dropped, or the VM would hold itself.
    auto waiting = std::move(after_report), next = std::move(after_next_report);
    after_report.clear();
    after_next_report.clear();
}

void vm::on_link(const qmp::reconnect_status& s) {
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
    sample();
}

void vm::sample() {
    const auto every = a.opts().sample_interval;
    if (every.count() <= 0) return;
    sample_timer.expires_after(every);
    sample_timer.async_wait([this, self = shared_from_this(), sessions = counters.reconnects](std::error_code ec) {
        if (ec || stopped || !up || sessions != counters.reconnects) return;
        refresh([](bool) {});
        sample();
    });
}

void vm::arm_all(std::function<void()> then) {
    refresh([this, self = shared_from_this(), then = std::move(then)](bool ok) {
        // Called once the last arming answered (or at once, with none).
        auto left = std::make_shared<std::size_t>(1);
        auto one_done = [left, then] {
            if (--*left == 0 && then) then();
        };
        if (!ok) return one_done();  // the next connection tries again
        finish_interrupted();
        for (const auto& [target, row] : rows) {
            if (!row.active || !wanted(row.disk) || row.armed) continue;
            const std::string t = target;
            ++*left;
            service.async_arm(row.disk, a.opts().spec, qmp::rearm_policy::on_extend, 0,
                              [this, self = shared_from_this(), t, one_done](std::error_code ec, std::vector<qmp::threshold_event> now) {
                                  if (stopped) return;
                                  if (ec) {
                                      say({{"what", "error"}, {"target", t}, {"error", ec.message()}});
                                      return one_done();
                                  }
                                  refresh([this, self = shared_from_this(), t, now, one_done](bool) {
                                      auto it = rows.find(t);
                                      qmp::json line{{"what", "armed"}, {"target", t}};
                                      if (it != rows.end() && it->second.armed) {
                                          line["node"] = it->second.armed->node;
                                          line["threshold"] = it->second.armed->threshold;
                                      }
                                      say(line);
                                      for (const auto& e : now) on_threshold(e);
                                      one_done();
                                  });
                              });
        }
        one_done();
    });
}

void vm::on_gone(const std::string& t, const qmp::threshold_event& e) {
    say({{"what", "gone"}, {"target", t}, {"node", e.node}});
    rearm_pending.erase(t);
    hook_waits.erase(t);
    const bool was_extending = extending.count(t) != 0;
    if (was_extending) abandoned.insert(t);
    // Arm what the chain has now before the guest writes on: a full new
    // layer fires at once (immediate) and is extended like any other.
    arm_all([this, self = shared_from_this(), was_extending] {
        if (was_extending && paused_nospace && !stopped) resume_if_paused();
    });
}

bool vm::drop_if_abandoned(const std::string& t) {
    if (!abandoned.erase(t)) return false;
    ++counters.extensions_abandoned;
    say({{"what", "abandoned"}, {"target", t}, {"reason", "the element left the chain"}});
    end_extension(t);
    return true;
}

void vm::finish_interrupted() {
    for (const auto& t : service.armed()) {
        if (t.state != qmp::armed_threshold::status::fired || t.policy != qmp::rearm_policy::on_extend) continue;
        const std::string target = t.where.indexed();
        if (extending.count(target) || a.opts().extend_cmd.empty() || a.stopping()) continue;
        if (rearm_pending.count(target)) {
            extending.insert(target);
            rearm(target);
            continue;
        }
        say({{"what", "resuming"}, {"target", target}, {"node", t.node}});
        extend(target, qmp::event_of(t, qmp::threshold_event::origin::recovered));
    }
}

void vm::refresh(std::function<void(bool)> then, bool fresh_sizes) {
    if (reporting) {
        next_report_fresh = next_report_fresh || fresh_sizes;
        return after_next_report.push_back(std::move(then));
    }
    reporting = true;
    after_report.push_back(std::move(then));
    service.async_report(fresh_sizes, [this, self = shared_from_this()](std::error_code ec, std::vector<qmp::threshold_report_row> r) {
        reporting = false;
        if (stopped) return;
        auto waiting = std::move(after_report);
        after_report.clear();
        if (ec) {
            say({{"what", "error"}, {"error", "report: " + ec.message()}});
        } else {
            rows.clear();
            const auto now = std::chrono::steady_clock::now();
            for (auto& row : r) {
                const std::string t = qmp::target{row.disk, row.element.index}.indexed();
                if (row.element.allocation) rates[t].sample(*row.element.allocation, now);
                rows[t] = std::move(row);
            }
            for (auto it = rates.begin(); it != rates.end();) it = rows.count(it->first) ? std::next(it) : rates.erase(it);
        }
        for (auto& f : waiting) f(!ec);
        if (!after_next_report.empty()) {
            auto next = std::move(after_next_report);
            after_next_report.clear();
            const bool fresh = std::exchange(next_report_fresh, false);
            for (auto& f : next) refresh(std::move(f), fresh);
        }
    });
}

void vm::take_thresholds() {
    service.async_receive([this, self = shared_from_this()](std::error_code ec, qmp::threshold_event e) {
        if (ec == asio::error::operation_aborted || stopped) return;
        if (!ec) on_threshold(e);
        take_thresholds();
    });
}

void vm::take_io_errors() {
    io_errors.async_receive([this, self = shared_from_this()](std::error_code ec, qmp::event ev) {
        if (ec == asio::error::operation_aborted || stopped) return;
        if (!ec && !ev.lost) {
            std::error_code dec;
            qmp::diagnostics why;
            auto e = qmp::event_as<qmp::block_io_error_event>(ev, dec, &why);
            if (!e)
                say({{"what", "error"}, {"error", "an unreadable " + ev.name + ": " + why.message}});
            else if (e->nospace.value_or(false) && e->action == "stop")
                on_nospace(e->device);
        }
        take_io_errors();
    });
}

void vm::on_nospace(const std::string& device) {
    if (!paused_nospace) {
        ++counters.enospc_pauses;
        say({{"what", "paused"}, {"device", device}, {"reason", "ENOSPC"}});
    }
    paused_nospace = true;
    // A write that was under way while the storage grew can fail
    // after the extension: with no extension running, resume once per
    // extension (never in a loop on storage that stays full).
    if (extending.empty()) grown_since_resume ? resume_if_paused() : look_again();
}

void vm::take_jobs() {
    jobs.async_receive([this, self = shared_from_this()](std::error_code ec, qmp::event ev) {
        if (ec == asio::error::operation_aborted || stopped) return;
        if (!ec && !ev.lost) {
            std::error_code dec;
            qmp::diagnostics why;
            if (ev.name == qmp::block_job_error_event::name) {
                if (auto e = qmp::event_as<qmp::block_job_error_event>(ev, dec, &why)) {
                    if (e->action == "stop") {
                        if (paused_jobs.size() < 64) paused_jobs.insert(e->device);
                        if (extending.empty()) look_again();
                    }
                }
            } else if (auto e = qmp::event_as<qmp::job_status_change_event>(ev, dec, &why)) {
                if (e->status == "running") check_jobs();
            }
            if (dec) say({{"what", "error"}, {"error", "an unreadable " + ev.name + ": " + why.message}});
        }
        take_jobs();
    });
}

void vm::check_jobs() {
    if (checking_jobs) {
        check_jobs_again = true;
        return;
    }
    checking_jobs = true;
    spaced(job_timer, last_job_check, job_check_interval, [this, self = shared_from_this()] { query_jobs(); });
}

void vm::query_jobs() {
    auto diag = std::make_shared<qmp::diagnostics>();
    qmp::async_query_block_graph(client, {}, &drivers, *diag, [this, self = shared_from_this(), diag](std::error_code ec, qmp::block_graph g) {
        if (stopped) return;
        std::vector<std::pair<std::string, std::string>> nodes;  // node, job
        if (!ec)
            for (const auto& e : g.edges())
                if (g.nodes()[e.parent].kind == qmp::node_kind::job && (e.name == "base" || e.name == "target"))
                    nodes.emplace_back(g.nodes()[e.child].name, g.nodes()[e.parent].name);
        auto done = [this, self] {
            checking_jobs = false;
            if (check_jobs_again && !stopped) {
                check_jobs_again = false;
                check_jobs();
            }
        };
        if (nodes.empty()) return done();
        refresh([this, self, nodes, done](bool ok) {
            if (!ok) return done();
            for (const auto& [node, job] : nodes) {
                std::error_code ec2;
                auto loc = service.chains().locate(node, ec2);
                if (!loc || !wanted(loc->where.disk)) continue;
                const std::string t = loc->where.canonical().indexed();
                auto it = rows.find(t);
                if (it == rows.end() || it->second.armed) continue;
                service.async_arm(t, a.opts().spec, qmp::rearm_policy::on_extend, 0,
                                  [this, self, t, job = job](std::error_code ec3, std::vector<qmp::threshold_event> now) {
                                      if (stopped) return;
                                      if (ec3) return say({{"what", "error"}, {"target", t}, {"error", ec3.message()}});
                                      say({{"what", "armed"}, {"target", t}, {"job", job}});
                                      for (const auto& e : now) on_threshold(e);
                                  });
            }
            done();
        });
    });
}

void vm::look_again() {
    if (resyncing) return;
    resyncing = true;
    spaced(look_timer, last_look, look_again_interval, [this, self = shared_from_this()] {
        service.async_resync([this, self](std::error_code ec, std::vector<qmp::threshold_event> found) {
            resyncing = false;
            if (ec || stopped) return;
            for (const auto& e : found) on_threshold(e);
        });
    });
}

void vm::on_threshold(const qmp::threshold_event& e) {
    const std::string t = e.where.indexed();
    if (e.how == qmp::threshold_event::origin::gone) return on_gone(t, e);
    if (e.recovered())
        ++counters.events_recovered;
    else if (e.how == qmp::threshold_event::origin::immediate)
        ++counters.events_immediate;
    else
        ++counters.events_live;
    say({{"what", "threshold"},
         {"target", e.resolved ? qmp::json(t) : qmp::json(nullptr)},
         {"node", e.node},
         {"threshold", e.threshold},
         {"exceeded", e.amount_exceeded},
         {"recovered", e.recovered()},
         {"origin", qmp::to_string(e.how)}});
    // Another's threshold, or no hook: reported only. Stopping: the state
    // says it fired, and the next start extends it.
    if (!e.tracked || a.opts().extend_cmd.empty() || extending.count(t) || a.stopping()) return;
    extend(t, e);
}

std::string vm::event_time(const qmp::threshold_event& e) {
    if (e.how != qmp::threshold_event::origin::live || e.time.seconds <= 0) return {};
    char buf[48];
    std::snprintf(buf, sizeof buf, "%lld.%06lld", static_cast<long long>(e.time.seconds),
                  static_cast<long long>(e.time.microseconds));
    return buf;
}

void vm::extend(const std::string& t, const qmp::threshold_event& e) {
    extending.insert(t);
    using clock = std::chrono::steady_clock;
    auto start = [this, self = shared_from_this(), t, e, taken = clock::now()] {
        if (stopped || a.stopping()) return end_extension(t);
        if (drop_if_abandoned(t)) return;
        const auto started = clock::now();
        counters.to_hook_start.observe(std::chrono::duration<double>(started - taken).count());
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
        a.run_hook(env, [this, self, t, e, started](int status, bool timed_out) {
            const auto done = clock::now();
            counters.hook_run.observe(std::chrono::duration<double>(done - started).count());
            if (stopped) return end_extension(t);
            if (drop_if_abandoned(t)) return;
            if (status != 0) return hook_failed(t, e, status, timed_out);
            ++counters.extensions_ok;
            hook_waits.erase(t);
            rearm(t, done);
        });
    };
    // A live event says where the write went (threshold + exceeded); the
    // rest (filename, capacity) is as the agent's last report saw it,
    // which its own extensions keep current: the hook starts at once.
    // Otherwise (first sight, recovered, immediate) read first.
    if (e.how == qmp::threshold_event::origin::live && rows.count(t))
        return start();
    refresh([this, self = shared_from_this(), t, start](bool ok) {
        if (ok) return start();
        end_extension(t);  // the state says it fired: the next connection runs it
    });
}

void vm::rearm(const std::string& t, std::optional<std::chrono::steady_clock::time_point> hook_done) {
    rearm_pending.insert(t);
    refresh([this, self = shared_from_this(), t, hook_done](bool ok) {
        if (!ok) return end_extension(t);
        auto it = rows.find(t);
        if (it == rows.end()) {  // the element left the chain meanwhile: nothing to re-arm
            rearm_pending.erase(t);
            abandoned.insert(t);
            return void(drop_if_abandoned(t));
        }
        const std::uint64_t cap = it->second.capacity ? *it->second.capacity : 0;
        service.async_extended(t, cap, [this, self, t, cap, hook_done](std::error_code ec, std::vector<qmp::threshold_event> now) {
            if (!ec && hook_done)
                counters.to_rearmed.observe(
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - *hook_done).count());
            if (!ec) rearm_pending.erase(t);
            if (ec && drop_if_abandoned(t)) return void(rearm_pending.erase(t));
            end_extension(t);
            if (stopped) return;
            if (ec) return say({{"what", "error"}, {"target", t}, {"error", "re-arm: " + ec.message()}});
            say({{"what", "extended"}, {"target", t}, {"capacity", cap}});
            grown_since_resume = true;
            resume_if_paused();
            resume_jobs();
            for (const auto& e2 : now) on_threshold(e2);
        });
    }, true);
}

void vm::hook_failed(const std::string& t, const qmp::threshold_event& e, int status, bool timed_out) {
    ++counters.extensions_failed;
    if (timed_out) ++counters.hook_timeouts;
    auto& waits = hook_waits.try_emplace(t, qmp::backoff{a.opts().hook_retry_min, a.opts().hook_retry_max, 0.1, {}}).first->second;
    const auto wait = waits.next().value_or(a.opts().hook_retry_max);
    qmp::json line{{"what", timed_out ? "extend-timeout" : "extend-failed"}, {"target", t}, {"status", status}};
    if (!a.stopping()) line["retry_ms"] = wait.count();
    say(line);
    if (a.stopping()) return end_extension(t);
    auto timer = std::make_shared<asio::steady_timer>(a.io(), wait);
    retries.insert(timer);
    timer->async_wait([this, self = shared_from_this(), timer, t, e](std::error_code ec) {
        retries.erase(timer);
        if (ec || stopped || a.stopping()) return end_extension(t);
        if (drop_if_abandoned(t)) return;
        extending.erase(t);  // extend() takes it again
        extend(t, e);
    });
}

void vm::resume_jobs() {
    for (const auto& id : paused_jobs)
        client.async_execute(qmp::block_job_resume{id}, [this, self = shared_from_this(), id](std::error_code ec, qmp::empty_result) {
            if (!ec && !stopped) say({{"what", "resumed"}, {"job", id}});
        });
    paused_jobs.clear();
}

void vm::resume_if_paused() {
    if (!paused_nospace) return;
    client.async_execute(qmp::query_status{}, [this, self = shared_from_this()](std::error_code ec, qmp::status_info st) {
        if (ec || stopped) return;
        if (st.running) {
            paused_nospace = false;
            return;
        }
        if (st.status != "io-error") return;
        client.async_execute(qmp::cont{}, [this, self](std::error_code ec2, qmp::empty_result) {
            if (stopped) return;
            if (ec2) return say({{"what", "error"}, {"error", "cont: " + ec2.message()}});
            paused_nospace = false;
            grown_since_resume = false;
            ++counters.resumed;
            say({{"what", "resumed"}});
        });
    });
}

}  // namespace thin_agent
