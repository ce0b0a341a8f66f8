// qmpctl as a user runs it: output and exit codes against real QEMU.
#include "../support/tool_paths.hpp"
#include <support/qemu.hpp>

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <future>

using namespace qmp_support;

#ifdef QMP_BIN_DIR

namespace {

using qmp_test::qmpctl;

/// qmpctl on `q`'s monitor with a state file and one disk (`NAME=ID`), then `args`.
int ctl_with_state(const qemu_instance& q, const std::string& state, const std::string& disk,
                   const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv{qmpctl(), "-s", q.qmp_path(), "--state", state, "--disk", disk};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, out);
}

}  // namespace

TEST_CASE("qmpctl: exec, errors and exit codes" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 1);
        qemu_config cfg;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.nbd_export_node = "vda-0-fmt";
        // A second monitor: QEMU serves one client per monitor at a time.
        std::string second = dir.file("second.qmp");
        cfg.extra = {"--chardev", "socket,path=" + second + ",server=on,wait=off,id=c1", "--monitor", "chardev=c1"};
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        q.wait_listening(second);
        std::string out;
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "exec", "query-version"}, &out) == 0);
        auto v = nlohmann::json::parse(out);
        CHECK(std::to_string(v["qemu"]["major"].get<int>()) + "." + std::to_string(v["qemu"]["minor"].get<int>()) ==
              b.label);

        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "query-named-block-nodes", R"({"flat": true})"}, &out) == 0);
        CHECK(nlohmann::json::parse(out).size() == 2);

        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "no-such-thing"}, &out) == 4);
        CHECK(out.find("CommandNotFound") != std::string::npos);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "block-set-write-threshold",
                   R"({"node-name": "nope", "write-threshold": 1})"},
                  &out) == 4);
        CHECK(out.find("GenericError") != std::string::npos);

        // describe: from this QEMU's own schema.
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "describe", "block-set-write-threshold"}, &out) == 0);
        CHECK(out.rfind("command block-set-write-threshold (QEMU " + b.label + ".", 0) == 0);
        CHECK(out.find("arguments:\n  node-name: str\n  write-threshold: int\nreturns: nothing\n") !=
              std::string::npos);
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "describe", "BLOCK_WRITE_THRESHOLD"}, &out) == 0);
        CHECK(out.find("data:\n  node-name: str\n  amount-exceeded: int\n") != std::string::npos);
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "describe", "blockdev-set-active"}, &out) == (b.label == "7.2" ? 4 : 0));
        if (b.label == "7.2") CHECK(out.find("has no command or event 'blockdev-set-active'") != std::string::npos);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "describe"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "describe", "a", "b"}, &out) == 2);

        CHECK(run({qmpctl(), "-s", dir.file("absent.sock"), "exec", "query-version"}, &out) == 3);
        CHECK(out.find("cannot connect") != std::string::npos);
        CHECK(run({qmpctl(), "exec", "query-version"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "x", "[1]"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "frobnicate"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "events", "--count", "zero"}, &out) == 2);

        // events: one line per event, stops after --count. The watcher may
        // not be connected yet when the guest first writes (QEMU sends an
        // event to the monitors connected at that moment), so arm and write
        // until it has seen one.
        auto watcher = std::async(std::launch::async, [&] {
            std::string o;
            int rc = run({qmpctl(), "-s", q.qmp_path(), "events", "--count", "1", "--timeout", "60"}, &o);
            return std::make_pair(rc, o);
        });
        for (int i = 0; i < 100 && watcher.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready; ++i) {
            REQUIRE(run({qmpctl(), "-s", second, "exec", "block-set-write-threshold",
                         R"({"node-name": "vda-0-file", "write-threshold": 65536})"}) == 0);
            REQUIRE(q.nbd_write(0, 1 << 20) == 0);
            watcher.wait_for(std::chrono::milliseconds(300));
        }
        auto [rc, text] = watcher.get();
        CHECK(rc == 0);
        auto line = nlohmann::json::parse(text);
        CHECK(line["event"] == "BLOCK_WRITE_THRESHOLD");
        CHECK(line["data"]["node-name"] == "vda-0-file");
        CHECK(line["timestamp"]["seconds"].get<long long>() > 0);

        // --timeout with no event: ends quietly with 0.
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "events", "--timeout", "0.2"}, &out) == 0);
        CHECK(out.empty());
    }
}

TEST_CASE("qmpctl: exec add-fd --pass-fd, then a block node opened from the set" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        qemu_config cfg;
        cfg.kind = qemu_kind::system;  // add-fd is not in the storage daemon
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        std::string img = dir.file("passed.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", img, "8M"});
        std::string out;
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "exec", "add-fd", R"({"opaque": "vda-top"})", "--pass-fd", img},
                    &out) == 0);
        auto added = nlohmann::json::parse(out);
        std::string set = std::to_string(added["fdset-id"].get<long long>());
        // The set outlives the qmpctl that filled it.
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "exec", "query-fdsets"}, &out) == 0);
        auto sets = nlohmann::json::parse(out);
        REQUIRE(sets.size() == 1);
        CHECK(sets[0]["fds"][0]["opaque"] == "vda-top");
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "blockdev-add",
                   R"({"driver": "file", "node-name": "p-file", "filename": "/dev/fdset/)" + set + "\"}"},
                  &out) == 0);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "blockdev-add",
                   R"({"driver": "qcow2", "node-name": "p-fmt", "file": "p-file"})"},
                  &out) == 0);
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "exec", "query-named-block-nodes", R"({"flat": true})"}, &out) ==
                0);
        bool seen = false;
        for (auto& n : nlohmann::json::parse(out))
            if (n["node-name"] == "p-fmt") {
                seen = true;
                CHECK(n["image"]["virtual-size"] == 8 * 1024 * 1024);
            }
        CHECK(seen);

        // getfd without a descriptor: QEMU's error; bad uses: usage errors.
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "getfd", R"({"fdname": "x"})"}, &out) == 4);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "getfd", R"({"fdname": "x"})", "--pass-fd-ro",
                   dir.file("absent")},
                  &out) == 2);
        CHECK(out.find("cannot open") != std::string::npos);
        CHECK(run({qmpctl(), "-t", "127.0.0.1:1", "exec", "getfd", R"({"fdname": "x"})", "--pass-fd", img}, &out) ==
              2);
        CHECK(out.find("unix socket") != std::string::npos);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "getfd", R"({"fdname": "x"})", "--pass-fd-ro", img}, &out) ==
              0);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "closefd", R"({"fdname": "x"})"}, &out) == 0);
    }
}

TEST_CASE("qmpctl: chain and resolve, with --state and --disk" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 2);
        qemu_config cfg;
        cfg.kind = qemu_kind::system;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.extra = {"-device", "virtio-blk-pci,drive=vda-1-fmt,id=virtio-disk0"};
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        const std::string state = dir.file("state.json");
        auto ctl = [&](const std::vector<std::string>& args, std::string* out) {
            return ctl_with_state(q, state, "vda=virtio-disk0", args, out);
        };
        std::string out;
        REQUIRE(ctl({"chain", "--json"}, &out) == 0);
        auto disks = nlohmann::json::parse(out);
        REQUIRE(disks.size() == 1);
        CHECK(disks[0]["disk"] == "vda");
        auto& els = disks[0]["elements"];
        REQUIRE(els.size() == 2);
        CHECK(els[0]["target"] == "vda[1]");
        CHECK(els[0]["index"] == 1);
        CHECK(els[0]["depth"] == 0);
        CHECK(els[0]["format_node"] == "vda-1-fmt");
        CHECK(els[0]["storage_node"] == "vda-1-file");
        // The cheap queries know the structure and the high-water marks, not filenames or sizes.
        CHECK(els[0]["allocation"] == 0);
        for (const char* unknown : {"filename", "format_filename", "storage_size", "threshold"}) CHECK(els[0][unknown].is_null());
        CHECK(els[1]["target"] == "vda[2]");
        CHECK(els[1]["depth"] == 1);
        // --details asks QEMU for them.
        REQUIRE(ctl({"chain", "--details", "--json"}, &out) == 0);
        auto detailed = nlohmann::json::parse(out)[0]["elements"];
        CHECK(detailed[0]["filename"] == files[1]);
        CHECK(detailed[0]["format_filename"] == files[1]);  // absolute backing names: QEMU gives the format node the path too
        CHECK(detailed[0]["driver"] == "qcow2");
        CHECK(detailed[0]["storage_size"].get<std::uint64_t>() > 0);
        CHECK(detailed[0]["allocation"] == 0);
        CHECK(detailed[0]["threshold"] == 0);
        REQUIRE(ctl({"resolve", "vda[2]", "--details"}, &out) == 0);
        CHECK(out == "vda[2] (backing, depth 1) format vda-0-fmt storage vda-0-file " + files[0] + "\n");

        REQUIRE(ctl({"resolve", "vda[2]", "--json"}, &out) == 0);
        CHECK(nlohmann::json::parse(out)["format_node"] == "vda-0-fmt");
        REQUIRE(ctl({"resolve", "vda"}, &out) == 0);
        CHECK(out.rfind("vda[1] (active layer) format vda-1-fmt storage vda-1-file", 0) == 0);
        REQUIRE(ctl({"resolve", "--node", "vda-0-file"}, &out) == 0);
        CHECK(out == "vda[2] storage\n");
        CHECK(ctl({"resolve", "vda[9]"}, &out) == 5);
        CHECK(out.find("no element with index 9") != std::string::npos);
        CHECK(ctl({"resolve", "vda[x]"}, &out) == 5);
        CHECK(out.find("invalid target") != std::string::npos);
        CHECK(ctl({"resolve", "--node", "nope"}, &out) == 5);
        CHECK(ctl({"chain", "vdz"}, &out) == 5);
        CHECK(ctl({"resolve"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "--disk", "novalue", "chain"}, &out) == 2);

        // The state file keeps the numbers across runs and chain changes.
        std::string ov = dir.file("ov.qcow2");
        run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", ov, "64M"});
        REQUIRE(ctl({"exec", "blockdev-add", R"({"driver":"file","node-name":"ov-file","filename":")" + ov + "\"}"}, &out) == 0);
        REQUIRE(ctl({"exec", "blockdev-add", R"({"driver":"qcow2","node-name":"ov","file":"ov-file","backing":null})"}, &out) == 0);
        REQUIRE(ctl({"exec", "blockdev-snapshot", R"({"node":"vda-1-fmt","overlay":"ov"})"}, &out) == 0);
        REQUIRE(ctl({"chain", "vda", "--json"}, &out) == 0);
        auto after = nlohmann::json::parse(out)[0]["elements"];
        REQUIRE(after.size() == 3);
        CHECK(after[0]["target"] == "vda[3]");
        CHECK(after[1]["target"] == "vda[1]");
        CHECK(after[2]["target"] == "vda[2]");
        // Without the state file the numbers would start again from the top.
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "--disk", "vda=virtio-disk0", "resolve", "vda"}, &out) == 0);
        CHECK(out.rfind("vda[1] (active layer) format ov", 0) == 0);
    }
}

TEST_CASE("qmpctl: threshold set, clear, report and a watch that recovers a missed event" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 1);
        qemu_config cfg;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.nbd_export_node = "vda-0-fmt";
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
        const std::string state = dir.file("state.json");
        auto ctl = [&](const std::vector<std::string>& args, std::string* out) {
            return ctl_with_state(q, state, "vda=vda-0-fmt", args, out);
        };
        std::string out;
        REQUIRE(ctl({"threshold", "set", "vda", "1M"}, &out) == 0);
        CHECK(out == "vda[1] (active layer) storage node vda-0-file threshold 1048576\n");
        REQUIRE(ctl({"threshold", "set", "vda[1]", "end-1M", "--layer", "format"}, &out) == 0);
        CHECK(out == "vda[1] (active layer) format node vda-0-fmt threshold 66060288\n");
        REQUIRE(ctl({"threshold", "report", "--json"}, &out) == 0);
        auto rows = nlohmann::json::parse(out);
        REQUIRE(rows.size() == 1);
        CHECK(rows[0]["target"] == "vda[1]");
        CHECK(rows[0]["threshold"] == 1048576);
        CHECK(rows[0]["format_threshold"] == 66060288);
        CHECK(!rows[0]["armed"].is_null());

        // Nobody watches while the write crosses; a later watch with the state file reports it.
        REQUIRE(q.nbd_write(0, 2u << 20) == 0);
        REQUIRE(ctl({"threshold", "watch", "--count", "1", "--timeout", "20"}, &out) == 0);
        auto line = nlohmann::json::parse(out);
        CHECK(line["target"] == "vda[1]");
        CHECK(line["node"] == "vda-0-file");
        CHECK(line["layer"] == "storage");
        CHECK(line["threshold"] == 1048576);
        CHECK(line["amount_exceeded"].get<std::uint64_t>() > 0);
        CHECK(line["recovered"] == true);
        // Reported once: the state file now says it fired.
        REQUIRE(ctl({"threshold", "watch", "--timeout", "0.5"}, &out) == 0);
        CHECK(out.empty());

        REQUIRE(ctl({"threshold", "clear", "vda"}, &out) == 0);
        REQUIRE(run({qmpctl(), "-s", q.qmp_path(), "exec", "query-named-block-nodes", R"({"flat": true})"}, &out) == 0);
        for (auto& n : nlohmann::json::parse(out)) CHECK(n["write_threshold"] == 0);

        CHECK(ctl({"threshold", "set", "vda", "0"}, &out) == 5);
        CHECK(out.find("disarm") != std::string::npos);
        CHECK(ctl({"threshold", "set", "vdz", "1M"}, &out) == 5);
        CHECK(ctl({"threshold", "set", "vda", "101%"}, &out) == 5);
        CHECK(ctl({"threshold", "set", "vda", "12Q"}, &out) == 2);
        CHECK(ctl({"threshold", "set", "vda"}, &out) == 2);
        CHECK(ctl({"threshold", "frob"}, &out) == 2);
    }
}

#endif
