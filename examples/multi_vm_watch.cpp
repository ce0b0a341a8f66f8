// One event loop watching write thresholds on several VMs at once: one
// io_context, one asynchronous client per VM, each with a receive loop that
// never blocks the others. A lost-events marker tells which VM needs a
// resync (here: reading write_threshold back).
//
//   qmp-example-multi-vm [--qemu-bindir DIR]
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

#include <future>
#include <iostream>
#include <memory>
#include <thread>

namespace {

struct watched_vm {
    std::string name;
    std::unique_ptr<qmp_support::qemu_instance> qemu;
    std::unique_ptr<qmp::unix_client> client;
};

// Receives events for one VM; when every VM reported, closes all clients,
// which ends io.run().
void receive_loop(watched_vm& vm, int& remaining, std::vector<watched_vm>& all) {
    vm.client->async_receive_event(std::chrono::seconds(20), [&vm, &remaining, &all](std::error_code ec, qmp::event ev) {
        if (ec) {
            std::cout << vm.name << ": stopped: " << ec.message() << "\n";
            return;
        } else if (ev.lost) {
            std::cout << vm.name << ": " << ev.lost << " events lost, resync needed\n";
        } else if (auto t = qmp::event_as<qmp::block_write_threshold_event>(ev, ec)) {
            std::cout << vm.name << ": " << t->node_name << " crossed " << t->write_threshold << "\n";
            if (--remaining == 0) {
                for (auto& v : all) v.client->close();
                return;
            }
        }
        receive_loop(vm, remaining, all);
    });
}

}  // namespace

int main(int argc, char** argv) {
    qmp_support::qemu_build qemu{"system", argc == 3 ? argv[2] : "/usr/bin"};
    qmp_support::temp_dir dir;
    asio::io_context io;
    std::vector<watched_vm> vms(3);
    int remaining = static_cast<int>(vms.size());
    std::promise<void> all_armed;  // the guests write once every threshold is armed
    std::size_t armed = 0;
    for (std::size_t i = 0; i < vms.size(); ++i) {
        auto& vm = vms[i];
        vm.name = "vm" + std::to_string(i);
        auto images = qmp_support::make_chain(qemu, dir, vm.name, 1);
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(images, vm.name);
        cfg.nbd_export_node = vm.name + "-0-fmt";
        vm.qemu = std::make_unique<qmp_support::qemu_instance>(qemu, dir, cfg, vm.name);
        vm.client = std::make_unique<qmp::unix_client>(io);
        auto ep = asio::local::stream_protocol::endpoint(vm.qemu->qmp_path());
        vm.client->async_connect(ep, [&vm, &remaining, &vms, &armed, &all_armed](std::error_code ec) {
            if (ec) return void(std::cerr << vm.name << ": " << ec.message() << "\n");
            vm.client->async_execute(qmp::block_set_write_threshold{vm.name + "-0-file", 1 << 20},
                                     [&vm, &remaining, &vms, &armed, &all_armed](std::error_code ec,
                                                                                 qmp::empty_result) {
                                         if (ec) return void(std::cerr << vm.name << ": " << ec.message() << "\n");
                                         receive_loop(vm, remaining, vms);
                                         if (++armed == vms.size()) all_armed.set_value();
                                     });
        });
    }
    // The guests write, from another thread, while the loop runs.
    std::thread writers([&, armed_future = all_armed.get_future()] {
        if (armed_future.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return;
        for (auto& vm : vms) vm.qemu->nbd_write(0, 2 << 20);
    });
    io.run_for(std::chrono::seconds(30));
    writers.join();
    std::cout << (remaining == 0 ? "all VMs reported" : "some VMs did not report") << "\n";
    return remaining == 0 ? 0 : 1;
}
