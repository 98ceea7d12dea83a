// `fastpath tokenize`: token ids and counts from a tiktoken encoding, an OpenAI model name or a
// GGUF file's vocabulary.
//
//   fastpath tokenize --encoding o200k_base --text "Hello"     one JSON object: ids, count, round trip
//   echo Hello | fastpath tokenize --model gpt-4o              the text from standard input
//   fastpath tokenize --gguf model.gguf --jsonl < cases.jsonl  one object per line: {text, add_bos?,
//       allowed_special? ("all" or a list), parse_special?} is written back with "ids" added
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "tokenizer/tokenizer.hpp"

namespace fp::cli {

namespace {

struct tokenize_opts {
  std::string encoding, model, gguf, text, dir;
  bool text_set = false;
  bool jsonl = false;
  bool add_bos = false;
  bool parse_special = false;
};

boost::json::array ids_json(const std::vector<fp::tokenizer::token_id>& ids) {
  boost::json::array a;
  a.reserve(ids.size());
  for (const auto id : ids) a.emplace_back(id);
  return a;
}

// Encodes with the per-line options of --jsonl (tiktoken: allowed_special; GGUF: parse_special).
void encode_line(const fp::tokenizer::tokenizer& tok, const boost::json::object& o, bool def_bos,
                 bool def_special, std::vector<fp::tokenizer::token_id>& ids) {
  const std::string_view text = o.at("text").as_string();
  bool add_bos = def_bos;
  if (const auto* v = o.if_contains("add_bos"); v && v->is_bool()) add_bos = v->as_bool();
  bool parse_special = def_special;
  if (const auto* v = o.if_contains("parse_special"); v && v->is_bool()) parse_special = v->as_bool();
  const auto* allowed = o.if_contains("allowed_special");
  const auto* tik = dynamic_cast<const fp::tokenizer::tiktoken_encoding*>(&tok);
  if (allowed && tik) {
    fp::tokenizer::allowed_special a;
    if (allowed->is_string() && allowed->as_string() == "all") {
      a.all = true;
    } else if (allowed->is_array()) {
      for (const auto& s : allowed->as_array()) {
        if (s.is_string()) a.names.emplace_back(s.as_string());
      }
    }
    tik->encode(text, a, ids);
    return;
  }
  if (allowed) {
    parse_special = (allowed->is_string() && allowed->as_string() == "all") ||
                    (allowed->is_array() && !allowed->as_array().empty());
  }
  tok.encode(text, add_bos, parse_special, ids);
}

int run_jsonl(const fp::tokenizer::tokenizer& tok, const tokenize_opts& o) {
  std::string line;
  std::vector<fp::tokenizer::token_id> ids;
  int bad = 0;
  while (std::getline(std::cin, line)) {
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object() || !v.as_object().contains("text") || !v.as_object().at("text").is_string()) {
      boost::json::object err;
      err["error"] = "expected a JSON object with a string field \"text\"";
      std::cout << boost::json::serialize(err) << '\n';
      ++bad;
      continue;
    }
    auto& obj = v.as_object();
    ids.clear();
    encode_line(tok, obj, o.add_bos, o.parse_special, ids);
    obj["ids"] = ids_json(ids);
    std::cout << boost::json::serialize(obj) << '\n';
  }
  std::cout.flush();
  return bad ? 1 : 0;
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Token ids and counts (tiktoken encodings, OpenAI models, GGUF vocabularies)");
  auto o = std::make_shared<tokenize_opts>();
  auto* enc = cmd->add_option("--encoding", o->encoding, "tiktoken encoding: o200k_base, cl100k_base");
  auto* model = cmd->add_option("--model", o->model, "OpenAI model name (gpt-4o, gpt-4, o3-mini, ...)");
  auto* gguf = cmd->add_option("--gguf", o->gguf, "GGUF file whose tokenizer.ggml.* vocabulary to use");
  enc->excludes(model)->excludes(gguf);
  model->excludes(gguf);
  cmd->add_option("--text", o->text, "text to tokenize (default: all of standard input)");
  cmd->add_flag("--jsonl", o->jsonl, "read JSON objects {text, add_bos?, allowed_special?} per line, write them with ids");
  cmd->add_flag("--add-bos", o->add_bos, "GGUF: add BOS/EOS as the vocabulary asks");
  cmd->add_flag("--parse-special", o->parse_special, "special-token strings become their ids");
  cmd->add_option("--tiktoken-dir", o->dir, "directory of the .tiktoken rank files");
  cmd->callback([o, cmd] {
    o->text_set = cmd->count("--text") > 0;
    if (!o->dir.empty()) fp::tokenizer::set_tiktoken_dir(o->dir);
    std::shared_ptr<const fp::tokenizer::tokenizer> tok;
    if (!o->gguf.empty()) {
      auto v = fp::tokenizer::gguf_vocab::load(o->gguf);
      if (!v) {
        std::fprintf(stderr, "tokenize: %s\n", v.error().message.c_str());
        throw CLI::RuntimeError(2);
      }
      tok = *v;
    } else {
      const std::string& name = !o->encoding.empty() ? o->encoding : !o->model.empty() ? o->model : std::string("o200k_base");
      auto t = fp::tokenizer::tokenizer_for(name);
      if (!t) {
        std::fprintf(stderr, "tokenize: %s\n", t.error().message.c_str());
        throw CLI::RuntimeError(2);
      }
      tok = *t;
    }
    if (o->jsonl) {
      if (const int rc = run_jsonl(*tok, *o)) throw CLI::RuntimeError(rc);
      return;
    }
    std::string text = o->text;
    if (!o->text_set) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    const auto ids = tok->encode(text, o->add_bos, o->parse_special);
    auto back = tok->decode(ids);
    boost::json::object out;
    out["tokenizer"] = tok->name();
    out["count"] = ids.size();
    out["ids"] = ids_json(ids);
    out["round_trip"] = back.has_value() && *back == text;
    std::cout << boost::json::serialize(out) << std::endl;
  });
}

}  // namespace fp::cli
