// Support for the tests and benchmarks of what a hostile or broken QMP peer
// can send: a burst of events, each of a kind a library must not trust.
#pragma once

#include <cstdint>
#include <string>

namespace qmp_support {

/// `rounds` times: a JOB_STATUS_CHANGE whose status is no string, a job
/// start (a new id each time), a BLOCK_WRITE_THRESHOLD for a node nobody
/// knows, a pause on a full volume, a BLOCK_IO_ERROR of the wrong type.
/// `n` numbers the ids and nodes, and goes on across bursts.
inline std::string hostile_burst(std::uint64_t& n, int rounds) {
    const std::string ts = R"(, "timestamp": {"seconds": 1, "microseconds": 2}})" "\r\n";
    std::string burst;
    for (int i = 0; i < rounds; ++i, ++n) {
        burst += R"({"event": "JOB_STATUS_CHANGE", "data": {"id": "j", "status": 1})" + ts;
        burst += R"({"event": "JOB_STATUS_CHANGE", "data": {"id": "j)" + std::to_string(n) + R"(", "status": "running"})" + ts;
        burst += R"({"event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "nobody-)" + std::to_string(n) +
                 R"(", "amount-exceeded": 1, "write-threshold": 2})" + ts;
        burst += R"({"event": "BLOCK_IO_ERROR", "data": {"device": "", "operation": "write", "action": "stop", "nospace": true, "reason": "x"})" + ts;
        burst += R"({"event": "BLOCK_IO_ERROR", "data": {"device": 7})" + ts;
    }
    return burst;
}

/// Events in one burst of `hostile_burst(n, rounds)`.
constexpr int hostile_events_per_round = 5;

}  // namespace qmp_support
