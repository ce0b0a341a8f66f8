// The block layer model: graph, chains, `vda[N]` targets, indexes, resolver.
#pragma once

#include <qmp/block/chain.hpp>
#include <qmp/block/error.hpp>
#include <qmp/block/graph.hpp>
#include <qmp/block/graph_query.hpp>
#include <qmp/block/index_registry.hpp>
#include <qmp/block/resolver.hpp>
#include <qmp/block/target.hpp>
