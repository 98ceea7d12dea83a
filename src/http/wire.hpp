// HTTP/1.1 message framing (RFC 9112) without I/O: the request/response head parser and the
// chunked transfer-coding decoder the server and the upstream client use on their hot paths. A
// head is parsed in one pass once its terminating empty line is in the buffer; fields are views
// into that buffer (no allocation once the caller's field vector has grown). Everything here
// parses outside input: tests/fuzz/http_wire_fuzz.cpp fuzzes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace fp::http::wire {

struct field {
  std::string_view name;
  std::string_view value;  // optional whitespace around it removed
};

enum class body_kind : uint8_t { none, length, chunked, until_close };

struct head {
  // request line (requests)
  std::string_view method;
  std::string_view target;
  // status line (responses)
  int status = 0;
  std::string_view reason;
  int minor = 1;  // HTTP/1.<minor>, 0 or 1
  std::vector<field> fields;
  size_t size = 0;  // bytes of the head, including the empty line that ends it

  // Framing and connection semantics, filled in by parse_*_head.
  body_kind body = body_kind::none;
  uint64_t content_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;  // request sent "Expect: 100-continue"

  std::string_view get(std::string_view name) const noexcept;  // case-insensitive; "" when absent
};

enum class parse { done, need_more, bad, too_large, unsupported };

struct parse_result {
  parse status = parse::need_more;
  const char* what = "";  // for bad / unsupported: what is wrong (static text, no input echoed)
};

// Where the search for the end of a head resumes, so bytes arriving one at a time cost O(n).
struct head_scan {
  size_t scanned = 0;
  void reset() noexcept { scanned = 0; }
};

// Parses the head at the start of `buf` (bytes received so far). need_more: the head is not
// complete yet; too_large: no complete head within max_bytes; bad: malformed (a 400);
// unsupported: a transfer coding other than chunked (a 501). On done, `out` views into `buf`.
parse_result parse_request_head(std::string_view buf, head& out, head_scan& scan, size_t max_bytes);
// For a response to a request with method `method` (HEAD responses have no body).
parse_result parse_response_head(std::string_view buf, head& out, head_scan& scan, size_t max_bytes,
                                 std::string_view method = "POST");

// Incremental decoder of the chunked transfer coding: feed it whatever arrived, it copies the
// payload out and says how much input it used. Chunk extensions and trailers are skipped.
class chunked_decoder {
 public:
  struct step {
    size_t consumed = 0;  // input bytes used
    size_t produced = 0;  // payload bytes written to out
    bool done = false;    // the last chunk and the trailers have been read
    bool error = false;   // malformed framing
  };
  step decode(const char* in, size_t n, char* out, size_t cap) noexcept;
  bool done() const noexcept { return state_ == state::done; }
  void reset() noexcept { *this = chunked_decoder{}; }

 private:
  enum class state : uint8_t { size, ext, size_lf, data, data_cr, data_lf, trailer_start, trailer, trailer_lf, last_lf, done, error };
  state state_ = state::size;
  uint64_t remaining_ = 0;
  int digits_ = 0;
  size_t line_ = 0;  // bytes of the current size or trailer line (bounded)
};

}  // namespace fp::http::wire
