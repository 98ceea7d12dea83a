// HTTP/1.1 head parsing and chunked decoding (see wire.hpp). Strict where laxness enables request
// smuggling (Content-Length with Transfer-Encoding, differing lengths, obsolete line folding, bare
// CR/LF, whitespace before a field's colon): those are rejected, not guessed at.
#include "http/wire.hpp"

#include "common/common.hpp"

#include <algorithm>
#include <cstring>

namespace fp::http::wire {

namespace {

constexpr size_t max_fields = 256;
constexpr size_t max_chunk_line = 4096;  // a chunk-size line with extensions, or one trailer field

// RFC 9110 tchar.
constexpr bool is_tchar(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(token) for each element of a comma-separated list (empty elements skipped).
template <class F>
void for_each_token(std::string_view list, F&& f) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = trim_ows(list.substr(0, comma));
    if (!item.empty()) f(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool parse_version(std::string_view v, int& minor) noexcept {
  if (v.size() != 8 || v.substr(0, 7) != "HTTP/1.") return false;
  if (v[7] != '0' && v[7] != '1') return false;
  minor = v[7] - '0';
  return true;
}

bool parse_decimal(std::string_view s, uint64_t& out) noexcept {
  if (s.empty() || s.size() > 18) return false;  // < 10^18: no overflow
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

// Finds the end of the head (the empty line). Returns the head's size or 0.
size_t find_head_end(std::string_view buf, size_t start, head_scan& scan, size_t max_bytes) noexcept {
  size_t from = std::max(start, scan.scanned >= 3 ? scan.scanned - 3 : size_t{0});
  size_t limit = std::min(buf.size(), max_bytes);
  if (from < limit) {
    std::string_view hay = buf.substr(0, limit);
    auto pos = hay.find("\r\n\r\n", from);
    if (pos != std::string_view::npos) return pos + 4;
  }
  scan.scanned = limit;
  return 0;
}

// Splits the field lines of [pos, end) (end points at the final CRLF of the empty line) into
// out.fields and derives the framing. `request` selects the request rules.
parse_result parse_fields_and_framing(std::string_view buf, size_t pos, size_t end, head& out, bool request) {
  out.fields.clear();
  bool have_cl = false, have_te = false, chunked = false, te_other = false, conn_close = false, conn_ka = false;
  uint64_t cl = 0;
  while (pos < end) {
    size_t eol = buf.find("\r\n", pos);
    std::string_view line = buf.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return {parse::bad, "obsolete line folding"};
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return {parse::bad, "header line without a colon"};
    std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return {parse::bad, "invalid header name"};
    std::string_view value = trim_ows(line.substr(colon + 1));
    for (unsigned char c : value)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return {parse::bad, "control character in a header value"};
    if (out.fields.size() >= max_fields) return {parse::too_large, "too many header fields"};
    out.fields.push_back({name, value});
    switch (lower(name[0])) {
      case 'c':
        if (iequals(name, "content-length")) {
          uint64_t v = 0;
          if (!parse_decimal(value, v)) return {parse::bad, "invalid Content-Length"};
          if (have_cl && v != cl) return {parse::bad, "conflicting Content-Length values"};
          have_cl = true;
          cl = v;
        } else if (iequals(name, "connection")) {
          for_each_token(value, [&](std::string_view t) {
            if (iequals(t, "close")) conn_close = true;
            if (iequals(t, "keep-alive")) conn_ka = true;
          });
        }
        break;
      case 't':
        if (iequals(name, "transfer-encoding")) {
          have_te = true;
          for_each_token(value, [&](std::string_view t) {
            if (iequals(t, "chunked")) {
              if (chunked) te_other = true;  // chunked twice
              chunked = true;
            } else {
              te_other = true;
            }
          });
        }
        break;
      case 'e':
        if (request && iequals(name, "expect") && iequals(value, "100-continue")) out.expect_continue = true;
        break;
      default:
        break;
    }
  }
  out.keep_alive = out.minor == 1 ? !conn_close : (conn_ka && !conn_close);
  out.content_length = 0;
  if (have_te) {
    if (request && have_cl) return {parse::bad, "both Content-Length and Transfer-Encoding"};
    if (request && out.minor == 0) return {parse::bad, "Transfer-Encoding in an HTTP/1.0 request"};
    if (te_other || !chunked) {
      if (request) return {parse::unsupported, "unsupported Transfer-Encoding (only chunked)"};
      out.body = body_kind::until_close;  // RFC 9112 6.3: read until the connection closes
      out.keep_alive = false;
      return {parse::done, ""};
    }
    out.body = body_kind::chunked;
    return {parse::done, ""};
  }
  if (have_cl) {
    out.content_length = cl;
    out.body = cl > 0 ? body_kind::length : body_kind::none;
    return {parse::done, ""};
  }
  if (request) {
    out.body = body_kind::none;
  } else {
    out.body = body_kind::until_close;
    out.keep_alive = false;
  }
  return {parse::done, ""};
}

void reset_head(head& out) {
  out.method = {};
  out.target = {};
  out.status = 0;
  out.reason = {};
  out.minor = 1;
  out.size = 0;
  out.body = body_kind::none;
  out.content_length = 0;
  out.keep_alive = true;
  out.expect_continue = false;
}

}  // namespace

std::string_view head::get(std::string_view name) const noexcept {
  for (const auto& f : fields)
    if (iequals(f.name, name)) return f.value;
  return {};
}

parse_result parse_request_head(std::string_view buf, head& out, head_scan& scan, size_t max_bytes) {
  // RFC 9112 2.2: ignore empty lines before the request line.
  size_t start = 0;
  while (buf.size() - start >= 2 && buf[start] == '\r' && buf[start + 1] == '\n') start += 2;
  size_t end = find_head_end(buf, start, scan, max_bytes);
  if (end == 0) {
    if (buf.size() >= max_bytes) return {parse::too_large, "request head too large"};
    return {parse::need_more, ""};
  }
  reset_head(out);
  out.size = end;
  size_t eol = buf.find("\r\n", start);
  std::string_view line = buf.substr(start, eol - start);
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return {parse::bad, "malformed request line"};
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return {parse::bad, "malformed request line"};
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!is_token(out.method)) return {parse::bad, "invalid method"};
  if (out.target.empty()) return {parse::bad, "empty request target"};
  for (unsigned char c : out.target)
    if (c <= 0x20 || c == 0x7f) return {parse::bad, "invalid request target"};
  if (!parse_version(line.substr(sp2 + 1), out.minor)) return {parse::bad, "unsupported HTTP version"};
  return parse_fields_and_framing(buf, eol + 2, end - 2, out, true);
}

parse_result parse_response_head(std::string_view buf, head& out, head_scan& scan, size_t max_bytes,
                                 std::string_view method) {
  size_t end = find_head_end(buf, 0, scan, max_bytes);
  if (end == 0) {
    if (buf.size() >= max_bytes) return {parse::too_large, "response head too large"};
    return {parse::need_more, ""};
  }
  reset_head(out);
  out.size = end;
  size_t eol = buf.find("\r\n");
  std::string_view line = buf.substr(0, eol);
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (line.size() < 12 || !parse_version(line.substr(0, 8), out.minor) || line[8] != ' ')
    return {parse::bad, "malformed status line"};
  int code = 0;
  for (int i = 9; i < 12; ++i) {
    char c = line[static_cast<size_t>(i)];
    if (c < '0' || c > '9') return {parse::bad, "malformed status code"};
    code = code * 10 + (c - '0');
  }
  if (code < 100) return {parse::bad, "malformed status code"};
  if (line.size() > 12) {
    if (line[12] != ' ') return {parse::bad, "malformed status line"};
    out.reason = line.substr(13);
  }
  out.status = code;
  auto r = parse_fields_and_framing(buf, eol + 2, end - 2, out, false);
  if (r.status != parse::done) return r;
  if (code < 200 || code == 204 || code == 304 || method == "HEAD") {
    out.body = body_kind::none;
    out.content_length = 0;
    if (code < 200) out.keep_alive = true;  // an interim response; the final one follows
  }
  return r;
}

chunked_decoder::step chunked_decoder::decode(const char* in, size_t n, char* out, size_t cap) noexcept {
  step s;
  size_t i = 0;
  auto fail = [&] {
    state_ = state::error;
    s.error = true;
    s.consumed = i;
    return s;
  };
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case state::size: {
        int d = (c >= '0' && c <= '9') ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') ? (c | 0x20) - 'a' + 10 : -1;
        if (d >= 0) {
          if (++digits_ > 15) return fail();  // > 2^60 bytes
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(d);
          ++i;
        } else if (digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          state_ = state::ext;
          line_ = 0;
          ++i;
        } else if (digits_ > 0 && c == '\r') {
          state_ = state::size_lf;
          ++i;
        } else {
          return fail();
        }
        break;
      }
      case state::ext:
        if (c == '\r') {
          state_ = state::size_lf;
        } else if (c == '\n' || ++line_ > max_chunk_line) {
          return fail();
        }
        ++i;
        break;
      case state::size_lf:
        if (c != '\n') return fail();
        ++i;
        state_ = remaining_ == 0 ? state::trailer_start : state::data;
        break;
      case state::data: {
        size_t room = cap - s.produced;
        if (room == 0) {
          s.consumed = i;
          return s;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>({remaining_, n - i, room}));
        std::memcpy(out + s.produced, in + i, take);
        s.produced += take;
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = state::data_cr;
        break;
      }
      case state::data_cr:
        if (c != '\r') return fail();
        ++i;
        state_ = state::data_lf;
        break;
      case state::data_lf:
        if (c != '\n') return fail();
        ++i;
        state_ = state::size;
        digits_ = 0;
        remaining_ = 0;
        break;
      case state::trailer_start:
        if (c == '\r') {
          state_ = state::last_lf;
        } else if (c == '\n') {
          return fail();
        } else {
          state_ = state::trailer;
          line_ = 1;
        }
        ++i;
        break;
      case state::trailer:
        if (c == '\r') {
          state_ = state::trailer_lf;
        } else if (c == '\n' || ++line_ > max_chunk_line) {
          return fail();
        }
        ++i;
        break;
      case state::trailer_lf:
        if (c != '\n') return fail();
        ++i;
        state_ = state::trailer_start;
        break;
      case state::last_lf:
        if (c != '\n') return fail();
        ++i;
        state_ = state::done;
        s.done = true;
        s.consumed = i;
        return s;
      case state::done:
        s.done = true;
        s.consumed = i;
        return s;
      case state::error:
        return fail();
    }
  }
  s.consumed = i;
  s.done = state_ == state::done;
  return s;
}

}  // namespace fp::http::wire
