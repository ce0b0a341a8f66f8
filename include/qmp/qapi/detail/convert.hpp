// Helper for the hand-written to_json of commands whose arguments are not a
// plain member list (blockdev-add's options, job options flattened into the
// job-starting commands): optional members are written only when set.
#pragma once

#include <qmp/protocol/message.hpp>

#include <optional>

namespace qmp::detail {

template <class T>
void put_opt(json& j, const char* key, const std::optional<T>& v) {
    if (v) j[key] = *v;
}

}  // namespace qmp::detail
