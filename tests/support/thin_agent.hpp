// Test support for qmp-thin-agent's tests: VMs on thin storage with a
// second monitor each and a hook that grows an element's window through it
// (lvextend in miniature), the agent's output lines, its metrics endpoint.
#pragma once

#include "thin_vm.hpp"
#include "tool_paths.hpp"

#include <support/process.hpp>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#ifdef QMP_BIN_DIR

namespace qmp_test {

using namespace qmp_support;
using namespace std::chrono_literals;

inline unsigned short free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

inline std::string http_get(unsigned short port, const std::string& path) {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    asio::write(s, asio::buffer(req));
    std::string out;
    std::error_code ec;
    char buf[4096];
    for (;;) {
        std::size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        out.append(buf, n);
    }
    return out;
}

// Lines of the agent's stdout with "what" == `what` (and "vm" == `vm`).
inline std::vector<nlohmann::json> lines(const std::string& file, const std::string& what, const std::string& vm = "") {
    std::vector<nlohmann::json> out;
    std::ifstream f(file);
    std::string line;
    while (std::getline(f, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded()) continue;
        if (j.value("what", "") == what && (vm.empty() || j.value("vm", "") == vm)) out.push_back(j);
    }
    return out;
}

inline bool wait_for(const std::function<bool()>& f, std::chrono::milliseconds total = 30s) {
    const auto end = std::chrono::steady_clock::now() + total;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return f();
}

// VMs on thin storage with a second monitor each, and the hook that grows
// an element's window by 32 MiB through it (the file node is named like
// the thin node), logging each call.
struct fleet {
    temp_dir work;
    std::vector<std::unique_ptr<thin_vm>> vms;
    std::vector<std::string> second;
    std::string hook, out, err;

    // guest: system emulators whose guest writes its disk (see thin_vm),
    // with a window of 8 MiB on a 32 MiB disk. hook_delay: seconds the hook
    // waits before it grows anything (a slow lvextend). prelude: shell
    // lines the hook runs first.
    fleet(const qemu_build& b, int n, bool guest = false, int hook_delay = 0, const std::string& prelude = "") {
        for (int i = 0; i < n; ++i) {
            if (guest)
                vms.push_back(std::make_unique<thin_vm>(thin_vm::guest, b, std::vector<std::pair<std::string, int>>{{"vda", 2}},
                                                        8u << 20, "32M"));
            else
                vms.push_back(std::make_unique<thin_vm>(b, std::vector<std::pair<std::string, int>>{{"vda", 2}}, 16u << 20));
            second.push_back(vms.back()->with_second_monitor());
        }
        hook = work.file("extend.sh");
        std::ofstream h(hook);
        h << "#!/bin/sh\nset -e\ncase \"$QMP_VM\" in\n";
        for (int i = 0; i < n; ++i) h << "vm" << i << ") SOCK='" << second[static_cast<std::size_t>(i)] << "';;\n";
        h << "esac\n" << prelude;
        if (guest && hook_delay)  // a slow lvextend: the guest fills its window first and QEMU stops it
            h << "for i in $(seq " << hook_delay * 600 << "); do '" << qmpctl()
              << "' -s \"$SOCK\" exec query-status | grep -q io-error && break; sleep 0.1; done\n";
        else if (hook_delay)
            h << "sleep " << hook_delay << "\n";
        h << "NEW=$((QMP_CAPACITY + 33554432))\n"
          << "'" << qmpctl() << "' -s \"$SOCK\" exec blockdev-reopen "
          << "\"{\\\"options\\\": [{\\\"driver\\\": \\\"raw\\\", \\\"node-name\\\": \\\"$QMP_NODE\\\", "
             "\\\"file\\\": \\\"${QMP_NODE%-thin}-file\\\", \\\"offset\\\": 0, \\\"size\\\": $NEW}]}\" >/dev/null\n"
          << "echo \"$QMP_VM $QMP_TARGET $QMP_NODE $QMP_CAPACITY $QMP_RECOVERED\" >> '" << work.file("hook.log") << "'\n";
        out = work.file("agent.out");
        err = work.file("agent.err");
    }
    std::string socket(int i) const { return vms[static_cast<std::size_t>(i)]->q->qmp_path(); }
    /// Waits until the agent said it armed VM `i`.
    bool armed(int i) const {
        return wait_for([&] { return !lines(out, "armed", "vm" + std::to_string(i)).empty(); });
    }
    /// Writes 12 MiB through VM `i`'s export: past a threshold armed 6 MiB
    /// below the end of its 16 MiB window.
    int cross(int i) const { return vms[static_cast<std::size_t>(i)]->q->nbd_write(0, 12u << 20); }
    std::vector<std::string> hook_calls(const std::string& vm) const {
        std::vector<std::string> calls;
        std::ifstream f(work.file("hook.log"));
        std::string line;
        while (std::getline(f, line))
            if (line.rfind(vm + " ", 0) == 0) calls.push_back(line);
        return calls;
    }
};

}  // namespace qmp_test

#endif
