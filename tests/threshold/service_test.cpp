// The asynchronous threshold service against real QEMU 7.2 and 10.0:
// several VMs on one io_context thread, live events without a graph query,
// a commit followed through job events on the same connection while
// thresholds fire, a reconnection that recovers what fired meanwhile.
#include "../support/thin_vm.hpp"

#include <qmp/client/reconnector.hpp>
#include <qmp/qapi.hpp>
#include <qmp/threshold/service.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <future>
#include <thread>

using namespace std::chrono_literals;
using namespace qmp_support;

namespace {

// One io_context on a thread of its own, as an agent runs it.
struct loop {
    asio::io_context ioc;
    asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
    std::thread t{[this] { ioc.run(); }};
    ~loop() {
        work.reset();
        t.join();
    }
    // Runs `f` where the services live and returns its result.
    template <class F>
    auto on(F f) -> decltype(f()) {
        return asio::post(ioc, std::packaged_task<decltype(f())()>(std::move(f))).get();
    }
};

// A VM watched by one service: client, service, reconnector.
struct watched {
    qmp::unix_client client;
    qmp::threshold_service service;
    qmp::basic_reconnector<qmp::unix_client, asio::local::stream_protocol::endpoint> rec;
    std::promise<void> up;
    bool told = false;
    std::vector<qmp::reconnect_status> seen;  // on the executor

    watched(asio::io_context& ioc, asio::local::stream_protocol::endpoint ep, const std::string& top)
        : client(ioc, client_opts()), service(client, opts(top)), rec(client, ep, {}, [this](const qmp::reconnect_status& s) {
              seen.push_back(s);
              if (!s.up) return;
              service.on_connected();
              if (!told) {
                  told = true;
                  up.set_value();
              }
          }) {}

    static qmp::client_options client_opts() {
        qmp::client_options o;
        o.command_timeout = 30s;
        return o;
    }
    static qmp::threshold_service_options opts(const std::string& top) {
        qmp::threshold_service_options o;
        o.tracker.catalog.entries["vda"] = top;
        return o;
    }
    void start() {
        auto f = up.get_future();
        rec.start();
        REQUIRE(f.wait_for(30s) == std::future_status::ready);
    }
    qmp::threshold_event next(std::chrono::milliseconds timeout = 20s) {
        return service.async_receive(timeout, asio::use_future).get();
    }
};

}  // namespace

TEST_CASE("service: VMs on one thread, live events without a graph query, a commit followed through job events" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm1(b, {{"vda", 3}});
        thin_vm vm2(b, {{"vda", 2}});
        INFO(vm1.q->log());
        loop l;
        watched w1(l.ioc, vm1.ep(), "vda-2-fmt");
        watched w2(l.ioc, vm2.ep(), "vda-1-fmt");
        w1.start();
        w2.start();
        // The connect's resync found nothing; arm the tops.
        CHECK(w1.service.async_arm("vda", qmp::threshold_spec::bytes(3u << 20), asio::use_future).get().empty());
        CHECK(w2.service.async_arm("vda", qmp::threshold_spec::margin(60u << 20), asio::use_future).get().empty());
        const auto queries1 = l.on([&] { return w1.service.stats().graph_queries; });
        const auto queries2 = l.on([&] { return w2.service.stats().graph_queries; });

        REQUIRE(vm1.q->nbd_write(0, 4u << 20) == 0);
        REQUIRE(vm2.q->nbd_write(0, 6u << 20) == 0);
        auto e1 = w1.next();
        auto e2 = w2.next();
        CHECK(e1.how == qmp::threshold_event::origin::live);
        CHECK(e1.where.indexed() == "vda[1]");
        CHECK(e1.node == "vda-2-thin");
        CHECK(e1.active);
        CHECK(e1.time.seconds > 0);  // QEMU's timestamp comes along
        CHECK(e2.how == qmp::threshold_event::origin::live);
        CHECK(e2.where.indexed() == "vda[1]");
        CHECK(e2.threshold == 4u << 20);
        // The graph the service had was enough: no query per event.
        CHECK(l.on([&] { return w1.service.stats().graph_queries; }) == queries1);
        CHECK(l.on([&] { return w2.service.stats().graph_queries; }) == queries2);

        // The application follows its own commit on the same connection,
        // through its own subscription, while the service watches vda[2]
        // (the commit's base) and keeps a threshold on the top it removes.
        CHECK(w1.service.async_arm("vda", qmp::threshold_spec::bytes(60u << 20), asio::use_future).get().empty());
        CHECK(w1.service.async_arm("vda[2]", qmp::threshold_spec::bytes(1u << 20), asio::use_future).get().empty());
        auto jobs = l.on([&] {
            return w1.client.subscribe({{"BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"}, {}});
        });
        const auto before_commit = l.on([&] { return w1.service.stats().graph_queries; });
        qmp::block_commit c;
        c.device = "vda-2-fmt";
        c.top_node = "vda-2-fmt";
        c.base_node = "vda-1-fmt";
        c.job.job_id = "live-merge";
        w1.client.async_execute(c, asio::use_future).get();
        // The commit writes into vda[2]: its threshold fires, live.
        auto merge = w1.next();
        CHECK(merge.how == qmp::threshold_event::origin::live);
        CHECK(merge.where.indexed() == "vda[2]");
        CHECK(merge.node == "vda-1-thin");
        CHECK(!merge.active);
        // Ready: pivot. No polling of query-block-jobs anywhere.
        auto ready = jobs.async_receive(30s, asio::use_future).get();
        CHECK(ready.name == "BLOCK_JOB_READY");
        w1.client.async_execute(qmp::block_job_complete{"live-merge"}, asio::use_future).get();
        auto completed = jobs.async_receive(30s, asio::use_future).get();
        CHECK(completed.name == "BLOCK_JOB_COMPLETED");
        // The service saw the job end too: it refreshed its graph once and
        // reports the top's threshold as gone with the element.
        auto gone = w1.next();
        CHECK(gone.how == qmp::threshold_event::origin::gone);
        CHECK(gone.node == "vda-2-thin");
        CHECK(l.on([&] { return w1.service.stats().graph_queries; }) > before_commit);
        // The service knows the new chain: vda-1 is the top now.
        auto disks = l.on([&] { return w1.service.chains().disks(); });
        bool merged_top = false;
        for (const auto& d : disks) merged_top |= !d.elements.empty() && d.elements.front().node() == "vda-1-fmt";
        CHECK(merged_top);
        l.on([&] {
            jobs.reset();
            w1.rec.stop();
            w2.rec.stop();
            w1.service.stop();
            w2.service.stop();
            return 0;
        });
    }
}

TEST_CASE("service: lost and back through a reconnector, what fired meanwhile comes back recovered" *
          doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        CAPTURE(b.label);
        thin_vm vm(b, {{"vda", 2}});
        INFO(vm.q->log());
        loop l;
        qmp::unix_client client(l.ioc, watched::client_opts());
        qmp::threshold_service_options o = watched::opts("vda-1-fmt");
        std::vector<bool> connection;  // what on_connection said, on the executor
        o.on_connection = [&](bool up, std::error_code) { connection.push_back(up); };
        qmp::threshold_service service(client, o);
        using rec_type = qmp::basic_reconnector<qmp::unix_client, asio::local::stream_protocol::endpoint>;
        auto connect = [&] {
            std::promise<void> up;
            auto rec = std::make_unique<rec_type>(client, vm.ep(), qmp::reconnect_options{},
                                                  [&, told = false](const qmp::reconnect_status& s) mutable {
                                                      if (!s.up) return;
                                                      service.on_connected();
                                                      if (!told) up.set_value();
                                                      told = true;
                                                  });
            rec->start();
            REQUIRE(up.get_future().wait_for(30s) == std::future_status::ready);
            return rec;
        };
        auto rec = connect();
        CHECK(service.async_arm("vda", qmp::threshold_spec::bytes(1u << 20), asio::use_future).get().empty());
        // Gone: the reconnector stops and closes; a write crosses meanwhile.
        l.on([&] {
            rec->stop();
            return 0;
        });
        REQUIRE(vm.q->nbd_write(0, 2u << 20) == 0);
        // A request while disconnected fails clearly and changes nothing.
        try {
            service.async_arm("vda[2]", qmp::threshold_spec::bytes(1u << 20), asio::use_future).get();
            FAIL("armed while disconnected");
        } catch (const std::system_error& e) {
            CHECK(e.code() == qmp::error::connection_closed);  // the reconnector closed it
        }
        CHECK(l.on([&] { return service.armed().size(); }) == 1u);
        rec = connect();
        auto ev = service.async_receive(20s, asio::use_future).get();
        CHECK(ev.how == qmp::threshold_event::origin::recovered);
        CHECK(ev.where.indexed() == "vda[1]");
        CHECK(ev.amount_exceeded > 0);
        CHECK(l.on([&] { return connection; }) == std::vector<bool>{true, false, true});
        // Nothing more: one firing, one report.
        CHECK_THROWS_AS(service.async_receive(300ms, asio::use_future).get(), std::system_error);
        // A receive pending when the service goes ends with operation_aborted.
        std::promise<std::error_code> aborted;
        service.async_receive([&](std::error_code ec, qmp::threshold_event) { aborted.set_value(ec); });
        l.on([&] {
            service.stop();
            rec->stop();
            return 0;
        });
        auto f = aborted.get_future();
        REQUIRE(f.wait_for(10s) == std::future_status::ready);
        CHECK(f.get() == asio::error::operation_aborted);
    }
}
