// Benchmark support shared by the benchmarks that run the tools: where the
// binaries are, a process's memory, the agent's output lines, waiting,
// percentiles, lists.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace qmp_bench {

/// The folder of the running benchmark, where the tools are built too.
inline std::string bin_dir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path().string(); }

/// A "VmRSS"/"VmHWM"-style field of /proc/PID/status ("self": this
/// process), in KiB; -1 when there is none.
inline long proc_status_kb(const std::string& key, const std::string& pid = "self") {
    std::ifstream in("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
    return -1;
}

/// Lines of an agent's output whose "what" is `what`.
inline std::size_t count_lines(const std::string& file, const std::string& what) {
    std::ifstream f(file);
    std::string line;
    std::size_t n = 0;
    const std::string key = "\"what\":\"" + what + "\"";
    while (std::getline(f, line)) n += line.find(key) != std::string::npos;
    return n;
}

/// Polls `f` every 20 ms for at most `total`; its last answer.
inline bool wait_until(const std::function<bool()>& f, std::chrono::milliseconds total) {
    const auto end = std::chrono::steady_clock::now() + total;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return f();
}

/// The `p` quantile (0..1) of `v`, nearest rank; 0 for none.
inline double pct(const std::vector<double>& values, double p) {
    if (values.empty()) return 0;
    std::vector<double> v(values);
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

/// "a,b,c" as a list of T, read by `conv` (empty items skipped).
template <class T, class Conv>
std::vector<T> parse_list(const std::string& s, Conv conv) {
    std::vector<T> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty()) out.push_back(conv(item));
    return out;
}

inline std::vector<std::size_t> parse_sizes(const std::string& s) {
    return parse_list<std::size_t>(s, [](const std::string& i) { return static_cast<std::size_t>(std::stoul(i)); });
}

}  // namespace qmp_bench
