// qmp-thin-agent: keeps the thin storage of many VMs ahead of their guests,
// from one thread. See docs/agent.md.
//
// Exit codes: 0 stopped by SIGTERM/SIGINT (state kept); 2 a bad command
// line or VMs file (one line on stderr, nothing started); 1 could not start
// (a metrics address that cannot be bound, ...).
#include "agent.hpp"

#include <qmp/version.hpp>

#include <csignal>
#include <iostream>

#include <sys/resource.h>

int main(int argc, char** argv) {
    thin_agent::options o;
    try {
        o = thin_agent::parse_command_line(argc, argv);
    } catch (const thin_agent::usage_error& e) {
        if (e.version) {
            std::cout << "qmp-thin-agent " << QMP_VERSION_STRING << "\n";
            return 0;
        }
        if (e.what.empty()) {  // --help
            std::cout << thin_agent::usage_text;
            return 0;
        }
        std::cerr << "qmp-thin-agent: " << e.what << "\n" << thin_agent::usage_text;
        return 2;
    }
    // A closed stdout is an error to report, not a reason to die.
    std::signal(SIGPIPE, SIG_IGN);
    // One socket per VM: a fleet needs more descriptors than the usual soft
    // limit of 1024, so take what the hard limit allows (hooks get it too).
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
