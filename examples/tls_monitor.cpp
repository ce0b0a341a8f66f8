// qmp-example-tls: QMP over TLS with client certificates.
//
// It makes a CA, a server certificate for localhost and a client
// certificate with openssl, starts a qemu-storage-daemon whose monitor on
// 127.0.0.1 demands TLS with a client certificate (tls-creds-x509,
// verify-peer=on), arms a write threshold on vda[2] (the base image) through the threshold
// manager over that TLS connection, and shows that a client trusting
// another CA is refused before any QMP is spoken. QEMU is stopped by PID and
// the directory removed on the way out.
//
//   qmp-example-tls [--qemu-bindir DIR]     (default: /usr/bin)
#include <support/tls_pki.hpp>

#include <qmp/client/tls.hpp>
#include <qmp/threshold/manager.hpp>

#include <iostream>

int main(int argc, char** argv) {
    const auto found = qmp_support::qemu_from_args(argc, argv, "qmp-example-tls");
    if (!found) return 2;
    const qmp_support::qemu_build& qemu = *found;
    try {
        qmp_support::temp_dir dir;
        qmp_support::tls_pki pki(dir);
        const unsigned short port = qmp_support::free_tcp_port();
        qmp_support::qemu_config cfg;
        cfg.blockdevs = qmp_support::chain_blockdevs(qmp_support::make_chain(qemu, dir, "vda", 2), "vda");
        cfg.nbd_export_node = "vda-1-fmt";
        cfg.extra = qmp_support::tls_monitor_args(pki, port, /*verify_peer=*/true);
        qmp_support::qemu_instance q(qemu, dir, cfg);

        // Where to connect, and the name QEMU's certificate must carry.
        const qmp::tls_tcp_endpoint ep{{asio::ip::make_address("127.0.0.1"), port}, "localhost"};

        // The context holds what we trust and who we are.
        asio::ssl::context tls = qmp::tls_context({pki.ca_file, pki.client_cert, pki.client_key});
        qmp::sync_tls_client client(qmp::client_options{}, false, tls);
        client.connect(ep);
        auto v = client.execute(qmp::query_version{});
        std::cout << "TLS session with QEMU " << v.qemu.major << "." << v.qemu.minor << "." << v.qemu.micro
                  << ", client certificate accepted\n";
        client.close();

        {  // The threshold manager over the same kind of connection.
            qmp::threshold_manager_options o;
            o.service.tracker.catalog.entries["vda"] = "vda-1-fmt";
            qmp::basic_threshold_manager<qmp::tls_stream> m(ep, o, tls);
            m.connect();
            m.arm("vda[2]", qmp::threshold_spec::bytes(1 << 20));  // the base image
            for (const auto& row : m.report())
                if (row.armed)
                    std::cout << "armed over TLS: vda[" << row.element.index << "] node " << row.armed->node
                              << " at " << row.armed->threshold << " bytes\n";
        }  // A QMP monitor serves one client at a time: the manager leaves first.

        // A client that trusts another CA never gets to QMP.
        asio::ssl::context stranger = qmp::tls_context({pki.other_ca_file, pki.client_cert, pki.client_key});
        qmp::sync_tls_client refused(qmp::client_options{}, false, stranger);
        std::error_code ec;
        refused.connect(ep, ec);
        std::cout << "a client trusting another CA: " << (ec ? ec.message() : std::string("connected (wrong!)"))
                  << "\n";
        if (!ec) return 1;
        std::cout << "TLS: done\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qmp-example-tls: " << e.what() << "\n";
        return 1;
    }
}
