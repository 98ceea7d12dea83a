// Unit tests of the engine pieces E1 owns: KV cache blocks, batched decode semantics (several
// sequences, overwriting drafts, forks), sampling, stop strings, chat templates, generation.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "engine/engine.hpp"
#include "engine/generate.hpp"

namespace fp::engine {
namespace {

std::string shared(const std::string& rel) { return std::string(FASTPATH_SHARED_DIR) + "/" + rel; }

std::shared_ptr<const model> stories() {
  static std::shared_ptr<const model> m = [] {
    std::shared_ptr<const model> r;
    auto p = shared("models/stories260K.gguf");
    if (!std::filesystem::exists(p)) return r;
    auto l = model::load(p);
    if (l) r = *l;
    return r;
  }();
  return m;
}

#define NEED_MODEL()                                                   \
  auto m = stories();                                                  \
  if (!m) GTEST_SKIP() << "missing " << shared("models/stories260K.gguf")

// ---- KV cache -----------------------------------------------------------------------------------

TEST(kv_cache, blocks_truncate_fork_cow) {
  kv_cache kv(2, 4, 4, 8);
  EXPECT_EQ(kv.blocks_free(), 8);
  ASSERT_TRUE(kv.reserve(1, 0, 10));  // 3 blocks
  kv.set_len(1, 10);
  EXPECT_EQ(kv.blocks_free(), 5);
  for (int p = 0; p < 10; ++p)
    for (int l = 0; l < 2; ++l) {
      kv.k(l, 1, p)[0] = static_cast<uint16_t>(100 * l + p);
      kv.v(l, 1, p)[3] = static_cast<uint16_t>(1000 + p);
    }
  // Fork shares blocks: no new allocation.
  ASSERT_TRUE(kv.seq_fork(1, 2));
  EXPECT_EQ(kv.blocks_free(), 5);
  EXPECT_EQ(kv.seq_len(2), 10);
  EXPECT_EQ(kv.k(1, 2, 7)[0], 107);
  // Writing position 9 of the fork copies only its last block.
  ASSERT_TRUE(kv.reserve(2, 9, 11));
  EXPECT_EQ(kv.blocks_free(), 4);
  kv.k(0, 2, 9)[0] = 7777;
  EXPECT_EQ(kv.k(0, 1, 9)[0], 9);      // the parent is untouched
  EXPECT_EQ(kv.k(0, 2, 8)[0], 8);      // copied content
  EXPECT_EQ(kv.blocks(1)[0], kv.blocks(2)[0]);  // prefix still shared
  EXPECT_NE(kv.blocks(1)[2], kv.blocks(2)[2]);
  kv.set_len(2, 11);
  // Truncate frees whole blocks beyond the new length.
  kv.seq_truncate(1, 4);
  EXPECT_EQ(kv.seq_len(1), 4);
  EXPECT_EQ(kv.blocks(1).size(), 1u);
  kv.seq_remove(2);
  kv.seq_remove(1);
  EXPECT_EQ(kv.blocks_free(), 8);
  // Full cache: an error, and nothing changes.
  ASSERT_TRUE(kv.reserve(3, 0, 32));
  auto r = kv.reserve(4, 0, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::too_large);
  EXPECT_FALSE(kv.seq_exists(4));
  EXPECT_FALSE(kv.seq_fork(99, 5));
}

// ---- decode semantics ---------------------------------------------------------------------------

std::vector<float> logits_copy(const context& c, size_t i) {
  auto l = c.logits(i);
  return {l.begin(), l.end()};
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

TEST(decode, two_sequences_in_one_batch_match_separate_runs) {
  NEED_MODEL();
  std::vector<int32_t> a = {1, 403, 407, 261, 378}, b = {1, 385, 410, 261};
  auto ctx = context::create(m, {1, 256, 4});
  ASSERT_TRUE(ctx);
  auto& c = **ctx;
  auto run_one = [&](const std::vector<int32_t>& t) {
    std::vector<batch_entry> bt;
    for (size_t i = 0; i < t.size(); ++i) bt.push_back({0, int32_t(i), t[i], i + 1 == t.size()});
    EXPECT_TRUE(c.decode(bt));
    auto l = logits_copy(c, t.size() - 1);
    c.kv().seq_remove(0);
    return l;
  };
  auto la = run_one(a), lb = run_one(b);
  // Interleaved entries of two sequences in one batch.
  std::vector<batch_entry> bt;
  for (size_t i = 0; i < 5; ++i) {
    bt.push_back({7, int32_t(i), a[i], i == 4});
    if (i < 4) bt.push_back({9, int32_t(i), b[i], i == 3});
  }
  ASSERT_TRUE(c.decode(bt));
  EXPECT_LT(max_diff(logits_copy(c, 8), la), 1e-4f);
  EXPECT_LT(max_diff(logits_copy(c, 7), lb), 1e-4f);
  EXPECT_TRUE(c.logits(0).empty());  // no logits asked for entry 0
  EXPECT_EQ(c.kv().seq_len(7), 5);
  EXPECT_EQ(c.kv().seq_len(9), 4);
}

TEST(decode, draft_positions_can_be_overwritten) {
  NEED_MODEL();
  auto ctx = context::create(m, {1, 256, 4});
  ASSERT_TRUE(ctx);
  auto& c = **ctx;
  std::vector<batch_entry> p = {{0, 0, 1, false}, {0, 1, 403, false}, {0, 2, 407, true}};
  ASSERT_TRUE(c.decode(p));
  auto want = logits_copy(c, 2);
  // Verify three "draft" tokens, reject them all, then redo position 2 with the real token.
  std::vector<batch_entry> d = {{0, 3, 300, true}, {0, 4, 301, true}, {0, 5, 302, true}};
  ASSERT_TRUE(c.decode(d));
  EXPECT_EQ(c.kv().seq_len(0), 6);
  c.kv().seq_truncate(0, 2);
  batch_entry again{0, 2, 407, true};
  ASSERT_TRUE(c.decode({&again, 1}));
  EXPECT_LT(max_diff(logits_copy(c, 0), want), 1e-5f);
  EXPECT_EQ(c.kv().seq_len(0), 3);
  // Overwriting without truncating first drops the later positions too.
  ASSERT_TRUE(c.decode(d));
  batch_entry over{0, 1, 403, true};
  ASSERT_TRUE(c.decode({&over, 1}));
  EXPECT_EQ(c.kv().seq_len(0), 2);
}

TEST(decode, fork_shares_the_prompt) {
  NEED_MODEL();
  auto ctx = context::create(m, {1, 256, 4});
  ASSERT_TRUE(ctx);
  auto& c = **ctx;
  std::vector<batch_entry> p = {{0, 0, 1, false}, {0, 1, 403, false}, {0, 2, 407, false}, {0, 3, 261, false},
                                {0, 4, 378, false}, {0, 5, 432, true}};
  ASSERT_TRUE(c.decode(p));
  int free_before = c.kv().blocks_free();
  ASSERT_TRUE(c.kv().seq_fork(0, 1));
  batch_entry e0{0, 6, 383, true}, e1{1, 6, 383, true};
  ASSERT_TRUE(c.decode({&e0, 1}));
  auto l0 = logits_copy(c, 0);
  ASSERT_TRUE(c.decode({&e1, 1}));
  EXPECT_LT(max_diff(logits_copy(c, 0), l0), 1e-6f);
  // Only the partially filled last block was copied.
  EXPECT_EQ(c.kv().blocks_free(), free_before - 1);
}

TEST(decode, rejects_bad_batches_without_side_effects) {
  NEED_MODEL();
  auto ctx = context::create(m, {1, 16, 4});
  ASSERT_TRUE(ctx);
  auto& c = **ctx;
  EXPECT_FALSE(c.decode({}));
  batch_entry bad_tok{0, 0, 512, true};
  EXPECT_EQ(c.decode({&bad_tok, 1}).error().code, errc::invalid_request);
  batch_entry gap{0, 3, 1, true};
  EXPECT_EQ(c.decode({&gap, 1}).error().code, errc::invalid_request);
  std::vector<batch_entry> nonconsec = {{0, 0, 1, false}, {0, 2, 1, true}};
  EXPECT_EQ(c.decode(nonconsec).error().code, errc::invalid_request);
  std::vector<batch_entry> too_long;
  for (int i = 0; i < 17; ++i) too_long.push_back({0, i, 1, false});
  EXPECT_EQ(c.decode(too_long).error().code, errc::too_large);
  EXPECT_FALSE(c.kv().seq_exists(0));
  EXPECT_EQ(c.kv().blocks_free(), c.kv().blocks_total());
}

TEST(model, rejects_non_models) {
  gguf::writer w;
  w.add_string("general.architecture", "gpt2");
  auto img = w.finish();
  auto f = gguf::file::from_buffer(img);
  ASSERT_TRUE(f);
  auto r = model::load(*f);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::unsupported);
  gguf::writer w2;
  w2.add_string("general.architecture", "llama");
  w2.add_u32("llama.embedding_length", 64);
  auto f2 = gguf::file::from_buffer(w2.finish());
  ASSERT_TRUE(f2);
  auto r2 = model::load(*f2);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, errc::corrupt_data);
  EXPECT_NE(r2.error().message.find("block_count"), std::string::npos) << r2.error().message;
}

// ---- sampling -----------------------------------------------------------------------------------

TEST(sampling, greedy_and_logprobs) {
  std::vector<float> l = {0.f, 2.f, 1.f, 2.f};
  sampler s;
  auto r = s.sample(l, {});
  EXPECT_EQ(r.id, 1);  // first of a tie
  float lse = std::log(1 + 2 * std::exp(2.f) + std::exp(1.f));
  EXPECT_NEAR(r.logprob, 2 - lse, 1e-6);
  auto top = top_logprobs(l, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 3);
  EXPECT_EQ(top[2].id, 2);
}

TEST(sampling, penalties) {
  std::vector<float> l = {3.f, 2.9f, 0.f};
  std::vector<int32_t> hist = {0, 0};
  sampling_params p;
  p.repetition_penalty = 1.5f;  // 3 / 1.5 = 2 < 2.9
  EXPECT_EQ(sampler(p).sample(l, hist).id, 1);
  p = {};
  p.frequency_penalty = 0.06f;  // 3 - 0.12 < 2.9
  EXPECT_EQ(sampler(p).sample(l, hist).id, 1);
  p = {};
  p.presence_penalty = 0.05f;  // 2.95 > 2.9
  EXPECT_EQ(sampler(p).sample(l, hist).id, 0);
  p.penalty_last_n = 0;
  p.presence_penalty = 1.f;
  EXPECT_EQ(sampler(p).sample(l, hist).id, 0);
}

TEST(sampling, seeded_draws_follow_the_distribution_and_filters) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  sampling_params p;
  p.temperature = 1.0f;
  p.seed = 123;
  sampler s(p);
  std::map<int, int> n;
  for (int i = 0; i < 20000; ++i) ++n[s.sample(l, {}).id];
  EXPECT_NEAR(n[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(n[3] / 20000.0, 0.05, 0.01);
  // Same seed, same sequence.
  sampler a(p), b(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(l, {}).id, b.sample(l, {}).id);
  // top-k 2: only ids 0 and 1.
  p.top_k = 2;
  sampler k(p);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(k.sample(l, {}).id, 2);
  // top-p 0.7: 0.5 + 0.3 reaches it -> ids 0, 1.
  p.top_k = 0;
  p.top_p = 0.7f;
  sampler tp(p);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(tp.sample(l, {}).id, 2);
  // min-p 0.5: keeps p >= 0.25 -> ids 0, 1.
  p.top_p = 1.0f;
  p.min_p = 0.5f;
  sampler mp(p);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(mp.sample(l, {}).id, 2);
  // Very low temperature behaves as greedy.
  p = {};
  p.temperature = 1e-4f;
  sampler lt(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(lt.sample(l, {}).id, 0);
}

// ---- stop strings -------------------------------------------------------------------------------

TEST(stop_matcher, holds_back_partial_matches) {
  stop_matcher s({"\nUser:", "###"});
  std::string out;
  out += s.feed("Hello");
  out += s.feed(" wor");
  out += s.feed("ld\nUs");
  EXPECT_EQ(out, "Hello world");  // "\nUs" held back
  out += s.feed("er");
  EXPECT_FALSE(s.stopped());
  out += s.feed(": hi");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(out, "Hello world");
  EXPECT_EQ(s.feed("more"), "");

  stop_matcher t({"###"});
  EXPECT_EQ(t.feed("a#"), "a");
  EXPECT_EQ(t.feed("b"), "#b");  // not a stop after all
  EXPECT_EQ(t.feed("##"), "");
  EXPECT_EQ(t.flush(), "##");

  stop_matcher u;
  EXPECT_EQ(u.feed("\xE2\x96"), "");  // incomplete UTF-8 is held
  EXPECT_EQ(u.feed("\x81x"), "\xE2\x96\x81x");
}

// ---- chat templates -----------------------------------------------------------------------------

TEST(chat_template, detection_and_rendering) {
  EXPECT_EQ(detect_chat_family(""), chat_family::plain);
  EXPECT_EQ(detect_chat_family("{% for m in messages %}<|im_start|>{{m.role}}"), chat_family::chatml);
  EXPECT_EQ(detect_chat_family("<|start_header_id|>' + message['role'] + '<|end_header_id|>"), chat_family::llama3);
  EXPECT_EQ(detect_chat_family("[INST] <<SYS>>\\n"), chat_family::llama2);
  EXPECT_EQ(detect_chat_family("{{ '[INST] ' + message['content'] + ' [/INST]' }}"), chat_family::mistral);
  EXPECT_EQ(detect_chat_family("<|user|>\\n{{ content }}</s>"), chat_family::zephyr);
  EXPECT_EQ(detect_chat_family("<|user|>' + '\\n' + message['content'] + '<|end|>"), chat_family::phi3);
  EXPECT_EQ(parse_chat_family("llama-3"), chat_family::llama3);
  EXPECT_FALSE(parse_chat_family("nope"));

  std::vector<chat_message> msgs = {{"system", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(apply_chat_template(chat_family::chatml, msgs),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(chat_family::llama3, msgs),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply_chat_template(chat_family::llama2, msgs), "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
  EXPECT_EQ(apply_chat_template(chat_family::mistral, msgs), "[INST] Be brief.\n\nHi [/INST]");
  EXPECT_EQ(apply_chat_template(chat_family::zephyr, msgs),
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  EXPECT_EQ(apply_chat_template(chat_family::phi3, msgs),
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
  EXPECT_EQ(apply_chat_template(chat_family::plain, msgs), "Be brief.\n\nHi");
  std::vector<chat_message> multi = {{"user", "A"}, {"assistant", "B"}, {"user", "C"}};
  EXPECT_EQ(apply_chat_template(chat_family::llama2, multi), "[INST] A [/INST] B </s><s>[INST] C [/INST]");
  EXPECT_EQ(apply_chat_template(chat_family::mistral, multi), "[INST] A [/INST]B</s>[INST] C [/INST]");
}

// ---- generation ---------------------------------------------------------------------------------

TEST(generate, greedy_text_and_stop_strings) {
  NEED_MODEL();
  auto vocab = tokenizer::gguf_vocab::from_gguf(m->file());
  ASSERT_TRUE(vocab) << vocab.error().message;
  auto ctx = context::create(m, {1, 512, 16});
  ASSERT_TRUE(ctx);
  generate_request req;
  (*vocab)->encode("Once upon a time", true, true, req.prompt);
  req.n_predict = 64;
  std::string streamed;
  int calls = 0;
  auto r = generate(**ctx, **vocab, 3, req, [&](const generated_token& t) {
    streamed += t.text;
    ++calls;
    return true;
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->ids.size(), 64u);
  EXPECT_EQ(r->reason, stop_reason::length);
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->text.substr(0, 35), ", there was a little girl named Lil");
  EXPECT_FALSE((*ctx)->kv().seq_exists(3));  // blocks returned

  req.stop = {"Lily"};
  auto s = generate(**ctx, **vocab, 3, req);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->reason, stop_reason::stop_string);
  EXPECT_EQ(s->text, ", there was a little girl named ");

  req.stop.clear();
  int n = 0;
  auto c = generate(**ctx, **vocab, 3, req, [&](const generated_token&) { return ++n < 5; });
  ASSERT_TRUE(c);
  EXPECT_EQ(c->reason, stop_reason::cancelled);
  EXPECT_EQ(c->ids.size(), 5u);
  EXPECT_EQ((*ctx)->kv().blocks_free(), (*ctx)->kv().blocks_total());
}

}  // namespace
}  // namespace fp::engine
