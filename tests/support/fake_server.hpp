// Test support: an in-process QMP server on a unix socket, scripted with
// blocking calls from a test thread, for what real QEMU will not send
// (garbage, unknown ids, id-less errors, oversize messages, floods).
#pragma once

#include <support/process.hpp>

#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/message.hpp>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

namespace qmp_test {
using namespace qmp_support;

class fake_server {
public:
    fake_server() : path_(dir_.file("fake.qmp")), acceptor_(ctx_, asio::local::stream_protocol::endpoint(path_)) {}

    asio::local::stream_protocol::endpoint endpoint() const { return asio::local::stream_protocol::endpoint(path_); }
    const std::string& path() const { return path_; }

    void accept() {
        sock_ = asio::local::stream_protocol::socket(ctx_);
        acceptor_.accept(sock_);
        framer_.reset();
    }

    /// Accepts a connection if one comes within `ms`.
    bool accept_within(int ms) {
        pollfd pfd{acceptor_.native_handle(), POLLIN, 0};
        if (::poll(&pfd, 1, ms) <= 0) return false;
        accept();
        return true;
    }

    void send(std::string_view bytes) { asio::write(sock_, asio::buffer(bytes.data(), bytes.size())); }

    /// Sends one byte per write.
    void send_bytewise(std::string_view bytes) {
        for (char c : bytes) asio::write(sock_, asio::buffer(&c, 1));
    }

    /// Reads one complete message sent by the client.
    qmp::json read_message() {
        for (;;) {
            std::string_view text;
            std::error_code ec;
            if (framer_.next(text, ec) == qmp::framer::status::message) return qmp::json::parse(text);
            // Bounded: a test whose client went away fails instead of hanging.
            pollfd pfd{sock_.native_handle(), POLLIN, 0};
            if (::poll(&pfd, 1, 10000) <= 0) throw std::runtime_error("fake server: no message within 10 s");
            char buf[4096];
            framer_.feed(buf, receive(buf, sizeof buf));
        }
    }

    /// One message if the client sends one within `ms`; nullopt otherwise
    /// (throws when the client closed the connection).
    std::optional<qmp::json> try_read_message(int ms) {
        std::string_view text;
        std::error_code ec;
        if (framer_.next(text, ec) == qmp::framer::status::message) return qmp::json::parse(text);
        pollfd pfd{sock_.native_handle(), POLLIN, 0};
        if (::poll(&pfd, 1, ms) <= 0) return std::nullopt;
        char buf[4096];
        framer_.feed(buf, receive(buf, sizeof buf));
        if (framer_.next(text, ec) == qmp::framer::status::message) return qmp::json::parse(text);
        return std::nullopt;
    }

    /// Descriptors that arrived with the bytes read so far (SCM_RIGHTS),
    /// handed over to the caller, who closes them.
    std::vector<int> take_fds() { return std::exchange(fds_, {}); }

    /// True when the client sent bytes not yet read as a message within `ms`.
    bool more_within(int ms) {
        std::string_view text;
        std::error_code ec;
        qmp::framer copy = framer_;
        if (copy.next(text, ec) == qmp::framer::status::message) return true;
        pollfd pfd{sock_.native_handle(), POLLIN, 0};
        return ::poll(&pfd, 1, ms) > 0;
    }

    ~fake_server() {
        for (int fd : fds_) ::close(fd);
    }

    void send_greeting(bool oob = true) {
        send(std::string(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, )") +
             (oob ? R"("capabilities": ["oob"]}})" : R"("capabilities": []}})") + "\r\n");
    }

    /// Accepts, greets and answers qmp_capabilities. Returns that request.
    qmp::json handshake(bool oob = true) {
        accept();
        return handshake_accepted(oob);
    }

    /// Greets and answers qmp_capabilities on the connection just accepted.
    qmp::json handshake_accepted(bool oob = true) {
        send_greeting(oob);
        qmp::json req = read_message();
        reply(req, qmp::json::object());
        return req;
    }

    void reply(const qmp::json& req, const qmp::json& ret) {
        qmp::json r = {{"return", ret}};
        if (req.contains("id")) r["id"] = req["id"];  // as QEMU: no id, none back
        send(r.dump() + "\r\n");
    }

    void reply_error(const qmp::json& req, const std::string& cls, const std::string& desc) {
        qmp::json r = {{"error", {{"class", cls}, {"desc", desc}}}};
        if (req.contains("id")) r["id"] = req["id"];
        send(r.dump() + "\r\n");
    }

    void send_event(const std::string& name, const qmp::json& data = qmp::json::object()) {
        qmp::json e = {{"event", name}, {"data", data}, {"timestamp", {{"seconds", 1}, {"microseconds", 2}}}};
        send(e.dump() + "\r\n");
    }

    void close() {
        std::error_code ec;
        sock_.close(ec);
    }

    asio::local::stream_protocol::socket& socket() { return sock_; }

private:
    std::size_t receive(char* buf, std::size_t size) {
        iovec iov{buf, size};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(sock_.native_handle(), &msg, MSG_CMSG_CLOEXEC);
        if (n <= 0) throw std::runtime_error("fake server: the client closed the connection");
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds_.push_back(fd);
            }
        }
        return static_cast<std::size_t>(n);
    }

    std::vector<int> fds_;
    temp_dir dir_;
    std::string path_;
    asio::io_context ctx_;
    asio::local::stream_protocol::acceptor acceptor_;
    asio::local::stream_protocol::socket sock_{ctx_};
    qmp::framer framer_;
};

}  // namespace qmp_test
