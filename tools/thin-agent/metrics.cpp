// qmp-thin-agent: the Prometheus text format on /metrics.
#include "vm.hpp"

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <sstream>

#include <fcntl.h>

namespace thin_agent {

std::string agent::metrics_text() const {
    std::ostringstream m;
    m.precision(12);  // bytes exact up to a terabyte, seconds as written
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
    // What an operator alerts on: room left, how fast it goes, when it runs out.
    struct per_target {
        const char* name;
        const char* help;
        std::function<std::optional<double>(const qmp::threshold_report_row&, const write_rate*)> get;
    };
    auto headroom = [](const qmp::threshold_report_row& r) -> std::optional<double> {
        if (!r.capacity || !r.element.allocation || *r.element.allocation > *r.capacity) return std::nullopt;
        return static_cast<double>(*r.capacity - *r.element.allocation);
    };
    const per_target derived[] = {
        {"qmp_thin_headroom_bytes", "Capacity less allocation: room left before the storage is full.",
         [&](const qmp::threshold_report_row& r, const write_rate*) { return headroom(r); }},
        {"qmp_thin_write_rate_bytes_per_second", "Allocation growth, estimated from reports (--sample-interval).",
         [](const qmp::threshold_report_row&, const write_rate* w) { return w ? w->bytes_per_second : std::nullopt; }},
        {"qmp_thin_time_to_full_seconds", "Headroom at the current write rate (absent while nothing is written).",
         [&](const qmp::threshold_report_row& r, const write_rate* w) -> std::optional<double> {
             auto h = headroom(r);
             if (!h || !w || !w->bytes_per_second || *w->bytes_per_second <= 0) return std::nullopt;
             return *h / *w->bytes_per_second;
         }},
    };
    for (const auto& g : derived) {
        family(g.name, "gauge", g.help);
        for (const auto& [n, v] : vms_)
            for (const auto& [t, row] : v->rows) {
                auto it = v->rates.find(t);
                if (auto x = g.get(row, it == v->rates.end() ? nullptr : &it->second))
                    m << g.name << "{vm=\"" << esc(n) << "\",target=\"" << esc(t) << "\"} " << *x << "\n";
            }
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
        {"qmp_thin_extensions_abandoned_total", "Extensions dropped because their element left the chain (a merge pivoted).",
         &vm_counters::extensions_abandoned},
        {"qmp_thin_hook_timeouts_total", "Extension hooks killed after --hook-timeout (counted as failed too).",
         &vm_counters::hook_timeouts},
        {"qmp_thin_reconnects_total", "Connections made to the VM's monitor.", &vm_counters::reconnects},
        {"qmp_thin_resumed_total", "VMs resumed after a pause on ENOSPC.", &vm_counters::resumed},
        {"qmp_thin_enospc_pauses_total", "Pauses of the VM on ENOSPC.", &vm_counters::enospc_pauses},
        {"qmp_thin_events_immediate_total", "Thresholds already crossed when armed (QEMU would not fire them: reported by the agent).",
         &vm_counters::events_immediate},
    };
    for (const auto& c : counters) {
        family(c.name, "counter", c.help);
        for (const auto& [n, v] : vms_) m << c.name << "{vm=\"" << esc(n) << "\"} " << v->counters.*c.field << "\n";
    }
    struct service_counter {
        const char* name;
        const char* help;
        std::function<std::uint64_t(const vm&)> get;
    };
    const service_counter from_service[] = {
        {"qmp_thin_loss_markers_total", "Event-loss markers the threshold service received.",
         [](const vm& v) { return v.service.stats().loss_markers; }},
        {"qmp_thin_resyncs_total", "Resyncs run (journal and write counters; audits included).",
         [](const vm& v) { return v.service.tracker().stats().resyncs; }},
        {"qmp_thin_audits_total", "Audits run (every armed threshold read back from QEMU).",
         [](const vm& v) { return v.service.tracker().stats().audits; }},
        {"qmp_thin_details_queries_total",
         "query-named-block-nodes answered: the query that holds QEMU's main loop longest on deep chains.",
         [](const vm& v) { return v.service.stats().details_queries; }},
    };
    for (const auto& c : from_service) {
        family(c.name, "counter", c.help);
        for (const auto& [n, v] : vms_) m << c.name << "{vm=\"" << esc(n) << "\"} " << c.get(*v) << "\n";
    }
    family("qmp_thin_connected", "gauge", "1 while the VM's monitor is connected.");
    for (const auto& [n, v] : vms_) m << "qmp_thin_connected{vm=\"" << esc(n) << "\"} " << (v->up ? 1 : 0) << "\n";
    family("qmp_thin_paused", "gauge", "1 while the VM is paused on ENOSPC and not yet resumed.");
    for (const auto& [n, v] : vms_) m << "qmp_thin_paused{vm=\"" << esc(n) << "\"} " << (v->paused_nospace ? 1 : 0) << "\n";
    struct phase {
        const char* name;
        const char* help;
        seconds_histogram vm_counters::*field;
    };
    const phase phases[] = {
        {"qmp_thin_extension_to_hook_start_seconds", "Extension phase: threshold event taken to hook started.",
         &vm_counters::to_hook_start},
        {"qmp_thin_extension_hook_seconds", "Extension phase: the hook running.", &vm_counters::hook_run},
        {"qmp_thin_extension_to_rearmed_seconds", "Extension phase: hook done to threshold armed again.",
         &vm_counters::to_rearmed},
        {"qmp_thin_resync_seconds", "Resyncs (audits included): first graph query to last decision carried out.",
         &vm_counters::resync},
    };
    for (const auto& p : phases) {
        family(p.name, "histogram", p.help);
        for (const auto& [n, v] : vms_) {
            const seconds_histogram& h = v->counters.*p.field;
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < seconds_histogram::bounds.size(); ++i) {
                cumulative += h.in_bucket[i];
                m << p.name << "_bucket{vm=\"" << esc(n) << "\",le=\"" << seconds_histogram::bounds[i] << "\"} " << cumulative
                  << "\n";
            }
            m << p.name << "_bucket{vm=\"" << esc(n) << "\",le=\"+Inf\"} " << h.count << "\n";
            m << p.name << "_sum{vm=\"" << esc(n) << "\"} " << h.sum << "\n";
            m << p.name << "_count{vm=\"" << esc(n) << "\"} " << h.count << "\n";
        }
    }
    return m.str();
}

// ---- the endpoint ----------------------------------------------------------------------
//
// A client that does not finish its request within the request timeout is
// dropped; at most a few are served at once, fewer than the descriptor
// limit leaves (agent::start; the others wait in the listen backlog,
// holding no descriptor of ours); an accept that fails (EMFILE, ...) is
// tried again a second later. None of it can keep an extension from
// starting: hooks are spawned without new descriptors, and the VMs and
// journals keep theirs.

void agent::serve_metrics() {
    const asio::ip::tcp::endpoint ep(asio::ip::make_address(opts_.metrics_host), opts_.metrics_port);
    acceptor_.emplace(io_);
    try {
        acceptor_->open(ep.protocol());
        ::fcntl(acceptor_->native_handle(), F_SETFD, FD_CLOEXEC);
        acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
        acceptor_->bind(ep);
        acceptor_->listen();
    } catch (const std::system_error& e) {
        throw std::system_error(e.code(), "--metrics " + opts_.metrics_host + ":" + std::to_string(opts_.metrics_port));
    }
    accept_metrics();
}

void agent::accept_metrics() {
    if (!acceptor_ || !acceptor_->is_open() || accepting_ || metrics_clients_ >= metrics_cap_) return;
    accepting_ = true;
    acceptor_->async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
        accepting_ = false;
        if (ec == asio::error::operation_aborted || stopping_) return;
        if (ec) {
            // Out of descriptors, or the like: said once a second at most, tried again.
            out_.emit({{"what", "error"}, {"error", "metrics: accept: " + ec.message() + "; trying again in 1 s"}});
            accept_retry_.expires_after(std::chrono::seconds(1));
            accept_retry_.async_wait([this](std::error_code e) {
                if (!e) accept_metrics();
            });
            return;
        }
        ::fcntl(s.native_handle(), F_SETFD, FD_CLOEXEC);
        serve_client(std::make_shared<asio::ip::tcp::socket>(std::move(s)));
        accept_metrics();
    });
}

void agent::serve_client(std::shared_ptr<asio::ip::tcp::socket> sock) {
    ++metrics_clients_;
    struct client {
        asio::streambuf buf{16 * 1024};
        asio::steady_timer deadline;
        std::string reply;
        explicit client(asio::io_context& io) : deadline(io) {}
    };
    auto c = std::make_shared<client>(io_);
    auto done = [this, sock, c] {
        std::error_code ignored;
        c->deadline.cancel();
        sock->close(ignored);
        --metrics_clients_;
        accept_metrics();
    };
    c->deadline.expires_after(opts_.metrics_request_timeout);
    c->deadline.async_wait([sock](std::error_code ec) {
        std::error_code ignored;
        if (!ec) sock->close(ignored);  // too slow: the read below ends with an error
    });
    asio::async_read_until(*sock, c->buf, "\r\n\r\n", [this, sock, c, done](std::error_code ec, std::size_t) {
        if (ec) return done();
        std::istream in(&c->buf);
        std::string method, path;
        in >> method >> path;
        std::string body, status = "200 OK";
        if (method == "GET" && (path == "/metrics" || path.rfind("/metrics?", 0) == 0)) {
            body = metrics_text();
        } else {
            status = "404 Not Found";
            body = "only /metrics is served here\n";
        }
        c->reply = "HTTP/1.1 " + status +
                   "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        asio::async_write(*sock, asio::buffer(c->reply), [c, done](std::error_code, std::size_t) { done(); });
    });
}

}  // namespace thin_agent
