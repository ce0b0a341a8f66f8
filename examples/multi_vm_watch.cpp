// One event loop keeping write thresholds on several VMs at once: one
// io_context thread; per VM an asynchronous client, a threshold service on
// it and a reconnector that backs off without blocking the others. Each
// service arms `vda` (its top element) and hands back BLOCK_WRITE_THRESHOLD
// as `vda[1]`, with what fired while the connection was down recovered.
//
//   qmp-example-multi-vm [--qemu-bindir DIR]
#include <support/qemu.hpp>

#include <qmp/client/reconnector.hpp>
#include <qmp/qmp.hpp>
#include <qmp/threshold/service.hpp>

#include <future>
#include <iostream>
#include <memory>
#include <thread>

namespace {

using reconnector = qmp::basic_reconnector<qmp::unix_client, asio::local::stream_protocol::endpoint>;

struct watched_vm {
    std::string name;
    std::unique_ptr<qmp_support::qemu_instance> qemu;
    std::unique_ptr<qmp::unix_client> client;
    std::unique_ptr<qmp::threshold_service> service;
    std::unique_ptr<reconnector> rec;
    bool armed = false;
};

// Takes one VM's threshold events until its threshold fired; when every VM
// reported, stops everything, which ends io.run().
void receive_loop(watched_vm& vm, int& remaining, std::vector<watched_vm>& all) {
    vm.service->async_receive([&vm, &remaining, &all](std::error_code ec, qmp::threshold_event e) {
        if (ec == asio::error::operation_aborted) return;  // stopped
        if (ec) return void(std::cout << vm.name << ": " << ec.message() << "\n");
        std::cout << vm.name << ": " << e.where.indexed() << " (" << e.node << ") crossed " << e.threshold << " ("
                  << qmp::to_string(e.how) << ")\n";
        if (--remaining == 0) {
            for (auto& v : all) {
                v.service->stop();
                v.rec->stop();
            }
            return;
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
    for (auto& vm : vms) {
        vm.name = "vm" + std::to_string(&vm - vms.data());
        auto images = qmp_support::make_chain(qemu, dir, vm.name, 1);
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(images, vm.name);
        cfg.nbd_export_node = vm.name + "-0-fmt";
        vm.qemu = std::make_unique<qmp_support::qemu_instance>(qemu, dir, cfg, vm.name);
        vm.client = std::make_unique<qmp::unix_client>(io);
        qmp::threshold_service_options o;
        o.tracker.catalog.entries["vda"] = vm.name + "-0-fmt";  // a disk is named by its device (or root node)
        vm.service = std::make_unique<qmp::threshold_service>(*vm.client, o);
        auto ep = asio::local::stream_protocol::endpoint(vm.qemu->qmp_path());
        vm.rec = std::make_unique<reconnector>(
            *vm.client, ep, qmp::reconnect_options{}, [&vm, &remaining, &vms, &armed, &all_armed](const qmp::reconnect_status& s) {
                if (!s.up) return void(std::cerr << vm.name << ": " << s.ec.message() << "; retrying\n");
                vm.service->on_connected();  // resyncs: what fired while down comes back
                if (vm.armed) return;
                vm.armed = true;
                vm.service->async_arm("vda", qmp::threshold_spec::bytes(1 << 20),
                                      [&vm, &remaining, &vms, &armed, &all_armed](std::error_code ec,
                                                                                  std::vector<qmp::threshold_event>) {
                                          if (ec) return void(std::cerr << vm.name << ": " << ec.message() << "\n");
                                          receive_loop(vm, remaining, vms);
                                          if (++armed == vms.size()) all_armed.set_value();
                                      });
            });
        vm.rec->start();
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
