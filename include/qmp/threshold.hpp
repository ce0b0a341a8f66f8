// The threshold layer: specs, the sans-io tracker, the asynchronous
// service, the blocking manager, state files, and the errors they raise.
#pragma once

#include <qmp/threshold/error.hpp>
#include <qmp/threshold/manager.hpp>
#include <qmp/threshold/service.hpp>
#include <qmp/threshold/service_options.hpp>
#include <qmp/threshold/spec.hpp>
#include <qmp/threshold/state_file.hpp>
#include <qmp/threshold/tracker.hpp>
#include <qmp/threshold/types.hpp>
