// qmp-thin-agent: the Prometheus text format on /metrics.
#include "vm.hpp"

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <sstream>

namespace thin_agent {

std::string agent::metrics_text() const {
    std::ostringstream m;
    auto family = [&](const char* name, const char* type, const char* help) {
        m << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    };
    auto esc = [](const std::string& s) {
        std::string o;
        for (char ch : s) {
            if (ch == '\\' || ch == '"') o += '\\';
            if (ch == '\n') {
                o += "\\n";
                continue;
            }
            o += ch;
        }
        return o;
    };
    struct gauge {
        const char* name;
        const char* help;
        std::function<std::optional<std::uint64_t>(const qmp::threshold_report_row&)> get;
    };
    const gauge gauges[] = {
        {"qmp_thin_capacity_bytes", "Capacity a spec computes against, per chain element.",
         [](const qmp::threshold_report_row& r) { return r.capacity; }},
        {"qmp_thin_allocation_bytes", "Highest offset written on the element's storage (wr_highest_offset).",
         [](const qmp::threshold_report_row& r) { return r.element.allocation; }},
        {"qmp_thin_threshold_bytes", "Write threshold the agent armed on the element (0: none).",
         [](const qmp::threshold_report_row& r) { return std::optional<std::uint64_t>(r.armed ? r.armed->threshold : 0); }},
    };
    for (const auto& g : gauges) {
        family(g.name, "gauge", g.help);
        for (const auto& [n, v] : vms_)
            for (const auto& [t, row] : v->rows)
                if (auto x = g.get(row)) m << g.name << "{vm=\"" << esc(n) << "\",target=\"" << esc(t) << "\"} " << *x << "\n";
    }
    struct counter {
        const char* name;
        const char* help;
        std::uint64_t vm_counters::*field;
    };
    const counter counters[] = {
        {"qmp_thin_events_live_total", "Threshold events received as they happened.", &vm_counters::events_live},
        {"qmp_thin_events_recovered_total", "Threshold events found by a resync (fired while nobody listened).",
         &vm_counters::events_recovered},
        {"qmp_thin_extensions_ok_total", "Extension hooks that succeeded.", &vm_counters::extensions_ok},
        {"qmp_thin_extensions_failed_total", "Extension hooks that failed (retried).", &vm_counters::extensions_failed},
        {"qmp_thin_reconnects_total", "Connections made to the VM's monitor.", &vm_counters::reconnects},
        {"qmp_thin_resumed_total", "VMs resumed after a pause on ENOSPC.", &vm_counters::resumed},
    };
    for (const auto& c : counters) {
        family(c.name, "counter", c.help);
        for (const auto& [n, v] : vms_) m << c.name << "{vm=\"" << esc(n) << "\"} " << v->counters.*c.field << "\n";
    }
    family("qmp_thin_loss_markers_total", "counter", "Event-loss markers the threshold service received.");
    for (const auto& [n, v] : vms_)
        m << "qmp_thin_loss_markers_total{vm=\"" << esc(n) << "\"} " << v->service.stats().loss_markers << "\n";
    family("qmp_thin_connected", "gauge", "1 while the VM's monitor is connected.");
    for (const auto& [n, v] : vms_) m << "qmp_thin_connected{vm=\"" << esc(n) << "\"} " << (v->up ? 1 : 0) << "\n";
    return m.str();
}

void agent::serve_metrics() {
    auto colon = opts_.metrics.rfind(':');
    const std::string host = opts_.metrics.substr(0, colon);
    const auto port = static_cast<unsigned short>(std::stoi(opts_.metrics.substr(colon + 1)));
    asio::ip::tcp::endpoint ep(asio::ip::make_address(host.empty() ? "127.0.0.1" : host), port);
    acceptor_.emplace(io_, ep);
    accept_metrics();
}

void agent::accept_metrics() {
    acceptor_->async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
        if (ec) return;  // closed
        auto sock = std::make_shared<asio::ip::tcp::socket>(std::move(s));
        auto buf = std::make_shared<asio::streambuf>(16 * 1024);
        asio::async_read_until(*sock, *buf, "\r\n\r\n", [this, sock, buf](std::error_code ec2, std::size_t) {
            if (ec2) return;
            std::istream in(buf.get());
            std::string method, path;
            in >> method >> path;
            std::string body, status = "200 OK";
            if (method == "GET" && (path == "/metrics" || path.rfind("/metrics?", 0) == 0))
                body = metrics_text();
            else {
                status = "404 Not Found";
                body = "only /metrics is served here\n";
            }
            auto reply = std::make_shared<std::string>("HTTP/1.1 " + status +
                                                       "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                                       "Content-Length: " +
                                                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
            asio::async_write(*sock, asio::buffer(*reply), [sock, reply](std::error_code, std::size_t) {});
        });
        accept_metrics();
    });
}

}  // namespace thin_agent
