// qmp-thin-agent's command line and VMs file.
#include "options.hpp"

#include <asio/ip/address.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

namespace thin_agent {

const char* usage_text =
    "usage: qmp-thin-agent --version | --help\n"
    "       qmp-thin-agent (--vm NAME=SOCKET)... [--vms-file FILE] [--spec SPEC] [--disk NAME]...\n"
    "                      [--extend-cmd CMD] [--hook-timeout SECONDS] [--stop-timeout SECONDS]\n"
    "                      [--audit-interval SECONDS] [--sample-interval SECONDS]\n"
    "                      [--state-dir DIR] [--log json|text] [--metrics HOST:PORT] [--metrics-timeout SECONDS]\n";

bool valid_vm_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || name[0] == '.') return false;
    for (char ch : name) {
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                        ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

namespace {

std::string shown(const std::string& s) {
    std::string o = "'";
    for (char ch : s) {
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(ch));
            o += buf;
        } else {
            o += ch;
        }
    }
    return o + "'";
}

// NAME=SOCKET, with a valid name and a socket path without control bytes.
std::pair<std::string, std::string> vm_entry(const std::string& text, const std::string& where) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
        throw usage_error{where + ": not NAME=SOCKET: " + shown(text)};
    std::string name = text.substr(0, eq), socket = text.substr(eq + 1);
    if (!valid_vm_name(name))
        throw usage_error{where + ": the VM name " + shown(name) +
                          " is not a plain file name (letters, digits, '.', '_', '-'; at most 64; not starting with '.')"};
    for (char ch : socket)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) throw usage_error{where + ": the socket path " + shown(socket) + " has control bytes"};
    return {name, socket};
}

double parse_seconds(const std::string& opt, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const double s = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno || !(s > 0) || s > 86400)
        throw usage_error{opt + " wants seconds above 0 (at most a day), not " + shown(v)};
    return s;
}

std::chrono::milliseconds to_ms(double s) { return std::chrono::milliseconds(static_cast<long long>(s * 1000 + 0.5)); }

void check_folder(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) throw usage_error{"--state-dir " + shown(dir) + ": " + std::strerror(errno)};
    if (!S_ISDIR(st.st_mode)) throw usage_error{"--state-dir " + shown(dir) + " is not a folder"};
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw usage_error{"--state-dir " + shown(dir) + " cannot be written: " + std::strerror(errno)};
}

void check_spec(const qmp::threshold_spec& s, const std::string& text) {
    std::string why = qmp::threshold_spec::wire_check(s);
    if (!why.empty()) throw usage_error{"--spec " + shown(text) + ": " + why};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> read_vms_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw usage_error{"--vms-file " + shown(path) + ": " + std::strerror(errno)};
    if (!S_ISREG(st.st_mode)) throw usage_error{"--vms-file " + shown(path) + " is not a regular file"};
    std::ifstream f(path, std::ios::binary);
    if (!f) throw usage_error{"--vms-file " + shown(path) + ": " + std::strerror(errno)};
    std::vector<std::pair<std::string, std::string>> out;
    std::set<std::string> names;
    std::string line;
    for (int n = 1; std::getline(f, line); ++n) {
        const std::string where = path + ":" + std::to_string(n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        for (char ch : line)
            if ((static_cast<unsigned char>(ch) < 0x20 && ch != '\t') || ch == 0x7f)
                throw usage_error{where + ": a control byte (not a text file?)"};
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        const auto last = line.find_last_not_of(" \t");
        auto vm = vm_entry(line.substr(first, last - first + 1), where);
        if (!names.insert(vm.first).second) throw usage_error{where + ": the VM " + shown(vm.first) + " is listed twice"};
        out.push_back(std::move(vm));
    }
    if (f.bad()) throw usage_error{"--vms-file " + shown(path) + ": cannot be read"};
    if (out.empty()) throw usage_error{"--vms-file " + shown(path) + " lists no VM"};
    return out;
}

options parse_command_line(int argc, char** argv) {
    options o;
    std::set<std::string> names;
    auto add_vm = [&](std::pair<std::string, std::string> vm, const std::string& where, bool from_file) {
        if (!names.insert(vm.first).second) throw usage_error{where + ": the VM " + shown(vm.first) + " is named twice"};
        (from_file ? o.file_vms : o.vms).push_back(std::move(vm));
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") throw usage_error{};
        if (a == "--version") throw usage_error{"", true};
        if (a.rfind("--", 0) != 0) throw usage_error{"unexpected argument " + shown(a)};
        if (i + 1 >= argc) throw usage_error{a + " needs a value"};
        const std::string v = argv[++i];
        if (a == "--vm") {
            add_vm(vm_entry(v, "--vm"), "--vm", false);
        } else if (a == "--vms-file") {
            if (!o.vms_file.empty()) throw usage_error{"--vms-file is given twice"};
            o.vms_file = v;
        } else if (a == "--spec") {
            std::error_code ec;
            qmp::diagnostics why;
            auto spec = qmp::parse_threshold_spec(v, ec, &why);
            if (!spec) throw usage_error{"--spec " + shown(v) + ": " + why.message};
            check_spec(*spec, v);
            o.spec = *spec;
        } else if (a == "--disk") {
            if (v.empty()) throw usage_error{"--disk wants a disk name"};
            o.disks.insert(v);
        } else if (a == "--extend-cmd") {
            if (v.empty()) throw usage_error{"--extend-cmd wants a command"};
            o.extend_cmd = v;
        } else if (a == "--hook-timeout") {
            o.hook_timeout = to_ms(parse_seconds(a, v));
        } else if (a == "--stop-timeout") {
            o.stop_timeout = to_ms(parse_seconds(a, v));
        } else if (a == "--audit-interval") {
            o.audit_interval = to_ms(parse_seconds(a, v));
        } else if (a == "--metrics-timeout") {
            o.metrics_request_timeout = to_ms(parse_seconds(a, v));
        } else if (a == "--sample-interval") {
            o.sample_interval = to_ms(parse_seconds(a, v));
        } else if (a == "--state-dir") {
            check_folder(v);
            o.state_dir = v;
        } else if (a == "--log") {
            if (v != "json" && v != "text") throw usage_error{"--log is json or text, not " + shown(v)};
            o.text_log = v == "text";
        } else if (a == "--metrics") {
            const auto colon = v.rfind(':');
            if (colon == std::string::npos) throw usage_error{"--metrics wants HOST:PORT, not " + shown(v)};
            std::string host = v.substr(0, colon);
            const std::string port = v.substr(colon + 1);
            if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
            if (host.empty()) host = "127.0.0.1";
            std::error_code ec;
            (void)asio::ip::make_address(host, ec);
            if (ec) throw usage_error{"--metrics: " + shown(host) + " is not an IP address"};
            if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
                std::stoul(port) == 0 || std::stoul(port) > 65535)
                throw usage_error{"--metrics: the port " + shown(port) + " is not 1 to 65535"};
            o.metrics_host = host;
            o.metrics_port = static_cast<unsigned short>(std::stoul(port));
        } else {
            throw usage_error{"unknown option " + shown(a)};
        }
    }
    if (!o.vms_file.empty())
        for (auto& vm : read_vms_file(o.vms_file)) add_vm(vm, "--vms-file " + o.vms_file, true);
    if (o.vms.empty() && o.file_vms.empty()) throw usage_error{"no VM: give --vm NAME=SOCKET or --vms-file FILE"};
    return o;
}

}  // namespace thin_agent
