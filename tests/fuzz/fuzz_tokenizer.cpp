// libFuzzer target: arbitrary bytes into every tokenizer (tiktoken o200k/cl100k, GGUF SentencePiece,
// byte-level BPE with the fast and the regex pre-tokenizers, WordPiece). Checks: no crash or
// sanitizer report; decode(encode(x)) == x for valid UTF-8 (tiktoken, SPM, BPE); for invalid UTF-8
// tiktoken's output decodes to valid UTF-8 that re-encodes to the same ids.
// The first input byte picks the tokenizer and the flags; the rest is the text.
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

using namespace fp::tokenizer;

namespace {

std::vector<std::shared_ptr<const tiktoken_encoding>> g_tik;
std::vector<std::shared_ptr<const gguf_vocab>> g_gguf;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_tokenizer: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string shared = FASTPATH_SHARED_DIR;
  set_tiktoken_dir(shared + "/tokenizers");
  for (const char* name : {"o200k_base", "cl100k_base"}) {
    auto e = get_encoding(name);
    if (!e) {
      std::fprintf(stderr, "fuzz_tokenizer: %s\n", e.error().message.c_str());
      std::exit(1);
    }
    g_tik.push_back(*e);
  }
  for (const std::string& path :
       {shared + "/models/stories260K.gguf", shared + "/tokenizers/llama-vocab/ggml-vocab-llama-spm.gguf",
        shared + "/tokenizers/llama-vocab/ggml-vocab-qwen2.gguf",
        shared + "/tokenizers/llama-vocab/ggml-vocab-gpt-2.gguf",
        shared + "/tokenizers/llama-vocab/ggml-vocab-deepseek-llm.gguf",
        shared + "/tokenizers/llama-vocab/ggml-vocab-bert-bge.gguf"}) {
    auto v = gguf_vocab::load(path);
    if (!v) {
      std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path.c_str(), v.error().message.c_str());
      std::exit(1);
    }
    g_gguf.push_back(*v);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t sel = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool valid = simdjson::validate_utf8(text.data(), text.size());
  const size_t which = (sel & 0x0F) % (g_tik.size() + g_gguf.size());
  const bool special = sel & 0x10;
  const bool add_bos = sel & 0x20;
  if (which < g_tik.size()) {
    const auto& e = *g_tik[which];
    std::vector<token_id> ids;
    e.encode(text, false, special, ids);
    auto back = e.decode(ids);
    check(back.has_value(), "tiktoken ids decode");
    if (valid) {
      check(*back == text, "tiktoken round trip");
    } else {
      check(simdjson::validate_utf8(back->data(), back->size()), "tiktoken replacement is valid UTF-8");
      std::vector<token_id> again;
      e.encode(*back, false, special, again);
      check(again == ids, "tiktoken re-encode of the replaced text");
    }
    if (!special) check(e.count(text) == ids.size(), "tiktoken count");
    return 0;
  }
  const auto& v = *g_gguf[which - g_tik.size()];
  std::vector<token_id> ids;
  v.encode(text, add_bos, special, ids);
  for (const auto id : ids) check(id >= 0 && static_cast<size_t>(id) < v.n_vocab(), "gguf id in range");
  auto back = v.decode(ids);
  check(back.has_value(), "gguf ids decode");
  (void)v.token_to_piece(ids.empty() ? 0 : ids[0], true);
  // Round trip without BOS and special parsing. SentencePiece maps the literal text "<0xAB>" to a
  // byte token (as llama.cpp does), so such inputs are skipped.
  const bool spm_byte_literal = v.type() == gguf_vocab::kind::spm && text.find("<0x") != std::string_view::npos;
  if (!add_bos && !special && valid && v.type() != gguf_vocab::kind::wpm && !spm_byte_literal) {
    check(*back == text, "gguf round trip");
  }
  return 0;
}
