// Chat templates: turning a list of messages into the prompt text a model was trained on.
// The family is detected from the GGUF `tokenizer.chat_template` (Jinja) text by its marker
// strings (as llama.cpp's llm_chat_detect_template does) and can be overridden by name.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fp::engine {

enum class chat_family { plain, chatml, llama2, llama3, mistral, zephyr, phi3 };
std::string_view chat_family_name(chat_family f) noexcept;
std::optional<chat_family> parse_chat_family(std::string_view name) noexcept;

// The family a Jinja template text belongs to; `plain` when empty or unrecognised.
chat_family detect_chat_family(std::string_view jinja) noexcept;

struct chat_message {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

// The prompt text, ending with the assistant prefix when add_generation_prompt. BOS is not
// included at the start (the tokenizer adds it); where a family repeats BOS inside the
// conversation (llama-2) the literal `bos` text is used and must be tokenized with special-token
// parsing. `plain`: the message contents joined by blank lines (for base models without a
// template, e.g. stories260K).
std::string apply_chat_template(chat_family f, const std::vector<chat_message>& messages,
                                bool add_generation_prompt = true, std::string_view bos = "<s>",
                                std::string_view eos = "</s>");

// Strings that end an assistant turn in this family (beyond the EOS token), for stop checking.
std::vector<std::string> chat_stop_strings(chat_family f);

}  // namespace fp::engine
