// The library's version, kept in step with the CMake project version.
#pragma once

#define QMP_VERSION_MAJOR 0
#define QMP_VERSION_MINOR 1
#define QMP_VERSION_PATCH 0
#define QMP_VERSION_STRING "0.1.0"
