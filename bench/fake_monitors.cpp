// qmp-bench-monitors: plays the QMP monitors of a fleet of simulated VMs on
// one thread, for benchmarks of an agent at a scale no machine runs real
// QEMUs at. Each VM listens on DIR/vmI.qmp and answers the block queries
// with replies recorded from a real QEMU (files in TEMPLATES, written by
// qmp-bench-agent), in which three numbers of the watched storage node are
// the VM's own: its size (@CAP@), its write threshold (@THR@) and its
// highest written offset (@WR@). block-set-write-threshold on that node
// arms it. SIGUSR1 fires every armed VM at once: its offset goes 64 KiB
// past the threshold, BLOCK_WRITE_THRESHOLD goes out with the current time,
// the threshold drops to 0, and the storage grows by 1 GiB (as if the
// agent's hook had extended it).
//
//   qmp-bench-monitors --templates DIR --dir DIR --count N --node NAME --capacity BYTES
//
// Prints "ready" once every socket listens. Unknown commands get QEMU's
// CommandNotFound error and a line on stderr.
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/signal_set.hpp>
#include <asio/write.hpp>

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using stream = asio::local::stream_protocol;

// A reply with placeholders, split once: literal pieces and which number follows each.
struct template_text {
    std::vector<std::string> pieces;
    std::vector<int> vars;  // 0 cap, 1 thr, 2 wr; one fewer than pieces

    static template_text load(const std::string& file) {
        std::ifstream f(file);
        if (!f) throw std::runtime_error("cannot read " + file);
        std::stringstream ss;
        ss << f.rdbuf();
        std::string s = ss.str();
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        template_text t;
        std::size_t at = 0;
        for (;;) {
            std::size_t next = std::string::npos;
            int which = -1;
            const char* names[] = {"@CAP@", "@THR@", "@WR@"};
            for (int k = 0; k < 3; ++k) {
                const std::size_t p = s.find(names[k], at);
                if (p < next) next = p, which = k;
            }
            if (next == std::string::npos) break;
            t.pieces.push_back(s.substr(at, next - at));
            t.vars.push_back(which);
            at = next + std::string(names[which]).size();
        }
        t.pieces.push_back(s.substr(at));
        return t;
    }
    void render(std::string& out, const std::uint64_t (&v)[3]) const {
        for (std::size_t i = 0; i < pieces.size(); ++i) {
            out += pieces[i];
            if (i < vars.size()) out += std::to_string(v[vars[i]]);
        }
    }
};

struct templates {
    template_text graph, node_stats, backend_stats, nodes, commands;
};

struct vm;

struct session : std::enable_shared_from_this<session> {
    stream::socket sock;
    vm& v;
    char buf[4096];
    std::string pending;
    int depth = 0;
    bool in_string = false, escape = false;
    std::deque<std::string> out;
    session(stream::socket s, vm& owner) : sock(std::move(s)), v(owner) {}
    void start();
    void read();
    void send(std::string msg) {
        out.push_back(std::move(msg));
        if (out.size() == 1) write();
    }
    void write() {
        asio::async_write(sock, asio::buffer(out.front()), [self = shared_from_this()](std::error_code ec, std::size_t) {
            if (ec) return;
            self->out.pop_front();
            if (!self->out.empty()) self->write();
        });
    }
    void handle(const std::string& line);
};

struct vm {
    std::string name;
    stream::acceptor acceptor;
    std::weak_ptr<session> current;
    std::uint64_t v[3] = {0, 0, 0};  // cap, thr, wr
    const templates& t;
    const std::string& node;
    vm(asio::io_context& io, std::string n, const std::string& path, const templates& tp, const std::string& nd, std::uint64_t cap)
        : name(std::move(n)), acceptor(io, stream::endpoint(path)), t(tp), node(nd) {
        v[0] = cap;
    }
    void accept() {
        acceptor.async_accept([this](std::error_code ec, stream::socket s) {
            if (ec) return;
            auto sess = std::make_shared<session>(std::move(s), *this);
            current = sess;
            sess->start();
            accept();
        });
    }
    void fire() {
        auto s = current.lock();
        if (!s || v[1] == 0) return;
        v[2] = v[1] + (64u << 10);
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
        s->send(R"({"timestamp": {"seconds": )" + std::to_string(us / 1000000) + R"(, "microseconds": )" +
                std::to_string(us % 1000000) + R"(}, "event": "BLOCK_WRITE_THRESHOLD", "data": {"amount-exceeded": )" +
                std::to_string(v[2] - v[1]) + R"(, "node-name": ")" + node + R"(", "write-threshold": )" +
                std::to_string(v[1]) + "}}\r\n");
        v[1] = 0;
        v[0] += 1u << 30;
    }
};

void session::start() {
    send(R"({"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "simulated"}, "capabilities": []}})"
         "\r\n");
    read();
}

// QMP clients need not end a command with a newline: commands are cut from
// the stream where a top-level JSON object closes.
void session::read() {
    sock.async_read_some(asio::buffer(buf), [self = shared_from_this()](std::error_code ec, std::size_t n) {
        if (ec) return;
        for (std::size_t i = 0; i < n; ++i) {
            const char c = self->buf[i];
            if (self->depth > 0 || c == '{') self->pending += c;
            if (self->in_string) {
                if (self->escape) self->escape = false;
                else if (c == '\\') self->escape = true;
                else if (c == '"') self->in_string = false;
            } else if (c == '"') {
                self->in_string = true;
            } else if (c == '{' || c == '[') {
                ++self->depth;
            } else if ((c == '}' || c == ']') && self->depth > 0 && --self->depth == 0) {
                self->handle(self->pending);
                self->pending.clear();
            }
        }
        self->read();
    });
}

void session::handle(const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    const std::string cmd = j.value("execute", "");
    const nlohmann::json args = j.value("arguments", nlohmann::json::object());
    std::string r = "{\"return\": ";
    if (cmd == "qmp_capabilities" || cmd == "block-set-write-threshold") {
        if (cmd == "block-set-write-threshold" && args.value("node-name", "") == v.node)
            v.v[1] = args.value("write-threshold", std::uint64_t{0});
        r += "{}";
    } else if (cmd == "x-debug-query-block-graph") {
        v.t.graph.render(r, v.v);
    } else if (cmd == "query-blockstats") {
        (args.value("query-nodes", false) ? v.t.node_stats : v.t.backend_stats).render(r, v.v);
    } else if (cmd == "query-named-block-nodes") {
        v.t.nodes.render(r, v.v);
    } else if (cmd == "query-commands") {
        v.t.commands.render(r, v.v);
    } else if (cmd == "query-status") {
        r += R"({"status": "running", "running": true})";
    } else if (cmd == "query-block-jobs") {
        r += "[]";
    } else {
        std::cerr << "qmp-bench-monitors: " << v.name << ": unknown command " << cmd << "\n";
        r = R"({"error": {"class": "CommandNotFound", "desc": "The command )" + cmd + R"( has not been found"})";
    }
    r += "}";
    if (j.contains("id")) {
        r.pop_back();
        r += ", \"id\": " + j["id"].dump() + "}";
    }
    send(r + "\r\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::string tdir, dir, node;
    std::size_t count = 0;
    std::uint64_t cap = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], val = argv[i + 1];
        if (a == "--templates") tdir = val;
        else if (a == "--dir") dir = val;
        else if (a == "--count") count = std::stoul(val);
        else if (a == "--node") node = val;
        else if (a == "--capacity") cap = std::stoull(val);
    }
    if (tdir.empty() || dir.empty() || node.empty() || count == 0 || cap == 0) {
        std::cerr << "usage: qmp-bench-monitors --templates DIR --dir DIR --count N --node NAME --capacity BYTES\n";
        return 2;
    }
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    try {
        templates t{template_text::load(tdir + "/graph.json"), template_text::load(tdir + "/node_stats.json"),
                    template_text::load(tdir + "/backend_stats.json"), template_text::load(tdir + "/nodes.json"),
                    template_text::load(tdir + "/commands.json")};
        asio::io_context io(1);
        std::vector<std::unique_ptr<vm>> vms;
        for (std::size_t i = 0; i < count; ++i) {
            const std::string name = "vm" + std::to_string(i);
            vms.push_back(std::make_unique<vm>(io, name, dir + "/" + name + ".qmp", t, node, cap));
            vms.back()->accept();
        }
        asio::signal_set signals(io, SIGUSR1, SIGTERM);
        std::function<void(std::error_code, int)> on_signal = [&](std::error_code ec, int sig) {
            if (ec) return;
            if (sig == SIGTERM) return io.stop();
            for (auto& v : vms) v->fire();
            signals.async_wait(on_signal);
        };
        signals.async_wait(on_signal);
        std::cout << "ready" << std::endl;
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "qmp-bench-monitors: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
