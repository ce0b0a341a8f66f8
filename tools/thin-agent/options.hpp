// qmp-thin-agent's command line and VMs file: everything an operator can
// get wrong is refused here, with one sentence, before anything starts.
#pragma once

#include <qmp/threshold/spec.hpp>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace thin_agent {

struct options {
    std::vector<std::pair<std::string, std::string>> vms;       // NAME=SOCKET from --vm
    std::string vms_file;                                        // re-read on SIGHUP
    std::vector<std::pair<std::string, std::string>> file_vms;  // what it listed at start
    qmp::threshold_spec spec = qmp::threshold_spec::margin(1ull << 30);
    std::set<std::string> disks;  // empty: every disk
    std::string extend_cmd;       // empty: report only
    std::string state_dir;        // empty: no state kept
    bool text_log = false;
    std::string metrics_host;     // empty: no metrics endpoint
    unsigned short metrics_port = 0;
    std::chrono::milliseconds hook_timeout{120000};  // a hook still running then is killed (its process group)
    std::chrono::milliseconds stop_timeout{30000};   // SIGTERM waits this long for running hooks
    std::chrono::milliseconds audit_interval{0};     // 0: no periodic audit (write_threshold read back)
    std::chrono::milliseconds sample_interval{10000};  // allocation sampled this often for rates (cheap queries)
    std::chrono::milliseconds hook_retry_min{1000};
    std::chrono::milliseconds hook_retry_max{60000};
    std::size_t metrics_clients = 16;                // metrics connections served at once, at most
    std::chrono::milliseconds metrics_request_timeout{5000};
};

/// A bad command line or VMs file: exit 2 with this sentence.
struct usage_error {
    std::string what;     ///< empty: --help (or --version)
    bool version = false;  ///< --version
};

/// A VM name is a plain file name (it names the VM's state file): letters,
/// digits, `.`, `_` and `-`, 1 to 64 of them, not starting with `.`.
bool valid_vm_name(const std::string& name);

/// The VMs of a VMs file (`NAME=SOCKET` a line, `#` comments, blank lines),
/// read strictly: a file that cannot be read, a line that is not
/// NAME=SOCKET with a valid name, control bytes, a name twice, or no VM at
/// all is an error naming the file and the line.
std::vector<std::pair<std::string, std::string>> read_vms_file(const std::string& path);

/// The command line, checked whole (a state folder that is no writable
/// folder, a spec that would disarm or never fire, a port out of range, a
/// VM named twice): throws usage_error.
options parse_command_line(int argc, char** argv);

extern const char* usage_text;

}  // namespace thin_agent
