// Where the test programs find the project's own tools (QMP_BIN_DIR is set
// by tests/CMakeLists.txt when the tools are built).
#pragma once

#include <string>

#ifdef QMP_BIN_DIR
namespace qmp_test {

inline std::string qmpctl() { return std::string(QMP_BIN_DIR) + "/qmpctl"; }
inline std::string thin_agent() { return std::string(QMP_BIN_DIR) + "/qmp-thin-agent"; }

}  // namespace qmp_test
#endif
