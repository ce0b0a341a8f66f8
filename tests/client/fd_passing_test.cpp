// Passing file descriptors with a command (SCM_RIGHTS): what arrives at a
// scripted server, the ordering rule, the refusals, and getfd / add-fd with
// a descriptor set opened by blockdev-add on real QEMU 7.2 and 10.0.
#include "../support/fake_server.hpp"

#include <support/qemu.hpp>

#include <qmp/client/clients.hpp>
#include <qmp/qapi.hpp>

#include <asio/use_future.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <future>

using namespace std::chrono_literals;
using namespace qmp_support;
using qmp_test::fake_server;

namespace {

/// A pipe whose ends close with the object.
struct pipe_pair {
    int r = -1, w = -1;
    pipe_pair() {
        int p[2];
        REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
        r = p[0];
        w = p[1];
    }
    ~pipe_pair() {
        if (r >= 0) ::close(r);
        if (w >= 0) ::close(w);
    }
};

/// Writes `text` through a received descriptor and closes it.
void write_and_close(int fd, const std::string& text) {
    CHECK(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
}

std::string read_some(int fd) {
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

qmp::exec_options with_fds(std::vector<int> fds) {
    qmp::exec_options o;
    o.fds = std::move(fds);
    return o;
}

}  // namespace

TEST_CASE("fds: the descriptor arrives with its command, the caller may close its own at once" *
          doctest::test_suite("fake")) {
    for (bool oob : {true, false}) {
        CAPTURE(oob);
        fake_server srv;
        pipe_pair p;
        auto script = std::async(std::launch::async, [&] {
            srv.handshake(oob);
            CHECK(srv.take_fds().empty());
            auto req = srv.read_message();
            CHECK(req["execute"] == "getfd");
            auto fds = srv.take_fds();
            REQUIRE(fds.size() == 1);
            write_and_close(fds[0], "through the socket");
            srv.reply(req, qmp::json::object());
            auto plain = srv.read_message();
            CHECK(srv.take_fds().empty());  // only the command that carried one
            srv.reply(plain, "ok");
        });
        qmp::client_options o;
        o.enable_oob = oob;  // descriptors do not depend on oob
        qmp::sync_client cl(o);
        cl.connect(srv.endpoint());
        int mine = ::fcntl(p.w, F_DUPFD_CLOEXEC, 0);
        auto f = cl.async_client().async_execute(qmp::getfd{"fd0"}, with_fds({mine}), asio::use_future);
        ::close(mine);  // the client holds its own copy from the call on
        cl.wait(std::move(f));
        ::close(p.w);
        p.w = -1;
        CHECK(read_some(p.r) == "through the socket");
        CHECK(cl.execute("x") == "ok");
        script.get();
    }
}

TEST_CASE("fds: a command with descriptors waits for the reply to the previous one" * doctest::test_suite("fake")) {
    // QEMU keeps only the last message's descriptors, so a second getfd must
    // not reach it before the first one ran.
    fake_server srv;
    pipe_pair a, b;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        auto first = srv.read_message();
        auto fa = srv.take_fds();
        REQUIRE(fa.size() == 1);
        auto between = srv.read_message();  // a plain command is not held back
        CHECK(between["execute"] == "query-version");
        CHECK(!srv.more_within(200));       // the second getfd is
        write_and_close(fa[0], "A");
        srv.reply(first, qmp::json::object());
        srv.reply(between, "v");
        auto second = srv.read_message();
        CHECK(second["arguments"]["fdname"] == "b");
        auto fb = srv.take_fds();
        REQUIRE(fb.size() == 1);
        write_and_close(fb[0], "B");
        srv.reply(second, qmp::json::object());
    });
    qmp::sync_client cl;
    cl.connect(srv.endpoint());
    auto& ac = cl.async_client();
    auto f1 = ac.async_execute(qmp::getfd{"a"}, with_fds({a.w}), asio::use_future);
    auto f2 = ac.async_execute("query-version", nullptr, asio::use_future);
    auto f3 = ac.async_execute(qmp::getfd{"b"}, with_fds({b.w}), asio::use_future);
    cl.wait(std::move(f1));
    CHECK(cl.wait(std::move(f2)) == "v");
    cl.wait(std::move(f3));
    script.get();
    ::close(a.w);
    a.w = -1;
    ::close(b.w);
    b.w = -1;
    CHECK(read_some(a.r) == "A");
    CHECK(read_some(b.r) == "B");
}

TEST_CASE("fds: refusals are clear errors and the session goes on" * doctest::test_suite("fake")) {
    fake_server srv;
    auto script = std::async(std::launch::async, [&] {
        srv.handshake();
        auto req = srv.read_message();
        CHECK(srv.take_fds().empty());
        srv.reply(req, "still here");
    });
    qmp::sync_client cl;
    cl.connect(srv.endpoint());
    std::error_code ec;
    qmp::diagnostics d;
    pipe_pair p;
    auto o = with_fds({p.w});
    o.oob = true;
    cl.execute("getfd", {{"fdname", "x"}}, ec, d, o);
    CHECK(ec == qmp::error::invalid_argument);
    CHECK(d.message.find("exec-oob") != std::string::npos);
    cl.execute("getfd", {{"fdname", "x"}}, ec, d, with_fds(std::vector<int>(qmp::max_fds_per_command + 1, p.w)));
    CHECK(ec == qmp::error::invalid_argument);
    cl.execute("getfd", {{"fdname", "x"}}, ec, d, with_fds({-1}));
    CHECK(ec == std::errc::bad_file_descriptor);
    CHECK(cl.execute("x") == "still here");
    script.get();

    // A TCP stream cannot carry descriptors.
    asio::io_context ctx;
    asio::ip::tcp::acceptor acc(ctx, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto tcp_script = std::async(std::launch::async, [&] {
        asio::ip::tcp::socket s(ctx);
        acc.accept(s);
        std::string greeting =
            R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}})"
            "\r\n";
        asio::write(s, asio::buffer(greeting));
        char buf[512];
        std::size_t n = s.read_some(asio::buffer(buf));
        auto caps = qmp::json::parse(std::string(buf, n));
        std::string rep = qmp::json({{"return", qmp::json::object()}, {"id", caps["id"]}}).dump() + "\r\n";
        asio::write(s, asio::buffer(rep));
        std::error_code ignored;
        s.read_some(asio::buffer(buf), ignored);  // until the client closes
    });
    qmp::sync_tcp_client tcp;
    tcp.connect(acc.local_endpoint());
    tcp.execute("getfd", {{"fdname", "x"}}, ec, d, with_fds({p.w}));
    CHECK(ec == qmp::error::fd_passing_unsupported);
    CHECK(tcp.is_open());
    tcp.close();
    tcp_script.get();
}

TEST_CASE("qemu: getfd, add-fd and a block node opened from /dev/fdset/N" * doctest::test_suite("qemu")) {
    for (const auto& b : qemu_builds()) {
        for (bool oob : {true, false}) {
            CAPTURE(b.label);
            CAPTURE(oob);
            temp_dir dir;
            qemu_config cfg;
            cfg.kind = qemu_kind::system;  // the storage daemon has none of these commands
            qemu_instance q(b, dir, cfg);
            INFO(q.log());
            qmp::client_options o;
            o.enable_oob = oob;
            qmp::sync_client cl(o);
            cl.connect(q.qmp_endpoint());

            // getfd keeps a named descriptor; closefd drops it; a second
            // closefd finds nothing.
            pipe_pair p;
            cl.execute(qmp::getfd{"probe"}, with_fds({p.w}));
            cl.execute(qmp::closefd{"probe"});
            std::error_code ec;
            qmp::diagnostics d;
            cl.execute(qmp::closefd{"probe"}, ec, d);
            CHECK(ec == qmp::server_error::generic_error);

            // getfd without a descriptor is refused by QEMU.
            cl.execute(qmp::getfd{"none"}, ec, d);
            CHECK(ec == qmp::server_error::generic_error);
            CHECK(!d.message.empty());

            // add-fd: a qcow2 image opened by this process, used by QEMU
            // through its descriptor set (as a management daemon would).
            std::string img = dir.file("fdset.qcow2");
            run_checked({b.tool("qemu-img"), "create", "-q", "-f", "qcow2", img, "16M"});
            int fd = ::open(img.c_str(), O_RDWR | O_CLOEXEC);
            REQUIRE(fd >= 0);
            auto info = cl.execute(qmp::add_fd{std::nullopt, std::string("disk0")}, with_fds({fd}));
            ::close(fd);  // QEMU has its own
            CHECK(info.fd >= 0);
            auto sets = cl.execute(qmp::query_fdsets{});
            REQUIRE(sets.size() == 1);
            CHECK(sets[0].fdset_id == info.fdset_id);
            REQUIRE(sets[0].fds.size() == 1);
            CHECK(sets[0].fds[0].fd == info.fd);
            CHECK(sets[0].fds[0].opaque == std::optional<std::string>("disk0"));

            // A second descriptor into the same set (a read-only one, as
            // QEMU asks for the access mode it needs).
            int ro = ::open(img.c_str(), O_RDONLY | O_CLOEXEC);
            REQUIRE(ro >= 0);
            auto info2 = cl.execute(qmp::add_fd{info.fdset_id, std::nullopt}, with_fds({ro}));
            ::close(ro);
            CHECK(info2.fdset_id == info.fdset_id);
            CHECK(cl.execute(qmp::query_fdsets{})[0].fds.size() == 2);

            std::string path = "/dev/fdset/" + std::to_string(info.fdset_id);
            cl.execute("blockdev-add", {{"driver", "file"}, {"node-name", "fdset-file"}, {"filename", path}});
            cl.execute("blockdev-add", {{"driver", "qcow2"}, {"node-name", "fdset-fmt"}, {"file", "fdset-file"}});
            auto nodes = cl.execute(qmp::query_named_block_nodes{true});
            bool seen = false;
            for (auto& n : nodes)
                if (n.node_name == "fdset-fmt") {
                    seen = true;
                    CHECK(n.image.virtual_size == 16 * 1024 * 1024);
                }
            CHECK(seen);
            cl.execute(qmp::block_set_write_threshold{"fdset-fmt", 1 << 20});

            cl.execute("blockdev-del", {{"node-name", "fdset-fmt"}});
            cl.execute("blockdev-del", {{"node-name", "fdset-file"}});
            cl.execute(qmp::remove_fd{info.fdset_id, std::nullopt});
            if (b.label == "7.2") {
                // 7.2 closes removed descriptors only while the VM runs
                // (this one is paused by -S); 10.0 closes them at once.
                CHECK(cl.execute(qmp::query_fdsets{}).size() == 1);
                cl.execute("cont");
                cl.execute(qmp::remove_fd{info.fdset_id, std::nullopt});  // cleans up now
                cl.execute("stop");
            }
            CHECK(cl.execute(qmp::query_fdsets{}).empty());
            cl.execute(qmp::remove_fd{info.fdset_id, std::nullopt}, ec, d);
            CHECK(ec == qmp::server_error::generic_error);
        }
    }
}
