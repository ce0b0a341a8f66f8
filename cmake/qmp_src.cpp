// The one source file qmp::separate adds to a target: the usual clients,
// compiled once (see qmp/src.hpp).
#include <qmp/src.hpp>
