#include "engine/chat_template.hpp"

namespace fp::engine {

namespace {
bool has(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }
}  // namespace

std::string_view chat_family_name(chat_family f) noexcept {
  switch (f) {
    case chat_family::plain: return "plain";
    case chat_family::chatml: return "chatml";
    case chat_family::llama2: return "llama2";
    case chat_family::llama3: return "llama3";
    case chat_family::mistral: return "mistral";
    case chat_family::zephyr: return "zephyr";
    case chat_family::phi3: return "phi3";
  }
  return "plain";
}

std::optional<chat_family> parse_chat_family(std::string_view n) noexcept {
  if (n == "plain" || n == "none") return chat_family::plain;
  if (n == "chatml") return chat_family::chatml;
  if (n == "llama2" || n == "llama-2") return chat_family::llama2;
  if (n == "llama3" || n == "llama-3") return chat_family::llama3;
  if (n == "mistral") return chat_family::mistral;
  if (n == "zephyr") return chat_family::zephyr;
  if (n == "phi3" || n == "phi-3") return chat_family::phi3;
  return std::nullopt;
}

chat_family detect_chat_family(std::string_view t) noexcept {
  if (t.empty()) return chat_family::plain;
  if (has(t, "<|im_start|>")) return chat_family::chatml;
  if (has(t, "<|start_header_id|>")) return chat_family::llama3;
  if (has(t, "<|user|>") && has(t, "<|end|>")) return chat_family::phi3;
  if (has(t, "<|user|>")) return chat_family::zephyr;
  if (has(t, "[INST]")) {
    // Llama 2 puts the system prompt in a <<SYS>> block; Mistral's templates have none.
    if (has(t, "<<SYS>>")) return chat_family::llama2;
    return chat_family::mistral;
  }
  return chat_family::plain;
}

std::string apply_chat_template(chat_family f, const std::vector<chat_message>& msgs,
                                bool add_generation_prompt, std::string_view bos,
                                std::string_view eos) {
  std::string out;
  switch (f) {
    case chat_family::plain: {
      for (const auto& m : msgs) {
        if (!out.empty()) out += "\n\n";
        out += m.content;
      }
      return out;
    }
    case chat_family::chatml: {
      for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }
    case chat_family::llama3: {
      for (const auto& m : msgs)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }
    case chat_family::llama2: {
      // [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
      std::string system;
      bool first = true;
      for (const auto& m : msgs) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          if (!first) out += bos;
          out += "[INST] ";
          if (!system.empty()) {
            out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
            system.clear();
          }
          out += m.content + " [/INST]";
          first = false;
        } else {
          out += " " + m.content + " ";
          out += eos;
        }
      }
      return out;
    }
    case chat_family::mistral: {
      // [INST] {system}\n\n{user} [/INST]{assistant}</s>[INST] ...
      std::string system;
      for (const auto& m : msgs) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          out += "[INST] ";
          if (!system.empty()) {
            out += system + "\n\n";
            system.clear();
          }
          out += m.content + " [/INST]";
        } else {
          out += m.content;
          out += eos;
        }
      }
      return out;
    }
    case chat_family::zephyr: {
      for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + std::string(eos) + "\n";
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
    }
    case chat_family::phi3: {
      for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
    }
  }
  return out;
}

std::vector<std::string> chat_stop_strings(chat_family f) {
  switch (f) {
    case chat_family::chatml: return {"<|im_end|>"};
    case chat_family::llama3: return {"<|eot_id|>"};
    case chat_family::phi3: return {"<|end|>"};
    case chat_family::zephyr: return {"</s>"};
    default: return {};
  }
}

}  // namespace fp::engine
