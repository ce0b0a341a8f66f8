// Support for the examples, benchmarks and tests: the real QEMUs under test (Debian's 7.2 and the 10.0 the
// set-up script unpacks), qcow2 chains made with qemu-img, and a QEMU
// process (storage daemon or paused system emulator) started in a temporary
// directory and stopped by PID. INFO(q.log()) in a test shows QEMU's stderr
// when an assertion fails.
#pragma once

#include "process.hpp"

#include <asio/local/stream_protocol.hpp>

#include <chrono>
#include <cstring>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifndef QMP_QEMU10_PREFIX
#define QMP_QEMU10_PREFIX ""
#endif

namespace qmp_support {

struct qemu_build {
    std::string label;   // "7.2", "10.0"
    std::string bindir;  // where qemu-img, qemu-io, qemu-storage-daemon, qemu-system-x86_64 are

    std::string tool(const std::string& name) const { return bindir + "/" + name; }
};

/// An example's only option, `--qemu-bindir DIR` (default /usr/bin): the
/// QEMU to start, or nullopt after printing `usage` for anything else.
inline std::optional<qemu_build> qemu_from_args(int argc, char** argv, const char* usage) {
    qemu_build b{"system", "/usr/bin"};
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--qemu-bindir" && i + 1 < argc) {
            b.bindir = argv[++i];
        } else {
            std::cerr << "usage: " << usage << " [--qemu-bindir DIR]\n";
            return std::nullopt;
        }
    }
    return b;
}

/// Both QEMUs. A missing one is an error, not a skip: the set-up script
/// installs them.
inline std::vector<qemu_build> qemu_builds() {
    std::vector<qemu_build> v{{"7.2", "/usr/bin"}, {"10.0", std::string(QMP_QEMU10_PREFIX) + "/usr/bin"}};
    for (auto& b : v)
        if (access(b.tool("qemu-storage-daemon").c_str(), X_OK) != 0)
            throw std::runtime_error("QEMU " + b.label + " not found in " + b.bindir + " (run scripts/setup.sh)");
    return v;
}

/// How each image names its backing file: by absolute path, or by a name
/// relative to the image's folder, as oVirt/vdsm lay out their chains (QEMU
/// then describes each node whose backing it was told with a `json:`
/// pseudo-filename that embeds the whole backing tree: much bigger replies).
enum class chain_layout { absolute, relative };

inline const char* to_string(chain_layout l) { return l == chain_layout::absolute ? "absolute" : "relative"; }

/// Creates `depth` qcow2 images `<stem>-0.qcow2` (base) .. `<stem>-<depth-1>`
/// (top), each backed by the previous. Returns the paths, base first.
inline std::vector<std::string> make_chain(const qemu_build& b, const temp_dir& dir, const std::string& stem,
                                           int depth, const std::string& size = "64M",
                                           chain_layout layout = chain_layout::absolute) {
    std::vector<std::string> files;
    for (int i = 0; i < depth; ++i) {
        std::string f = dir.file(stem + "-" + std::to_string(i) + ".qcow2");
        if (i == 0) {
            run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", f, size});
        } else {
            std::string backing = files.back();
            if (layout == chain_layout::relative) backing = backing.substr(backing.rfind('/') + 1);  // same folder
            run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", f});
        }
        files.push_back(f);
    }
    return files;
}

/// `--blockdev`/`-blockdev` values for a chain made by make_chain: nodes
/// `<stem>-<i>-file` and `<stem>-<i>-fmt`; the top format node is
/// `<stem>-<depth-1>-fmt`.
inline std::vector<std::string> chain_blockdevs(const std::vector<std::string>& files, const std::string& stem) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < files.size(); ++i) {
        std::string n = stem + "-" + std::to_string(i);
        out.push_back("{\"driver\":\"file\",\"node-name\":\"" + n + "-file\",\"filename\":\"" + files[i] + "\"}");
        std::string fmt = "{\"driver\":\"qcow2\",\"node-name\":\"" + n + "-fmt\",\"file\":\"" + n + "-file\"";
        if (i > 0) fmt += ",\"backing\":\"" + stem + "-" + std::to_string(i - 1) + "-fmt\"";
        out.push_back(fmt + "}");
    }
    return out;
}

enum class qemu_kind { storage_daemon, system };

struct qemu_config {
    qemu_kind kind = qemu_kind::storage_daemon;
    bool pretty = false;
    std::vector<std::string> blockdevs;  // JSON blockdev definitions
    std::string nbd_export_node;         // storage daemon: export this node as "vda"
    std::vector<std::string> extra;      // appended to the command line
    bool wait_ready = true;              // false: return as soon as the QMP socket listens (see qemu_instance)
    std::string machine = "q35";         // system emulator: the machine type (SeaBIOS boots IDE disks on "pc")
};

/// One QMP session on the unix socket `path`, by hand: greeting,
/// qmp_capabilities, its reply, each within `timeout_ms`. True when all came.
inline bool qmp_session_works(const std::string& path, int timeout_ms) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    std::string buf;
    auto read_until = [&](const char* needle) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (buf.find(needle) == std::string::npos) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            pollfd p{s, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
            char tmp[4096];
            ssize_t n = ::read(s, tmp, sizeof tmp);
            if (n <= 0) return false;
            buf.append(tmp, static_cast<std::size_t>(n));
        }
        return true;
    };
    static const std::string caps = "{\"execute\": \"qmp_capabilities\"}\n";
    bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && read_until("\"QMP\"") &&
              ::send(s, caps.data(), caps.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(caps.size()) &&
              read_until("\"return\"");
    ::close(s);
    return ok;
}

/// QEMU ended before it was ready: how (a signal, or an exit status) and its log.
struct died_at_start : std::runtime_error {
    died_at_start(const qemu_build& b, const child_process& p)
        : std::runtime_error("QEMU " + b.label + " ended at start (" + p.how_it_ended() + "):\n" + p.log()),
          by_signal(p.how_it_ended().rfind("signal", 0) == 0) {}
    bool by_signal;
};

/// One QEMU process with a QMP socket (and an NBD socket when asked).
class qemu_instance {
public:
    qemu_instance(const qemu_build& b, const temp_dir& dir, const qemu_config& cfg, const std::string& name = "qemu")
        : build_(b), qmp_path_(dir.file(name + ".qmp")), nbd_path_(dir.file(name + ".nbd")) {
        std::vector<std::string> argv;
        std::string mon_opts = cfg.pretty ? ",pretty=on" : "";
        if (cfg.kind == qemu_kind::storage_daemon) {
            argv = {b.tool("qemu-storage-daemon"), "--chardev",
                    "socket,path=" + qmp_path_ + ",server=on,wait=off,id=c0", "--monitor", "chardev=c0" + mon_opts};
            for (auto& bd : cfg.blockdevs) argv.insert(argv.end(), {"--blockdev", bd});
            if (!cfg.nbd_export_node.empty())
                argv.insert(argv.end(),
                            {"--nbd-server", "addr.type=unix,addr.path=" + nbd_path_, "--export",
                             "nbd,id=e0,node-name=" + cfg.nbd_export_node + ",writable=on,name=vda"});
        } else {
            argv = {b.tool("qemu-system-x86_64"), "-M", cfg.machine + ",accel=tcg", "-S", "-nodefaults", "-display", "none",
                    "-chardev", "socket,path=" + qmp_path_ + ",server=on,wait=off,id=c0", "-mon",
                    "chardev=c0,mode=control" + mon_opts};
            for (auto& bd : cfg.blockdevs) argv.insert(argv.end(), {"-blockdev", bd});
        }
        argv.insert(argv.end(), cfg.extra.begin(), cfg.extra.end());
        // QEMU 7.2 and 10.0 occasionally die by a signal in their first
        // milliseconds, while a client connects as they open their monitor
        // (seen as SIGSEGV about once in a few thousand starts; docs/client.md).
        // That is QEMU's start-up hazard, not the behaviour under test: such a
        // start is made again, at most twice more, and said on stderr. An exit
        // with a status (a bad command line) is an error at once.
        for (int attempt = 1;; ++attempt) {
            try {
                proc_.start(argv, dir.file(name + ".log"));
                wait_listening(qmp_path_);
                if (cfg.kind == qemu_kind::storage_daemon && !cfg.nbd_export_node.empty()) wait_listening(nbd_path_);
                if (cfg.wait_ready) wait_ready();
                return;
            } catch (const died_at_start& e) {
                if (!e.by_signal || attempt == 3) throw;
                std::cerr << "note: " << e.what() << "; starting it again\n";
            }
        }
    }

    /// Waits until one whole QMP session works, then lets QEMU settle. Right
    /// after start QEMU 7.2 and 10.0 sometimes greet a client twice, never
    /// greet it, or close the connection that follows an earlier one (see
    /// docs/client.md); once a session has worked and 100 ms have passed,
    /// none of that was seen in 600 starts.
    void wait_ready() {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!qmp_session_works(qmp_path_, 2000)) {
            if (!proc_.running()) throw died_at_start(build_, proc_);
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("QEMU " + build_.label + " never completed a QMP session:\n" + proc_.log());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }

    /// Waits (20 s at most) until QEMU listens on the unix socket `path`: its
    /// QMP and NBD sockets, or one it was given in qemu_config::extra.
    void wait_listening(const std::string& path) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!unix_socket_listening(path)) {
            if (!proc_.running()) throw died_at_start(build_, proc_);
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("QEMU " + build_.label + " socket " + path + " did not appear:\n" +
                                         proc_.log());
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    const std::string& qmp_path() const noexcept { return qmp_path_; }
    asio::local::stream_protocol::endpoint qmp_endpoint() const {
        return asio::local::stream_protocol::endpoint(qmp_path_);
    }
    const std::string& nbd_path() const noexcept { return nbd_path_; }
    child_process& process() noexcept { return proc_; }
    std::string log() const { return proc_.log(); }
    const qemu_build& build() const noexcept { return build_; }

    /// Writes `len` bytes of 0xab at `offset` through the NBD export `name`
    /// (extra exports go in qemu_config::extra as `--export nbd,...,name=N`).
    int nbd_write(std::uint64_t offset, std::uint64_t len, std::string* out = nullptr,
                  const std::string& name = "vda") const {
        return run({build_.tool("qemu-io"), "-f", "raw", "nbd+unix:///" + name + "?socket=" + nbd_path_, "-c",
                    "write -P 0xab " + std::to_string(offset) + " " + std::to_string(len)},
                   out);
    }

private:
    qemu_build build_;
    std::string qmp_path_;
    std::string nbd_path_;
    child_process proc_;
};

}  // namespace qmp_support
