// qmp-thin-agent: the VMs, the signals, and the extension hooks.
#include "agent.hpp"
#include "vm.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace thin_agent {

void output::emit(const qmp::json& line) const {
    if (!text_) {
        std::cout << line.dump(-1, ' ', false, qmp::json::error_handler_t::replace) << std::endl;
        return;
    }
    // "vm: what key=value ...": the agent's own lines, whose vm and what are strings.
    std::string s;
    auto vm = line.find("vm"), what = line.find("what");
    s += (vm != line.end() && vm->is_string() ? vm->get_ref<const std::string&>() : std::string("-")) + ": ";
    s += what != line.end() && what->is_string() ? what->get_ref<const std::string&>() : std::string("-");
    for (const auto& [k, v] : line.items())
        if (k != "vm" && k != "what")
            s += " " + k + "=" +
                 (v.is_string() ? v.get_ref<const std::string&>() : v.dump(-1, ' ', false, qmp::json::error_handler_t::replace));
    std::cout << s << std::endl;
}

// ---- the agent ----------------------------------------------------------------------

agent::agent(asio::io_context& io, options o)
    : io_(io),
      opts_(std::move(o)),
      out_(opts_.text_log),
      signals_(io, SIGTERM, SIGINT, SIGHUP),
      children_(io, SIGCHLD),
      accept_retry_(io),
      stop_timer_(io) {}

agent::~agent() {
    // Saves still on the journal's thread finish first (their files are whole).
    journal_pool_.join();
}

void agent::start() {
    // Metrics clients never take the descriptors the VMs, the journals
    // and the hooks need: at most half of what the limit leaves after 32
    // for the agent's own use and 3 per VM (its socket, a state file's
    // lock and temporary file).
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
        const std::size_t reserve = 32 + 3 * (opts_.vms.size() + opts_.file_vms.size());
        const std::size_t room = files.rlim_cur > reserve ? (files.rlim_cur - reserve) / 2 : 0;
        metrics_cap_ = std::max<std::size_t>(1, std::min(opts_.metrics_clients, room));
    } else {
        metrics_cap_ = opts_.metrics_clients;
    }
    if (!opts_.metrics_host.empty()) serve_metrics();  // first: an address that cannot be bound stops the start
    for (const auto& [n, s] : opts_.vms) add_vm(n, s);
    for (const auto& [n, s] : opts_.file_vms) add_vm(n, s);
    wait_signals();
    children_.async_wait([this](std::error_code ec, int) {
        if (!ec) reap();
    });
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

void agent::reload() {
    if (opts_.vms_file.empty() || stopping_) return;
    std::vector<std::pair<std::string, std::string>> listed;
    try {
        listed = read_vms_file(opts_.vms_file);
    } catch (const usage_error& e) {
        out_.emit({{"what", "error"},
                   {"error", e.what + "; still watching the " + std::to_string(vms_.size()) + " VM(s) it had"}});
        return;
    }
    std::set<std::string> names;
    for (const auto& [n, s] : opts_.vms) names.insert(n);
    for (const auto& [n, s] : listed)
        if (!names.insert(n).second) {
            out_.emit({{"what", "error"},
                       {"error", opts_.vms_file + ": the VM '" + n + "' is also given by --vm; still watching the " +
                                     std::to_string(vms_.size()) + " VM(s) it had"}});
            return;
        }
    std::vector<std::string> drop;
    for (const auto& [n, v] : vms_)
        if (!names.count(n)) drop.push_back(n);
    for (const auto& n : drop) remove_vm(n);
    for (const auto& [n, s] : listed) add_vm(n, s);
}

void agent::wait_signals() {
    signals_.async_wait([this](std::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) reload();
        else stop();
        if (!stopped_) wait_signals();
    });
}

// ---- stopping --------------------------------------------------------------------

bool agent::vms_busy() const {
    for (const auto& [n, v] : vms_)
        if (!v->idle()) return true;
    return !hooks_.empty();
}

void agent::stop() {
    if (stopping_) {
        // A second SIGTERM: no more waiting.
        stop_timer_.cancel();
        for (auto& [pid, h] : hooks_) ::kill(-pid, SIGKILL);
        return;
    }
    stopping_ = true;
    out_.emit({{"what", "stopping"}, {"extensions_running", vms_busy()}});
    if (acceptor_) acceptor_->close();
    accept_retry_.cancel();
    if (!vms_busy()) return finish_stop();
    // Running hooks get the grace period; then they and their process
    // groups are killed. What they did not finish stays `fired` in the
    // state, and the next start runs it again.
    stop_timer_.expires_after(opts_.stop_timeout);
    stop_timer_.async_wait([this](std::error_code ec) {
        if (ec || stopped_) return;
        out_.emit({{"what", "error"},
                   {"error", "hooks still running after the stop timeout: killed; the next start extends again"}});
        for (auto& [pid, h] : hooks_) ::kill(-pid, SIGKILL);
        if (hooks_.empty()) finish_stop();
    });
}

void agent::work_finished() {
    if (stopping_ && !stopped_ && !vms_busy()) asio::post(io_, [this] { finish_stop(); });
}

void agent::finish_stop() {
    if (stopped_) return;
    stopped_ = true;
    stop_timer_.cancel();
    for (auto& [n, v] : vms_) v->stop();
    signals_.cancel();
    children_.cancel();
    // io.run() returns once nothing is left: the journals' last saves
    // (posted to their thread) come back first.
    asio::post(io_, [this] { vms_.clear(); });
}

// ---- hooks -------------------------------------------------------------------------

void agent::run_hook(const std::vector<std::string>& env, std::function<void(int, bool)> done) {
    std::vector<std::string> all;
    for (char** e = environ; *e; ++e) all.emplace_back(*e);
    all.insert(all.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& s : all) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string sh = "/bin/sh", c = "-c", cmd = opts_.extend_cmd;
    char* argv[] = {sh.data(), c.data(), cmd.data(), nullptr};

    // Only stdin, stdout and stderr go to the hook: none of the agent's
    // sockets (QMP connections, the metrics listener) outlive it in a hook
    // that an agent's crash leaves behind. Its own process group, so that a
    // hook that hangs is killed with everything it started.
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);  // the hook's output goes to stderr, never into the JSON lines
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGCHLD, SIGHUP, SIGTERM, SIGINT}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        out_.emit({{"what", "error"}, {"error", std::string("cannot start the hook: ") + std::strerror(rc)}});
        return asio::post(io_, [done = std::move(done)] { done(127, false); });
    }
    hook h;
    h.done = std::move(done);
    h.timer = std::make_unique<asio::steady_timer>(io_, opts_.hook_timeout);
    h.timer->async_wait([this, pid](std::error_code ec) {
        if (ec) return;
        auto it = hooks_.find(pid);
        if (it == hooks_.end()) return;
        it->second.timed_out = true;
        ::kill(-pid, SIGKILL);  // the hook and whatever it started
    });
    hooks_.emplace(pid, std::move(h));
}

void agent::reap() {
    // Only our hooks: each by its pid, so no other child is ever reaped here.
    for (auto it = hooks_.begin(); it != hooks_.end();) {
        int status = 0;
        const pid_t r = ::waitpid(it->first, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR)) {
            ++it;
            continue;
        }
        hook h = std::move(it->second);
        const pid_t pid = it->first;
        it = hooks_.erase(it);
        h.timer->cancel();
        if (h.timed_out) ::kill(-pid, SIGKILL);  // what the hook left behind in its group
        const int code = r < 0 ? 127 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        h.done(code, h.timed_out);
    }
    if (stopping_ && !stopped_ && !vms_busy()) return finish_stop();
    if (stopped_) return;
    children_.async_wait([this](std::error_code ec, int) {
        if (!ec) reap();
    });
}

}  // namespace thin_agent
