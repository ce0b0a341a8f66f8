// The seed's own case through every front end, on QEMU 7.2 and 10.0: a
// threshold on `virtio-disk0[1]` (the backing element: libvirt's node
// names number it 1) fires when a live merge (an active block-commit of the
// top into it) writes past it, and qmpctl's watch, the asynchronous
// service, the blocking manager and the agent each report it live, as
// `virtio-disk0[1]`. The commit runs on a second monitor of the VM, as an
// orchestrator's would: a monitor serves one client at a time.
#include "../support/tool_paths.hpp"

#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/threshold/manager.hpp>
#include <qmp/threshold/service.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <future>
#include <thread>

using namespace std::chrono_literals;
using namespace qmp_support;

namespace {

// A paused VM whose disk virtio-disk0 is base <- top, named the way
// libvirt names them (libvirt-1-* the base, libvirt-2-* the top; each a
// qcow2 format node over a size-limited raw storage node), with two monitors.
struct merge_vm {
    temp_dir dir;
    std::unique_ptr<qemu_instance> q;
    std::string second;

    explicit merge_vm(const qemu_build& b) {
        auto files = make_chain(b, dir, "img", 2, "64M");
        qemu_config cfg;
        cfg.kind = qemu_kind::system;
        for (int i = 0; i < 2; ++i) {
            run_checked({"truncate", "-s", "256M", files[i]});
            const std::string n = "libvirt-" + std::to_string(i + 1);
            cfg.blockdevs.push_back(R"({"driver":"file","node-name":")" + n + R"(-file","filename":")" + files[i] + "\"}");
            cfg.blockdevs.push_back(R"({"driver":"raw","node-name":")" + n + R"(-storage","file":")" + n +
                                    R"(-file","offset":0,"size":)" + std::to_string(32u << 20) + "}");
            std::string fmt = R"({"driver":"qcow2","node-name":")" + n + R"(-format","file":")" + n + "-storage\"";
            if (i > 0) fmt += R"(,"backing":"libvirt-1-format")";
            cfg.blockdevs.push_back(fmt + "}");
        }
        second = dir.file("second.qmp");
        cfg.extra = {"-device", "virtio-blk-pci,drive=libvirt-2-format,id=virtio-disk0,share-rw=on",
                     "-chardev", "socket,path=" + second + ",server=on,wait=off,id=m2", "-mon", "chardev=m2,mode=control"};
        q = std::make_unique<qemu_instance>(b, dir, cfg);
        // 3 MiB of data in the top, through an NBD export on the second monitor.
        qmp::sync_client side;
        side.connect(asio::local::stream_protocol::endpoint(second));
        side.execute("nbd-server-start", {{"addr", {{"type", "unix"}, {"data", {{"path", q->nbd_path()}}}}}});
        side.execute("block-export-add", {{"type", "nbd"}, {"id", "e0"}, {"node-name", "libvirt-2-format"}, {"name", "vda"},
                                          {"writable", true}});
        REQUIRE(q->nbd_write(0, 3u << 20) == 0);
    }

    // The live merge, on the second monitor: the top's data goes into the base.
    void commit() {
        qmp::sync_client side;
        side.connect(asio::local::stream_protocol::endpoint(second));
        qmp::block_commit c;
        c.device = "libvirt-2-format";
        c.job.job_id = "merge";
        side.execute(c);
    }
};

void check_merge_event(const qmp::threshold_event& e) {
    CHECK(e.how == qmp::threshold_event::origin::live);
    CHECK(e.where.indexed() == "virtio-disk0[1]");
    CHECK(e.node == "libvirt-1-storage");
    CHECK_FALSE(e.active);
    CHECK(e.tracked);
    CHECK(e.amount_exceeded > 0);
}

}  // namespace

TEST_CASE("live merge: the asynchronous service reports virtio-disk0[1]" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        merge_vm vm(b);
        INFO(vm.q->log());
        asio::io_context io;
        qmp::unix_client client(io);
        qmp::threshold_service svc(client);
        std::promise<qmp::threshold_event> got;
        client.async_connect(vm.q->qmp_endpoint(), [&](std::error_code ec) {
            REQUIRE(!ec);
            svc.on_connected();
            svc.async_arm("virtio-disk0[1]", qmp::threshold_spec::bytes(64u << 10),
                          [&](std::error_code aec, std::vector<qmp::threshold_event> now) {
                              REQUIRE(!aec);
                              CHECK(now.empty());
                              std::thread([&] { vm.commit(); }).detach();
                              svc.async_receive(30s, [&](std::error_code rec, qmp::threshold_event e) {
                                  REQUIRE(!rec);
                                  got.set_value(e);
                                  client.close();
                              });
                          });
        });
        io.run_for(60s);
        auto f = got.get_future();
        REQUIRE(f.wait_for(0s) == std::future_status::ready);
        check_merge_event(f.get());
    }
}

TEST_CASE("live merge: the blocking manager reports virtio-disk0[1]" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        merge_vm vm(b);
        INFO(vm.q->log());
        qmp::threshold_manager m(vm.q->qmp_endpoint());
        m.connect();
        m.arm("virtio-disk0[1]", qmp::threshold_spec::bytes(64u << 10));
        vm.commit();
        std::vector<qmp::threshold_event> got;
        const auto end = std::chrono::steady_clock::now() + 30s;
        while (got.empty() && std::chrono::steady_clock::now() < end) got = m.poll(500ms);
        REQUIRE(got.size() == 1);
        check_merge_event(got[0]);
    }
}

#ifdef QMP_BIN_DIR

TEST_CASE("live merge: qmpctl threshold watch reports virtio-disk0[1], and a watch that sees fewer than --count exits 3" *
          doctest::test_suite("qemu")) {
    using qmp_test::qmpctl;
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        merge_vm vm(b);
        INFO(vm.q->log());
        const std::string state = vm.dir.file("state.json");
        std::string out;
        REQUIRE(run({qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "threshold", "set", "virtio-disk0[1]", "64K"},
                    &out) == 0);
        CHECK(out.find("virtio-disk0[1] (backing, depth 1) storage node libvirt-1-storage threshold 65536") != std::string::npos);
        // Nothing happens: the watch ends with its time, and says so.
        REQUIRE(run({qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "threshold", "watch", "--count", "1",
                     "--timeout", "1"},
                    &out) == 3);
        CHECK(out.find("0 of 1 event(s) came before the time ran out") != std::string::npos);
        const std::string watched = vm.dir.file("watch.out"), err = vm.dir.file("watch.err");
        pid_t watch = spawn({qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "threshold", "watch", "--count", "1",
                             "--timeout", "30"},
                            watched, err);
        // Time for the watch to connect and resync (a commit before that
        // would be reported as recovered, not live).
        std::this_thread::sleep_for(1s);
        vm.commit();
        CHECK(wait_exit(watch) == 0);
        INFO(read_file(err));
        const auto line = qmp::json::parse(read_file(watched));
        CHECK(line["target"] == "virtio-disk0[1]");
        CHECK(line["origin"] == "live");
        CHECK(line["node"] == "libvirt-1-storage");
        CHECK(line["tracked"] == true);
    }
}

TEST_CASE("live merge: the agent runs its hook for a threshold qmpctl set through its state file, kept across its saves" *
          doctest::test_suite("qemu")) {
    using qmp_test::qmpctl;
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        merge_vm vm(b);
        INFO(vm.q->log());
        const std::string hook_log = vm.dir.file("hook.log"), out = vm.dir.file("agent.out"), err = vm.dir.file("agent.err");
        const std::string state = vm.dir.file("vm.json");
        {
            // Grows the element's window by 32 MiB through the second monitor (lvextend in miniature).
            std::ofstream h(vm.dir.file("hook.sh"));
            h << "#!/bin/sh\nset -e\nNEW=$((QMP_CAPACITY + 33554432))\n'" << qmpctl() << "' -s '" << vm.second
              << "' exec blockdev-reopen \"{\\\"options\\\": [{\\\"driver\\\": \\\"raw\\\", \\\"node-name\\\": "
                 "\\\"$QMP_NODE\\\", \\\"file\\\": \\\"${QMP_NODE%-storage}-file\\\", \\\"offset\\\": 0, "
                 "\\\"size\\\": $NEW}]}\" >/dev/null\n"
              << "echo \"$QMP_TARGET $QMP_NODE $QMP_THRESHOLD\" >> '" << hook_log << "'\n";
        }
        // The active layer is armed 4 MiB into its 32 MiB window.
        pid_t agent = spawn({qmp_test::thin_agent(), "--vm", "vm=" + vm.q->qmp_path(), "--spec", "end-28M",
                             "--extend-cmd", "sh " + vm.dir.file("hook.sh"), "--state-dir", vm.dir.path().string()},
                            out, err);
        INFO(read_file(err));
        INFO(read_file(out));
        INFO(read_file(hook_log));
        auto wait_for = [](const std::function<bool()>& f, std::chrono::seconds total) {
            const auto end = std::chrono::steady_clock::now() + total;
            while (std::chrono::steady_clock::now() < end && !f()) std::this_thread::sleep_for(50ms);
            return f();
        };
        auto hooked = [&](const std::string& line) { return read_file(hook_log).find(line) != std::string::npos; };
        REQUIRE(wait_for([&] { return read_file(out).find("\"armed\"") != std::string::npos; }, 30s));
        // Another tool arms the backing element through the same state file
        // (on the second monitor: the agent holds the first).
        REQUIRE(run({qmpctl(), "-s", vm.second, "--state", state, "threshold", "set", "virtio-disk0[1]", "64K"}) == 0);
        // The agent saves its own news (the active layer fires, is extended
        // and re-armed): what qmpctl wrote survives those saves.
        REQUIRE(vm.q->nbd_write(3u << 20, 2u << 20) == 0);
        REQUIRE(wait_for([&] { return hooked("virtio-disk0[2] libvirt-2-storage"); }, 30s));
        REQUIRE(wait_for([&] { return read_file(out).find("\"extended\"") != std::string::npos; }, 30s));
        CHECK(read_file(state).find("libvirt-1-storage") != std::string::npos);
        CHECK(read_file(state).find("libvirt-2-storage") != std::string::npos);
        // The merge fires the backing element's threshold: the agent knows
        // it as one of its state's, and extends that element.
        vm.commit();
        CHECK(wait_for([&] { return hooked("virtio-disk0[1] libvirt-1-storage 65536"); }, 30s));
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

#endif
