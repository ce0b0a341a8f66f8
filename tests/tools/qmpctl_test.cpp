// qmpctl as a user runs it: output and exit codes against real QEMU.
#include <support/qemu.hpp>

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <future>

using namespace qmp_support;

#ifdef QMP_BIN_DIR

namespace {

std::string qmpctl() { return std::string(QMP_BIN_DIR) + "/qmpctl"; }

}  // namespace

TEST_CASE("qmpctl: exec, errors and exit codes" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        temp_dir dir;
        auto files = make_chain(b, dir, "vda", 1);
        qemu_config cfg;
        cfg.blockdevs = chain_blockdevs(files, "vda");
        cfg.nbd_export_node = "vda-0-fmt";
        qemu_instance q(b, dir, cfg);
        INFO(q.log());
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

        CHECK(run({qmpctl(), "-s", dir.file("absent.sock"), "exec", "query-version"}, &out) == 3);
        CHECK(out.find("cannot connect") != std::string::npos);
        CHECK(run({qmpctl(), "exec", "query-version"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "x", "[1]"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "frobnicate"}, &out) == 2);
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "events", "--count", "zero"}, &out) == 2);

        // events: one line per event, stops after --count.
        CHECK(run({qmpctl(), "-s", q.qmp_path(), "exec", "block-set-write-threshold",
                   R"({"node-name": "vda-0-file", "write-threshold": 65536})"}) == 0);
        auto watcher = std::async(std::launch::async, [&] {
            std::string o;
            int rc = run({qmpctl(), "-s", q.qmp_path(), "events", "--count", "1", "--timeout", "20"}, &o);
            return std::make_pair(rc, o);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let it connect
        REQUIRE(q.nbd_write(0, 1 << 20) == 0);
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

#endif
