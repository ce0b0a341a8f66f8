// qmpctl's --state file: one VM's threshold_state (index registry, armed
// thresholds, the QEMU instance), read strictly, written atomically under
// the advisory lock. One-shot subcommands hold the lock across their whole
// read-modify-write; a long-running watch merges (three-way) on each save.
#pragma once

#include "cli.hpp"

#include <qmp/threshold/state_file.hpp>
#include <qmp/threshold/types.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace qmpctl {

/// The state file cannot be used: exit code 6, with this sentence.
struct state_failure {
    std::string what;
};

class state_store {
public:
    explicit state_store(const cli& c);

    bool enabled() const noexcept { return !file_.path().empty(); }

    /// Reads and validates the file (absent: a fresh state). It becomes
    /// the base of later merges.
    qmp::threshold_state load();

    /// Takes the lock for a whole read-modify-write (then load()).
    void lock();
    bool locked() const noexcept { return file_.locked(); }

    /// Writes `mine`. Under the lock: as it is. Otherwise: lock, read what
    /// others wrote, merge, write, unlock. Returns what was written.
    qmp::threshold_state save(const qmp::threshold_state& mine);

    /// For chain and resolve: keeps the numbers they handed out, if the
    /// file can be written; a read-only folder only costs a warning.
    void save_registry(const qmp::index_registry& registry);

    /// True when another process replaced the file since we last read or wrote it.
    bool changed_on_disk() const;

private:
    std::optional<qmp::threshold_state> read_file();
    // Which version of the file the base is: every write renames a new
    // file in, so the inode (with size and time) tells versions apart.
    struct version {
        bool exists = false;
        unsigned long long inode = 0, size = 0;
        long long mtime_ns = 0;
        bool operator==(const version& o) const {
            return exists == o.exists && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
        }
    };
    version on_disk() const;

    qmp::state_file file_;
    std::chrono::milliseconds lock_wait_;
    qmp::threshold_state base_;
    version base_version_;
};

}  // namespace qmpctl
