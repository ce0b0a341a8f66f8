// Everything in one include: protocol, client, blocking facade (not the
// typed QAPI, the block layer or thresholds: qapi.hpp, block.hpp, threshold/).
#pragma once

#include <qmp/version.hpp>
#include <qmp/protocol/command.hpp>
#include <qmp/error.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/handshake.hpp>
#include <qmp/json/parse.hpp>
#include <qmp/json/reader.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/protocol/session.hpp>
#include <qmp/json/wire.hpp>
#include <qmp/client/basic_client.hpp>
#include <qmp/client/clients.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/client/options.hpp>
#include <qmp/client/reconnector.hpp>
#include <qmp/client/sync_client.hpp>
#include <qmp/client/transport.hpp>
