// qmp-thin-agent: keeps thin storage ahead of its guests, for any number of
// VMs from one thread. Built from the library's public API only: per VM a
// unix_client, a threshold_service (with a threshold_journal whose file
// work runs on a thread of its own) and a reconnector on one io_context.
#pragma once

#include "options.hpp"

#include <qmp/client/reconnector.hpp>
#include <qmp/qapi.hpp>
#include <qmp/threshold/journal.hpp>
#include <qmp/threshold/service.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/types.h>

namespace thin_agent {

/// One line per event and action (JSON, or text for people).
class output {
public:
    explicit output(bool text) : text_(text) {}
    void emit(const qmp::json& line) const;

private:
    bool text_;
};

struct vm;

/// Seconds, counted into fixed buckets (a Prometheus histogram).
struct seconds_histogram {
    static constexpr std::array<double, 16> bounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                   0.5,   1,      2.5,   5,    10,    30,   60,  120};
    std::array<std::uint64_t, bounds.size()> in_bucket{};  // observations at or below each bound (not cumulative)
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double s) {
        ++count;
        sum += s;
        for (std::size_t i = 0; i < bounds.size(); ++i)
            if (s <= bounds[i]) {
                ++in_bucket[i];
                break;
            }
    }
};

/// Counters per VM, for the metrics.
struct vm_counters {
    std::uint64_t events_live = 0, events_recovered = 0, events_immediate = 0, extensions_ok = 0, extensions_failed = 0,
                  hook_timeouts = 0, reconnects = 0, resumed = 0, enospc_pauses = 0, extensions_abandoned = 0;
    // An extension's phases: the event taken to the hook started, the hook
    // running, the hook done to the threshold armed again.
    seconds_histogram to_hook_start, hook_run, to_rearmed;
    seconds_histogram resync;  // each resync (audits included), first query to last decision
};

/// A target's write rate, estimated from the allocation at each report.
struct write_rate {
    std::uint64_t allocation = 0;
    std::chrono::steady_clock::time_point at{};
    std::optional<double> bytes_per_second;
    /// Takes a sample; samples less than a second apart are merged into the next.
    void sample(std::uint64_t alloc, std::chrono::steady_clock::time_point now) {
        if (at == std::chrono::steady_clock::time_point{} || alloc < allocation) {  // first, or a new node
            allocation = alloc;
            at = now;
            bytes_per_second.reset();
            return;
        }
        const double dt = std::chrono::duration<double>(now - at).count();
        if (dt < 1.0) return;
        const double r = static_cast<double>(alloc - allocation) / dt;
        bytes_per_second = bytes_per_second ? 0.5 * r + 0.5 * *bytes_per_second : r;  // recent samples weigh most
        allocation = alloc;
        at = now;
    }
};

class agent {
public:
    agent(asio::io_context& io, options o);
    ~agent();

    /// Starts every VM (and the metrics endpoint); returns at once. Throws
    /// std::system_error when the metrics address cannot be bound.
    void start();
    /// SIGTERM: takes no new work, lets running hooks (and the re-arming
    /// after them) finish for up to --stop-timeout, then kills what still
    /// runs and stops; io.run() returns once the journals' last saves are on disk.
    void stop();
    bool stopping() const noexcept { return stopping_; }
    /// SIGHUP: re-reads the VMs file; new VMs start, removed ones stop. A
    /// file that cannot be read or is not valid changes nothing (said).
    void reload();

    std::string metrics_text() const;
    const output& out() const noexcept { return out_; }
    const options& opts() const noexcept { return opts_; }
    asio::io_context& io() noexcept { return io_; }
    asio::thread_pool& journal_pool() noexcept { return journal_pool_; }

    /// Runs the extension hook (/bin/sh -c CMD with `env` added) in a
    /// process group of its own, with only stdin (/dev/null), stdout and
    /// stderr (both the agent's stderr) open; killed with its group after
    /// --hook-timeout. `done(exit status, timed out)` runs on the io thread.
    void run_hook(const std::vector<std::string>& env, std::function<void(int, bool)> done);
    /// A VM finished an extension (the hook and what follows it): a stop
    /// waiting for that can go on.
    void work_finished();

private:
    void add_vm(const std::string& name, const std::string& socket);
    void remove_vm(const std::string& name);
    void wait_signals();
    void reap();
    void finish_stop();
    bool vms_busy() const;
    void serve_metrics();
    void accept_metrics();
    void serve_client(std::shared_ptr<asio::ip::tcp::socket> s);

    struct hook {
        std::unique_ptr<asio::steady_timer> timer;
        std::function<void(int, bool)> done;
        bool timed_out = false;
    };

    asio::io_context& io_;
    options opts_;
    output out_;
    asio::thread_pool journal_pool_{1};
    std::map<std::string, std::shared_ptr<vm>> vms_;
    asio::signal_set signals_;
    asio::signal_set children_;
    std::map<pid_t, hook> hooks_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    asio::steady_timer accept_retry_;
    asio::steady_timer stop_timer_;
    std::size_t metrics_clients_ = 0;
    std::size_t metrics_cap_ = 16;  // metrics clients served at once (start() fits it under the descriptor limit)
    bool accepting_ = false;
    bool stopping_ = false;
    bool stopped_ = false;
};

}  // namespace thin_agent
