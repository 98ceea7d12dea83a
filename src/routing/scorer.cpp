// Complexity scorer: split the user message into the instruction (the work asked for) and the
// material it is about (code blocks, pasted text), then count a small multilingual lexicon of cues
// in the instruction with one pass over its words (hashed uni/bi/trigrams in a fixed open-addressing
// table). A linear model on the features gives the score through a logistic link; the weights are
// fitted offline (scripts/fit-router.py) so that the tier thresholds 0.3 / 0.7 sit on the ordinal
// model's cut points.
#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstring>
#include <string>

#include "routing/routing.hpp"

namespace fp::routing {
namespace {

// ---- text helpers -------------------------------------------------------------------------------

constexpr uint64_t fnv_offset = 1469598103934665603ull;
constexpr uint64_t fnv_prime = 1099511628211ull;

inline uint64_t mix(uint64_t a, uint64_t b) noexcept {
  uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
  x ^= x >> 29;
  return x;
}

inline bool is_cjk_lead(unsigned char c) noexcept { return c >= 0xE3 && c <= 0xE9; }

// Returns the byte length of a separator starting at p (0 if p starts a word character).
// Separators: ASCII non-alnum except apostrophe; Latin-1 punctuation (C2 80..BF); general
// punctuation (E2 80..); CJK punctuation (E3 80..) and fullwidth forms (EF BC/BD).
inline size_t separator_len(const unsigned char* p, const unsigned char* end) noexcept {
  unsigned char c = *p;
  if (c < 0x80) {
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '\'' || c == '_';
    return word ? 0 : 1;
  }
  if (c == 0xC2) return 2;
  if (end - p >= 3) {
    if (c == 0xE2 && (p[1] == 0x80 || p[1] == 0x81 || p[1] == 0x88 || p[1] == 0x89)) return 3;
    if (c == 0xE3 && p[1] == 0x80) return 3;
    if (c == 0xEF && (p[1] == 0xBC || p[1] == 0xBD)) return 3;
  }
  return 0;
}

struct span {
  size_t begin = 0, end = 0;
  size_t size() const noexcept { return end - begin; }
};

std::string_view trim(std::string_view s) noexcept {
  size_t b = 0, e = s.size();
  while (b < e && static_cast<unsigned char>(s[b]) <= ' ') ++b;
  while (e > b && static_cast<unsigned char>(s[e - 1]) <= ' ') --e;
  return s.substr(b, e - b);
}

bool ends_with_any(std::string_view s, std::initializer_list<std::string_view> tails) noexcept {
  for (auto t : tails)
    if (s.size() >= t.size() && s.substr(s.size() - t.size()) == t) return true;
  return false;
}

// ---- the cue lexicon ------------------------------------------------------------------------------

enum cue_group : uint8_t {
  g_proof, g_design, g_algorithm, g_debug, g_math, g_multi_step, g_constraints, g_expert, g_task,
  g_factual, g_foreign, g_qword, g_count
};

struct cue {
  const char* text;
  cue_group group;
};

// Kept short and motivated by the labelling rules: proofs, design, algorithms, several faults,
// multi-step maths and planning under constraints, expert domains need the strongest model;
// explaining, comparing, drafting and how-tos need a capable one; lookups, definitions,
// conversions and small talk need the small one. English, Spanish, German, French; Chinese cues
// are matched as substrings (no spaces) below.
constexpr cue k_cues[] = {
    // proof
    {"prove", g_proof}, {"proves", g_proof}, {"proof", g_proof}, {"derive", g_proof},
    {"derivation", g_proof}, {"justify", g_proof}, {"show that", g_proof}, {"rigorous", g_proof},
    {"theorem", g_proof}, {"demuestra", g_proof}, {"demostrar", g_proof}, {"beweise", g_proof},
    {"beweisen", g_proof}, {"zeige", g_proof}, {"démontre", g_proof}, {"démontrer", g_proof},
    {"prouve", g_proof}, {"prouvez", g_proof}, {"démontrez", g_proof},
    // design
    {"design", g_design}, {"architecture", g_design}, {"scalable", g_design},
    {"scale", g_design}, {"distributed", g_design}, {"microservices", g_design},
    {"schema", g_design}, {"migration", g_design}, {"rollout", g_design},
    {"consistency", g_design}, {"per second", g_design}, {"replication", g_design},
    {"diseña", g_design}, {"diseñar", g_design}, {"entwirf", g_design}, {"entwerfen", g_design},
    {"conçois", g_design}, {"concevez", g_design}, {"concevoir", g_design},
    // algorithm
    {"algorithm", g_algorithm}, {"algorithms", g_algorithm}, {"complexity", g_algorithm},
    {"recurrence", g_algorithm}, {"lock free", g_algorithm}, {"data structure", g_algorithm},
    {"optimal", g_algorithm}, {"np complete", g_algorithm}, {"reduction", g_algorithm},
    {"memory order", g_algorithm}, {"memory_order", g_algorithm}, {"concurrency", g_algorithm},
    {"dp", g_algorithm}, {"graph", g_algorithm}, {"algoritmo", g_algorithm},
    {"algorithmus", g_algorithm}, {"algorithme", g_algorithm},
    // several or subtle faults
    {"bugs", g_debug}, {"crash", g_debug}, {"crashes", g_debug}, {"leak", g_debug},
    {"leaks", g_debug}, {"race", g_debug}, {"deadlock", g_debug}, {"panics", g_debug},
    {"fix both", g_debug}, {"find all", g_debug}, {"fix them", g_debug}, {"too high", g_debug},
    {"doesn't compile", g_debug}, {"goes wrong", g_debug}, {"restart", g_debug},
    {"restarts", g_debug}, {"explodes", g_debug}, {"grows", g_debug}, {"diagnose", g_debug},
    {"both problems", g_debug}, {"fix it", g_debug}, {"undefined behavior", g_debug},
    {"undefined behaviour", g_debug},
    // math
    {"integral", g_math}, {"eigenvalues", g_math}, {"eigenvectors", g_math}, {"matrix", g_math},
    {"probability", g_math}, {"equation", g_math}, {"inequality", g_math}, {"integer", g_math},
    {"integers", g_math}, {"real numbers", g_math}, {"irrational", g_math},
    {"convergent", g_math}, {"diverges", g_math}, {"solutions", g_math},
    {"expected", g_math}, {"compounded", g_math}, {"interest", g_math},
    {"probabilidad", g_math}, {"ecuación", g_math}, {"wahrscheinlichkeit", g_math},
    {"gleichung", g_math}, {"probabilité", g_math}, {"équation", g_math},
    // multi-step reasoning
    {"why", g_multi_step}, {"step", g_multi_step}, {"steps", g_multi_step},
    {"show the work", g_multi_step}, {"show your work", g_multi_step}, {"work out", g_multi_step},
    {"how much", g_multi_step}, {"how long", g_multi_step}, {"what was", g_multi_step},
    {"calculate", g_multi_step}, {"compute", g_multi_step}, {"determine", g_multi_step},
    {"evaluate", g_multi_step}, {"analysis", g_multi_step}, {"analyze", g_multi_step},
    {"analyse", g_multi_step}, {"trade offs", g_multi_step}, {"tradeoffs", g_multi_step},
    {"what happens", g_multi_step}, {"walk through", g_multi_step}, {"implications", g_multi_step},
    {"perspectives", g_multi_step}, {"variant", g_multi_step}, {"options", g_multi_step},
    {"then", g_multi_step}, {"explain why", g_multi_step}, {"propose", g_multi_step},
    {"por qué", g_multi_step}, {"calcula", g_multi_step}, {"cuánto", g_multi_step},
    {"warum", g_multi_step}, {"berechne", g_multi_step}, {"pourquoi", g_multi_step},
    {"calcule", g_multi_step}, {"combien", g_multi_step},
    // constraints
    {"must", g_constraints}, {"only", g_constraints}, {"without", g_constraints},
    {"at least", g_constraints}, {"at most", g_constraints}, {"no more than", g_constraints},
    {"cannot", g_constraints}, {"can't", g_constraints}, {"constraint", g_constraints},
    {"constraints", g_constraints}, {"budget", g_constraints}, {"deadline", g_constraints},
    {"deadlines", g_constraints}, {"each", g_constraints}, {"every", g_constraints},
    {"nobody", g_constraints}, {"exactly", g_constraints}, {"guarantee", g_constraints},
    {"guarantees", g_constraints}, {"while", g_constraints}, {"never", g_constraints},
    {"debe", g_constraints}, {"sin", g_constraints}, {"solo", g_constraints},
    {"muss", g_constraints}, {"ohne", g_constraints}, {"nur", g_constraints},
    {"doit", g_constraints}, {"sans", g_constraints}, {"seulement", g_constraints},
    // expert domains
    {"legal", g_expert}, {"law", g_expert}, {"enforceable", g_expert}, {"contract", g_expert},
    {"gdpr", g_expert}, {"visa", g_expert}, {"employer", g_expert}, {"jurisdiction", g_expert},
    {"liability", g_expert}, {"tax", g_expert}, {"taxes", g_expert}, {"retire", g_expert},
    {"retirement", g_expert}, {"dose", g_expert}, {"dosage", g_expert}, {"mg", g_expert},
    {"medication", g_expert}, {"symptoms", g_expert}, {"disease", g_expert},
    {"prescribed", g_expert}, {"diagnosis", g_expert}, {"treatment", g_expert},
    {"ley", g_expert}, {"despedir", g_expert}, {"contrato", g_expert}, {"gesetz", g_expert},
    {"arbeitgeber", g_expert}, {"loi", g_expert}, {"juridique", g_expert}, {"contrat", g_expert},
    // moderate work: explain, compare, draft, summarise, how-to, small code
    {"explain", g_task}, {"describe", g_task}, {"difference", g_task}, {"compare", g_task},
    {"versus", g_task}, {"vs", g_task}, {"pros and cons", g_task}, {"write", g_task},
    {"draft", g_task}, {"summarize", g_task}, {"summarise", g_task}, {"translate", g_task},
    {"paragraph", g_task}, {"how do i", g_task}, {"how does", g_task}, {"how to", g_task},
    {"how can i", g_task}, {"recipe", g_task}, {"plan", g_task}, {"suggest", g_task},
    {"example", g_task}, {"email", g_task}, {"message", g_task}, {"function", g_task},
    {"script", g_task}, {"class", g_task}, {"query", g_task}, {"regex", g_task},
    {"what should", g_task}, {"give me", g_task}, {"list", g_task}, {"bullet", g_task},
    {"explica", g_task}, {"escribe", g_task}, {"diferencia", g_task}, {"resume", g_task},
    {"erkläre", g_task}, {"schreibe", g_task}, {"unterschied", g_task}, {"fasse", g_task},
    {"wie", g_task}, {"explique", g_task}, {"écris", g_task}, {"différence", g_task},
    {"avantages", g_task}, {"comment", g_task}, {"résume", g_task},
    // lookups, definitions, conversions, small talk
    {"what is", g_factual}, {"what's", g_factual}, {"what does", g_factual}, {"who", g_factual},
    {"when", g_factual}, {"where", g_factual}, {"which", g_factual}, {"stand for", g_factual},
    {"define", g_factual}, {"mean", g_factual}, {"capital", g_factual}, {"convert", g_factual},
    {"how many", g_factual}, {"spell", g_factual}, {"synonym", g_factual},
    {"opposite", g_factual}, {"hello", g_factual}, {"hi", g_factual}, {"thanks", g_factual},
    {"thank you", g_factual}, {"bye", g_factual}, {"name", g_factual}, {"symbol", g_factual},
    {"formula", g_factual}, {"in this", g_factual}, {"this sentence", g_factual},
    {"cuál", g_factual}, {"qué", g_factual}, {"quién", g_factual}, {"hola", g_factual},
    {"gracias", g_factual}, {"was ist", g_factual}, {"wer", g_factual}, {"hallo", g_factual},
    {"danke", g_factual}, {"guten", g_factual}, {"quelle", g_factual}, {"quel", g_factual},
    {"qui", g_factual}, {"bonjour", g_factual}, {"merci", g_factual}, {"capitale", g_factual},
    // language hints (not English); several hits needed
    {"el", g_foreign}, {"los", g_foreign}, {"las", g_foreign}, {"una", g_foreign},
    {"para", g_foreign}, {"con", g_foreign}, {"que", g_foreign}, {"der", g_foreign},
    {"die", g_foreign}, {"das", g_foreign}, {"und", g_foreign}, {"ist", g_foreign},
    {"ich", g_foreign}, {"mit", g_foreign}, {"eine", g_foreign}, {"les", g_foreign},
    {"des", g_foreign}, {"est", g_foreign}, {"une", g_foreign}, {"pour", g_foreign},
    {"dans", g_foreign}, {"du", g_foreign}, {"je", g_foreign}, {"et", g_foreign},
    // question openers (only at the start of the instruction)
    {"is", g_qword}, {"are", g_qword}, {"do", g_qword}, {"does", g_qword}, {"can", g_qword},
    {"was", g_qword}, {"were", g_qword}, {"did", g_qword}, {"what", g_qword},
    {"how", g_qword},
};

// Chinese cues: matched as substrings inside CJK runs.
constexpr cue k_cjk_cues[] = {
    {"证明", g_proof},       {"推导", g_proof},       {"设计", g_design},   {"架构", g_design},
    {"算法", g_algorithm},   {"复杂度", g_algorithm}, {"并发", g_design},   {"错误", g_debug},
    {"概率", g_math},        {"方程", g_math},        {"为什么", g_multi_step},
    {"计算", g_multi_step},  {"需要多少", g_multi_step}, {"一共", g_multi_step},
    {"如果", g_constraints}, {"必须", g_constraints}, {"预算", g_constraints},
    {"法律", g_expert},      {"合同", g_expert},      {"解释", g_task},     {"区别", g_task},
    {"写", g_task},          {"邮件", g_task},        {"如何", g_task},     {"怎么", g_task},
    {"什么", g_factual},     {"等于", g_factual},     {"你好", g_factual},  {"谢谢", g_factual},
    {"多少", g_factual},
};

struct cue_table {
  static constexpr size_t size = 1024;  // power of two, > 2x the number of cues
  std::array<uint64_t, size> keys{};
  std::array<uint8_t, size> groups{};

  static uint64_t word_hash(const unsigned char* b, const unsigned char* e) noexcept {
    uint64_t h = fnv_offset;
    for (; b < e; ++b) {
      unsigned char c = *b;
      if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c + 32);
      h = (h ^ c) * fnv_prime;
    }
    return h | 1;  // 0 marks an empty slot
  }

  void insert(uint64_t k, uint8_t g) noexcept {
    size_t i = k & (size - 1);
    while (keys[i] != 0 && keys[i] != k) i = (i + 1) & (size - 1);
    keys[i] = k;
    groups[i] = g;
  }
  int find(uint64_t k) const noexcept {
    size_t i = k & (size - 1);
    while (keys[i] != 0) {
      if (keys[i] == k) return groups[i];
      i = (i + 1) & (size - 1);
    }
    return -1;
  }
};

// Walks the words of [b, e): calls f(word_begin, word_end) for each. Lower-cases on the fly inside
// word_hash; Latin-1 upper-case letters (C3 80..9E) are folded by the caller's cue spelling.
template <class F>
void for_each_word(const unsigned char* b, const unsigned char* e, F&& f) {
  const unsigned char* p = b;
  while (p < e) {
    while (p < e) {
      size_t n = separator_len(p, e);
      if (n == 0) break;
      p += n;
    }
    const unsigned char* w = p;
    while (p < e && separator_len(p, e) == 0) ++p;
    if (p > w) f(w, p);
  }
}

uint64_t ngram_key(uint64_t h2, uint64_t h1, uint64_t h0, int n) noexcept {
  if (n == 1) return h0;
  if (n == 2) return mix(h1, h0) | 1;
  return mix(mix(h2, h1), h0) | 1;
}

const cue_table& table() {
  static const cue_table t = [] {
    cue_table t;
    for (const auto& c : k_cues) {
      auto s = reinterpret_cast<const unsigned char*>(c.text);
      uint64_t h[3] = {0, 0, 0};
      int n = 0;
      for_each_word(s, s + std::strlen(c.text), [&](const unsigned char* b, const unsigned char* e) {
        h[0] = h[1];
        h[1] = h[2];
        h[2] = cue_table::word_hash(b, e);
        ++n;
      });
      if (n >= 1 && n <= 3) t.insert(ngram_key(h[0], h[1], h[2], n), c.group);
    }
    return t;
  }();
  return t;
}

// ---- instruction / material split ----------------------------------------------------------------

struct split_result {
  span instruction;
  size_t code_bytes = 0;
  bool has_code = false;
};

// Paragraphs outside ``` fences. The instruction is the paragraph that asks: the last one when it
// is a question, the first when it introduces material (ends with ':' or '?'), else the shorter
// of first and last. A single paragraph is the instruction.
split_result split_instruction(std::string_view t) noexcept {
  split_result r;
  constexpr size_t max_paras = 64;
  span paras[max_paras];
  size_t np = 0;
  size_t i = 0, n = t.size();
  size_t para_begin = 0;
  bool in_code = false;
  auto close_para = [&](size_t end) {
    if (end > para_begin) {
      auto s = trim(t.substr(para_begin, end - para_begin));
      if (!s.empty()) {
        size_t b = static_cast<size_t>(s.data() - t.data());
        if (np < max_paras) {
          paras[np++] = span{b, b + s.size()};
        } else {
          paras[max_paras - 1].end = b + s.size();  // merge the tail
        }
      }
    }
  };
  while (i < n) {
    if (t[i] == '`' && i + 2 < n && t[i + 1] == '`' && t[i + 2] == '`' &&
        (i == 0 || t[i - 1] == '\n')) {
      if (!in_code) close_para(i);
      size_t eol = t.find('\n', i);
      if (eol == std::string_view::npos) eol = n;
      if (in_code) {
        in_code = false;
        para_begin = eol;
      } else {
        in_code = true;
        r.has_code = true;
      }
      i = eol;
      continue;
    }
    if (in_code) {
      size_t eol = t.find('\n', i);
      if (eol == std::string_view::npos) eol = n;
      r.code_bytes += eol - i + 1;
      i = eol + 1;
      continue;
    }
    if (t[i] == '\n') {
      // blank line (only whitespace until the next newline) ends a paragraph
      size_t j = i + 1;
      while (j < n && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r')) ++j;
      if (j < n && t[j] == '\n') {
        close_para(i);
        para_begin = j;
        i = j;
        continue;
      }
    }
    ++i;
  }
  if (!in_code) close_para(n);
  if (np == 0) return r;
  if (np == 1) {
    r.instruction = paras[0];
    return r;
  }
  auto first = t.substr(paras[0].begin, paras[0].size());
  auto last = t.substr(paras[np - 1].begin, paras[np - 1].size());
  bool last_q = ends_with_any(last, {"?", "？"});
  bool first_intro = ends_with_any(first, {":", "?", "：", "？"});
  if (last_q && !(first_intro && first.size() < last.size())) {
    r.instruction = paras[np - 1];
  } else if (first_intro) {
    r.instruction = paras[0];
  } else {
    r.instruction = paras[0].size() <= paras[np - 1].size() ? paras[0] : paras[np - 1];
  }
  return r;
}

// Cue counts -> feature values: the first hit says most (0.75), more hits add a little (1.0).
inline double sat(int c) noexcept { return c <= 0 ? 0.0 : (c == 1 ? 0.75 : 1.0); }

bool is_math_symbol(const unsigned char* p, const unsigned char* e, size_t& len) noexcept {
  if (p[0] == 0xC2 && e - p >= 2 && (p[1] == 0xB2 || p[1] == 0xB3 || p[1] == 0xB9)) {
    len = 2;  // ² ³ ¹
    return true;
  }
  if (p[0] == 0xCF && e - p >= 2 && p[1] == 0x80) {
    len = 2;  // π
    return true;
  }
  if (p[0] == 0xE2 && e - p >= 3) {
    len = 3;
    if (p[1] == 0x88 || p[1] == 0x89) return true;                // ∀..≿ operators
    if (p[1] == 0x81 && p[2] >= 0xB0) return true;                 // superscripts
    if (p[1] == 0x82 && p[2] <= 0x8E) return true;                 // subscripts
    if (p[1] == 0x84 && (p[2] == 0x9D || p[2] == 0x95)) return true;  // ℝ ℕ
  }
  return false;
}

}  // namespace

// ---- public -------------------------------------------------------------------------------------

std::string_view feature_name(feature f) noexcept {
  switch (f) {
    case feature::length: return "length";
    case feature::material: return "long_context";
    case feature::code: return "code";
    case feature::proof: return "proof";
    case feature::design: return "design";
    case feature::algorithm: return "algorithm";
    case feature::debug: return "debugging";
    case feature::math: return "math";
    case feature::numbers: return "numbers";
    case feature::multi_step: return "multi_step";
    case feature::constraints: return "constraints";
    case feature::expert: return "expert_domain";
    case feature::task: return "task";
    case feature::factual: return "factual";
    case feature::multi_part: return "multi_part";
    case feature::depth: return "conversation";
    case feature::tools: return "tools";
    case feature::non_english: return "non_english";
    case feature::count_: break;
  }
  return "?";
}

int64_t estimate_tokens(std::string_view text) noexcept {
  // Branch-free counts (the compiler vectorises this loop).
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  uint32_t ascii = 0, lead = 0, cjk = 0;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = p[i];
    ascii += c < 0x80;
    lead += c >= 0xC0;
    cjk += static_cast<unsigned char>(c - 0xE3) <= 6;  // E3..E9: CJK lead bytes
  }
  int64_t other = static_cast<int64_t>(lead) - cjk;
  return (static_cast<int64_t>(ascii) + 3) / 4 + cjk + (other + 1) / 2;
}

std::string score_result::reasons_joined() const {
  std::string out;
  for (int i = 0; i < reason_count; ++i) {
    if (i) out += ',';
    out += reasons[i];
  }
  return out;
}

complexity_scorer::complexity_scorer(scorer_weights w, token_counter tokens)
    : w_(w), tokens_(std::move(tokens)) {
  (void)table();  // build the lexicon at start-up, not on the first request
}

int64_t complexity_scorer::count_tokens(std::string_view s) const noexcept {
  return tokens_ ? tokens_(s) : estimate_tokens(s);
}

feature_vector complexity_scorer::features(const score_input& in) const noexcept {
  feature_vector x{};
  const auto& tab = table();
  auto sp = split_instruction(in.text);
  std::string_view instr = in.text.substr(sp.instruction.begin, sp.instruction.size());

  // Bounded work for huge instructions: cues come from the first 1.5 KiB and the last 0.5 KiB
  // (where requests state the task and ask the question).
  std::string_view head = instr, tail{};
  if (instr.size() > 2048) {
    head = instr.substr(0, 1536);
    size_t tb = instr.size() - 512;
    while (tb < instr.size() && (static_cast<unsigned char>(instr[tb]) & 0xC0) == 0x80) ++tb;
    tail = instr.substr(tb);
  }

  int counts[g_count] = {};
  int words = 0, numbers = 0, math_syms = 0, big_o = 0, questions = 0, sentences = 0,
      list_items = 0, semis = 0, non_ascii_letters = 0, letters = 0, cjk_chars = 0;
  bool first_is_qword = false;

  auto scan = [&](std::string_view part) {
    auto b = reinterpret_cast<const unsigned char*>(part.data());
    auto e = b + part.size();
    uint64_t h2 = 0, h1 = 0;
    int seen = 0;
    for_each_word(b, e, [&](const unsigned char* wb, const unsigned char* we) {
      uint64_t h0 = cue_table::word_hash(wb, we);
      ++words;
      if (*wb >= '0' && *wb <= '9') ++numbers;
      int g = tab.find(h0);
      if (g == g_qword) {
        if (words == 1) first_is_qword = true;
      } else if (g >= 0) {
        ++counts[g];
      }
      if (seen >= 1) {
        int g2 = tab.find(ngram_key(0, h1, h0, 2));
        if (g2 >= 0 && g2 != g_qword) ++counts[g2];
      }
      if (seen >= 2) {
        int g3 = tab.find(ngram_key(h2, h1, h0, 3));
        if (g3 >= 0 && g3 != g_qword) ++counts[g3];
      }
      h2 = h1;
      h1 = h0;
      ++seen;
    });
    // Byte-level cues: O(...), math symbols, questions, sentences, list items, scripts.
    for (const unsigned char* p = b; p < e;) {
      unsigned char c = *p;
      if (c < 0x80) {
        letters += (c | 32) >= 'a' && (c | 32) <= 'z';
        if (c == 'O' && p + 1 < e && p[1] == '(' && (p == b || !std::isalnum(p[-1]))) ++big_o;
        else if (c == '?') ++questions;
        else if ((c == '.' || c == '!') && (p + 1 == e || p[1] == ' ' || p[1] == '\n')) ++sentences;
        else if (c == ';') ++semis;
        else if (c == '=' || c == '^') ++math_syms;
        else if (c == '\n' && p + 2 < e &&
                 (((p[1] == '-' || p[1] == '*') && p[2] == ' ') ||
                  (p[1] >= '0' && p[1] <= '9' && (p[2] == '.' || p[2] == ')'))))
          ++list_items;
        ++p;
        continue;
      }
      size_t len = 1;
      if (is_math_symbol(p, e, len)) {
        ++math_syms;
        p += len;
        continue;
      }
      if (c >= 0xC0) {
        ++letters;
        ++non_ascii_letters;
        if (is_cjk_lead(c)) {
          ++cjk_chars;
        }
      }
      if (c == 0xEF && p + 2 < e && p[1] == 0xBC && p[2] == 0x9F) ++questions;  // ？
      if (c == 0xE3 && p + 2 < e && p[1] == 0x80 && p[2] == 0x82) ++sentences;  // 。
      ++p;
    }
    if (cjk_chars > 0) {
      for (const auto& cc : k_cjk_cues) {
        std::string_view needle(cc.text);
        for (size_t pos = part.find(needle); pos != std::string_view::npos;
             pos = part.find(needle, pos + needle.size()))
          ++counts[cc.group];
      }
    }
  };
  scan(head);
  if (!tail.empty()) scan(tail);

  int64_t instr_tokens = count_tokens(instr);
  int64_t text_tokens = instr.size() == in.text.size() ? instr_tokens : count_tokens(in.text);
  int64_t total_tokens = in.prompt_tokens >= 0
                             ? in.prompt_tokens
                             : text_tokens + (in.system.empty() ? 0 : count_tokens(in.system));
  int64_t material_tokens = std::max<int64_t>(0, total_tokens - instr_tokens);

  auto at = [&](feature f) -> double& { return x[static_cast<size_t>(f)]; };
  at(feature::length) = std::log2(1.0 + static_cast<double>(instr_tokens)) - 4.0;
  at(feature::material) = std::log2(1.0 + static_cast<double>(material_tokens)) / 4.0;
  at(feature::code) = sp.has_code ? 1.0 : 0.0;
  at(feature::proof) = sat(counts[g_proof]);
  at(feature::design) = sat(counts[g_design]);
  at(feature::algorithm) = sat(counts[g_algorithm] + big_o);
  at(feature::debug) = sat(counts[g_debug]);
  at(feature::math) = sat(counts[g_math] + math_syms);
  at(feature::numbers) = std::min(numbers, 8) / 8.0;
  at(feature::multi_step) = sat(counts[g_multi_step]);
  at(feature::constraints) = sat(counts[g_constraints] + list_items + semis);
  at(feature::expert) = sat(counts[g_expert]);
  at(feature::task) = sat(counts[g_task]);
  bool short_question = first_is_qword && words <= 12;
  at(feature::factual) = sat(counts[g_factual] + (short_question ? 1 : 0));
  at(feature::multi_part) = sat(std::max(0, questions - 1) + std::max(0, sentences - 1));
  at(feature::depth) = std::min(std::max(in.turns - 1, 0), 10) / 10.0;
  at(feature::tools) = std::min(in.tools, 5) / 5.0;
  bool foreign = cjk_chars > 0 || counts[g_foreign] >= 2 ||
                 (letters > 0 && non_ascii_letters * 50 > letters);
  at(feature::non_english) = foreign ? 1.0 : 0.0;
  return x;
}

score_result complexity_scorer::score(const score_input& in) const noexcept {
  score_result r;
  r.features = features(in);
  double z = w_.bias;
  std::array<double, feature_count> contrib{};
  for (size_t i = 0; i < feature_count; ++i) {
    contrib[i] = w_.w[i] * r.features[i];
    z += contrib[i];
  }
  r.score = 1.0 / (1.0 + std::exp(-z));
  bool proof_rule = w_.proof_floor > 0 && r.features[static_cast<size_t>(feature::proof)] > 0 &&
                    r.score < w_.proof_floor;
  if (proof_rule) {
    r.score = w_.proof_floor;
    r.reasons[r.reason_count++] = "proof";
  }
  // Explain: the strongest contributions towards the side of the decision.
  double sign = r.score >= 0.5 ? 1.0 : -1.0;
  for (int k = 0; k < 3; ++k) {
    size_t best = feature_count;
    double best_v = 0.15;  // ignore negligible pushes
    for (size_t i = 0; i < feature_count; ++i) {
      if (r.reason_count == 3) break;
      double v = sign * contrib[i];
      bool used = false;
      for (int j = 0; j < r.reason_count; ++j)
        used |= r.reasons[j] == feature_name(static_cast<feature>(i)) ||
                (i == 0 && (r.reasons[j] == "short" || r.reasons[j] == "long"));
      if (!used && v > best_v) {
        best_v = v;
        best = i;
      }
    }
    if (best == feature_count || r.reason_count == 3) break;
    std::string_view name = feature_name(static_cast<feature>(best));
    if (best == static_cast<size_t>(feature::length)) name = contrib[best] < 0 ? "short" : "long";
    r.reasons[r.reason_count++] = name;
  }
  if (r.reason_count == 0) r.reasons[r.reason_count++] = "default";
  return r;
}

const scorer_weights& scorer_weights::defaults() noexcept {
  static const scorer_weights w = [] {
    scorer_weights s;
#include "routing/scorer_weights.inc"
    return s;
  }();
  return w;
}

// ---- tiers --------------------------------------------------------------------------------------

tier_map tier_map::defaults(std::string small, std::string mid, std::string strong) {
  tier_map m;
  m.tiers.push_back(tier{"small", std::move(small), 0.3, false});
  m.tiers.push_back(tier{"mid", std::move(mid), 0.7, true});
  m.tiers.push_back(tier{"strong", std::move(strong), 1.0, true});
  return m;
}

int tier_map::index(double score) const noexcept {
  for (size_t i = 0; i + 1 < tiers.size(); ++i) {
    const auto& t = tiers[i];
    if (score < t.upper || (t.inclusive && score == t.upper)) return static_cast<int>(i);
  }
  return static_cast<int>(tiers.size()) - 1;
}

const tier& tier_map::pick(double score) const noexcept { return tiers[index(score)]; }

}  // namespace fp::routing
