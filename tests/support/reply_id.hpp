// Test support for peers that play QEMU by hand: the id member of a reply.
#pragma once

#include <qmp/json/parse.hpp>

#include <string>

namespace qmp_test {

/// The id part of QEMU's reply to `req`: `, "id": X` with the request's id,
/// or nothing when it had none (QEMU answers an id-less command without
/// one; the client sends a command alone in flight without an id).
inline std::string id_member(const qmp::json& req) {
    const auto it = req.find("id");
    return it == req.end() ? std::string() : R"(, "id": )" + it->dump();
}

}  // namespace qmp_test
