// The threshold journal: the one way threshold state reaches disk, shared
// safely by every process that keeps state for the same VM (the agent,
// qmpctl, an application). A save takes the file's lock, merges what
// another writer changed since this journal last read or wrote the file
// (merge_states: each side keeps what it changed), and replaces the file
// atomically and durably (state_file). Reading needs no lock: the file is
// replaced whole.
//
// A save can run off the thread that serves the VMs: prepare_save() makes
// a job that holds everything it needs, its run() does the file work (the
// fsyncs) anywhere, and finish_save() takes the outcome back where the
// journal lives. A threshold service does that when given an executor for
// it (threshold_service_options::journal_executor).
//
// Errors: threshold_error::invalid_state for a file that does not validate
// (naming the member), threshold_error::journal_failed for one that cannot
// be read, locked or written (naming the file and the system's reason).
//
// Not thread-safe: one owner calls it (or its jobs' finish_save()).
#pragma once

#include <qmp/error.hpp>
#include <qmp/json/wire.hpp>
#include <qmp/threshold/error.hpp>
#include <qmp/threshold/state_file.hpp>
#include <qmp/threshold/types.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <sys/stat.h>

namespace qmp {

class threshold_journal {
    // Which version of the file is there: every write renames a new file
    // in, so the inode (with size and time) tells versions apart.
    struct version_t {
        bool exists = false;
        unsigned long long inode = 0, size = 0;
        long long mtime_ns = 0;
        friend bool operator==(const version_t& a, const version_t& b) {
            return a.exists == b.exists && a.inode == b.inode && a.size == b.size && a.mtime_ns == b.mtime_ns;
        }
    };
    static version_t on_disk(const std::string& path) {
        struct stat st {};
        version_t v;
        if (::stat(path.c_str(), &st) != 0) return v;
        v.exists = true;
        v.inode = st.st_ino;
        v.size = static_cast<unsigned long long>(st.st_size);
        v.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
        return v;
    }
    // The file, validated; absent: a fresh state. `v` is the version read.
    static std::error_code read(const state_file& f, threshold_state& out, version_t& v, diagnostics* diag) {
        v = on_disk(f.path());
        std::optional<std::string> text;
        if (f.read_text(text, diag)) return threshold_error::journal_failed;
        out = threshold_state{};
        if (!text) return {};
        diagnostics d;
        if (convert_text(*text, out, &d)) {
            if (diag) *diag = {{}, f.path() + " is not a valid threshold state: " + d.message};
            return threshold_error::invalid_state;
        }
        return {};
    }

public:
    /// The journal of the file at `path`; `lock_wait` bounds the wait for
    /// another process that holds its lock.
    explicit threshold_journal(std::string path, std::chrono::milliseconds lock_wait = std::chrono::seconds(30))
        : file_(std::make_unique<state_file>(std::move(path))), lock_wait_(lock_wait) {}

    const std::string& path() const noexcept { return file_->path(); }

    /// Reads the file, strictly (a bad file is threshold_error::invalid_state
    /// naming the member, or the system's error naming the file); absent, it
    /// is a fresh state. What it read becomes the base of later merges.
    std::error_code load(threshold_state& out, diagnostics* diag = nullptr) {
        threshold_state s;
        version_t v;
        if (auto ec = read(*file_, s, v, diag)) return ec;
        base_ = s;
        base_version_ = v;
        out = std::move(s);
        return {};
    }

    /// True when another process replaced the file since this journal last
    /// read or wrote it (one stat).
    bool changed_on_disk() const { return !(on_disk(path()) == base_version_); }

    /// What another process wrote since: `theirs` (nullopt when nothing
    /// changed) and in `base` what this journal had before, for
    /// merge_states(base, mine, *theirs).
    std::error_code read_changes(std::optional<threshold_state>& theirs, threshold_state& base,
                                 diagnostics* diag = nullptr) {
        theirs.reset();
        if (!changed_on_disk()) return {};
        threshold_state s;
        version_t v;
        if (auto ec = read(*file_, s, v, diag)) return ec;
        base = std::exchange(base_, s);
        base_version_ = v;
        theirs = std::move(s);
        return {};
    }

    /// Holds the file's lock (until unlock()) across a whole
    /// read-modify-write: load(), change, save(); nothing changes under the
    /// holder, and its saves need no merge.
    std::error_code lock(diagnostics* diag = nullptr) {
        if (file_->lock(lock_wait_, diag)) return threshold_error::journal_failed;
        return {};
    }
    void unlock() noexcept { file_->unlock(); }
    bool locked() const noexcept { return file_->locked(); }

    /// Writes `mine` now (merged with what another writer changed since,
    /// unless the lock is held); on success `mine` is what was written.
    std::error_code save(threshold_state& mine, diagnostics* diag = nullptr) {
        pending_save job = prepare_save(mine);
        job.run();
        return finish_save(job, mine, diag);
    }

    /// A save that can run on another thread. One at a time per journal:
    /// prepare the next only after finish_save() of the last.
    class pending_save {
    public:
        /// Does the file work (lock, read, merge, write, fsync): anywhere.
        void run() {
            diagnostics d;
            // Its own descriptor for the lock: nothing of the owner's is touched here.
            state_file f(path_);
            if (!locked_by_owner_ && f.lock(lock_wait_, &d)) return fail(threshold_error::journal_failed, d);
            threshold_state out = mine_;
            if (!locked_by_owner_ && !(on_disk(path_) == base_version_)) {
                threshold_state theirs;
                version_t v;
                if (auto ec = read(f, theirs, v, &d)) return fail(ec, d);
                out = merge_states(base_, mine_, theirs);
            }
            const bool failed = static_cast<bool>(f.write(json(out), &d));
            const version_t written = on_disk(path_);
            if (failed) return fail(threshold_error::journal_failed, d);
            ec_.clear();
            written_ = std::move(out);
            written_version_ = written;
        }

    private:
        friend class threshold_journal;
        void fail(std::error_code ec, const diagnostics& d) {
            ec_ = ec;
            diag_ = d;
        }

        std::string path_;
        std::chrono::milliseconds lock_wait_{};
        bool locked_by_owner_ = false;
        threshold_state base_;
        version_t base_version_;
        threshold_state mine_;
        std::error_code ec_ = make_error_code(std::errc::operation_canceled);  // until run() ran
        diagnostics diag_{{}, "the save never ran"};
        threshold_state written_;
        version_t written_version_;
    };

    /// The job for saving `mine`: run() it anywhere, then finish_save().
    pending_save prepare_save(const threshold_state& mine) const {
        pending_save j;
        j.path_ = file_->path();
        j.lock_wait_ = lock_wait_;
        j.locked_by_owner_ = file_->locked();
        j.base_ = base_;
        j.base_version_ = base_version_;
        j.mine_ = mine;
        return j;
    }

    /// Takes a job's outcome: on success `written` is what the file holds
    /// now, and the base of later merges.
    std::error_code finish_save(pending_save& job, threshold_state& written, diagnostics* diag = nullptr) {
        if (job.ec_) {
            if (diag) *diag = job.diag_;
            return job.ec_;
        }
        base_ = job.written_;
        base_version_ = job.written_version_;
        written = std::move(job.written_);
        return {};
    }

private:
    std::unique_ptr<state_file> file_;  // the owner's lock, held across a read-modify-write
    std::chrono::milliseconds lock_wait_;
    threshold_state base_;
    version_t base_version_;
};

}  // namespace qmp
