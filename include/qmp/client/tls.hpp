// QMP over TLS: asio::ssl::stream<Socket> as the client's stream, as QEMU
// serves it with `-object tls-creds-x509,id=tls0,dir=...,endpoint=server`
// and `-chardev socket,...,tls-creds=tls0` (`verify-peer=on` demands a
// client certificate). Needs OpenSSL: link qmp::tls (CMake) or -lssl -lcrypto.
//
//   asio::ssl::context ctx = qmp::tls_context({.ca_file = "ca-cert.pem",
//                                              .cert_file = "client-cert.pem",
//                                              .key_file = "client-key.pem"});
//   qmp::tls_client cl(io.get_executor(), {}, ctx);
//   co_await cl.async_connect(qmp::tls_endpoint<tcp::endpoint>{ep, "qemu-host.example"}, use_awaitable);
//
// Verification is set on the context (tls_context does: verify the peer,
// the CA from ca_file); the name to verify travels with the endpoint. Each
// connect starts from a fresh SSL object of that context, so a closed TLS
// client reconnects like any other (the threshold manager relies on it).
//
// A server whose certificate does not verify fails the connect with
// asio::ssl::error category's "certificate verify failed", and a name that
// does not match is refused the same way: never a session with it.
#pragma once

#include <qmp/client/basic_client.hpp>
#include <qmp/client/sync_client.hpp>
#include <qmp/client/transport.hpp>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/host_name_verification.hpp>
#include <asio/ssl/stream.hpp>

#include <memory>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace qmp {

/// Where to connect, and the name the server's certificate must carry
/// (also sent as SNI unless it is an IP address). An empty name skips the
/// name check (the chain is still verified when the context says so).
template <class Endpoint>
struct tls_endpoint {
    Endpoint endpoint;
    std::string server_name;
};

/// Files for tls_context; all PEM.
struct tls_files {
    std::string ca_file;    ///< CAs to verify QEMU's certificate with (required)
    std::string cert_file;  ///< the client certificate, for verify-peer=on servers
    std::string key_file;   ///< its private key
};

/// A client context: TLS 1.2 or later, peer verification on, the CA and
/// the client certificate from `files`. Throws std::system_error naming
/// the file that cannot be used.
inline asio::ssl::context tls_context(const tls_files& files) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    auto load = [](const std::string& what, const std::string& file, auto&& f) {
        std::error_code ec;
        f(ec);
        if (ec) throw std::system_error(ec, "cannot use " + what + " " + file);
    };
    ctx.set_verify_mode(asio::ssl::verify_peer);
    load("CA file", files.ca_file, [&](std::error_code& ec) { ctx.load_verify_file(files.ca_file, ec); });
    if (!files.cert_file.empty())
        load("certificate file", files.cert_file,
             [&](std::error_code& ec) { ctx.use_certificate_chain_file(files.cert_file, ec); });
    if (!files.key_file.empty())
        load("key file", files.key_file,
             [&](std::error_code& ec) { ctx.use_private_key_file(files.key_file, asio::ssl::context::pem, ec); });
    return ctx;
}

template <class Next>
struct transport<asio::ssl::stream<Next>> {
    using Stream = asio::ssl::stream<Next>;
    using endpoint_type = tls_endpoint<typename transport<Next>::endpoint_type>;

    static constexpr bool can_connect = transport<Next>::can_connect;
    static constexpr bool can_pass_fds = false;
    static constexpr bool renews = true;

    /// Connects the socket, then runs the TLS handshake verifying the name.
    template <class Handler>
    static void async_connect(Stream& s, const endpoint_type& ep, Handler&& h) {
        if (!ep.server_name.empty()) {
            std::error_code ec;
            (void)asio::ip::make_address(ep.server_name, ec);
            if (ec) SSL_set_tlsext_host_name(s.native_handle(), ep.server_name.c_str());  // SNI: names only
            s.set_verify_callback(asio::ssl::host_name_verification(ep.server_name));
        }
        // `s` outlives this: the handler holds the stream (transport renews).
        transport<Next>::async_connect(s.next_layer(), ep.endpoint,
                                       [&s, h = std::forward<Handler>(h)](std::error_code ec) mutable {
                                           if (ec) return h(ec);
                                           s.async_handshake(asio::ssl::stream_base::client, std::move(h));
                                       });
    }

    static void close(Stream& s) {
        std::error_code ignored;
        s.lowest_layer().close(ignored);
    }

    static bool is_open(Stream& s) { return s.lowest_layer().is_open(); }

    static std::optional<std::string> peer_instance(Stream&) { return std::nullopt; }

    /// QEMU going away without a TLS close_notify (killed, or closed the
    /// monitor) is the peer gone, like EOF on a plain socket.
    static bool peer_gone(const std::error_code& ec) noexcept { return ec == asio::ssl::error::stream_truncated; }

    /// QEMU before 10.0 leaves the last bytes of what arrives over TLS
    /// unread until more data arrives (its monitor reads in small pieces
    /// and waits on the socket while the rest sits decrypted in GnuTLS):
    /// observed on 7.2 for every command, 0 of 100 answered without more
    /// data, 100 of 100 with a space after each write; 10.0 answers all.
    /// Versions between were not tried, so they get the space too.
    static bool nudge(const greeting& g) noexcept { return g.version.qemu.major < 10; }

    /// A fresh SSL object of the same context, on the same executor.
    static std::shared_ptr<Stream> renew(Stream& old) {
        SSL* fresh = SSL_new(SSL_get_SSL_CTX(old.native_handle()));
        if (!fresh) throw std::bad_alloc();
        SSL_set_verify(fresh, SSL_get_verify_mode(old.native_handle()), nullptr);
        return std::make_shared<Stream>(old.get_executor(), fresh);
    }
};

using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;
/// QMP over TLS over TCP.
using tls_client = basic_client<tls_stream>;
/// The blocking facade over it: basic_sync_client(opts, keep_reading, ssl_context).
using sync_tls_client = basic_sync_client<tls_stream>;
using tls_tcp_endpoint = tls_endpoint<asio::ip::tcp::endpoint>;

}  // namespace qmp
