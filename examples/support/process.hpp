// Support for the examples, benchmarks and tests: temporary directories, child processes started and stopped
// by PID, and commands run to completion. POSIX only, like QEMU's sockets.
#pragma once

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace qmp_support {

namespace fs = std::filesystem;

/// A fresh directory under $TMPDIR, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "qmp-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~temp_dir() {
        if (keep_) return;
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    /// Leaves the directory in place.
    void keep() noexcept { keep_ = true; }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const fs::path& path() const noexcept { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
    bool keep_ = false;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Runs argv to completion; returns the exit status, output in `out`
/// (stdout and stderr together).
inline int run(const std::vector<std::string>& argv, std::string* out = nullptr) {
    char tmpl[] = "/tmp/qmp-run-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (rc != 0) {
        unlink(tmpl);
        throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (out) *out = read_file(tmpl);
    unlink(tmpl);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Starts argv without waiting for it: stdout to the file `out` (or to the
/// descriptor `out_fd` when given), stderr to the file `err` ("" for
/// /dev/null, both). Reap it with wait_exit().
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err,
                   int out_fd = -1) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, out.empty() ? "/dev/null" : out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.empty() ? "/dev/null" : err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    return pid;
}

/// Waits for a child started by spawn(); its exit status (128 + signal).
inline int wait_exit(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Like run(), but throws with the output when the command fails.
inline std::string run_checked(const std::vector<std::string>& argv) {
    std::string out;
    int rc = run(argv, &out);
    if (rc != 0) {
        std::string cmd;
        for (auto& a : argv) cmd += a + " ";
        throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
    }
    return out;
}

/// True once a socket bound to `path` is listening, read from
/// /proc/net/unix so that the check itself opens no connection.
inline bool unix_socket_listening(const std::string& path) {
    std::ifstream in("/proc/net/unix");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        // Num RefCount Protocol Flags Type St Inode Path
        std::istringstream f(line);
        std::string num, refs, proto, flags, type, st, inode, p;
        if (!(f >> num >> refs >> proto >> flags >> type >> st >> inode >> p)) continue;
        if (p != path) continue;
        constexpr unsigned long accepting = 0x10000;  // __SO_ACCEPTCON: listen() was called
        if (std::stoul(flags, nullptr, 16) & accepting) return true;
    }
    return false;
}

/// A child process we started; stopped by PID (SIGTERM, then SIGKILL).
class child_process {
public:
    child_process() = default;
    child_process(const std::vector<std::string>& argv, const std::string& log_path) { start(argv, log_path); }
    ~child_process() { stop(); }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    void start(const std::vector<std::string>& argv, const std::string& log_path) {
        log_ = log_path;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) {
            pid_ = -1;
            throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
        }
    }

    pid_t pid() const noexcept { return pid_; }
    /// How it ended, once running() saw it end: "exit N" or "signal N".
    std::string how_it_ended() const {
        return WIFSIGNALED(exit_status_) ? "signal " + std::to_string(WTERMSIG(exit_status_))
                                         : "exit " + std::to_string(WEXITSTATUS(exit_status_));
    }

    /// True while the child has not exited (reaps it when it has).
    bool running() {
        if (pid_ <= 0) return false;
        int status;
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            pid_ = -1;
            exit_status_ = status;
            return false;
        }
        return true;
    }

    void signal(int sig) {
        if (pid_ > 0) ::kill(pid_, sig);
    }

    /// Stops the child: SIGTERM, up to 3 s, then SIGKILL. Idempotent.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);  // a SIGSTOPped child must be able to act on SIGTERM
        ::kill(pid_, SIGTERM);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (running()) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                int status;
                waitpid(pid_, &status, 0);
                pid_ = -1;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    /// Kills with SIGKILL and reaps.
    void kill_now() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    std::string log() const { return log_.empty() ? std::string() : read_file(log_); }

    /// Forgets the child: it keeps running after this object is gone.
    void release() noexcept { pid_ = -1; }

private:
    pid_t pid_ = -1;
    int exit_status_ = 0;
    std::string log_;
};

}  // namespace qmp_support
