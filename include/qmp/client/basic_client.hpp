// basic_client: one QMP session over any asio AsyncStream. It connects (or
// takes a connected stream), negotiates capabilities, runs many commands at
// once matched by id, and hands events out from a bounded queue.
//
// Threading: the client is not thread-safe in the sense of concurrent member
// access, but every initiating function only posts to the client's executor
// before touching any state. So initiating functions may be called from any
// thread as long as the client's executor serialises its handlers (an
// io_context run by one thread, or a strand). stats(), server_greeting() and
// oob_enabled() read state directly: call them on the executor.
#pragma once

#include <qmp/protocol/command.hpp>
#include <qmp/client/detail/client_impl.hpp>
#include <qmp/client/detail/peer.hpp>
#include <qmp/client/options.hpp>
#include <qmp/protocol/error.hpp>
#include <qmp/protocol/message.hpp>

#include <asio/async_result.hpp>
#include <asio/compose.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace qmp {

template <class AsyncStream>
class basic_client {
public:
    using stream_type = AsyncStream;
    using executor_type = typename AsyncStream::executor_type;

    /// Rebinds the client to another executor type (asio convention).
    template <class Executor>
    struct rebind_executor {
        using other = basic_client<typename AsyncStream::template rebind_executor<Executor>::other>;
    };

    explicit basic_client(const executor_type& ex, client_options opts = {})
        : im_(std::make_shared<impl_type>(std::move(opts), ex)) {}

    template <class ExecutionContext,
              class = std::enable_if_t<std::is_convertible_v<ExecutionContext&, asio::execution_context&>>>
    explicit basic_client(ExecutionContext& ctx, client_options opts = {})
        : im_(std::make_shared<impl_type>(std::move(opts), ctx.get_executor())) {}

    /// Takes a stream that is already connected; call async_handshake next.
    explicit basic_client(AsyncStream&& stream, client_options opts = {})
        : im_(std::make_shared<impl_type>(std::move(opts), std::move(stream))) {}

    basic_client(basic_client&&) noexcept = default;
    basic_client& operator=(basic_client&& other) noexcept {
        if (this != &other) {
            close();
            im_ = std::move(other.im_);
        }
        return *this;
    }
    basic_client(const basic_client&) = delete;
    basic_client& operator=(const basic_client&) = delete;

    /// Closes the session; pending operations complete with connection_closed.
    ~basic_client() { close(); }

    executor_type get_executor() const { return im_->stream.get_executor(); }
    AsyncStream& stream() noexcept { return im_->stream; }
    const client_options& options() const noexcept { return im_->options; }

    /// Connects the stream to `endpoint` (a unix socket path endpoint or a
    /// TCP endpoint), then reads the greeting and negotiates. Bounded by
    /// connect_timeout and greeting_timeout. A closed client may connect again.
    template <class Endpoint, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<CompletionToken>, diagnostics>>>
    auto async_connect(const Endpoint& endpoint, CompletionToken&& token = CompletionToken{});

    /// The same; when QEMU refuses negotiation (error::negotiation_failed),
    /// `diag` gets its class and desc. `diag` must outlive the operation.
    template <class Endpoint, class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_connect(const Endpoint& endpoint, diagnostics& diag, CompletionToken&& token = CompletionToken{});

    /// The stream is connected already: read the greeting and negotiate.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<!std::is_same_v<std::decay_t<CompletionToken>, diagnostics>>>
    auto async_handshake(CompletionToken&& token = CompletionToken{});
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_handshake(diagnostics& diag, CompletionToken&& token = CompletionToken{});

    /// Runs `name` with `arguments` (null or an object). Completes with the
    /// `return` value, or with the QMP error class as a server_error code (the
    /// server's desc goes to opts.diag when given).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_execute(std::string_view name, json arguments, const exec_options& opts,
                       CompletionToken&& token = CompletionToken{});

    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_execute(std::string_view name, json arguments = nullptr, CompletionToken&& token = CompletionToken{}) {
        return async_execute(name, std::move(arguments), exec_options{}, std::forward<CompletionToken>(token));
    }

    /// Runs a typed command (see command.hpp); completes with its result_type.
    template <class Command, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<is_command<Command>::value>>
    auto async_execute(const Command& cmd, const exec_options& opts, CompletionToken&& token = CompletionToken{});

    template <class Command, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<is_command<Command>::value>>
    auto async_execute(const Command& cmd, CompletionToken&& token = CompletionToken{}) {
        return async_execute(cmd, exec_options{}, std::forward<CompletionToken>(token));
    }

    /// Takes the next event. Completes with error::events_lost (and
    /// `event::lost` > 0) where the queue overflowed, in order; with the
    /// close reason once the session ended and no event is left. `timeout`
    /// 0 waits forever.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive_event(std::chrono::milliseconds timeout, CompletionToken&& token = CompletionToken{});

    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive_event(CompletionToken&& token = CompletionToken{}) {
        return async_receive_event(std::chrono::milliseconds(0), std::forward<CompletionToken>(token));
    }

    /// Ends the session; every pending operation completes at once with
    /// connection_closed. Safe from any thread (posted to the executor).
    void close() {
        if (!im_) return;
        asio::dispatch(im_->get_executor(), [im = im_] { im->fail(error::connection_closed); });
    }

    // Read on the client's executor.
    bool is_open() const noexcept { return im_ && im_->state == detail::conn_state::ready; }
    const greeting& server_greeting() const noexcept { return im_->server_greeting(); }
    bool oob_enabled() const noexcept { return im_->oob_enabled(); }
    const client_stats& stats() const noexcept { return im_->stats; }
    std::size_t queued_events() const noexcept { return im_->queued_events(); }
    std::size_t pending_commands() const noexcept { return im_->pending_count(); }
    /// Why the last session ended (empty while connected or never connected).
    std::error_code close_reason() const noexcept { return im_->close_reason; }
    /// Which QEMU process this session talks to, where the transport can
    /// tell (a unix socket on Linux: "PID:START-TIME"); a restarted QEMU on
    /// the same socket path has another one. nullopt elsewhere.
    std::optional<std::string> peer_instance() { return detail::peer_instance(im_->stream); }

private:
    using impl_type = detail::client_impl<AsyncStream>;
    std::shared_ptr<impl_type> im_;
};

using unix_client = basic_client<asio::local::stream_protocol::socket>;
using tcp_client = basic_client<asio::ip::tcp::socket>;

}  // namespace qmp

#include <qmp/client/impl/basic_client.hpp>
