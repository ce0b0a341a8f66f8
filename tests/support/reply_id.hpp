// Test support for peers that play QEMU by hand: the id member of a reply,
// as the test kit writes it (qmp::testing::id_member).
#pragma once

#include <qmp/testing/rule.hpp>

namespace qmp_test {

using qmp::testing::id_member;

}  // namespace qmp_test
