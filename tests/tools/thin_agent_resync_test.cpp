// qmp-thin-agent and what the threshold layer cannot see by itself: a
// threshold already crossed when armed (QEMU would never fire it) is
// extended once, and a threshold cleared in QEMU behind the agent's back
// is armed again by the periodic audit, on QEMU 7.2 and 10.0.
#include "../support/thin_agent.hpp"

#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

#include <csignal>

#ifdef QMP_BIN_DIR

using namespace qmp_test;

namespace {

std::uint64_t threshold_in_qemu(const std::string& monitor, const std::string& node) {
    qmp::sync_client side;
    side.connect(asio::local::stream_protocol::endpoint(monitor));
    qmp::query_named_block_nodes qn;
    qn.flat = true;
    for (const auto& d : side.execute(qn))
        if (d.node_name == node) return static_cast<std::uint64_t>(d.write_threshold);
    return UINT64_MAX;
}

}  // namespace

TEST_CASE("qmp-thin-agent: a threshold already crossed when armed is extended once" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        fleet f(b, 1);
        REQUIRE(f.cross(0) == 0);  // 12 MiB written before anything is armed 6 MiB below the end of 16
        const unsigned short port = free_port();
        pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                             "--state-dir", f.work.path().string(), "--metrics", "127.0.0.1:" + std::to_string(port)},
                            f.out, f.err);
        INFO(read_file(f.err));
        INFO(read_file(f.out));
        REQUIRE(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }));
        const auto fired = lines(f.out, "threshold", "vm0");
        REQUIRE(fired.size() == 1);
        CHECK(fired[0]["origin"] == "immediate");
        std::this_thread::sleep_for(std::chrono::seconds(2));
        CHECK(f.hook_calls("vm0").size() == 1);  // once, not again on a later resync
        CHECK(lines(f.out, "threshold", "vm0").size() == 1);
        // QEMU described every node twice: when the agent first saw the
        // chain, and to read the size the hook grew; never for the firing.
        CHECK(http_get(port, "/metrics").find("qmp_thin_details_queries_total{vm=\"vm0\"} 2") != std::string::npos);
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

TEST_CASE("qmp-thin-agent: --audit-interval arms again a threshold cleared behind its back" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        fleet f(b, 1);
        pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                             "--state-dir", f.work.path().string(), "--audit-interval", "1"},
                            f.out, f.err);
        INFO(read_file(f.err));
        INFO(read_file(f.out));
        REQUIRE(f.armed(0));
        const auto armed = lines(f.out, "armed", "vm0").front();
        const std::string node = armed["node"];
        const std::uint64_t value = armed["threshold"];
        REQUIRE(threshold_in_qemu(f.second[0], node) == value);
        {
            qmp::sync_client side;
            side.connect(asio::local::stream_protocol::endpoint(f.second[0]));
            side.execute(qmp::block_set_write_threshold{node, 0});
        }
        CHECK(wait_for([&] { return threshold_in_qemu(f.second[0], node) == value; }, std::chrono::seconds(10)));
        // Armed again, and still extended when crossed.
        REQUIRE(f.cross(0) == 0);
        CHECK(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }));
        ::kill(agent, SIGTERM);
        CHECK(wait_exit(agent) == 0);
    }
}

#endif
