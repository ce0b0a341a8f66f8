#include "agent.hpp"
#include "vm.hpp"

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
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


}  // namespace thin_agent
