// qmp-example-timestamped-reads: a stream of your own around the socket,
// here one that notes when each read completed, so that an event's delay
// from QEMU's timestamp to the bytes reaching the process can be told from
// the delay to its callback. The wrapper has next_layer(): the client
// connects, closes and identifies the peer through it by default; it
// declares that its writes reach the socket as they are
// (forwarding_transport<..., true>), so commands still go out in one
// system call and descriptors can travel. Then a socket connected by hand
// is handed to the blocking client.
//
// It starts its own qemu-storage-daemon with one qcow2 image exported over
// NBD, arms a threshold, writes past it, and prints the event's delays.
//
//   qmp-example-timestamped-reads [--qemu-bindir DIR]
#include <support/qemu.hpp>

#include <qmp/qapi.hpp>
#include <qmp/qmp.hpp>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>

#include <chrono>
#include <iostream>
#include <vector>

using namespace std::chrono_literals;

// Any AsyncReadStream + AsyncWriteStream over another: reads are timed.
template <class Next>
class timestamped {
public:
    using executor_type = typename Next::executor_type;
    using clock = std::chrono::system_clock;

    template <class... Args>
    explicit timestamped(Args&&... args) : next_(std::forward<Args>(args)...) {}

    executor_type get_executor() { return next_.get_executor(); }
    Next& next_layer() { return next_; }

    template <class Buffers, class Token>
    auto async_read_some(const Buffers& b, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto handler, const Buffers& bufs) {
                next_.async_read_some(bufs, [this, h = std::move(handler)](std::error_code ec, std::size_t n) mutable {
                    if (!ec) reads.push_back({clock::now(), n});
                    std::move(h)(ec, n);
                });
            },
            token, b);
    }
    template <class Buffers, class Token>
    auto async_write_some(const Buffers& b, Token&& token) {
        return next_.async_write_some(b, std::forward<Token>(token));
    }

    struct read_record {
        clock::time_point at;
        std::size_t bytes;
    };
    std::vector<read_record> reads;

private:
    Next next_;
};

// Its writes reach the socket unchanged: immediate writes and descriptors too.
template <class Next>
struct qmp::transport<timestamped<Next>> : qmp::forwarding_transport<timestamped<Next>, true> {};

int main(int argc, char** argv) {
    const auto found = qmp_support::qemu_from_args(argc, argv, "qmp-example-timestamped-reads");
    if (!found) return 2;
    try {
        qmp_support::temp_dir dir;
        auto images = qmp_support::make_chain(*found, dir, "disk", 1);
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(images, "disk");
        cfg.nbd_export_node = "disk-0-fmt";
        qmp_support::qemu_instance q(*found, dir, cfg);

        using stream = timestamped<asio::local::stream_protocol::socket>;
        asio::io_context io;
        qmp::basic_client<stream> client(io);  // the wrapper's next layer is made on io
        client.async_connect(q.qmp_endpoint(), [&](std::error_code ec) {
            if (ec) throw std::system_error(ec);
            client.async_execute(qmp::block_set_write_threshold{"disk-0-file", 1 << 20}, [&](std::error_code e, qmp::empty_result) {
                if (e) throw std::system_error(e);
                std::cout << "armed disk-0-file at 1048576 over the wrapper (" << client.stream().reads.size()
                          << " reads so far)\n";
                // qemu-io runs here, on the client's thread: the event's read
                // waits for it, and the read-to-callback time is the client's own.
                std::string out;
                if (q.nbd_write(0, 3 << 20, &out) != 0) throw std::runtime_error("qemu-io write failed: " + out);
                client.async_receive_event(10s, [&](std::error_code ec2, qmp::event ev) {
                    if (ec2) throw std::system_error(ec2);
                    const auto callback = stream::clock::now();
                    const auto& last = client.stream().reads.back();
                    const auto qemu = stream::clock::time_point(std::chrono::seconds(ev.time.seconds) +
                                                                std::chrono::microseconds(ev.time.microseconds));
                    using us = std::chrono::microseconds;
                    std::cout << "event " << ev.name << ": read "
                              << std::chrono::duration_cast<us>(last.at - qemu).count() << " us after QEMU's timestamp, "
                              << "callback " << std::chrono::duration_cast<us>(callback - last.at).count()
                              << " us after the read\n";
                    client.close();
                });
            });
        });
        io.run();

        // A socket connected by hand, handed to the blocking client.
        asio::io_context mine;
        asio::local::stream_protocol::socket s(mine);
        s.connect(q.qmp_endpoint());
        qmp::sync_client blocking;
        blocking.handshake(std::move(s));
        const auto v = blocking.execute(qmp::query_version{});
        std::cout << "handed a connected socket to the blocking client: QEMU " << v.qemu.major << "." << v.qemu.minor
                  << "." << v.qemu.micro << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qmp-example-timestamped-reads: " << e.what() << "\n";
        return 1;
    }
}
