// qmp-thin-agent: keeps thin storage ahead of its guests, for any number of
// VMs from one thread. Built from the library's public API only: per VM a
// unix_client, a threshold_service and a reconnector on one io_context.
#pragma once

#include <qmp/client/reconnector.hpp>
#include <qmp/qapi.hpp>
#include <qmp/threshold/service.hpp>
#include <qmp/threshold/state_file.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace thin_agent {

struct options {
    std::vector<std::pair<std::string, std::string>> vms;  // NAME=SOCKET from --vm
    std::string vms_file;                                   // re-read on SIGHUP
    qmp::threshold_spec spec = qmp::threshold_spec::margin(1ull << 30);
    std::set<std::string> disks;  // empty: every disk
    std::string extend_cmd;       // empty: report only
    std::string state_dir;        // empty: no state kept
    bool text_log = false;
    std::string metrics;  // HOST:PORT, empty: none
    std::chrono::milliseconds hook_retry_min{1000};
    std::chrono::milliseconds hook_retry_max{60000};
};

/// One line per event and action (JSON, or text for people).
class output {
public:
    explicit output(bool text) : text_(text) {}
    void emit(const qmp::json& line) const;

private:
    bool text_;
};

struct vm;

/// Counters per VM, for the metrics.
struct vm_counters {
    std::uint64_t events_live = 0, events_recovered = 0, extensions_ok = 0, extensions_failed = 0,
                  reconnects = 0, resumed = 0;
};

class agent {
public:
    agent(asio::io_context& io, options o);
    ~agent();

    /// Starts every VM (and the metrics endpoint); returns at once.
    void start();
    /// SIGTERM: finishes running hooks, keeps the state, then io.run() returns.
    void stop();
    /// SIGHUP: re-reads the VMs file; new VMs start, removed ones stop.
    void reload();

    std::string metrics_text() const;
    const output& out() const noexcept { return out_; }
    const options& opts() const noexcept { return opts_; }
    asio::io_context& io() noexcept { return io_; }

    // Hooks: /bin/sh -c CMD with `env` added; `done(exit status)` runs on the io thread.
    void run_hook(const std::vector<std::string>& env, std::function<void(int)> done);
    void hook_finished();

private:
    void add_vm(const std::string& name, const std::string& socket);
    void remove_vm(const std::string& name);
    void wait_signals();
    void reap();
    void serve_metrics();
    void accept_metrics();
    std::vector<std::pair<std::string, std::string>> read_vms_file() const;

    asio::io_context& io_;
    options opts_;
    output out_;
    std::map<std::string, std::shared_ptr<vm>> vms_;
    asio::signal_set signals_;
    asio::signal_set children_;
    std::map<int, std::function<void(int)>> hooks_;  // pid -> what to do when it ends
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    bool stopping_ = false;
};

}  // namespace thin_agent
