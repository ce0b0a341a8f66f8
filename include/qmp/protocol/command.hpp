// The typed-command mechanism. A command is a plain struct with its wire
// name as `static constexpr std::string_view name`, a `result_type`, and
// (when it has arguments) wire members (see wire.hpp) or a `to_json` found
// by ADL. Results convert with the same machinery; a conversion failure
// becomes an error code, never an exception into the io_context. No asio:
// this sits below the client.
#pragma once

#include <qmp/error.hpp>
#include <qmp/protocol/message.hpp>
#include <qmp/json/wire.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace qmp {

/// Result of commands that return `{}` (anything else is accepted too).
struct empty_result {};
inline void from_json(const json&, empty_result&) {}

/// The exact JSON text of a result, as QEMU sent it: nothing is parsed,
/// rounded or refused. `text` holds one complete JSON value.
struct json_text {
    std::string text;
};

/// A command named at run time: `name`, JSON `arguments` (null or an
/// object) and the result type R: json (the default), json_text for the
/// exact text, or any typed result.
template <class R = json>
struct dynamic_command {
    std::string name;
    json arguments = nullptr;
    using result_type = R;
};
template <class R>
void to_json(json& j, const dynamic_command<R>& c) {
    j = c.arguments;
}

/// True for types usable with the typed async_execute.
template <class C, class = void>
struct is_command : std::false_type {};
template <class C>
struct is_command<C, std::void_t<typename C::result_type, decltype(C::name)>> : std::true_type {};

namespace detail {

template <>
struct io<empty_result> {
    static void read(json_reader& r, empty_result&) {
        if (!r.skip_value()) throw conversion_error(r.error(), {}, r.error_message());
    }
};

template <>
struct io<json_text> {
    static void read(json_reader& r, json_text& v) {
        const std::size_t b = r.begin_offset();
        if (!r.skip_value()) throw conversion_error(r.error(), {}, r.error_message());
        v.text.assign(r.text().substr(b, r.end_offset() - b));
    }
};

/// Where an erased command's result goes: told the reply's text while it
/// exists, it converts it into the caller's typed result. What lets the
/// blocking client run every command through one non-template function
/// (compiled once with separate compilation), the conversion staying with
/// the caller.
class result_sink {
public:
    virtual std::error_code read(std::string_view text, diagnostics* diag) = 0;

protected:
    ~result_sink() = default;
};
template <class R>
class result_into final : public result_sink {
public:
    explicit result_into(R& out) : out_(out) {}
    std::error_code read(std::string_view text, diagnostics* diag) override { return convert_text(text, out_, diag); }

private:
    R& out_;
};

/// What an erased command completes with: its sink has the value.
struct sunk_result {
    result_sink* sink = nullptr;
};
/// A command whose name, arguments and result reader were chosen by the caller.
struct erased_command {
    std::string name;
    json arguments = nullptr;
    result_sink* sink = nullptr;
    using result_type = sunk_result;
};

/// A reply's text into a command's result.
template <class R>
std::error_code read_result(std::string_view text, R& out, diagnostics* diag) {
    return convert_text(text, out, diag);
}
inline std::error_code read_result(std::string_view text, sunk_result& out, diagnostics* diag) {
    return out.sink->read(text, diag);
}

/// The result an operation starts with (an erased command's names its sink).
template <class C>
typename C::result_type initial_result(const C&) {
    return {};
}
inline sunk_result initial_result(const erased_command& c) { return {c.sink}; }

template <class C>
struct is_dynamic_command : std::false_type {};
template <class R>
struct is_dynamic_command<dynamic_command<R>> : std::true_type {};
template <>
struct is_dynamic_command<erased_command> : std::true_type {};

/// The wire name of command `cmd`; a dynamic command gives its own away
/// (no copy of a name built at run time).
template <class C>
std::string name_of(C& cmd) {
    if constexpr (is_dynamic_command<C>::value)
        return std::move(cmd.name);
    else
        return std::string(cmd.name);
}

/// The `arguments` member of command `cmd` (null for a command without).
/// A dynamic command gives its arguments away.
template <class C>
std::error_code arguments_of(C& cmd, json& out, diagnostics* diag) {
    if constexpr (is_dynamic_command<C>::value) {
        (void)diag;
        out = std::move(cmd.arguments);
        return {};
    } else if constexpr (std::is_empty_v<C>) {
        (void)cmd;
        out = json();
        return {};
    } else {
        try {
            out = json(cmd);
            return {};
        } catch (const std::exception& e) {
            if (diag) diag->message = e.what();
            return make_error_code(error::invalid_argument);
        }
    }
}

}  // namespace detail

// Two commands every session has; they prove the mechanism. The block
// commands live in qmp/qapi/.

/// `query-version`.
struct query_version {
    static constexpr std::string_view name = "query-version";
    using result_type = version_info;
};

/// `qmp_capabilities` (the client sends it itself; a second one is refused
/// by QEMU with CommandNotFound, which tests use).
struct qmp_capabilities {
    static constexpr std::string_view name = "qmp_capabilities";
    using result_type = empty_result;
    std::vector<std::string> enable{};
};

inline void to_json(json& j, const qmp_capabilities& c) {
    j = json::object();
    if (!c.enable.empty()) j["enable"] = c.enable;
}

}  // namespace qmp
