#include <qmp/qmp.hpp>

// A second file using the same client type: it links against the one copy.
std::error_code query_unconnected() {
    qmp::sync_client client;
    std::error_code ec;
    qmp::diagnostics diag;
    client.execute("query-version", nullptr, ec, diag);
    return ec;
}
