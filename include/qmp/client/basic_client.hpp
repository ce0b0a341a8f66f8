// basic_client: one QMP session over any asio AsyncReadStream +
// AsyncWriteStream, a thin runner of the sans-io session
// (protocol/session.hpp). It connects the stream where the stream can be
// connected (client/transport.hpp) or takes one connected already,
// negotiates, runs many commands at once matched by id, and hands events to
// subscriptions, each with its own bounded queue.
//
// Errors: every operation completes with (std::error_code, T). QEMU's class
// and desc reach the caller through diagnostics: the diagnostics& overloads,
// bind_diagnostics(diag, handler), or with_diagnostics(token), which makes
// awaitables and futures throw a qmp_error holding QEMU's text.
//
// Threading: not thread-safe in the sense of concurrent member access, but
// every initiating function and close() run on the client's executor
// (dispatched there first), so they may be called from any thread when that
// executor runs one handler at a time (an io_context on one thread, or a
// strand). The accessors read state: call them on the executor.
#pragma once

#include <qmp/client/detail/client_impl.hpp>
#include <qmp/client/diagnostics.hpp>
#include <qmp/client/options.hpp>
#include <qmp/client/transport.hpp>
#include <qmp/protocol/command.hpp>
#include <qmp/error.hpp>
#include <qmp/protocol/event_router.hpp>
#include <qmp/protocol/message.hpp>

#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace qmp {

template <class AsyncStream>
class basic_sync_client;

template <class Stream>
class basic_client {
    using impl_type = detail::client_impl<Stream>;
    template <class T>
    using not_diag = std::enable_if_t<!std::is_same_v<std::decay_t<T>, diagnostics> &&
                                      !std::is_same_v<std::decay_t<T>, backoff>>;
    template <class T>
    using not_stream = std::enable_if_t<!std::is_same_v<std::decay_t<T>, Stream>>;

public:
    using stream_type = Stream;
    using executor_type = typename Stream::executor_type;

    /// Rebinds the client to another executor type (asio convention).
    template <class Executor>
    struct rebind_executor {
        using other = basic_client<typename Stream::template rebind_executor<Executor>::other>;
    };

    /// A client whose stream is made from `ex` and `stream_args` (nothing
    /// more for sockets; the asio::ssl::context for a TLS stream); connect
    /// it next.
    explicit basic_client(const executor_type& ex) : im_(std::make_shared<impl_type>(client_options{}, ex)) {}
    template <class... StreamArgs>
    basic_client(const executor_type& ex, client_options opts, StreamArgs&&... stream_args)
        : im_(std::make_shared<impl_type>(std::move(opts), ex, std::forward<StreamArgs>(stream_args)...)) {}

    template <class ExecutionContext,
              class = std::enable_if_t<std::is_convertible_v<ExecutionContext&, asio::execution_context&>>>
    explicit basic_client(ExecutionContext& ctx) : basic_client(executor_type(ctx.get_executor())) {}
    template <class ExecutionContext, class... StreamArgs,
              class = std::enable_if_t<std::is_convertible_v<ExecutionContext&, asio::execution_context&>>>
    basic_client(ExecutionContext& ctx, client_options opts, StreamArgs&&... stream_args)
        : basic_client(executor_type(ctx.get_executor()), std::move(opts), std::forward<StreamArgs>(stream_args)...) {}

    /// Takes a stream that is connected already (any stream); async_handshake next.
    explicit basic_client(Stream&& stream, client_options opts = {})
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

    executor_type get_executor() const { return im_->get_executor(); }
    Stream& stream() noexcept { return im_->stream(); }
    const client_options& options() const noexcept { return im_->options(); }

    // ---- sessions --------------------------------------------------------------

    /// Connects the stream to `endpoint`, reads the greeting and negotiates,
    /// bounded by connect_timeout and greeting_timeout. Only for streams the
    /// client can connect (transport<Stream>::can_connect). A closed client
    /// may connect again. With `diag`: QEMU's reason when it refuses
    /// negotiation. With `retry`: keeps trying while QEMU starts (a
    /// starting QEMU refuses, drops or greets twice early connections),
    /// waiting as the back-off policy says until its total has passed; a
    /// failure's `diag` then says how many attempts were made over how
    /// long, and the last one's reason (QEMU's text when it refused).
    template <class Endpoint, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = not_diag<CompletionToken>>
    auto async_connect(const Endpoint& endpoint, CompletionToken&& token = CompletionToken{});
    template <class Endpoint, class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_connect(const Endpoint& endpoint, diagnostics& diag, CompletionToken&& token = CompletionToken{});
    template <class Endpoint, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = not_diag<CompletionToken>>
    auto async_connect(const Endpoint& endpoint, const backoff& retry, CompletionToken&& token = CompletionToken{});
    template <class Endpoint, class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_connect(const Endpoint& endpoint, const backoff& retry, diagnostics& diag,
                       CompletionToken&& token = CompletionToken{});

    /// The stream is connected already: read the greeting and negotiate.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = not_diag<CompletionToken>, class = not_stream<CompletionToken>>
    auto async_handshake(CompletionToken&& token = CompletionToken{});
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_handshake(diagnostics& diag, CompletionToken&& token = CompletionToken{});
    /// Takes `connected` (a stream its owner connected) as the client's
    /// stream, then reads the greeting and negotiates. A client between
    /// sessions may take a new stream this way. already_connected while a
    /// session runs.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_handshake(Stream&& connected, diagnostics& diag, CompletionToken&& token = CompletionToken{}) {
        adopt(std::move(connected));
        return async_handshake(diag, std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>, class = not_diag<CompletionToken>>
    auto async_handshake(Stream&& connected, CompletionToken&& token = CompletionToken{}) {
        adopt(std::move(connected));
        return async_handshake(std::forward<CompletionToken>(token));
    }

    // ---- commands --------------------------------------------------------------

    /// Runs `name` with `arguments` (null or an object); completes with the
    /// `return` value, or with QEMU's error class as a server_error code.
    /// With `diag`: QEMU's class and desc when it refuses (also reached
    /// through bind_diagnostics or with_diagnostics).
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_execute(std::string_view name, json arguments, const exec_options& opts,
                       CompletionToken&& token = CompletionToken{}) {
        return async_execute(dynamic_command<json>{std::string(name), std::move(arguments)}, opts,
                             std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>, class = not_diag<CompletionToken>>
    auto async_execute(std::string_view name, json arguments = nullptr, CompletionToken&& token = CompletionToken{}) {
        return async_execute(name, std::move(arguments), exec_options{}, std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_execute(std::string_view name, json arguments, diagnostics& diag,
                       CompletionToken&& token = CompletionToken{}) {
        return async_execute(dynamic_command<json>{std::string(name), std::move(arguments)}, exec_options{}, diag,
                             std::forward<CompletionToken>(token));
    }

    /// Runs a typed command (protocol/command.hpp); completes with its
    /// result_type, converted straight from the reply's text.
    template <class Command, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<is_command<Command>::value>>
    auto async_execute(Command cmd, const exec_options& opts, CompletionToken&& token = CompletionToken{});
    template <class Command, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<is_command<Command>::value>>
    auto async_execute(Command cmd, const exec_options& opts, diagnostics& diag, CompletionToken&& token = CompletionToken{});
    template <class Command, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<is_command<Command>::value && !std::is_same_v<std::decay_t<CompletionToken>, diagnostics>>>
    auto async_execute(Command cmd, CompletionToken&& token = CompletionToken{}) {
        return async_execute(std::move(cmd), exec_options{}, std::forward<CompletionToken>(token));
    }
    template <class Command, class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = std::enable_if_t<is_command<Command>::value>>
    auto async_execute(Command cmd, diagnostics& diag, CompletionToken&& token = CompletionToken{}) {
        return async_execute(std::move(cmd), exec_options{}, diag, std::forward<CompletionToken>(token));
    }

    // ---- what the peer offers ---------------------------------------------------

    /// Runs query-qmp-schema and keeps its index for this connection: from
    /// then on every command (typed or by name) is checked against it
    /// before it is sent, and one the peer lacks, or with an argument member
    /// or enum value it does not know, completes with error::not_offered
    /// and a message naming it and the peer ("QEMU 7.2.0: 'query-machines'
    /// has no argument 'compat-props'"). Completes with the index (also
    /// schema()). A new connection starts without one; load it again there.
    /// Without it (the default) nothing is checked and nothing is asked.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>,
              class = not_diag<CompletionToken>>
    auto async_load_schema(CompletionToken&& token = CompletionToken{});
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_load_schema(diagnostics& diag, CompletionToken&& token = CompletionToken{});
    /// The index async_load_schema installed on this connection, or null.
    std::shared_ptr<const peer_schema> schema() const { return im_->offered(); }

    // ---- events ----------------------------------------------------------------

    /// Takes the next event of the queue every event goes to. Where that
    /// queue overflowed, an "events lost" marker comes in order: ec clear,
    /// `event::lost` > 0, no name. Once the session ended and nothing is
    /// queued: the close reason. `timeout` 0 waits forever.
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive_event(std::chrono::milliseconds timeout, CompletionToken&& token = CompletionToken{});
    template <class CompletionToken = asio::default_completion_token_t<executor_type>>
    auto async_receive_event(CompletionToken&& token = CompletionToken{}) {
        return async_receive_event(std::chrono::milliseconds(0), std::forward<CompletionToken>(token));
    }

    class subscription;
    /// A consumer of its own: the events `filter` takes, from now on, in a
    /// queue of `capacity` with its own loss markers. Call on the executor.
    subscription subscribe(event_filter filter, std::size_t capacity = event_queue::default_capacity) {
        return subscription(im_, im_->subscribe(std::move(filter), capacity));
    }

    /// Ends the session; every pending operation completes at once with
    /// connection_closed. Safe from any thread (runs on the executor).
    void close() {
        if (!im_) return;
        asio::dispatch(im_->get_executor(), [im = im_] { im->close(error::connection_closed); });
    }

    // ---- state (read on the executor) ----------------------------------------------

    bool is_open() const noexcept { return im_ && im_->ready(); }
    greeting server_greeting() const { return im_->server_greeting(); }
    bool oob_enabled() const noexcept { return im_->oob_enabled(); }
    client_stats stats() const { return im_->stats(); }
    std::size_t queued_events() const { return im_->queued_events(im_->everything()); }
    std::size_t pending_commands() const { return im_->pending_commands(); }
    /// Why the last session ended (empty while connected or never connected).
    std::error_code close_reason() const noexcept { return im_->close_reason(); }
    /// Which QEMU process this session talks to, where the transport can
    /// tell (a unix socket on Linux: "PID:START-TIME"); a restarted QEMU on
    /// the same socket path has another one. nullopt elsewhere.
    std::optional<std::string> peer_instance() { return transport<Stream>::peer_instance(im_->stream()); }

private:
    // The new stream goes in where the client runs, unless a session does.
    void adopt(Stream&& connected) {
        auto s = std::make_shared<Stream>(std::move(connected));
        im_->enter([im = im_, s] { im->adopt(std::move(s)); });
    }

    // A blocking facade that runs the context on the calling thread starts
    // its operations in place (client_impl::run_here).
    template <class>
    friend class basic_sync_client;
    void run_here(bool on) noexcept { im_->run_here(on); }

    std::shared_ptr<impl_type> im_;
};

}  // namespace qmp

#include <qmp/client/impl/basic_client.hpp>
#include <qmp/client/subscription.hpp>
