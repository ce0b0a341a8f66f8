// qmp-thin-demo: a thin-provisioning story against a QEMU it starts itself.
//
// The disk `vda` is a chain of three qcow2 images, each on "thin" storage: a
// raw window (offset 0, size S) over a larger file, so a write past S fails
// with "No space left on device", like a full LV. An agent built on
// qmp::threshold_service keeps the storage ahead of the writes. It runs on
// one io_context thread, the way a management agent does: the service, a
// reconnector and the agent's own subscription to block-job events share
// one connection, and nothing polls.
//
//  1. it arms `vda` with a free-space margin; data arrives through NBD in
//     bursts (qemu-io); every BLOCK_WRITE_THRESHOLD leads to an extension
//     (blockdev-reopen with a bigger window) and a re-arm;
//  2. a live merge: block-commit of the top into vda[N], with a threshold on
//     that backing element, which the commit's own writes cross; the agent
//     follows the job through BLOCK_JOB_* events (resumes it after a pause
//     on a full volume, pivots when it is ready);
//  3. a missed event: the agent disconnects, a write crosses a threshold, it
//     reconnects and the event comes back as recovered.
//
//   qmp-thin-demo [--qemu-bindir DIR] [--no-agent] [--keep]
//
// --no-agent writes the same bursts with nobody extending: the writes fail.
// --keep leaves QEMU running and prints its socket, to try qmpctl on it.
// Exits 0 when every step did what it should.
#include <support/qemu.hpp>

#include <qmp/client/reconnector.hpp>
#include <qmp/qapi.hpp>
#include <qmp/threshold/service.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <future>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <thread>

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
    using reconnector = qmp::basic_reconnector<qmp::unix_client, asio::local::stream_protocol::endpoint>;

    qmp_support::qemu_build qemu{"system", "/usr/bin"};
    bool agent = true;
    bool keep = false;

    qmp_support::temp_dir dir;
    std::unique_ptr<qmp_support::qemu_instance> vm;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    std::mutex out;

    // ---- the agent: everything below runs on the io_context's thread ----------
    asio::io_context ioc;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::thread thread;
    std::unique_ptr<qmp::unix_client> client;
    std::unique_ptr<qmp::threshold_service> service;
    std::unique_ptr<reconnector> rec;
    qmp::unix_client::subscription jobs;
    std::map<std::string, std::uint64_t> window;  // thin node -> its size
    bool extending = true;                       // the agent acts on events
    int extensions = 0;
    int pauses = 0;
    int growing = 0;          // extensions in progress
    std::string paused_job;   // a job paused on a full volume, to resume
    bool recovered = false;
    std::promise<void> connected, job_done;

    void say(const std::string& s) {
        std::lock_guard<std::mutex> lock(out);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
        std::cout << "[" << std::setw(6) << std::fixed << std::setprecision(2) << ms / 1000.0 << "s] " << s << std::endl;
    }

    // Runs `f` on the agent's thread and waits for its result.
    template <class F>
    auto on_agent(F f) -> decltype(f()) {
        return asio::post(ioc, std::packaged_task<decltype(f())()>(std::move(f))).get();
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

        client = std::make_unique<qmp::unix_client>(ioc);
        qmp::threshold_service_options o;
        o.tracker.catalog.entries["vda"] = "virtio-disk0";
        o.on_connection = [this](bool up, std::error_code why) {
            say(up ? "  agent: connected, resyncing" : "  agent: connection lost (" + why.message() + ")");
        };
        service = std::make_unique<qmp::threshold_service>(*client, o);
        // The agent's own events on the same connection: block jobs.
        jobs = client->subscribe(
            qmp::filter_for<qmp::block_job_ready_event, qmp::block_job_completed_event, qmp::block_job_error_event>());
        work.emplace(ioc.get_executor());
        thread = std::thread([this] { ioc.run(); });
        connect();
        receive_thresholds();
        receive_jobs();

        client->async_execute("nbd-server-start",  // SocketAddressLegacy: the path goes under "data"
                              {{"addr", {{"type", "unix"}, {"data", {{"path", vm->nbd_path()}}}}}}, asio::use_future)
            .get();
        client->async_execute("block-export-add",
                              {{"type", "nbd"}, {"id", "e0"}, {"node-name", "vda-2-fmt"}, {"name", "vda"}, {"writable", true}},
                              asio::use_future)
            .get();
        auto v = client->async_execute(qmp::query_version{}, asio::use_future).get();
        say("QEMU " + v.text() + " started; disk vda: " + chain_text());
    }

    // Connects (and reconnects, backing off) without blocking the thread;
    // each session tells the service, which resyncs.
    void connect() {
        connected = {};
        auto up = connected.get_future();
        rec = std::make_unique<reconnector>(*client, asio::local::stream_protocol::endpoint(vm->qmp_path()),
                                            qmp::reconnect_options{}, [this, told = false](const qmp::reconnect_status& s) mutable {
                                                if (!s.up) return;
                                                service->on_connected();
                                                if (!told) connected.set_value();
                                                told = true;
                                            });
        rec->start();
        require(up.wait_for(30s) == std::future_status::ready, "the agent could not connect");
    }

    void receive_thresholds() {
        service->async_receive([this](std::error_code ec, qmp::threshold_event e) {
            if (ec) return;  // the service stopped
            handle(e);
            receive_thresholds();
        });
    }

    // The commit is followed by its events: no query-block-jobs loop.
    void receive_jobs() {
        jobs.async_receive([this](std::error_code ec, qmp::event ev) {
            if (ec == asio::error::operation_aborted) return;
            if (ec) return receive_jobs();  // disconnected: the subscription goes on after a reconnect
            on_job(ev);
            receive_jobs();
        });
    }

    void on_job(const qmp::event& ev) {
        // Read typed: a member of the wrong type is said, never thrown.
        std::error_code ec;
        qmp::diagnostics why;
        std::string id;
        if (auto e = qmp::event_as<qmp::block_job_error_event>(ev, ec, &why)) id = e->device;
        else if (auto r = qmp::event_as<qmp::block_job_ready_event>(ev, ec, &why)) id = r->device;
        else if (auto c = qmp::event_as<qmp::block_job_completed_event>(ev, ec, &why)) id = c->device;
        if (ec) return say("  an unreadable " + ev.name + ": " + why.message);
        if (ev.name == "BLOCK_JOB_ERROR") {
            // on-error=stop: a full volume paused the job (each failed
            // request says so; one resume is enough). Its threshold event may
            // have raced the pause: a resync settles it, and the job resumes
            // once the extensions it caused are done.
            if (!paused_job.empty()) return;
            paused_job = id;
            ++pauses;
            say("  " + id + " paused on a full volume; resuming once the storage grew");
            service->async_resync([this](std::error_code, std::vector<qmp::threshold_event> found) {
                for (auto& e : found) handle(e);
                maybe_resume();
            });
        } else if (ev.name == "BLOCK_JOB_READY") {
            say("  " + id + " is ready: pivoting");
            client->async_execute(qmp::block_job_complete{id}, [](std::error_code, qmp::empty_result) {});
        } else if (ev.name == "BLOCK_JOB_COMPLETED") {
            say("  " + id + " completed");
            job_done.set_value();
        }
    }

    void maybe_resume() {
        if (paused_job.empty() || growing > 0) return;
        client->async_execute(qmp::block_job_resume{paused_job}, [](std::error_code, qmp::empty_result) {});
        paused_job.clear();
    }

    // The agent's reaction: grow the storage of the element by 16 MiB.
    void handle(const qmp::threshold_event& e) {
        if (e.how == qmp::threshold_event::origin::gone) {
            say("  " + e.where.indexed() + " left the chain (" + e.node + "): its threshold went with it");
            return;
        }
        recovered = recovered || e.recovered();
        say("  event " + std::string(qmp::to_string(e.how)) + ": " + e.where.indexed() + (e.active ? " (active)" : "") +
            " " + qmp::to_string(e.node_layer) + " node " + e.node + " crossed " + std::to_string(e.threshold) +
            " by " + std::to_string(e.amount_exceeded));
        if (!extending || !e.tracked) return;
        std::error_code ec;
        auto el = service->chains().resolve(e.where, ec);
        if (!el) return say("  event for " + e.where.indexed() + " does not resolve: " + ec.message());
        const std::string thin = el->element.storage_node;
        const std::string file = thin.substr(0, thin.size() - 5) + "-file";
        const std::uint64_t size = window[thin] + 16 * MiB;
        const std::string target = e.where.indexed();
        ++growing;
        client->async_execute(
            qmp::blockdev_reopen{{{{"driver", "raw"}, {"node-name", thin}, {"file", file}, {"offset", 0}, {"size", size}}}},
            [this, thin, size, target](std::error_code ec, qmp::empty_result) {
                --growing;
                if (ec) return say("  extending " + target + " failed: " + ec.message());
                window[thin] = size;
                ++extensions;
                say("  extended " + target + " (" + thin + ") to " + std::to_string(size / MiB) + " MiB");
                // The storage grew: the service re-arms (on-extend policy).
                service->async_extended(target, size, [this](std::error_code, std::vector<qmp::threshold_event> evs) {
                    for (auto& e : evs) handle(e);
                    maybe_resume();
                });
            });
    }

    std::vector<qmp::threshold_report_row> report() { return service->async_report(asio::use_future).get(); }

    std::string chain_text() {
        std::string s;
        for (const auto& r : report()) {
            if (!s.empty()) s += " <- ";
            s += qmp::target{r.disk, r.element.index}.indexed() + " (" + r.element.format_node + ", storage " +
                 std::to_string(r.element.capacity.value_or(0) / MiB) + " MiB)";
        }
        return s;
    }

    void arm(const std::string& target, std::uint64_t margin) {
        auto now = service->async_arm(target, qmp::threshold_spec::margin(margin), qmp::rearm_policy::on_extend, 0,
                                      asio::use_future)
                       .get();
        on_agent([&] {
            for (auto& e : now) handle(e);
            return 0;
        });
    }

    // Writes `bursts` MiB through NBD, one MiB per burst, while the agent works.
    int write_bursts(std::uint64_t from_mib, int bursts) {
        int failed = 0;
        for (int i = 0; i < bursts; ++i) {
            std::string text;
            int rc = vm->nbd_write((from_mib + i) * MiB, MiB, &text);
            if (rc != 0) {
                ++failed;
                say("  write at " + std::to_string(from_mib + i) + " MiB FAILED: " +
                    (text.find("No space left") != std::string::npos ? "No space left on device" : text));
            }
        }
        say("  wrote " + std::to_string(bursts) + " MiB in 1 MiB bursts");
        return failed;
    }

    int agent_int(int demo::*member) {
        return on_agent([&] { return this->*member; });
    }

    void run() {
        start();
        if (!agent) {
            on_agent([&] { return extending = false; });
            say("step 1 without an agent: 24 MiB in 1 MiB bursts, nobody extends");
            int failed = write_bursts(0, 24);
            require(failed > 0, "writes past the thin storage should have failed");
            say("without the agent " + std::to_string(failed) + " of 24 writes failed: the storage ran out");
            return;
        }

        say("step 1: arm vda with a 2 MiB free-space margin, write 24 MiB in bursts");
        arm("vda", 2 * MiB);
        int failed = write_bursts(0, 24);
        require(failed == 0, std::to_string(failed) + " writes failed: an extension came too late");
        require(agent_int(&demo::extensions) >= 1, "no extension happened");
        say("step 1 done: " + std::to_string(agent_int(&demo::extensions)) + " extensions, every write succeeded");

        say("step 2: live merge: commit the top into vda[2] with a threshold on vda[2]");
        arm("vda[2]", 2 * MiB);
        const int before = agent_int(&demo::extensions);
        qmp::block_commit c;
        c.device = "vda-2-fmt";
        c.base_node = "vda-1-fmt";
        c.on_error = "stop";  // a full volume pauses the job instead of failing it
        c.job.job_id = "live-merge";
        auto done = job_done.get_future();
        client->async_execute(c, asio::use_future).get();
        require(done.wait_for(120s) == std::future_status::ready, "the commit did not complete");
        say("  the commit completed (" + std::to_string(agent_int(&demo::pauses)) + " pauses on a full volume)");
        // The committed top is no longer part of the disk: delete it, as libvirt does.
        for (const char* node : {"vda-2-fmt", "vda-2-thin", "vda-2-file"})
            client->async_execute(qmp::blockdev_del{node}, asio::use_future).get();
        require(agent_int(&demo::extensions) > before, "the commit's writes into vda[2] were not seen");
        say("step 2 done: vda is now " + chain_text());

        say("step 3: a missed event: disconnect, write, reconnect");
        arm("vda", 2 * MiB);
        auto rows = report();
        std::uint64_t room = rows.front().element.capacity.value_or(0) - rows.front().element.allocation.value_or(0);
        on_agent([&] {
            extending = false;  // nobody listens now
            rec->stop();
            return 0;
        });
        // Enough to cross the 2 MiB margin, not enough to fill the volume.
        const int mib = static_cast<int>(room / MiB) - 1;
        say("  disconnected; writing " + std::to_string(mib) + " MiB");
        require(write_bursts(32, mib) == 0, "a write failed while disconnected");
        on_agent([&] { return extending = true; });
        connect();  // the service resyncs: what fired meanwhile comes back
        bool back = false;
        for (int i = 0; i < 100 && !back; ++i) {
            back = on_agent([&] { return recovered; });
            if (!back) std::this_thread::sleep_for(50ms);
        }
        require(back, "the missed event did not come back as recovered");
        say("step 3 done: the event that fired while disconnected was recovered");
    }

    void table() {
        std::cout << "\n"
                  << std::left << std::setw(8) << "target" << std::setw(8) << "active" << std::setw(12) << "format"
                  << std::setw(14) << "storage" << std::right << std::setw(12) << "capacity" << std::setw(12)
                  << "allocation" << std::setw(12) << "threshold" << "  armed\n";
        for (const auto& r : report())
            std::cout << std::left << std::setw(8) << qmp::target{r.disk, r.element.index}.indexed() << std::setw(8)
                      << (r.active ? "yes" : "") << std::setw(12) << r.element.format_node << std::setw(14)
                      << r.element.storage_node << std::right << std::setw(12) << r.capacity.value_or(0)
                      << std::setw(12) << r.element.allocation.value_or(0) << std::setw(12)
                      << r.element.storage_threshold.value_or(0) << "  "
                      << (r.armed ? r.armed->spec.str() : std::string("-")) << "\n";
    }

    // The agent stops on its own thread; then the thread ends.
    void stop() {
        if (!thread.joinable()) return;
        asio::post(ioc, [this] {
            jobs.reset();
            if (service) service->stop();
            if (rec) rec->stop();
        });
        work.reset();
        thread.join();
    }
    ~demo() { stop(); }
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
        d.stop();
        d.vm->process().release();
        d.dir.keep();
    }
    return rc;
}
