// Typed commands that hand file descriptors to QEMU: `getfd`/`closefd`
// (a named descriptor of the monitor) and `add-fd`/`remove-fd`/
// `query-fdsets` (descriptor sets, opened by QEMU as `/dev/fdset/N`), with
// their results `addfd_info`, `fdset_info` and `fdset_fd_info`. The
// descriptor itself goes in exec_options::fds of the call that runs `getfd`
// or `add-fd`; QEMU takes one per command.
//
// The types are generated from QEMU's schema, in the `misc` module; this
// header names them where users have found them.
#pragma once

#include <qmp/qapi/misc.hpp>
