// Testing your own code without QEMU: qmp::testing::peer plays the monitor.
//
// `grow_when_full` is the code under test: it arms a write threshold on a
// node, waits for QEMU to report it crossed, and grows the node. It is a
// template over the client, so production code passes a qmp::sync_client
// connected to QEMU's socket, and the tests below pass one connected to a
// scripted peer: what QEMU answers, the event, a refusal, QEMU dying in the
// middle. The program exits 0 when every check holds.
#include <qmp/client/clients.hpp>
#include <qmp/qapi/light/block_core.hpp>
#include <qmp/testing.hpp>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>

// ---- the code under test ---------------------------------------------------

/// Arms a threshold at `threshold` bytes on `node`, waits (up to `wait`) for
/// it to fire, then resizes the node to `new_size`. On failure, `ec` says
/// what failed and `diag` has QEMU's text when QEMU refused.
template <class SyncClient>
void grow_when_full(SyncClient& qemu, const std::string& node, std::uint64_t threshold, std::int64_t new_size,
                    std::chrono::milliseconds wait, std::error_code& ec, qmp::diagnostics& diag) {
    qemu.execute(qmp::block_set_write_threshold{node, threshold}, ec, diag);
    if (ec) return;
    for (;;) {
        const qmp::event ev = qemu.receive_event(wait, ec);
        if (ec) return;
        std::error_code bad_data;
        const auto fired = qmp::event_as<qmp::block_write_threshold_event>(ev, bad_data);
        if (fired && fired->node_name == node) break;  // other events, other nodes, bad data: not ours
    }
    qmp::block_resize resize;
    resize.node_name = node;
    resize.size = new_size;
    qemu.execute(resize, ec, diag);
}

// ---- its tests ---------------------------------------------------------------

namespace {

using test_client = qmp::basic_sync_client<qmp::testing::stream>;
using namespace std::chrono_literals;

int failures = 0;
void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "ok:   " : "FAIL: ") << what << "\n";
    if (!ok) ++failures;
}

// Runs grow_when_full for vda-top against `qemu`.
struct outcome {
    std::error_code ec;
    qmp::diagnostics diag;
};
outcome grow(const qmp::testing::peer& qemu, std::chrono::milliseconds wait = 1s) {
    test_client c;
    c.connect(qemu.endpoint());
    outcome o;
    grow_when_full(c, "vda-top", 1000, 4096, wait, o.ec, o.diag);
    return o;
}

void grows_after_the_event() {
    qmp::testing::peer qemu;
    qemu.on("block-set-write-threshold", {{"node-name", "vda-top"}, {"write-threshold", 1000}})
        .reply("{}")
        // An event for another node first, then ours: only ours counts.
        .event_after("BLOCK_WRITE_THRESHOLD", R"({"node-name": "other", "amount-exceeded": 1, "write-threshold": 5})")
        .event_after("BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-top", "amount-exceeded": 24, "write-threshold": 1000})")
        .times(1);
    qemu.on("block_resize", {{"node-name", "vda-top"}, {"size", 4096}}).reply("{}").times(1);

    expect(!grow(qemu).ec, "grows the node once its threshold fires");
    expect(qemu.check().empty(), "sends exactly the commands expected: " + qemu.check());
}

void reports_qemus_refusal() {
    qmp::testing::peer qemu;
    qemu.on("block-set-write-threshold").error("GenericError", "Device 'vda-top' not found");
    const outcome o = grow(qemu);
    expect(o.ec == qmp::server_error::generic_error, "a refused threshold is an error");
    expect(o.diag.message == "Device 'vda-top' not found", "with QEMU's text: " + o.diag.message);
}

void survives_qemu_dying_mid_command() {
    qmp::testing::peer qemu;
    qemu.on("block-set-write-threshold").reply("{}").event_after(
        "BLOCK_WRITE_THRESHOLD", R"({"node-name": "vda-top", "amount-exceeded": 1, "write-threshold": 1000})");
    qemu.on("block_resize").hang_up();  // QEMU is killed while it resizes
    expect(grow(qemu).ec == qmp::error::connection_closed, "QEMU gone mid-command: connection_closed, not a hang");
}

void gives_up_when_nothing_fires() {
    qmp::testing::peer qemu;
    qemu.on("block-set-write-threshold").reply("{}");
    expect(grow(qemu, 50ms).ec == qmp::error::timeout, "no event within the wait: timeout");
    expect(qemu.commands().back() == "block-set-write-threshold", "and no resize was sent");
}

}  // namespace

int main() {
    grows_after_the_event();
    reports_qemus_refusal();
    survives_qemu_dying_mid_command();
    gives_up_when_nothing_fires();
    std::cout << (failures ? "some checks failed\n" : "all checks passed\n");
    return failures ? 1 : 0;
}
