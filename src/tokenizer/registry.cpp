// Known encodings, where their rank files live, the model-name -> encoding table.
#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <mutex>

#include "tokenizer/tokenizer.hpp"

#ifndef FASTPATH_DEFAULT_TIKTOKEN_DIR
#define FASTPATH_DEFAULT_TIKTOKEN_DIR "../shared/tokenizers"
#endif

namespace fp::tokenizer {
namespace {

constexpr std::array<std::string_view, 2> k_encoding_names = {"o200k_base", "cl100k_base"};

tiktoken_encoding::spec spec_for(std::string_view name) {
  if (name == "o200k_base") {
    return {"o200k_base", tiktoken_encoding::pattern::o200k,
            {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}};
  }
  return {"cl100k_base", tiktoken_encoding::pattern::cl100k,
          {{"<|endoftext|>", 100257},
           {"<|fim_prefix|>", 100258},
           {"<|fim_middle|>", 100259},
           {"<|fim_suffix|>", 100260},
           {"<|endofprompt|>", 100276}}};
}

// The one model table (tiktoken's MODEL_TO_ENCODING / MODEL_PREFIX_TO_ENCODING, trimmed to the
// chat and embedding models still served). Exact names first, then prefixes, first match wins.
struct model_rule {
  std::string_view name;
  bool prefix;
  std::string_view encoding;
};
constexpr model_rule k_models[] = {
    {"gpt-4o", false, "o200k_base"},        {"gpt-4o-", true, "o200k_base"},
    {"chatgpt-4o-", true, "o200k_base"},    {"gpt-4.1", true, "o200k_base"},
    {"gpt-4.5", true, "o200k_base"},        {"gpt-5", true, "o200k_base"},
    {"o1", false, "o200k_base"},            {"o1-", true, "o200k_base"},
    {"o3", false, "o200k_base"},            {"o3-", true, "o200k_base"},
    {"o4-mini", true, "o200k_base"},        {"o4", false, "o200k_base"},
    {"gpt-oss", true, "o200k_base"},
    {"gpt-4", false, "cl100k_base"},        {"gpt-4-", true, "cl100k_base"},
    {"gpt-3.5-turbo", true, "cl100k_base"}, {"gpt-35-turbo", true, "cl100k_base"},
    {"text-embedding-3-", true, "cl100k_base"}, {"text-embedding-ada-002", false, "cl100k_base"},
};

std::mutex g_mu;
std::string g_dir;  // guarded by g_mu
std::shared_ptr<const tiktoken_encoding> g_cache[k_encoding_names.size()];  // guarded by g_mu

}  // namespace

void set_tiktoken_dir(std::string dir) {
  std::lock_guard lk(g_mu);
  g_dir = std::move(dir);
}

std::string tiktoken_dir() {
  {
    std::lock_guard lk(g_mu);
    if (!g_dir.empty()) return g_dir;
  }
  if (const char* env = std::getenv("FASTPATH_TIKTOKEN_DIR"); env && *env) return env;
  return FASTPATH_DEFAULT_TIKTOKEN_DIR;
}

std::span<const std::string_view> encoding_names() noexcept { return k_encoding_names; }

result<std::shared_ptr<const tiktoken_encoding>> get_encoding(std::string_view name) {
  size_t idx = k_encoding_names.size();
  for (size_t i = 0; i < k_encoding_names.size(); ++i) {
    if (k_encoding_names[i] == name) idx = i;
  }
  if (idx == k_encoding_names.size()) {
    return make_error(errc::not_found, fmt::format("unknown encoding '{}'", name));
  }
  const std::string dir = tiktoken_dir();
  std::lock_guard lk(g_mu);  // loads are rare (once per encoding) and take ~20 ms
  if (g_cache[idx]) return g_cache[idx];
  auto enc = tiktoken_encoding::load(spec_for(name), fmt::format("{}/{}.tiktoken", dir, name));
  if (!enc) return enc.error();
  g_cache[idx] = *enc;
  return *enc;
}

std::optional<std::string_view> encoding_name_for_model(std::string_view model) noexcept {
  if (model.starts_with("ft:")) {  // ft:gpt-4o-mini-2024-07-18:org::id
    model.remove_prefix(3);
    model = model.substr(0, model.find(':'));
  }
  if (const size_t slash = model.rfind('/'); slash != std::string_view::npos) {
    model.remove_prefix(slash + 1);  // openai/gpt-4o, azure/gpt-4
  }
  for (const auto& r : k_models) {
    if (r.prefix ? model.starts_with(r.name) : model == r.name) return r.encoding;
  }
  return std::nullopt;
}

result<std::shared_ptr<const tiktoken_encoding>> encoding_for_model(std::string_view model) {
  const auto name = encoding_name_for_model(model);
  if (!name) return make_error(errc::not_found, fmt::format("no known encoding for model '{}'", model));
  return get_encoding(*name);
}

result<std::shared_ptr<const tokenizer>> tokenizer_for(std::string_view encoding_or_model) {
  for (const auto n : k_encoding_names) {
    if (n == encoding_or_model) {
      auto e = get_encoding(n);
      if (!e) return e.error();
      return std::shared_ptr<const tokenizer>(*e);
    }
  }
  auto e = encoding_for_model(encoding_or_model);
  if (!e) return e.error();
  return std::shared_ptr<const tokenizer>(*e);
}

}  // namespace fp::tokenizer
