// The HTTP/1.1 head parser and chunked decoder (src/http/wire): framing rules, rejections that
// prevent request smuggling, incremental input.
#include <gtest/gtest.h>

#include <string>

#include "http/wire.hpp"

namespace fp::http::wire {
namespace {

parse_result req(std::string_view s, head& h, size_t max = 16384) {
  head_scan scan;
  return parse_request_head(s, h, scan, max);
}
parse_result resp(std::string_view s, head& h, std::string_view method = "POST") {
  head_scan scan;
  return parse_response_head(s, h, scan, 65536, method);
}

TEST(WireRequest, ParsesLineFieldsAndLength) {
  head h;
  std::string s = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type:application/json \r\n"
                  "Content-Length: 12\r\n\r\n{\"model\":1}x";
  auto r = req(s, h);
  ASSERT_EQ(r.status, parse::done) << r.what;
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/v1/chat/completions?x=1");
  EXPECT_EQ(h.minor, 1);
  EXPECT_EQ(h.size, s.size() - 12);
  ASSERT_EQ(h.fields.size(), 3u);
  EXPECT_EQ(h.get("content-type"), "application/json");
  EXPECT_EQ(h.get("HOST"), "a");
  EXPECT_EQ(h.get("absent"), "");
  EXPECT_EQ(h.body, body_kind::length);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
}

TEST(WireRequest, IncompleteHeadNeedsMoreAtEveryPrefix) {
  std::string s = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  head h;
  head_scan scan;
  for (size_t i = 0; i < s.size(); ++i)
    ASSERT_EQ(parse_request_head(std::string_view(s).substr(0, i), h, scan, 16384).status, parse::need_more) << i;
  auto r = parse_request_head(s, h, scan, 16384);
  ASSERT_EQ(r.status, parse::done);
  EXPECT_EQ(h.target, "/health");
  EXPECT_EQ(h.body, body_kind::none);
}

TEST(WireRequest, SkipsLeadingEmptyLines) {
  head h;
  ASSERT_EQ(req("\r\n\r\nGET / HTTP/1.1\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.size, 22u);
}

TEST(WireRequest, KeepAliveRules) {
  head h;
  ASSERT_EQ(req("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", h).status, parse::done);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(req("GET / HTTP/1.0\r\n\r\n", h).status, parse::done);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", h).status, parse::done);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(req("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", h).status, parse::done);
  EXPECT_TRUE(h.expect_continue);
}

TEST(WireRequest, Chunked) {
  head h;
  ASSERT_EQ(req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(h.body, body_kind::chunked);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", h).status, parse::unsupported);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", h).status, parse::unsupported);
  EXPECT_EQ(req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", h).status, parse::bad);
}

TEST(WireRequest, RejectsSmugglingShapes) {
  head h;
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nA: b\rc\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nA: b\nc: d\r\n\r\n", h).status, parse::bad);
  EXPECT_EQ(req("POST / HTTP/1.1\r\nNoColon\r\n\r\n", h).status, parse::bad);
}

TEST(WireRequest, RejectsMalformedRequestLines) {
  head h;
  for (const char* s : {"GET\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n",
                        "G(T / HTTP/1.1\r\n\r\n", "GET  HTTP/1.1\r\n\r\n", "GET /a\x01 HTTP/1.1\r\n\r\n"})
    EXPECT_EQ(req(s, h).status, parse::bad) << s;
}

TEST(WireRequest, HeadLimit) {
  head h;
  std::string s = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a');
  EXPECT_EQ(req(s, h, 64).status, parse::too_large);
  EXPECT_EQ(req(s, h, 4096).status, parse::need_more);
  s += "\r\n\r\n";
  EXPECT_EQ(req(s, h, 64).status, parse::too_large);
  EXPECT_EQ(req(s, h, 4096).status, parse::done);
}

TEST(WireResponse, Framing) {
  head h;
  ASSERT_EQ(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", h).status, parse::done);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.body, body_kind::length);
  EXPECT_EQ(h.content_length, 5u);
  ASSERT_EQ(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(h.body, body_kind::chunked);  // Transfer-Encoding wins in a response
  ASSERT_EQ(resp("HTTP/1.1 200 OK\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(h.body, body_kind::until_close);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(resp("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(h.body, body_kind::none);
  ASSERT_EQ(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", h, "HEAD").status, parse::done);
  EXPECT_EQ(h.body, body_kind::none);
  ASSERT_EQ(resp("HTTP/1.1 100 Continue\r\n\r\n", h).status, parse::done);
  EXPECT_EQ(h.status, 100);
  EXPECT_EQ(h.body, body_kind::none);
  ASSERT_EQ(resp("HTTP/1.0 200\r\nContent-Length: 0\r\n\r\n", h).status, parse::done);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.reason, "");
  for (const char* s : {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n",
                        "ICY 200 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n"})
    EXPECT_EQ(resp(s, h).status, parse::bad) << s;
}

std::string decode_all(std::string_view in, size_t feed, size_t cap, bool* ok = nullptr, size_t* used = nullptr) {
  chunked_decoder d;
  std::string out;
  std::string buf(cap, '\0');
  size_t pos = 0;
  bool good = true;
  while (pos < in.size() && !d.done()) {
    size_t n = std::min(feed, in.size() - pos);
    auto st = d.decode(in.data() + pos, n, buf.data(), cap);
    if (st.error) {
      good = false;
      break;
    }
    out.append(buf.data(), st.produced);
    pos += st.consumed;
    if (st.consumed == 0 && st.produced == 0) {
      good = false;
      break;
    }
  }
  if (ok) *ok = good && d.done();
  if (used) *used = pos;
  return out;
}

TEST(WireChunked, DecodesWithAnySplitAndCapacity) {
  std::string body = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (size_t feed : {1u, 2u, 3u, 7u, 1000u})
    for (size_t cap : {1u, 3u, 16u, 1000u}) {
      bool ok = false;
      size_t used = 0;
      EXPECT_EQ(decode_all(body, feed, cap, &ok, &used), "hello 0123456789") << feed << " " << cap;
      EXPECT_TRUE(ok);
      EXPECT_EQ(used, body.size() - 4) << "stops before the next message";
    }
}

TEST(WireChunked, RejectsMalformed) {
  for (const char* s : {"g\r\n", "\r\n", "5\r\nhelloX\r\n", "5\nhello\r\n", "5\r\nhello\r\n0\r\n\n",
                        "1000000000000000\r\n", "0\r\nbad\ntrailer\r\n\r\n"}) {
    bool ok = true;
    decode_all(s, 1000, 1000, &ok);
    EXPECT_FALSE(ok) << s;
  }
}

}  // namespace
}  // namespace fp::http::wire
