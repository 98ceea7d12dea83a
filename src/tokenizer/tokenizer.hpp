// Public header of src/tokenizer (fp_tokenizer): exact token counting and tokenisation.
//
//  * tiktoken_encoding: OpenAI's byte-level BPE (o200k_base, cl100k_base) from standard
//    `.tiktoken` rank files, with a hand-written pre-tokenizer for the known split patterns.
//  * gguf_vocab: the tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata
//    (SentencePiece `llama`, byte-level BPE `gpt2` with llama.cpp's pre-tokenizer variants,
//    WordPiece `bert`), for the local engine.
//  * count_chat_request: prompt tokens of an OpenAI chat request body, as OpenAI bills them.
//
// Every tokenizer object is immutable after load and safe to share across threads. Encoding
// never throws and never fails: invalid UTF-8 input is read as if each maximal invalid
// subsequence were U+FFFD (what the official tiktoken does with unencodable text).
#pragma once

#include <boost/json/fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.hpp"

namespace fp::gguf {
class file;
}

namespace fp::tokenizer {

using token_id = int32_t;

// Which special-token strings `encode` turns into their special id; all others are plain text.
struct allowed_special {
  bool all = false;
  std::vector<std::string> names;  // used when !all
  static allowed_special none() { return {}; }
  static allowed_special everything() { return {true, {}}; }
};

// Common interface of every tokenizer (what the CLI and the /v1/tokenize endpoint use).
class tokenizer {
 public:
  virtual ~tokenizer() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual size_t n_vocab() const noexcept = 0;
  // Appends the ids of `text` to `out`. add_bos: prepend BOS where the vocabulary has one (GGUF;
  // ignored by tiktoken). parse_special: special/control token strings become their ids
  // (tiktoken: all special tokens allowed).
  virtual void encode(std::string_view text, bool add_bos, bool parse_special,
                      std::vector<token_id>& out) const = 0;
  // The bytes of the ids, concatenated (may be invalid UTF-8 if the ids split a character).
  // invalid_request names the first id outside the vocabulary.
  virtual result<std::string> decode(std::span<const token_id> ids) const = 0;

  std::vector<token_id> encode(std::string_view text, bool add_bos = false,
                               bool parse_special = false) const {
    std::vector<token_id> out;
    encode(text, add_bos, parse_special, out);
    return out;
  }
};

// ---- tiktoken ------------------------------------------------------------------------------------

class tiktoken_encoding final : public tokenizer {
 public:
  // The split pattern family (the two official patterns; `qwen2` is cl100k's with single digits,
  // used by GGUF vocabularies).
  enum class pattern { o200k, cl100k, qwen2 };

  struct spec {
    std::string name;                                      // "o200k_base"
    pattern pat = pattern::o200k;
    std::vector<std::pair<std::string, token_id>> specials;  // "<|endoftext|>" -> id
  };
  // Builds an encoding from the text of a `.tiktoken` rank file (base64 token, space, rank).
  // corrupt_data on a malformed line.
  static result<std::shared_ptr<const tiktoken_encoding>> from_rank_text(spec s,
                                                                        std::string_view ranks);
  // Reads `path` and calls from_rank_text. io_error if unreadable.
  static result<std::shared_ptr<const tiktoken_encoding>> load(spec s, const std::string& path);

  ~tiktoken_encoding() override;
  std::string_view name() const noexcept override;
  size_t n_vocab() const noexcept override;  // max id + 1, specials included
  void encode(std::string_view text, bool add_bos, bool parse_special,
              std::vector<token_id>& out) const override;
  result<std::string> decode(std::span<const token_id> ids) const override;
  using tokenizer::encode;

  // Special-token strings are plain text.
  void encode_ordinary(std::string_view text, std::vector<token_id>& out) const;
  std::vector<token_id> encode_ordinary(std::string_view text) const;
  // Allowed special-token strings become their ids; others are plain text (tiktoken's
  // encode(text, allowed_special=..., disallowed_special=())).
  void encode(std::string_view text, const allowed_special& allowed,
              std::vector<token_id>& out) const;
  // encode_ordinary(text).size(), without storing the ids.
  size_t count(std::string_view text) const;
  // The first special-token string found in `text` (the check behind tiktoken's default
  // disallowed_special="all"), or nullopt.
  std::optional<std::string_view> find_special(std::string_view text) const;

  // The bytes of one token (specials included); nullopt for an id without a token.
  std::optional<std::string_view> token_bytes(token_id id) const noexcept;
  std::optional<token_id> special_id(std::string_view special) const noexcept;
  const std::vector<std::pair<std::string, token_id>>& specials() const noexcept;

  struct impl;

 private:
  explicit tiktoken_encoding(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// Directory holding `<encoding>.tiktoken` files. Default: $FASTPATH_TIKTOKEN_DIR, else the
// directory compiled in (../shared/tokenizers next to the source tree). Set once at start-up.
void set_tiktoken_dir(std::string dir);
std::string tiktoken_dir();

// The encoding `name` ("o200k_base", "cl100k_base"), loaded from tiktoken_dir() on first use and
// cached for the process lifetime (thread-safe). not_found for an unknown name.
result<std::shared_ptr<const tiktoken_encoding>> get_encoding(std::string_view name);
// Known encoding names.
std::span<const std::string_view> encoding_names() noexcept;

// The one model-name -> encoding table: "gpt-4o-mini-2024-07-18" -> "o200k_base". Accepts
// "openai/gpt-4o"-style provider prefixes and fine-tune names ("ft:gpt-4o:org::id").
// nullopt if the model is not an OpenAI model this table knows.
std::optional<std::string_view> encoding_name_for_model(std::string_view model) noexcept;
result<std::shared_ptr<const tiktoken_encoding>> encoding_for_model(std::string_view model);

// ---- chat requests -------------------------------------------------------------------------------

struct chat_token_count {
  int64_t prompt_tokens = 0;
  // false when part of the count is an estimate: tool definitions, images, audio/file parts,
  // response_format schemas, or a model that is not in the table (counted with o200k_base).
  bool exact = true;
  std::string encoding;  // the encoding used
};

// Prompt tokens of an OpenAI chat/completions request body (`model`, `messages`, `tools` /
// `functions`), counted the way OpenAI bills them: 3 tokens per message, +1 per `name`, +3 to
// prime the reply (see docs/design/tokenizer.md). invalid_request if `messages` is missing or
// malformed; errors of get_encoding are passed on.
result<chat_token_count> count_chat_request(const boost::json::object& body);
// Same, with the encoding given.
chat_token_count count_chat_request(const boost::json::object& body,
                                    const tiktoken_encoding& enc);

// ---- GGUF vocabularies ---------------------------------------------------------------------------

class gguf_vocab final : public tokenizer {
 public:
  enum class kind { spm, bpe, wpm };
  // Reads the `tokenizer.ggml.*` metadata. unsupported for a tokenizer model or pre-tokenizer
  // this library does not implement; corrupt_data for inconsistent metadata.
  static result<std::shared_ptr<const gguf_vocab>> from_gguf(const gguf::file& f);
  static result<std::shared_ptr<const gguf_vocab>> load(const std::string& path);

  ~gguf_vocab() override;
  std::string_view name() const noexcept override;  // "llama", "gpt2/llama-bpe", ...
  size_t n_vocab() const noexcept override;
  // As llama.cpp's llama_tokenize(text, add_special = add_bos, parse_special): add_bos prepends
  // BOS (and appends EOS) only where the metadata asks for them (add_bos_token/add_eos_token).
  void encode(std::string_view text, bool add_bos, bool parse_special,
              std::vector<token_id>& out) const override;
  // Control and user-defined tokens come out as their text; the space SentencePiece puts in
  // front of the text (and after each special token) is removed again.
  result<std::string> decode(std::span<const token_id> ids) const override;
  using tokenizer::encode;

  // The text one token stands for (SentencePiece "▁" -> " ", <0xAB> -> the byte, byte-level BPE
  // mapped back to bytes). Control tokens give "" unless `special`. "" for an invalid id.
  std::string token_to_piece(token_id id, bool special = false) const;
  // The vocabulary string as stored ("▁the", "Ġthe", "<s>").
  std::string_view token_text(token_id id) const noexcept;
  std::optional<token_id> find_token(std::string_view text) const noexcept;

  kind type() const noexcept;
  token_id bos() const noexcept;  // -1 if none
  token_id eos() const noexcept;  // -1 if none
  token_id eot() const noexcept;  // -1 if none
  token_id unk() const noexcept;  // -1 if none
  bool add_bos() const noexcept;  // tokenizer.ggml.add_bos_token (or the model's default)
  bool add_eos() const noexcept;
  bool is_control(token_id id) const noexcept;
  bool is_eog(token_id id) const noexcept;  // end of generation: eos, eot, <|im_end|>, ...

  struct impl;

 private:
  explicit gguf_vocab(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// ---- one entry point for the CLI and the server --------------------------------------------------

// "o200k_base" / "cl100k_base" -> that encoding; anything else -> encoding_for_model(name).
result<std::shared_ptr<const tokenizer>> tokenizer_for(std::string_view encoding_or_model);

}  // namespace fp::tokenizer
