// qmpctl's --state file.
#include "state.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include <sys/stat.h>

namespace qmpctl {

state_store::state_store(const cli& c)
    : file_(c.state_file), lock_wait_(c.timeout ? to_ms(*c.timeout) : std::chrono::milliseconds(30000)) {}

namespace {

// The whole file, or nullopt when it does not exist.
std::optional<std::string> read_all(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        if (errno == ENOENT) return std::nullopt;
        throw state_failure{"cannot read the state file " + path + ": " + std::strerror(errno)};
    }
    std::string content;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) content.append(buf, n);
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) throw state_failure{"cannot read the state file " + path};
    return content;
}

}  // namespace

state_store::version state_store::on_disk() const {
    struct stat st {};
    version v;
    if (::stat(file_.path().c_str(), &st) != 0) return v;
    v.exists = true;
    v.inode = st.st_ino;
    v.size = static_cast<unsigned long long>(st.st_size);
    v.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    return v;
}

std::optional<qmp::threshold_state> state_store::read_file() {
    const version v = on_disk();
    auto content = read_all(file_.path());
    if (!content) return std::nullopt;
    // From the text: the strict loader also refuses repeated members.
    qmp::threshold_state s;
    qmp::diagnostics d;
    if (qmp::convert_text(*content, s, &d))
        throw state_failure{"the state file " + file_.path() + " is not valid: " + d.message};
    base_version_ = v;
    return s;
}

qmp::threshold_state state_store::load() {
    base_ = {};
    base_version_ = {};
    if (!enabled()) return base_;
    if (auto s = read_file()) base_ = std::move(*s);
    return base_;
}

void state_store::lock() {
    if (!enabled() || file_.locked()) return;
    qmp::diagnostics d;
    if (file_.lock(lock_wait_, &d)) throw state_failure{"cannot lock the state file: " + d.message};
}

qmp::threshold_state state_store::save(const qmp::threshold_state& mine) {
    if (!enabled()) return mine;
    qmp::threshold_state out = mine;
    const bool was_locked = file_.locked();
    if (!was_locked) {
        lock();
        if (!(on_disk() == base_version_)) {  // someone else wrote since: merge
            qmp::threshold_state theirs;
            if (auto s = read_file()) theirs = std::move(*s);
            out = qmp::merge_states(base_, mine, theirs);
        }
    }
    qmp::diagnostics d;
    std::error_code ec = file_.write(qmp::json(out), &d);
    if (!was_locked) file_.unlock();
    if (ec) throw state_failure{"cannot write the state file: " + d.message};
    base_ = out;
    base_version_ = on_disk();
    return out;
}

void state_store::save_registry(const qmp::index_registry& registry) {
    if (!enabled()) return;
    if (registry == base_.registry) return;  // nothing new to keep
    qmp::threshold_state mine = base_;
    mine.registry = registry;
    try {
        save(mine);
    } catch (const state_failure& e) {
        std::cerr << "qmpctl: warning: the new indexes were not kept: " << e.what << "\n";
    }
}

bool state_store::changed_on_disk() const { return enabled() && !(on_disk() == base_version_); }

}  // namespace qmpctl
