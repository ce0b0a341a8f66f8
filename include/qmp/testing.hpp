// The test kit: qmp::testing::peer, a QMP monitor scripted in memory, and
// qmp::testing::stream, which connects any client type to it (see
// docs/testing.md).
#pragma once

#include <qmp/testing/peer.hpp>
#include <qmp/testing/stream.hpp>
