// Helpers for the hand-written QAPI conversions: optional members in and
// out, and boxed recursive members. Unknown members are ignored simply by
// never being read.
#pragma once

#include <qmp/protocol/message.hpp>

#include <memory>
#include <optional>

namespace qmp::detail {

template <class T>
void get_opt(const json& j, const char* key, std::optional<T>& out) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null())
        out = it->template get<T>();
    else
        out.reset();
}

template <class T>
void get_or(const json& j, const char* key, T& out, T fallback) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null())
        it->get_to(out);
    else
        out = std::move(fallback);
}

/// A recursive member (`backing-image`, `backing`, `parent`): null when absent.
template <class T>
void get_box(const json& j, const char* key, std::shared_ptr<T>& out) {
    auto it = j.find(key);
    if (it != j.end() && it->is_object()) {
        auto p = std::make_shared<T>();
        it->get_to(*p);
        out = std::move(p);
    } else {
        out.reset();
    }
}

template <class T>
void put_opt(json& j, const char* key, const std::optional<T>& v) {
    if (v) j[key] = *v;
}

}  // namespace qmp::detail
