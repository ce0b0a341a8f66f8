// The typed block API: commands, results and events.
#pragma once

#include <qmp/qapi/block_query.hpp>
#include <qmp/qapi/blockdev.hpp>
#include <qmp/qapi/events.hpp>
#include <qmp/qapi/fd.hpp>
#include <qmp/qapi/run_state.hpp>
#include <qmp/qapi/schema.hpp>
