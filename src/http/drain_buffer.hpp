// Private to src/http (include only where Asio's socket headers are already included): a read
// buffer type whose reads tell Asio's reactor when they drained the socket.
//
// Asio starts every socket read with a speculative recv() and only forgets that habit after a read
// of 0 bytes, so a read issued while the peer has not answered yet (the upstream right after the
// request went out; the client right after its response went out) is a recv() that fails with
// EAGAIN before the wait on epoll: ~0.7-0.8 wasted syscalls per proxied request at c=1 and c=32
// (nginx makes none), about half of them on the client side. Sockets are registered edge-triggered (EPOLLET), so a read that returned
// fewer bytes than asked has drained the socket, and any byte that arrives after it raises a new
// edge. Reads through a drain_buffer report such a short read as done_and_exhausted: the next read
// on that socket then waits for epoll instead of trying recv() first (Asio turns speculation back
// on when the edge comes).
//
// The catch: a FIN that arrived before the short read (right behind the last bytes) raised its
// edge already, so the next read waits for an edge that never comes; it ends only by its
// deadline. Hence only the server's reads of client requests use it: there, the next read is
// the next request, and a client that half-closed right behind its request is still answered
// and its connection then ends by the idle timeout (before, the watch took its FIN for a client
// gone and cancelled the request). The upstream client does not: a body read until close, or a
// stream cut mid-way, must see the FIN at once (tests/cache CacheGateway.FailedOrIncomplete...
// waited for the chunk-gap timeout when it did).
//
// A distinct buffer type keeps this to our reads: reactive_socket_recv_op_base<drain_buffer> is an
// instantiation nothing else uses, so its do_perform can be specialized here without touching
// anyone else's. MSG_PEEK reads never count as draining (peeking leaves the bytes in the socket).
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/reactive_socket_recv_op.hpp>

namespace fp::http {

struct drain_buffer : boost::asio::mutable_buffer {
  explicit drain_buffer(boost::asio::mutable_buffer b) noexcept : boost::asio::mutable_buffer(b) {}
};

}  // namespace fp::http

namespace boost::asio::detail {

template <>
inline reactor_op::status reactive_socket_recv_op_base<fp::http::drain_buffer>::do_perform(reactor_op* base) {
  auto* o = static_cast<reactive_socket_recv_op_base*>(base);
  const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
  const size_t size = o->buffers_.size();
  if (!socket_ops::non_blocking_recv1(o->socket_, o->buffers_.data(), size, o->flags_, stream, o->ec_,
                                      o->bytes_transferred_))
    return not_done;  // EAGAIN: wait for the edge
  if (stream && (o->bytes_transferred_ == 0 ||
                 (!o->ec_ && o->bytes_transferred_ < size && (o->flags_ & socket_base::message_peek) == 0)))
    return done_and_exhausted;
  return done;
}

}  // namespace boost::asio::detail
