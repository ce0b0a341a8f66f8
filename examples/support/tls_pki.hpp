// Certificates for QMP over TLS, made with the `openssl` command in a
// folder: a CA, a server certificate for localhost and 127.0.0.1 (laid out
// as QEMU's tls-creds-x509 wants it: DIR/ca-cert.pem, server-cert.pem,
// server-key.pem), and a client certificate. Also a second, unrelated CA,
// for checking that a server signed by another CA is refused. EC P-256
// keys: a whole set takes a few tens of milliseconds.
#pragma once

#include "process.hpp"
#include "qemu.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace qmp_support {

struct tls_pki {
    std::string server_dir;  ///< for tls-creds-x509,dir=...,endpoint=server
    std::string ca_file, client_cert, client_key;
    std::string other_ca_file;  ///< a CA that signed nothing here

    explicit tls_pki(const temp_dir& dir) {
        const std::string base = dir.file("pki");
        server_dir = base + "/server";
        run_checked({"mkdir", "-p", server_dir});
        {
            std::ofstream ext(base + "/ext.cnf");
            ext << "[qmp_server]\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "[qmp_client]\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=clientAuth\n";
        }
        ca_file = base + "/ca-cert.pem";
        other_ca_file = base + "/other-ca-cert.pem";
        make_ca(base + "/ca-key.pem", ca_file, "qmp-test-ca");
        make_ca(base + "/other-ca-key.pem", other_ca_file, "qmp-other-ca");
        sign(base, "server", server_dir + "/server-key.pem", server_dir + "/server-cert.pem");
        client_key = base + "/client-key.pem";
        client_cert = base + "/client-cert.pem";
        sign(base, "client", client_key, client_cert);
        run_checked({"cp", ca_file, server_dir + "/ca-cert.pem"});
    }

private:
    static void make_ca(const std::string& key, const std::string& cert, const std::string& cn) {
        run_checked({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn, "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
    }
    static void sign(const std::string& base, const std::string& who, const std::string& key, const std::string& cert) {
        const std::string csr = base + "/" + who + ".csr";
        run_checked({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                     key, "-out", csr, "-subj", "/CN=" + who});
        run_checked({"openssl", "x509", "-req", "-in", csr, "-CA", base + "/ca-cert.pem", "-CAkey", base + "/ca-key.pem",
                     "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", base + "/ext.cnf", "-extensions",
                     "qmp_" + who});
    }
};

/// A loopback TCP port nobody listens on right now (the kernel's pick).
inline unsigned short free_tcp_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

/// QEMU arguments for a second monitor on 127.0.0.1:`port` served over
/// TLS with `pki`'s server certificate; `verify_peer` demands a client
/// certificate signed by the same CA. For qemu_config::extra (the storage
/// daemon spells options with two dashes, the system emulator with one).
inline std::vector<std::string> tls_monitor_args(const tls_pki& pki, unsigned short port, bool verify_peer,
                                                 qemu_kind kind = qemu_kind::storage_daemon) {
    const std::string dash = kind == qemu_kind::storage_daemon ? "--" : "-";
    std::vector<std::string> v{
        dash + "object",
        "tls-creds-x509,id=tls0,dir=" + pki.server_dir + ",endpoint=server,verify-peer=" + (verify_peer ? "on" : "off"),
        dash + "chardev",
        "socket,id=tlsmon,host=127.0.0.1,port=" + std::to_string(port) + ",server=on,wait=off,tls-creds=tls0"};
    if (kind == qemu_kind::storage_daemon)
        v.insert(v.end(), {"--monitor", "chardev=tlsmon"});
    else
        v.insert(v.end(), {"-mon", "chardev=tlsmon,mode=control"});
    return v;
}

}  // namespace qmp_support
