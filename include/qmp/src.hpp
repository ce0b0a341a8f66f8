// Separate compilation: include this in exactly one source file of a
// program whose every translation unit defines QMP_SEPARATE_COMPILATION
// (the CMake target qmp::separate does both). The usual clients (unix and
// TCP, asynchronous and blocking: qmp/client/clients.hpp) are then
// instantiated here once, and the other files only declare them.
//
//   // qmp.cpp
//   #include <qmp/src.hpp>
//
// Without QMP_SEPARATE_COMPILATION the library stays header-only: every
// file compiles what it uses, and this header must not be included.
#pragma once

#ifndef QMP_SEPARATE_COMPILATION
#error "qmp/src.hpp is for separate compilation: define QMP_SEPARATE_COMPILATION in every translation unit"
#endif

#include <qmp/qmp.hpp>

#define QMP_INSTANTIATE_DEFINITION(...) template class __VA_ARGS__;
QMP_COMMON_CLIENTS(QMP_INSTANTIATE_DEFINITION)
#undef QMP_INSTANTIATE_DEFINITION
