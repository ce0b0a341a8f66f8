// qmp-thin-agent: keeps the thin storage of many VMs ahead of their guests,
// from one thread. See docs/agent.md.
//
// Exit codes: 0 stopped by SIGTERM/SIGINT (state kept); 2 bad arguments;
// 1 could not start (a metrics address that cannot be bound, ...).
#include "agent.hpp"

#include <sys/resource.h>

#include <iostream>

namespace {

int usage(const std::string& why) {
    if (!why.empty()) std::cerr << "qmp-thin-agent: " << why << "\n";
    std::cerr << "usage: qmp-thin-agent (--vm NAME=SOCKET)... [--vms-file FILE] [--spec SPEC] [--disk NAME]...\n"
                 "                      [--extend-cmd CMD] [--state-dir DIR] [--log json|text] [--metrics HOST:PORT]\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    thin_agent::options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= argc) return std::nullopt;
            return std::string(argv[++i]);
        };
        std::optional<std::string> v;
        if (a == "-h" || a == "--help") return usage(""), 0;
        if (!(v = value())) return usage(a + " needs a value");
        if (a == "--vm") {
            auto eq = v->find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == v->size()) return usage("--vm wants NAME=SOCKET, not " + *v);
            o.vms.emplace_back(v->substr(0, eq), v->substr(eq + 1));
        } else if (a == "--vms-file") {
            o.vms_file = *v;
        } else if (a == "--spec") {
            std::error_code ec;
            qmp::diagnostics why;
            auto spec = qmp::parse_threshold_spec(*v, ec, &why);
            if (!spec) return usage("--spec: " + why.message);
            o.spec = *spec;
        } else if (a == "--disk") {
            o.disks.insert(*v);
        } else if (a == "--extend-cmd") {
            o.extend_cmd = *v;
        } else if (a == "--state-dir") {
            o.state_dir = *v;
        } else if (a == "--log") {
            if (*v != "json" && *v != "text") return usage("--log is json or text");
            o.text_log = *v == "text";
        } else if (a == "--metrics") {
            if (v->rfind(':') == std::string::npos) return usage("--metrics wants HOST:PORT");
            o.metrics = *v;
        } else {
            return usage("unknown option " + a);
        }
    }
    if (o.vms.empty() && o.vms_file.empty()) return usage("no VM: give --vm NAME=SOCKET or --vms-file FILE");
    // One socket per VM: a fleet needs more descriptors than the usual soft
    // limit of 1024, so take what the hard limit allows (hooks inherit it).
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    try {
        asio::io_context io(1);
        thin_agent::agent agent(io, o);
        agent.start();
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "qmp-thin-agent: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
