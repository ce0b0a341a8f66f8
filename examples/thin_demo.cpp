// qmp-thin-demo: a thin-provisioning story against a QEMU it starts itself.
//
// The disk `vda` is a chain of three qcow2 images, each on "thin" storage: a
// raw window (offset 0, size S) over a larger file, so a write past S fails
// with "No space left on device", like a full LV. An agent built on
// qmp::threshold_manager keeps the storage ahead of the writes:
//
//  1. it arms `vda` with a free-space margin; data arrives through NBD in
//     bursts (qemu-io); every BLOCK_WRITE_THRESHOLD leads to an extension
//     (blockdev-reopen with a bigger window) and a re-arm;
//  2. a live merge: block-commit of the top into vda[N], with a threshold on
//     that backing element, which the commit's own writes cross;
//  3. a missed event: the agent disconnects, a write crosses a threshold, it
//     reconnects and the event comes back as recovered.
//
//   qmp-thin-demo [--qemu-bindir DIR] [--no-agent] [--keep]
//
// --no-agent writes the same bursts with nobody extending: the writes fail.
// --keep leaves QEMU running and prints its socket, to try qmpctl on it.
// Exits 0 when every step did what it should.
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/threshold/manager.hpp>

#include <iomanip>
#include <iostream>

using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t MiB = 1u << 20;

struct step_failed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void require(bool ok, const std::string& what) {
    if (!ok) throw step_failed(what);
}

struct demo {
    qmp_support::qemu_build qemu{"system", "/usr/bin"};
    bool agent = true;
    bool keep = false;

    qmp_support::temp_dir dir;
    std::unique_ptr<qmp_support::qemu_instance> vm;
    std::unique_ptr<qmp::threshold_manager> mgr;
    std::map<std::string, std::uint64_t> window;  // thin node -> its size
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    int extensions = 0;

    void say(const std::string& s) const {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        std::cout << "[" << std::setw(6) << std::fixed << std::setprecision(2) << ms / 1000.0 << "s] " << s << std::endl;
    }

    void start() {
        auto files = qmp_support::make_chain(qemu, dir, "vda", 3, "1G");
        qmp_support::qemu_config cfg;
        const std::uint64_t initial[] = {8 * MiB, 4 * MiB, 4 * MiB};  // base, mid, top
        for (int i = 0; i < 3; ++i) {
            std::string n = "vda-" + std::to_string(i);
            qmp_support::run_checked({"truncate", "-s", "1G", files[i]});  // the volume group behind the LV
            window[n + "-thin"] = initial[i];
            cfg.blockdevs.push_back(R"({"driver":"file","node-name":")" + n + R"(-file","filename":")" + files[i] + "\"}");
            cfg.blockdevs.push_back(R"({"driver":"raw","node-name":")" + n + R"(-thin","file":")" + n +
                                    R"(-file","offset":0,"size":)" + std::to_string(initial[i]) + "}");
            std::string fmt = R"({"driver":"qcow2","node-name":")" + n + R"(-fmt","file":")" + n + "-thin\"";
            if (i > 0) fmt += R"(,"backing":"vda-)" + std::to_string(i - 1) + "-fmt\"";
            cfg.blockdevs.push_back(fmt + "}");
        }
        // A paused VM (no guest runs): the disk is a virtio device; the data
        // comes in through an NBD export of the same node.
        cfg.kind = qmp_support::qemu_kind::system;
        cfg.extra = {"-device", "virtio-blk-pci,drive=vda-2-fmt,id=virtio-disk0,share-rw=on"};
        vm = std::make_unique<qmp_support::qemu_instance>(qemu, dir, cfg, "vm");
        qmp::threshold_manager_options o;
        o.catalog.entries["vda"] = "virtio-disk0";
        mgr = std::make_unique<qmp::threshold_manager>(asio::local::stream_protocol::endpoint(vm->qmp_path()), o);
        mgr->connect();
        mgr->client().execute("nbd-server-start",  // SocketAddressLegacy: the path goes under "data"
                              {{"addr", {{"type", "unix"}, {"data", {{"path", vm->nbd_path()}}}}}});
        mgr->client().execute("block-export-add", {{"type", "nbd"}, {"id", "e0"}, {"node-name", "vda-2-fmt"},
                                                   {"name", "vda"}, {"writable", true}});
        auto v = mgr->client().execute(qmp::query_version{});
        say("QEMU " + std::to_string(v.qemu.major) + "." + std::to_string(v.qemu.minor) + "." +
            std::to_string(v.qemu.micro) + " started; disk vda: " + chain_text());
    }

    std::string chain_text() {
        std::string s;
        for (const auto& r : mgr->report()) {
            if (!s.empty()) s += " <- ";
            s += qmp::target{r.disk, r.element.index}.indexed() + " (" + r.element.format_node + ", storage " +
                 std::to_string(r.element.capacity.value_or(0) / MiB) + " MiB)";
        }
        return s;
    }

    // The agent's reaction: grow the storage of the element by 16 MiB.
    void extend(const qmp::threshold_event& e) {
        std::error_code ec;
        auto el = mgr->chains().resolve(e.where, ec);
        require(el.has_value(), "event for " + e.where.indexed() + " does not resolve");
        const std::string thin = el->element.storage_node;
        const std::string file = thin.substr(0, thin.size() - 5) + "-file";
        std::uint64_t size = window[thin] + 16 * MiB;
        mgr->client().execute(qmp::blockdev_reopen{{{{"driver", "raw"}, {"node-name", thin}, {"file", file},
                                                     {"offset", 0}, {"size", size}}}});
        window[thin] = size;
        ++extensions;
        say("  extended " + e.where.indexed() + " (" + thin + ") to " + std::to_string(size / MiB) + " MiB");
        handle(mgr->extended(e.where.indexed(), size));
    }

    void handle(const std::vector<qmp::threshold_event>& events) {
        for (const auto& e : events) {
            const char* how = e.how == qmp::threshold_event::origin::live        ? "live"
                              : e.how == qmp::threshold_event::origin::recovered ? "RECOVERED"
                              : e.how == qmp::threshold_event::origin::immediate ? "immediate"
                                                                                 : "gone";
            if (e.how == qmp::threshold_event::origin::gone) {
                say("  " + e.where.indexed() + " left the chain (" + e.node + "): its threshold went with it");
                continue;
            }
            say("  event " + std::string(how) + ": " + e.where.indexed() + (e.active ? " (active)" : "") + " " +
                qmp::to_string(e.node_layer) + " node " + e.node + " crossed " + std::to_string(e.threshold) +
                " by " + std::to_string(e.amount_exceeded));
            if (agent && e.how != qmp::threshold_event::origin::gone && e.armed_by_manager) extend(e);
        }
    }

    // Writes `bursts` MiB through NBD, one MiB per burst, polling events between.
    int write_bursts(std::uint64_t from_mib, int bursts) {
        int failed = 0;
        for (int i = 0; i < bursts; ++i) {
            std::string out;
            int rc = vm->nbd_write((from_mib + i) * MiB, MiB, &out);
            std::cout << "\r  writing: " << (i + 1) << "/" << bursts << " MiB" << std::flush;
            if (rc != 0) {
                ++failed;
                std::cout << "\n";
                say("  write at " + std::to_string(from_mib + i) + " MiB FAILED: " +
                    (out.find("No space left") != std::string::npos ? "No space left on device" : out));
            }
            if (agent) {
                auto ev = mgr->poll(100ms);
                if (!ev.empty()) std::cout << "\n";
                handle(ev);
            }
        }
        std::cout << "\n";
        return failed;
    }

    void run() {
        start();
        if (!agent) {
            say("step 1 without an agent: 24 MiB in 1 MiB bursts, nobody extends");
            int failed = write_bursts(0, 24);
            require(failed > 0, "writes past the thin storage should have failed");
            say("without the agent " + std::to_string(failed) + " of 24 writes failed: the storage ran out");
            return;
        }

        say("step 1: arm vda with a 2 MiB free-space margin, write 24 MiB in bursts");
        handle(mgr->arm("vda", qmp::threshold_spec::margin(2 * MiB), qmp::rearm_policy::on_extend));
        int failed = write_bursts(0, 24);
        require(failed == 0, std::to_string(failed) + " writes failed: an extension came too late");
        require(extensions >= 1, "no extension happened");
        say("step 1 done: " + std::to_string(extensions) + " extensions, every write succeeded");

        say("step 2: live merge: commit the top into vda[2] with a threshold on vda[2]");
        handle(mgr->arm("vda[2]", qmp::threshold_spec::margin(2 * MiB), qmp::rearm_policy::on_extend));
        const int before = extensions;
        qmp::block_commit c;
        c.device = "vda-2-fmt";
        c.base_node = "vda-1-fmt";
        c.on_error = "stop";  // a full volume pauses the job instead of failing it
        c.job.job_id = "live-merge";
        mgr->client().execute(c);
        bool ready = false;
        int resumed = 0;
        for (int i = 0; i < 600 && !ready; ++i) {
            const int seen = extensions;
            handle(mgr->poll(100ms));
            for (const auto& j : mgr->client().execute(qmp::query_block_jobs{})) {
                if (j.device != "live-merge") continue;
                if (j.ready) ready = true;
                if (j.paused || j.status == "paused") {
                    if (extensions == seen) handle(mgr->resync());  // the event may have raced the pause
                    say("  the commit paused on a full volume; resuming after the extension");
                    mgr->client().execute(qmp::block_job_resume{"live-merge"});
                    ++resumed;
                }
            }
        }
        require(ready, "the commit did not become ready");
        mgr->client().execute(qmp::block_job_complete{"live-merge"});
        bool done = false;
        for (int i = 0; i < 100 && !done; ++i) {
            handle(mgr->poll(100ms));
            done = mgr->client().execute(qmp::query_block_jobs{}).empty();
        }
        require(done, "the commit did not complete");
        say("  the commit completed (" + std::to_string(resumed) + " pauses on a full volume)");
        // The committed top is no longer part of the disk: delete it, as libvirt does.
        mgr->client().execute(qmp::blockdev_del{"vda-2-fmt"});
        mgr->client().execute(qmp::blockdev_del{"vda-2-thin"});
        mgr->client().execute(qmp::blockdev_del{"vda-2-file"});
        require(extensions > before, "the commit's writes into vda[2] were not seen");
        handle(mgr->resync());  // the old top's threshold is gone with it
        say("step 2 done: vda is now " + chain_text());

        say("step 3: a missed event: disconnect, write, reconnect");
        handle(mgr->arm("vda", qmp::threshold_spec::margin(2 * MiB), qmp::rearm_policy::on_extend));
        auto rows = mgr->report();
        std::uint64_t room = rows.front().element.capacity.value_or(0) - rows.front().element.allocation.value_or(0);
        mgr->client().close();
        // Enough to cross the 2 MiB margin, not enough to fill the volume.
        const int mib = static_cast<int>(room / MiB) - 1;
        say("  disconnected; writing " + std::to_string(mib) + " MiB");
        agent = false;  // nobody listens now
        require(write_bursts(32, mib) == 0, "a write failed while disconnected");
        agent = true;
        auto back = mgr->poll(5s);  // reconnects by itself and resyncs
        bool recovered = false;
        for (const auto& e : back) recovered = recovered || e.recovered();
        handle(back);
        require(recovered, "the missed event did not come back as recovered");
        say("step 3 done: the event that fired while disconnected was recovered");
    }

    void table() {
        std::cout << "\n"
                  << std::left << std::setw(8) << "target" << std::setw(8) << "active" << std::setw(12) << "format"
                  << std::setw(14) << "storage" << std::right << std::setw(12) << "capacity" << std::setw(12)
                  << "allocation" << std::setw(12) << "threshold" << "  armed\n";
        for (const auto& r : mgr->report())
            std::cout << std::left << std::setw(8) << qmp::target{r.disk, r.element.index}.indexed() << std::setw(8)
                      << (r.active ? "yes" : "") << std::setw(12) << r.element.format_node << std::setw(14)
                      << r.element.storage_node << std::right << std::setw(12) << r.element.capacity.value_or(0)
                      << std::setw(12) << r.element.allocation.value_or(0) << std::setw(12)
                      << r.element.storage_threshold.value_or(0) << "  "
                      << (r.armed ? r.armed->spec.str() : std::string("-")) << "\n";
    }
};

}  // namespace

int main(int argc, char** argv) {
    demo d;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--qemu-bindir" && i + 1 < argc)
            d.qemu.bindir = argv[++i];
        else if (a == "--no-agent")
            d.agent = false;
        else if (a == "--keep")
            d.keep = true;
        else {
            std::cerr << "usage: qmp-thin-demo [--qemu-bindir DIR] [--no-agent] [--keep]\n";
            return 2;
        }
    }
    int rc = 0;
    try {
        d.run();
        d.table();
        std::cout << "\nqmp-thin-demo: every step did what it should\n";
    } catch (const std::exception& e) {
        std::cerr << "qmp-thin-demo: FAILED: " << e.what() << "\n";
        if (d.vm) std::cerr << "QEMU's log:\n" << d.vm->log();
        rc = 1;
    }
    if (d.keep && d.vm) {
        std::cout << "QEMU keeps running (pid " << d.vm->process().pid() << "); its QMP socket: " << d.vm->qmp_path()
                  << "\n  try: build/bin/qmpctl -s " << d.vm->qmp_path() << " --disk vda=virtio-disk0 chain\n";
        d.vm->process().release();
        d.dir.keep();
        d.mgr.reset();
    }
    return rc;
}
