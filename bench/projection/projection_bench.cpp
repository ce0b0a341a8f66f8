// The projection block_device_info against the full generated type: bench/projection/run.sh builds and runs this in a scratch tree.
#include <qmp/qapi/block_query.hpp>
#include <qmp/qapi/block_core.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <algorithm>
#include <sys/resource.h>
template <class T>
double run(const std::string& text, int rounds, std::size_t& n) {
    std::vector<double> t;
    for (int r = 0; r < rounds; ++r) {
        std::vector<T> out;
        auto a = std::chrono::steady_clock::now();
        auto ec = qmp::convert_text(text, out, nullptr);
        auto b = std::chrono::steady_clock::now();
        if (ec) { std::cerr << "error " << ec.message() << "\n"; std::exit(1); }
        n = out.size();
        t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}
int main(int argc, char** argv) {
    std::ifstream f(argv[1]); std::stringstream ss; ss << f.rdbuf();
    std::string all = ss.str();
    auto i = all.find("\"return\": ") + 10; auto j = all.rfind('}');
    std::string text = all.substr(i, j - i);
    std::size_t n = 0;
    const std::string way = argv[2];
    double ms = way == "proj" ? run<qmp::proj_block_device_info>(text, 21, n) : run<qmp::block_device_info>(text, 21, n);
    rusage ru{}; getrusage(RUSAGE_SELF, &ru);
    std::cout << argv[1] << " " << way << ": " << n << " nodes, median " << ms << " ms, peak RSS " << ru.ru_maxrss / 1024 << " MiB\n";
}
