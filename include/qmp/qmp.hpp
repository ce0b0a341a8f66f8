// Everything in one include: protocol, client, blocking facade (not the
// typed QAPI, the block layer or thresholds: qapi.hpp, block.hpp, threshold/).
#pragma once

#include <qmp/version.hpp>
#include <qmp/protocol/command.hpp>
#include <qmp/protocol/error.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/handshake.hpp>
#include <qmp/protocol/json_parse.hpp>
#include <qmp/protocol/json_reader.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/protocol/session.hpp>
#include <qmp/protocol/wire.hpp>
#include <qmp/client/basic_client.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/client/options.hpp>
#include <qmp/client/reconnector.hpp>
#include <qmp/client/sync_client.hpp>
#include <qmp/client/transport.hpp>
