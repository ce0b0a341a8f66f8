// Errors the threshold layer raises: specs that do not parse or do not
// compute, requests it cannot carry out. Category "qmp.threshold". Errors of
// the layers below (a QEMU error reply, a lost connection, an unknown
// `vda[N]`) reach the caller unchanged, in their own categories.
#pragma once

#include <string>
#include <system_error>

namespace qmp {

enum class threshold_error {
    invalid_spec = 1,   ///< a threshold spec (`512M`, `80%`, `end-1G`) that does not parse
    unknown_capacity,   ///< a relative spec for an element whose size is unknown
    out_of_range,       ///< the spec computes to 0, or past the capacity
    no_format_layer,    ///< the element has no format node to arm
    invalid_policy,     ///< a re-arm policy that cannot work (a step of 0)
    invalid_state,      ///< saved state that does not validate
    journal_failed,     ///< the state file cannot be read, locked or written (the reason names the file)
};

namespace detail {

class threshold_category_impl : public std::error_category {
public:
    const char* name() const noexcept override { return "qmp.threshold"; }
    std::string message(int ev) const override {
        switch (static_cast<threshold_error>(ev)) {
        case threshold_error::invalid_spec: return "the threshold spec does not parse";
        case threshold_error::unknown_capacity: return "the element's capacity is unknown";
        case threshold_error::out_of_range: return "the threshold is 0 or past the capacity";
        case threshold_error::no_format_layer: return "the element has no format layer";
        case threshold_error::invalid_policy: return "the re-arm policy is invalid";
        case threshold_error::invalid_state: return "the saved threshold state is invalid";
        case threshold_error::journal_failed: return "the threshold state file cannot be read, locked or written";
        }
        return "unknown qmp.threshold error";
    }
};

}  // namespace detail

inline const std::error_category& threshold_category() noexcept {
    static const detail::threshold_category_impl cat;
    return cat;
}

inline std::error_code make_error_code(threshold_error e) noexcept {
    return {static_cast<int>(e), threshold_category()};
}

}  // namespace qmp

template <>
struct std::is_error_code_enum<qmp::threshold_error> : std::true_type {};
