// qmpctl's command line, exit codes and the helpers every subcommand uses.
#pragma once

#include <qmp/block.hpp>
#include <qmp/qmp.hpp>
#include <qmp/threshold/journal.hpp>
#include <qmp/threshold/types.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace qmpctl {

// Exit codes (docs/qmpctl.md).
constexpr int exit_ok = 0;
constexpr int exit_usage = 2;       // the command line is wrong
constexpr int exit_connection = 3;  // connection, protocol, or a deadline passed
constexpr int exit_qmp_error = 4;   // QEMU answered with an error
constexpr int exit_target = 5;      // a target that does not parse or resolve, or a refused spec
constexpr int exit_state = 6;       // the state file cannot be read, locked or written

extern const char* usage_text;

struct usage_error {
    std::string what;
};

/// The state file cannot be used: exit code 6, with this sentence.
struct state_failure {
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
    bool details = false;  // chain, resolve: filenames and sizes (QEMU's expensive node query)
    std::string layer = "storage";
    qmp::disk_catalog catalog;
    std::vector<std::pair<std::string, bool>> pass_fds;  // file, read-only
    // TLS over -t: --tls-ca turns it on.
    std::string tls_ca, tls_cert, tls_key, tls_name;

    /// Where qmpctl talks to, for messages.
    const std::string& where() const { return socket_path.empty() ? tcp_address : socket_path; }
    /// Client options with every wait bounded by --timeout.
    qmp::client_options client_options() const;
};

cli parse_args(int argc, char** argv);
/// The journal of --state (nullptr without it); lock waits are bounded by
/// --timeout (30 s without).
std::shared_ptr<qmp::threshold_journal> open_journal(const cli& c);
/// Loads the journal (a fresh state when there is none); a file that
/// cannot be read or does not validate is a state_failure.
qmp::threshold_state load_journal(qmp::threshold_journal* j);
std::chrono::milliseconds to_ms(double seconds);
std::string seconds_text(double seconds);
std::string dump(const qmp::json& j);
qmp::threshold_spec parse_spec(const std::string& v);

qmp::json element_json(const std::string& disk, const qmp::chain_element& el);
qmp::json event_line(const qmp::threshold_event& e);
std::string text_or_dash(const std::optional<std::uint64_t>& v);
/// Which layer of its chain an element is, for people: "active layer" (depth
/// 0, what the guest writes) or "backing, depth N".
std::string layer_text(const qmp::chain_element& el);
/// The exit code for an error of a target, spec, QMP or connection.
int exit_code_for(std::error_code ec);

/// SIGINT and SIGTERM ask qmpctl to stop (a watch saves and exits 0);
/// installed without SA_RESTART so a write blocked on a stalled stdout
/// returns. SIGPIPE is ignored: a closed stdout is an error to report.
void install_signal_handlers();
bool stop_requested();

/// Runs `on_expire` on a thread of its own when `limit` has passed, unless
/// destroyed first: --timeout bounds a whole subcommand, whatever it waits on.
class deadline_guard {
public:
    deadline_guard(std::optional<std::chrono::milliseconds> limit, std::function<void()> on_expire);
    ~deadline_guard();
    deadline_guard(const deadline_guard&) = delete;
    deadline_guard& operator=(const deadline_guard&) = delete;
    bool expired() const noexcept { return expired_; }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool done_ = false;
    std::atomic<bool> expired_{false};
    std::thread thread_;
};

}  // namespace qmpctl
