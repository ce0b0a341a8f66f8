// Fuzz target: hostile events through threshold services that watch
// several VMs on one thread. VM 0's monitor sends whatever the input says
// (events the tracker needs, with any data; any bytes); VMs 1 and 2 are
// healthy and armed. Whatever VM 0 sends, nothing escapes into the
// io_context (an exception would end the run as a crash), and afterwards a
// real firing on each healthy VM is reported live, resolved, as `vda[N]`.
//
// Input: records of [kind][len][len bytes]: kind % 6 picks the event
// (BLOCK_WRITE_THRESHOLD, JOB_STATUS_CHANGE, DEVICE_DELETED,
// BLOCK_JOB_COMPLETED, BLOCK_JOB_CANCELLED) whose data is the bytes, or 5:
// the bytes are sent as they are.
#include "../support/recorded.hpp"

#include <qmp/testing.hpp>

#include <qmp/client/basic_client.hpp>
#include <qmp/threshold/service.hpp>

#include <asio/io_context.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using client_type = qmp::basic_client<qmp::testing::stream>;

struct vm {
    qmp::testing::peer qemu;
    client_type client;
    qmp::basic_threshold_service<client_type> service;
    bool connected = false;
    std::optional<qmp::threshold_event> got;

    // QEMU 10.0's recorded replies.
    explicit vm(asio::io_context& io) : client(io), service(client, options()) { qmp_test::answer_as_recorded(qemu); }
    static qmp::threshold_service_options options() {
        qmp::threshold_service_options o;
        o.tracker.catalog.entries["vda"] = "virtio-disk0";
        o.min_refresh_interval = std::chrono::milliseconds(0);
        return o;
    }
};

// Runs the context until nothing moves (the peers answer inside it).
void settle(asio::io_context& io) {
    for (int round = 0; round < 10000; ++round) {
        io.restart();
        if (io.poll() == 0) return;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    asio::io_context io;
    std::vector<std::unique_ptr<vm>> vms;
    for (int i = 0; i < 3; ++i) vms.push_back(std::make_unique<vm>(io));
    for (auto& v : vms)
        v->client.async_connect(v->qemu.endpoint(), [p = v.get()](std::error_code ec) {
            if (ec) std::abort();
            p->connected = true;
            p->service.on_connected();
        });
    settle(io);
    for (std::size_t i = 1; i < 3; ++i) {
        vm* p = vms[i].get();
        if (!p->connected) std::abort();
        p->service.async_arm("vda", qmp::threshold_spec::bytes(1u << 30), [](std::error_code ec, std::vector<qmp::threshold_event>) {
            if (ec) std::abort();
        });
    }
    settle(io);

    static const char* const names[] = {"BLOCK_WRITE_THRESHOLD", "JOB_STATUS_CHANGE", "DEVICE_DELETED",
                                        "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"};
    std::size_t pos = 0;
    while (pos + 2 <= size) {
        const std::uint8_t kind = data[pos];
        const std::size_t len = std::min<std::size_t>(data[pos + 1], size - pos - 2);
        const std::string bytes(reinterpret_cast<const char*>(data + pos + 2), len);
        pos += 2 + len;
        if (kind % 6 == 5)
            vms[0]->qemu.send(bytes);
        else
            vms[0]->qemu.event(names[kind % 6], bytes);
        settle(io);
    }

    // The healthy VMs still work: their thresholds fire, and each firing is reported.
    for (std::size_t i = 1; i < 3; ++i) {
        vm* p = vms[i].get();
        const auto& armed = p->service.armed();
        if (armed.size() != 1) std::abort();
        p->service.async_receive([p](std::error_code ec, qmp::threshold_event e) {
            if (!ec) p->got = e;
        });
        p->qemu.event("BLOCK_WRITE_THRESHOLD", R"({"node-name": ")" + armed[0].node +
                                                       R"(", "amount-exceeded": 4096, "write-threshold": 1073741824})");
    }
    settle(io);
    for (std::size_t i = 1; i < 3; ++i) {
        const auto& e = vms[i]->got;
        if (!e || e->how != qmp::threshold_event::origin::live || !e->resolved || e->where.disk != "vda" ||
            e->amount_exceeded != 4096)
            std::abort();
    }
    for (auto& v : vms) v->service.stop();
    for (auto& v : vms) v->client.close();
    settle(io);
    return 0;
}
