// qmp-example-typed-commands: commands beyond the block layer, typed from
// QEMU's schema (the generated headers of include/qmp/qapi).
//
// A VM manager pauses and resumes guests, reads their state and their vCPUs.
// Here every command, reply and event is a C++ type: a misspelt member does
// not compile, and a state a newer QEMU adds still reads (as text). With the
// QEMU's own schema loaded, a call this QEMU cannot take (a command or an
// argument newer than it) is refused before it is sent, naming what it lacks.
//
//   qmp-example-typed-commands [--qemu-bindir DIR]     (default: /usr/bin)
#include <support/qemu.hpp>

#include <qmp/qapi/machine.hpp>    // query_cpus_fast, query_kvm
#include <qmp/qapi/run_state.hpp>  // query_status, stop, cont, STOP and RESUME events
#include <qmp/qapi/events.hpp>     // event_as
#include <qmp/qmp.hpp>

#include <iostream>

using namespace std::chrono_literals;

namespace {

// Waits for event E, as the typed struct.
template <class E>
E wait_for(qmp::sync_client& client) {
    for (;;) {
        std::error_code ec;
        auto ev = client.receive_event(10s);
        if (auto typed = qmp::event_as<E>(ev, ec)) return *typed;
        if (ec) throw std::system_error(ec, std::string(E::name));
    }
}

void print_status(qmp::sync_client& client) {
    const qmp::status_info st = client.execute(qmp::query_status{});
    std::cout << "status: " << st.status.text() << (st.running ? " (running)" : " (not running)") << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    const auto found = qmp_support::qemu_from_args(argc, argv, "qmp-example-typed-commands");
    if (!found) return 2;
    try {
        qmp_support::temp_dir dir;
        qmp_support::qemu_config cfg;
        cfg.kind = qmp_support::qemu_kind::system;
        cfg.extra = {"-smp", "2"};
        qmp_support::qemu_instance q(*found, dir, cfg);

        qmp::sync_client client;
        client.connect(asio::local::stream_protocol::endpoint(q.qmp_path()));
        const auto v = client.execute(qmp::query_version{});
        std::cout << "QEMU " << v.qemu.major << "." << v.qemu.minor << "." << v.qemu.micro << "\n";

        print_status(client);  // started with -S: prelaunch
        client.execute(qmp::cont{});
        const auto resumed = wait_for<qmp::resume_event>(client);
        std::cout << "event " << resumed.name << "\n";
        print_status(client);

        client.execute(qmp::stop{});
        const auto stopped = wait_for<qmp::stop_event>(client);
        std::cout << "event " << stopped.name << "\n";
        const qmp::status_info st = client.execute(qmp::query_status{});
        if (st.status != qmp::run_state::paused) throw std::runtime_error("not paused: " + std::string(st.status.text()));
        print_status(client);

        for (const auto& cpu : client.execute(qmp::query_cpus_fast{}))
            std::cout << "vCPU " << cpu.cpu_index << ": " << cpu.qom_path << ", thread " << cpu.thread_id
                      << ", target " << cpu.target.text() << "\n";
        const auto kvm = client.execute(qmp::query_kvm{});
        std::cout << "KVM: " << (kvm.present ? "present" : "absent") << ", " << (kvm.enabled ? "in use" : "not in use")
                  << "\n";

        // Checked against this QEMU: `compat-props` came in QEMU 9.1.
        client.load_schema();
        qmp::query_machines machines;
        machines.compat_props = true;
        std::error_code ec;
        qmp::diagnostics why;
        const auto listed = client.execute(machines, ec, why);
        if (ec == qmp::error::not_offered)
            std::cout << "refused before sending: " << why.message << "\n";
        else if (ec)
            throw qmp::qmp_error(ec, why);
        else
            std::cout << listed.size() << " machine types, with their compatibility properties\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qmp-example-typed-commands: " << e.what() << "\n";
        return 1;
    }
}
