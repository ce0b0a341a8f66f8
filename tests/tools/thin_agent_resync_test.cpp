// qmp-thin-agent and what the threshold layer cannot see by itself: a
// threshold already crossed when armed (QEMU would never fire it) is
// extended once, and a threshold cleared in QEMU behind the agent's back
// is armed again by the periodic audit, on QEMU 7.2 and 10.0; and the
// metrics an operator alerts on, with the alert rules docs/agent.md gives.
#include "../support/thin_agent.hpp"

#include <qmp/qapi.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <sstream>

#ifdef QMP_BIN_DIR

using namespace qmp_test;

namespace {

// The value of the sample `name{labels}` in a metrics text, if any.
std::optional<double> sample_of(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return std::nullopt;
}

#ifdef QMP_PROMTOOL
// promtool's verdict on a file; the empty string when it passes.
std::string promtool(const std::string& what, const std::string& file) {
    std::string verdict;
    const bool ok = run({"sh", "-c", std::string("'") + QMP_PROMTOOL + "' check " + what + " < '" + file + "'"}, &verdict) == 0;
    return ok ? std::string() : verdict + " ";
}
#endif

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

TEST_CASE("qmp-thin-agent: headroom, write rate, time to full, extension phases and resync durations on /metrics" * doctest::test_suite("qemu")) {
    const auto builds = qemu_builds();
    const auto& b = builds.back();
    fleet f(b, 1);
    const unsigned short port = free_port();
    pid_t agent = spawn({thin_agent(), "--vm", "vm0=" + f.socket(0), "--spec", "end-6M", "--extend-cmd", "sh " + f.hook,
                         "--sample-interval", "1", "--metrics", "127.0.0.1:" + std::to_string(port)},
                        f.out, f.err);
    INFO(read_file(f.err));
    INFO(read_file(f.out));
    REQUIRE(f.armed(0));
    const std::string t = lines(f.out, "armed", "vm0").front()["target"];
    const std::string series = "{vm=\"vm0\",target=\"" + t + "\"}";
    // 4 MiB written, below the threshold: the write rate shows, and the time to full with it.
    REQUIRE(f.vms[0]->q->nbd_write(0, 4u << 20) == 0);
    std::string text;
    REQUIRE(wait_for([&] {
        text = http_get(port, "/metrics");
        auto rate = sample_of(text, "qmp_thin_write_rate_bytes_per_second" + series);
        return rate && *rate > 0 && sample_of(text, "qmp_thin_time_to_full_seconds" + series);
    }, std::chrono::seconds(15)));
    const auto cap = sample_of(text, "qmp_thin_capacity_bytes" + series), alloc = sample_of(text, "qmp_thin_allocation_bytes" + series),
               room = sample_of(text, "qmp_thin_headroom_bytes" + series), rate = sample_of(text, "qmp_thin_write_rate_bytes_per_second" + series),
               full = sample_of(text, "qmp_thin_time_to_full_seconds" + series);
    REQUIRE((cap && alloc && room && rate && full));
    CHECK(*alloc >= 4u << 20);
    CHECK(*room == *cap - *alloc);
    CHECK(*full == doctest::Approx(*room / *rate));
    CHECK(sample_of(text, "qmp_thin_paused{vm=\"vm0\"}") == 0.0);
    // An extension: one observation in each phase's histogram.
    REQUIRE(f.cross(0) == 0);
    REQUIRE(wait_for([&] { return lines(f.out, "extended", "vm0").size() == 1; }));
    text = http_get(port, "/metrics");
    for (const char* phase : {"qmp_thin_extension_to_hook_start_seconds", "qmp_thin_extension_hook_seconds",
                              "qmp_thin_extension_to_rearmed_seconds"}) {
        CAPTURE(phase);
        CHECK(sample_of(text, std::string(phase) + "_count{vm=\"vm0\"}") == 1.0);
        CHECK(sample_of(text, std::string(phase) + "_bucket{vm=\"vm0\",le=\"+Inf\"}") == 1.0);
    }
    // Every resync (one on connecting, at least) is timed.
    const auto resyncs = sample_of(text, "qmp_thin_resyncs_total{vm=\"vm0\"}");
    REQUIRE(resyncs);
    CHECK(*resyncs >= 1);
    CHECK(sample_of(text, "qmp_thin_resync_seconds_count{vm=\"vm0\"}") == *resyncs);
    CHECK(sample_of(text, "qmp_thin_resync_seconds_sum{vm=\"vm0\"}") > 0.0);
#ifdef QMP_PROMTOOL
    const std::string file = f.work.file("metrics.txt");
    std::ofstream(file) << text.substr(text.find("\r\n\r\n") + 4);
    CHECK_MESSAGE(promtool("metrics", file).empty(), promtool("metrics", file));
#endif
    ::kill(agent, SIGTERM);
    CHECK(wait_exit(agent) == 0);
}

#ifdef QMP_PROMTOOL
TEST_CASE("qmp-thin-agent: the alert rules docs/agent.md gives pass promtool check rules" * doctest::test_suite("tools")) {
    const std::string doc = read_file(std::string(QMP_TEST_DATA_DIR) + "/../../docs/agent.md");
    const auto from = doc.find("```yaml\ngroups:");
    REQUIRE(from != std::string::npos);
    const auto body = from + 8;
    const std::string rules = doc.substr(body, doc.find("```", body) - body);
    CHECK(rules.find("qmp_thin_time_to_full_seconds") != std::string::npos);
    CHECK(rules.find("qmp_thin_paused") != std::string::npos);
    temp_dir dir;
    const std::string file = dir.file("rules.yml");
    std::ofstream(file) << rules;
    std::string verdict;
    CHECK_MESSAGE(run({QMP_PROMTOOL, "check", "rules", file}, &verdict) == 0, verdict);
}
#endif

#endif
