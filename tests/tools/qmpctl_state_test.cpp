// qmpctl's --state file under concurrency, a read-only folder, invalid
// content, a reply lost after QEMU armed the threshold, and a flood.
#include "../support/cut_proxy.hpp"
#include "../support/fake_server.hpp"
#include "../support/thin_vm.hpp"
#include "../support/tool_paths.hpp"

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <future>

#include <sys/stat.h>

using namespace std::chrono_literals;
using namespace qmp_support;
using qmp_test::fake_server;

#ifdef QMP_BIN_DIR

namespace {

using qmp_test::qmpctl;

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

// A state file padded with `n` fired entries of nodes that do not exist.
void write_padded_state(const std::string& path, int n) {
    nlohmann::json armed = nlohmann::json::array();
    for (int i = 0; i < n; ++i)
        armed.push_back({{"target", "pad[" + std::to_string(i + 1) + "]"},
                         {"node", "pad-node-" + std::to_string(i) + "-with-a-long-name-like-real-ones-have"},
                         {"layer", "storage"},
                         {"spec", {{"kind", "margin"}, {"value", 1073741824}, {"capacity", nullptr}, {"layer", "storage"}}},
                         {"policy", "on-extend"},
                         {"step", 0},
                         {"threshold", 9663676416},
                         {"mark_at_arm", 123456789},
                         {"state", "fired"}});
    nlohmann::json s = {{"format", "qmp-threshold-state"}, {"version", 1}, {"registry", {{"next", 1}, {"nodes", nlohmann::json::object()}}},
                        {"armed", armed}};
    std::ofstream(path) << s.dump(2);
}

}  // namespace

TEST_CASE("qmpctl: two threshold set at once on one state file: both recorded, the file never corrupt" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        INFO(vm.q->log());
        // An empty file 20 times, and one of about 6 MB (big enough that
        // writers overlap) 4 times.
        for (auto kind : {std::pair<int, int>{0, 20}, std::pair<int, int>{15000, 4}}) {
            const int padding = kind.first, rounds = kind.second;  // not bindings: lambdas capture them
            CAPTURE(padding);
            const std::string big = vm.dir.file("big.json");
            if (padding) write_padded_state(big, padding);
            for (int round = 0; round < rounds; ++round) {
                CAPTURE(round);
                const std::string state = padding ? big : vm.dir.file("state-" + std::to_string(round) + ".json");
                auto set = [&](const std::string& target, const std::string& value) {
                    return spawn({qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "--disk", "vda=vda-1-fmt",
                                  "threshold", "set", target, value},
                                 "", "");
                };
                pid_t a = set("vda", "1M");
                pid_t c = set("vda[2]", "2M");
                CHECK(wait_exit(a) == 0);
                CHECK(wait_exit(c) == 0);
                auto j = read_json(state);  // parses: never half written
                std::set<std::string> nodes;
                for (auto& e : j["armed"]) nodes.insert(e["node"].get<std::string>());
                CHECK(nodes.count("vda-1-thin") == 1);
                CHECK(nodes.count("vda-0-thin") == 1);
                CHECK(j["armed"].size() == static_cast<std::size_t>(padding) + 2);
            }
        }
        // No temporary files are left behind (the lock files stay: they are the locks).
        for (const auto& e : std::filesystem::directory_iterator(vm.dir.path())) {
            const std::string name = e.path().filename().string();
            CHECK((name.find(".json.") == std::string::npos || name.rfind(".json.lock") == name.size() - 10));
        }
    }
}

TEST_CASE("qmpctl: a read-only state folder: reading works, arming stops before QEMU hears of it" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 1}});
        INFO(vm.q->log());
        const std::string folder = vm.dir.file("ro");
        ::mkdir(folder.c_str(), 0755);
        const std::string state = folder + "/state.json";
        std::string out;
        REQUIRE(run({qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "--disk", "vda=vda-0-fmt", "threshold", "set",
                     "vda", "1M"},
                    &out) == 0);
        ::chmod(folder.c_str(), 0555);
        // Root writes anywhere: the commands run as nobody then.
        std::vector<std::string> as_user;
        if (::geteuid() == 0) {
            ::chmod(vm.dir.path().c_str(), 0755);
            ::chmod(vm.q->qmp_path().c_str(), 0777);
            ::chmod(state.c_str(), 0644);
            as_user = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
        }
        auto ctl = [&](std::vector<std::string> args) {
            std::vector<std::string> argv = as_user;
            argv.insert(argv.end(), {qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "--disk", "vda=vda-0-fmt"});
            argv.insert(argv.end(), args.begin(), args.end());
            return run(argv, &out);
        };
        CHECK(ctl({"chain", "--json"}) == 0);
        CHECK(ctl({"resolve", "vda"}) == 0);
        CHECK(ctl({"threshold", "report"}) == 0);
        CHECK(ctl({"threshold", "set", "vda", "5M"}) == 6);
        CHECK(out.find("state file") != std::string::npos);
        qmp::sync_client cl;
        cl.connect(vm.ep());
        CHECK(vm.threshold_of(cl, "vda-0-thin") == 1u << 20);  // QEMU untouched
        ::chmod(folder.c_str(), 0755);
    }
}

TEST_CASE("qmpctl: an invalid state file is refused, naming the field" * doctest::test_suite("fake")) {
    fake_server srv;  // never reached: the file is refused first
    temp_dir dir;
    const std::string state = dir.file("s.json");
    const std::string good =
        R"({"format": "qmp-threshold-state", "version": 1, "registry": {"next": 2, "nodes": {"n": 1}}, "armed": [
           {"target": "vda[1]", "node": "n", "layer": "storage", "spec": {"kind": "bytes", "value": 5, "layer": "storage"},
            "policy": "none", "threshold": 5, "state": "armed"}]})";
    struct bad {
        std::string from, to, says;
    };
    for (const auto& c : std::vector<bad>{{R"("policy": "none")", R"("policy": 1.5)", "armed[0].policy: expected a string"},
                                          {R"("state": "armed")", R"("state": 2)", "armed[0].state"},
                                          {R"("next": 2)", R"("next": 4294967296)", "registry.next"},
                                          {R"("next": 2)", R"("next": "2")", "registry.next"},
                                          {R"("nodes": {"n": 1})", R"("nodes": {"n": 1, "m": 1})", "used twice"},
                                          {R"("threshold": 5)", R"("threshold": 5.5)", "threshold: 5.5 is not an integer"},
                                          {R"("version": 1)", R"("version": 99)", "version: 99"},
                                          {R"("target": "vda[1]")", R"("target": "vda[1")", "missing ']'"},
                                          {"]}", "]", "invalid JSON"}}) {
        CAPTURE(c.to);
        std::string text = good;
        text.replace(text.find(c.from), c.from.size(), c.to);
        std::ofstream(state) << text;
        std::string out;
        CHECK(run({qmpctl(), "-s", srv.path(), "--state", state, "threshold", "report"}, &out) == 6);
        CHECK(out.find(c.says) != std::string::npos);
    }
}

TEST_CASE("qmpctl: a threshold QEMU armed when the reply was lost is found and its firing reported" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 1}});
        INFO(vm.q->log());
        cut_proxy proxy(vm.dir.file("proxy.qmp"), vm.q->qmp_path(), "block-set-write-threshold");
        const std::string state = vm.dir.file("state.json");
        std::string out;
        CHECK(run({qmpctl(), "-s", proxy.path(), "--state", state, "--disk", "vda=vda-0-fmt", "threshold", "set", "vda",
                   "1M"},
                  &out) == 3);
        REQUIRE(proxy.cut());
        CHECK(read_json(state)["armed"][0]["state"] == "arming");  // the intent was recorded first
        auto watch = std::async(std::launch::async, [&] {
            std::string o;
            int rc = run({qmpctl(), "-s", vm.q->qmp_path(), "--state", state, "--disk", "vda=vda-0-fmt", "threshold",
                          "watch", "--count", "1", "--timeout", "30"},
                         &o);
            return std::make_pair(rc, o);
        });
        // Once the watcher has adopted it, a write crosses it.
        for (int i = 0; i < 300 && read_json(state)["armed"][0]["state"] != "armed"; ++i) std::this_thread::sleep_for(20ms);
        REQUIRE(read_json(state)["armed"][0]["state"] == "armed");
        REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);
        auto [rc, text] = watch.get();
        CHECK(rc == 0);
        auto line = nlohmann::json::parse(text);
        CHECK(line["target"] == "vda[1]");
        CHECK(line["origin"] == "live");
        CHECK(line["tracked"] == true);
    }
}

#endif
