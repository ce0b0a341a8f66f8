// A state file on disk, safe under concurrency and crashes: it is replaced
// atomically (a unique temporary file beside it, fsync of the file, rename,
// fsync of the folder) and changed under an advisory lock (flock on
// `FILE.lock`) held across the whole read-modify-write, so concurrent
// processes serialise instead of losing or corrupting each other's updates.
// A reader never needs to write: in a read-only folder reading still works
// (renames are atomic, so an unlocked reader sees one whole version).
// POSIX only, like QMP's unix sockets.
#pragma once

#include <qmp/client/backoff.hpp>
#include <qmp/error.hpp>
#include <qmp/protocol/message.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qmp {

class state_file {
public:
    explicit state_file(std::string path) : path_(std::move(path)) {}
    ~state_file() { unlock(); }
    state_file(const state_file&) = delete;
    state_file& operator=(const state_file&) = delete;

    const std::string& path() const noexcept { return path_; }
    bool locked() const noexcept { return lock_fd_ >= 0; }

    /// Takes the exclusive lock, waiting up to `timeout` for another process
    /// to release it. Fails (with the errno) when `FILE.lock` cannot be
    /// created, e.g. in a read-only folder: whoever cannot lock cannot write.
    std::error_code lock(std::chrono::milliseconds timeout, diagnostics* diag = nullptr) {
        if (lock_fd_ >= 0) return {};
        const std::string lp = path_ + ".lock";
        int fd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return fail_errno("cannot create the lock file " + lp, diag);
        backoff_series waits(backoff{std::chrono::milliseconds(1), std::chrono::milliseconds(50), 0.0,
                                     std::max(timeout, std::chrono::milliseconds(1))});
        for (;;) {
            if (::flock(fd, LOCK_EX | LOCK_NB) == 0) break;
            if (errno != EWOULDBLOCK && errno != EINTR) {
                std::error_code ec = fail_errno("cannot lock " + lp, diag);
                ::close(fd);
                return ec;
            }
            auto wait = waits.next();
            if (!wait) {
                ::close(fd);
                if (diag) *diag = {{}, "another process holds " + lp + " (waited " + std::to_string(timeout.count()) + " ms)"};
                return std::make_error_code(std::errc::resource_unavailable_try_again);
            }
            std::this_thread::sleep_for(*wait);
        }
        lock_fd_ = fd;
        return {};
    }

    void unlock() noexcept {
        if (lock_fd_ < 0) return;
        ::flock(lock_fd_, LOCK_UN);
        ::close(lock_fd_);
        lock_fd_ = -1;
    }

    /// Reads the file's text: `out` is empty when the file does not exist.
    std::error_code read_text(std::optional<std::string>& out, diagnostics* diag = nullptr) const {
        out.reset();
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) return {};
            return fail_errno("cannot open " + path_, diag);
        }
        std::string text;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                std::error_code ec = fail_errno("cannot read " + path_, diag);
                ::close(fd);
                return ec;
            }
            if (n == 0) break;
            text.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        out = std::move(text);
        return {};
    }

    /// Replaces the file with `j` atomically and durably. Call with the lock
    /// held (lock() first) when other processes may write too.
    std::error_code write(const json& j, diagnostics* diag = nullptr) {
        const std::string text = j.dump(2) + "\n";
        std::string tmp = path_ + ".XXXXXX";
        int fd = ::mkstemp(tmp.data());
        if (fd < 0) return fail_errno("cannot create a temporary file beside " + path_, diag);
        ::fchmod(fd, 0644);
        std::size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return abandon(fd, tmp, "cannot write " + tmp, diag);
            done += static_cast<std::size_t>(n);
        }
        if (::fsync(fd) != 0) return abandon(fd, tmp, "cannot sync " + tmp, diag);
        if (::close(fd) != 0) {
            std::error_code ec = fail_errno("cannot write " + tmp, diag);
            ::unlink(tmp.c_str());
            return ec;
        }
        if (::rename(tmp.c_str(), path_.c_str()) != 0) {
            std::error_code ec = fail_errno("cannot replace " + path_, diag);
            ::unlink(tmp.c_str());
            return ec;
        }
        // The rename itself is durable once the folder is.
        int dfd = ::open(folder().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
        return {};
    }

    /// The folder the file lives in.
    std::string folder() const {
        auto slash = path_.rfind('/');
        if (slash == std::string::npos) return ".";
        if (slash == 0) return "/";
        return path_.substr(0, slash);
    }

private:
    static std::error_code fail_errno(const std::string& what, diagnostics* diag) {
        const int e = errno;
        if (diag) *diag = {{}, what + ": " + std::strerror(e)};
        return {e, std::system_category()};
    }
    static std::error_code abandon(int fd, const std::string& tmp, const std::string& what, diagnostics* diag) {
        std::error_code ec = fail_errno(what, diag);
        ::close(fd);
        ::unlink(tmp.c_str());
        return ec;
    }

    std::string path_;
    int lock_fd_ = -1;
};

}  // namespace qmp
