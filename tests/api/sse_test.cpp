#include <gtest/gtest.h>

#include "api/api.hpp"

using namespace fp::api;

namespace {

std::vector<sse_event> parse_split(std::string_view input, const std::vector<size_t>& cuts) {
  sse_parser p;
  std::vector<sse_event> out;
  size_t prev = 0;
  auto drain = [&] {
    sse_event e;
    while (p.next(e)) out.push_back(e);
  };
  for (size_t c : cuts) {
    p.feed(input.substr(prev, c - prev));
    drain();
    prev = c;
  }
  p.feed(input.substr(prev));
  drain();
  return out;
}

bool same(const std::vector<sse_event>& a, const std::vector<sse_event>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].event != b[i].event || a[i].data != b[i].data) return false;
  }
  return true;
}

constexpr std::string_view openai_stream =
    "data: {\"a\":1}\n\n"
    ": keep-alive comment\n\n"
    "data: {\"b\":2}\r\n\r\n"
    "data: line1\ndata: line2\n\n"
    "id: 5\nretry: 100\ndata:nospace\n\n"
    "data: [DONE]\n\n";

constexpr std::string_view anthropic_stream =
    "event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\rdata: {\"x\":\"\xc3\xa9\"}\r\r";

}  // namespace

TEST(sse_parser, whole_input) {
  auto ev = parse_split(openai_stream, {});
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0].data, "{\"a\":1}");
  EXPECT_EQ(ev[1].data, "{\"b\":2}");
  EXPECT_EQ(ev[2].data, "line1\nline2");
  EXPECT_EQ(ev[3].data, "nospace");
  EXPECT_TRUE(ev[4].done());
  auto an = parse_split(anthropic_stream, {});
  ASSERT_EQ(an.size(), 3u);
  EXPECT_EQ(an[0].event, "message_start");
  EXPECT_EQ(an[1].event, "ping");
  EXPECT_EQ(an[2].event, "content_block_delta");
  EXPECT_EQ(an[2].data, "{\"x\":\"\xc3\xa9\"}");
}

TEST(sse_parser, split_at_every_byte) {
  for (auto input : {openai_stream, anthropic_stream}) {
    auto whole = parse_split(input, {});
    for (size_t i = 0; i <= input.size(); ++i) {
      EXPECT_TRUE(same(parse_split(input, {i}), whole)) << "cut at " << i;
      for (size_t j = i; j <= input.size(); j += 7) {
        EXPECT_TRUE(same(parse_split(input, {i, j}), whole)) << "cuts " << i << "," << j;
      }
    }
    std::vector<size_t> every;
    for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
    EXPECT_TRUE(same(parse_split(input, every), whole));
  }
}

TEST(sse_parser, bom_and_incomplete_tail) {
  auto ev = parse_split("\xEF\xBB\xBF" "data: x\n\ndata: partial", {1, 2});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "x");
}

TEST(sse_parser, event_without_data_is_not_dispatched) {
  auto ev = parse_split("event: foo\n\ndata: y\n\n", {});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "");
  EXPECT_EQ(ev[0].data, "y");
}

TEST(sse_parser, size_limit) {
  sse_parser p(64);
  EXPECT_TRUE(p.feed("data: short\n\n"));
  sse_event e;
  EXPECT_TRUE(p.next(e));
  EXPECT_FALSE(p.feed(std::string(100, 'a')));
  EXPECT_TRUE(p.failed());
  EXPECT_FALSE(p.next(e));
}

TEST(sse_parser, long_stream_stays_small) {
  sse_parser p;
  sse_event e;
  size_t n = 0;
  for (int i = 0; i < 10000; ++i) {
    p.feed("data: {\"i\":1}\n\n");
    while (p.next(e)) ++n;
  }
  EXPECT_EQ(n, 10000u);
  EXPECT_EQ(p.pending_bytes(), 0u);
}

namespace {
// The events through next(storage, view), copied out as soon as they come.
std::vector<sse_event> parse_split_views(std::string_view input, const std::vector<size_t>& cuts, bool in_place) {
  sse_parser p;
  std::vector<sse_event> out;
  sse_event storage;
  sse_event_view v;
  size_t prev = 0;
  auto drain = [&] {
    while (p.next(storage, v)) out.push_back(sse_event{std::string(v.event), std::string(v.data)});
  };
  auto feed = [&](std::string_view bytes) {
    // In place: a copy that goes away once next() said false, so reading it after would be caught
    // (asan) or give wrong events.
    std::string piece(bytes);
    in_place ? p.feed_view(piece) : p.feed(piece);
    drain();
    piece.assign(piece.size(), '#');
  };
  for (size_t c : cuts) {
    feed(input.substr(prev, c - prev));
    prev = c;
  }
  feed(input.substr(prev));
  return out;
}
}  // namespace

TEST(sse_parser, views_match_copies_at_every_split) {
  std::string input = std::string(openai_stream) + std::string(anthropic_stream) + "\xEF\xBB\xBF" "data: bom-in-middle\n\n" +
                      "data: a\n\n\ndata: b\n\nevent: e\ndata: c\n\ndata:\n\n";
  auto whole = parse_split({input}, {});
  for (bool in_place : {false, true}) {
    SCOPED_TRACE(in_place);
    EXPECT_TRUE(same(parse_split_views(input, {}, in_place), whole));
    for (size_t i = 0; i <= input.size(); ++i) {
      SCOPED_TRACE(i);
      EXPECT_TRUE(same(parse_split_views(input, {i}, in_place), whole));
    }
    std::vector<size_t> every;
    for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
    EXPECT_TRUE(same(parse_split_views(input, every, in_place), whole));
    // With a BOM at the start of the stream.
    std::string bom = "\xEF\xBB\xBF" "data: x\n\n";
    EXPECT_TRUE(same(parse_split_views(bom, {1}, in_place), parse_split(bom, {})));
    ASSERT_EQ(parse_split_views(bom, {}, in_place).size(), 1u);
    EXPECT_EQ(parse_split_views(bom, {}, in_place)[0].data, "x");
  }
}

TEST(sse_parser, view_of_a_complete_event_is_not_copied) {
  sse_parser p;
  sse_event storage;
  sse_event_view v;
  std::string wire = "data: {\"a\":1}\n\ndata: [DONE]\n\n";
  p.feed(wire);
  ASSERT_TRUE(p.next(storage, v));
  EXPECT_EQ(v.data, "{\"a\":1}");
  EXPECT_TRUE(v.event.empty());
  EXPECT_TRUE(storage.data.empty());  // a view into the parser's buffer
  ASSERT_TRUE(p.next(storage, v));
  EXPECT_TRUE(v.done());
  EXPECT_FALSE(p.next(storage, v));
  EXPECT_EQ(p.pending_bytes(), 0u);
  // In place: the views point into the fed bytes; a partial event is copied when next() says false.
  std::string read = "data: x\n\ndata: part";
  p.feed_view(read);
  ASSERT_TRUE(p.next(storage, v));
  EXPECT_EQ(v.data.data(), read.data() + 6);
  EXPECT_FALSE(p.next(storage, v));
  EXPECT_EQ(p.pending_bytes(), 10u);
  read.assign(read.size(), '#');
  p.feed_view("ial\n\n");
  ASSERT_TRUE(p.next(storage, v));
  EXPECT_EQ(v.data, "partial");
  EXPECT_FALSE(p.next(storage, v));
  // The size limit applies to in-place bytes as to copied ones.
  sse_parser small(8);
  EXPECT_FALSE(small.feed_view("data: 0123456789\n\n"));
  EXPECT_TRUE(small.failed());
}
