// client_impl's reading and writing: one read at a time into the session,
// one write at a time of what the session queued (with descriptors where a
// command carries them, and the nudge some peers need after it).
#pragma once

#include <qmp/client/detail/client_impl.hpp>

namespace qmp::detail {

template <class Stream>
void client_impl<Stream>::start_read() {
    if (!rbuf_) rbuf_.reset(new char[read_size]);
    sp_->async_read_some(asio::buffer(rbuf_.get(), read_size),
                         [self = this->shared_from_this(), gen = generation_, keep = held()](std::error_code ec,
                                                                                              std::size_t n) {
                             self->on_read(gen, ec, n);
                         });
}

template <class Stream>
void client_impl<Stream>::on_read(std::uint64_t gen, std::error_code ec, std::size_t n) {
    if (gen != generation_) return;
    ++turn_;
    if (ec)
        sess_.on_transport_error(peer_gone(ec) ? make_error_code(error::connection_closed) : ec, *this);
    else
        sess_.on_bytes(rbuf_.get(), n, *this);
    flush();
    const bool go_on = gen == generation_;
    dispatch_ready();
    if (go_on && gen == generation_) start_read();
}

template <class Stream>
bool client_impl<Stream>::peer_gone(std::error_code ec) {
    return transport_peer_gone<Stream>(ec) || ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
           ec == asio::error::not_connected || ec == asio::error::shut_down;
}

template <class Stream>
void client_impl<Stream>::flush() {
    if (writing_ || !sess_.want_write() || (state_ != link_state::negotiating && state_ != link_state::ready)) return;
    if (written_turn_ == turn_) {
        // Written once this turn already: what else the caller issues now
        // joins this chunk and leaves in one write, after the turn.
        if (!flush_posted_) {
            flush_posted_ = true;
            asio::post(sp_->get_executor(), [self = this->shared_from_this(), gen = generation_, keep = held()] {
                self->flush_posted_ = false;
                if (gen != self->generation_) return;
                ++self->turn_;
                self->flush();
            });
        }
        return;
    }
    writing_ = true;
    const auto c = sess_.next_write();
    if (c.fd_owner) {
        auto it = fds_.find(c.fd_owner);
        if (it != fds_.end()) {
            owned_fds fds = std::move(it->second);
            fds_.erase(it);
            return write_with_fds(c.bytes, std::move(fds), generation_);
        }
    }
    write_from(c.bytes, 0, generation_);
}

template <class Stream>
void client_impl<Stream>::write_from(std::string_view bytes, std::size_t offset, std::uint64_t gen) {
    // What the socket takes now is written now: no completion to run, so
    // no extra turn of the event loop per command. The rest, or an error,
    // goes the asynchronous way.
    written_turn_ = turn_;
    offset += transport_write_now(*sp_, bytes.data() + offset, bytes.size() - offset);
    if (offset == bytes.size()) return on_written(gen, {});
    asio::async_write(*sp_, asio::buffer(bytes.data() + offset, bytes.size() - offset),
                      [self = this->shared_from_this(), gen, keep = held()](std::error_code ec, std::size_t) {
                          ++self->turn_;
                          self->on_written(gen, ec);
                      });
}

template <class Stream>
void client_impl<Stream>::on_written(std::uint64_t gen, std::error_code ec, bool nudge) {
    if (gen != generation_) return;
    writing_ = false;
    if (ec) {
        sess_.on_transport_error(peer_gone(ec) ? make_error_code(error::connection_closed) : ec, *this);
        return dispatch_ready();
    }
    if (!nudge) {
        sess_.written();
        if (!sess_.want_write() && transport_nudges<Stream>(sess_.server_greeting())) return write_nudge(gen);
    }
    flush();
}

// A lone space after the last chunk, for peers that leave the end of what
// they received unread until more arrives (transport.hpp). QMP ignores
// whitespace between messages.
template <class Stream>
void client_impl<Stream>::write_nudge(std::uint64_t gen) {
    writing_ = true;
    asio::async_write(*sp_, asio::buffer(" ", 1),
                      [self = this->shared_from_this(), gen, keep = held()](std::error_code ec, std::size_t) {
                          ++self->turn_;
                          self->on_written(gen, ec, true);
                      });
}

template <class Stream>
void client_impl<Stream>::write_with_fds(std::string_view bytes, owned_fds fds, std::uint64_t gen) {
    if constexpr (tr::can_pass_fds) {
        std::error_code ec;
        std::size_t n = tr::send_with_fds(*sp_, bytes.data(), bytes.size(), fds.get(), ec);
        if (ec == asio::error::would_block) {
            auto held = std::make_shared<owned_fds>(std::move(fds));
            tr::async_wait_writable(*sp_, [self = this->shared_from_this(), bytes, held, gen](std::error_code wec) {
                if (gen != self->generation_) return;
                if (wec) return self->on_written(gen, wec);
                self->write_with_fds(bytes, std::move(*held), gen);
            });
            return;
        }
        if (ec) return on_written(gen, ec);
        // QEMU has its own copies now (ours close here); the rest of the
        // bytes go the usual way.
        return write_from(bytes, n, gen);
    } else {
        (void)fds;
        write_from(bytes, 0, gen);
    }
}

}  // namespace qmp::detail
