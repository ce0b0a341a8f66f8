// Separate compilation: this file and other.cpp use the blocking client,
// compiled once in the source file qmp::separate adds to the target.
#include <qmp/qmp.hpp>

#include <iostream>

std::error_code query_unconnected();

int main() {
    qmp::sync_client client;
    std::error_code ec;
    qmp::diagnostics diag;
    client.execute(qmp::query_version{}, ec, diag);
    const bool ok = ec == qmp::error::not_connected && query_unconnected() == ec;
    std::cout << "qmp " << QMP_VERSION_STRING << (ok ? " ok" : " broken: " + ec.message()) << "\n";
    return ok ? 0 : 1;
}
