// Everything in one include: protocol, client, blocking facade.
#pragma once

#include <qmp/version.hpp>
#include <qmp/protocol/error.hpp>
#include <qmp/protocol/event_queue.hpp>
#include <qmp/protocol/framer.hpp>
#include <qmp/protocol/handshake.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/protocol/pending_table.hpp>
#include <qmp/client/basic_client.hpp>
#include <qmp/protocol/command.hpp>
#include <qmp/client/options.hpp>
#include <qmp/client/sync_client.hpp>
