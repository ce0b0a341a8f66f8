// A consumer of the library: constructs a client and uses the protocol layer.
#include <qmp/qmp.hpp>

#include <asio/io_context.hpp>

#include <iostream>

int main() {
    asio::io_context ctx;
    qmp::unix_client client(ctx);
    qmp::framer f;
    f.feed("{\"return\": {}}\r\n");
    std::string_view m;
    std::error_code ec;
    bool ok = f.next(m, ec) == qmp::framer::status::message;
    std::cout << "qmp " << QMP_VERSION_STRING << (ok ? " ok" : " broken") << "\n";
    return ok ? 0 : 1;
}
