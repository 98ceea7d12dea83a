// Semantic cache: question normalisation, the lexical embedder, the near-miss guard, HNSW indexes.
#include "cache/semantic.hpp"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace fp::cache {

namespace {

bool is_alnum(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_symbol(unsigned char c) { return std::strchr("=!<>&|%^*/+~", c) != nullptr && c != 0; }

struct raw_token {
  std::string text;  // lower case
  bool cap = false;  // capitalised mid-sentence or an acronym
  bool comma = false;  // followed by a comma
  bool first = false;  // starts a sentence
};

std::vector<raw_token> split(std::string_view in) {
  std::string s;
  s.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {  // U+2019 -> '
    if (i + 2 < in.size() && (unsigned char)in[i] == 0xE2 && (unsigned char)in[i + 1] == 0x80 &&
        ((unsigned char)in[i + 2] == 0x99 || (unsigned char)in[i + 2] == 0x98)) {
      s.push_back('\'');
      i += 2;
    } else {
      s.push_back(in[i]);
    }
  }
  std::vector<raw_token> out;
  bool sentence_start = true;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    if (is_alnum(c)) {
      size_t b = i;
      while (i < s.size()) {
        unsigned char d = s[i];
        if (is_alnum(d)) {
          ++i;
        } else if ((d == '\'' || d == '-' || d == '.') && i + 1 < s.size() && is_alnum(s[i + 1])) {
          ++i;
        } else {
          break;
        }
      }
      while (i < s.size() && (s[i] == '#' || s[i] == '+')) ++i;
      raw_token t;
      std::string_view w(s.data() + b, i - b);
      bool upper0 = w[0] >= 'A' && w[0] <= 'Z';
      size_t uppers = 0, letters = 0;
      for (unsigned char x : w) {
        if (x >= 'A' && x <= 'Z') ++uppers;
        if ((x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z')) ++letters;
      }
      t.first = sentence_start;
      t.cap = (upper0 && !sentence_start) || (letters >= 2 && uppers == letters);
      for (unsigned char x : w) t.text.push_back(static_cast<char>(std::tolower(x)));
      out.push_back(std::move(t));
      sentence_start = false;
    } else if (is_symbol(c)) {
      size_t b = i;
      while (i < s.size() && is_symbol(s[i])) ++i;
      raw_token t;
      t.text = s.substr(b, i - b);
      if (t.text == "!") {  // exclamation, not an operator
        sentence_start = true;
        continue;
      }
      out.push_back(std::move(t));
      sentence_start = false;
    } else {
      if (c == ',' && !out.empty()) out.back().comma = true;
      if (c == '.' || c == '?' || c == '!' || c == ':' || c == ';') sentence_start = true;
      ++i;
    }
  }
  return out;
}

const std::unordered_map<std::string, std::vector<std::string>>& contractions() {
  static const std::unordered_map<std::string, std::vector<std::string>> m = {
      {"won't", {"will", "not"}}, {"wont", {"will", "not"}}, {"can't", {"can", "not"}}, {"cant", {"can", "not"}},
      {"cannot", {"can", "not"}}, {"shan't", {"shall", "not"}}, {"dont", {"do", "not"}}, {"doesnt", {"does", "not"}},
      {"didnt", {"did", "not"}}, {"isnt", {"is", "not"}}, {"arent", {"are", "not"}}, {"wasnt", {"was", "not"}},
      {"werent", {"were", "not"}}, {"couldnt", {"could", "not"}}, {"shouldnt", {"should", "not"}},
      {"wouldnt", {"would", "not"}}, {"havent", {"have", "not"}}, {"hasnt", {"has", "not"}},
      {"whats", {"what", "is"}}, {"hows", {"how", "is"}}, {"wheres", {"where", "is"}}, {"whos", {"who", "is"}},
      {"thats", {"that", "is"}}, {"im", {"i", "am"}}, {"ive", {"i", "have"}}};
  return m;
}

const std::unordered_map<std::string, std::string>& number_words() {
  static const std::unordered_map<std::string, std::string> m = {
      {"zero", "0"}, {"one", "1"}, {"two", "2"}, {"three", "3"}, {"four", "4"}, {"five", "5"}, {"six", "6"},
      {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"}, {"eleven", "11"}, {"twelve", "12"},
      {"thirteen", "13"}, {"fourteen", "14"}, {"fifteen", "15"}, {"sixteen", "16"}, {"seventeen", "17"},
      {"eighteen", "18"}, {"nineteen", "19"}, {"twenty", "20"}, {"thirty", "30"}, {"forty", "40"},
      {"fifty", "50"}, {"sixty", "60"}, {"seventy", "70"}, {"eighty", "80"}, {"ninety", "90"},
      {"hundred", "100"}, {"thousand", "1000"}, {"million", "1000000"}, {"billion", "1000000000"},
      {"first", "1st"}, {"second", "2nd"}, {"third", "3rd"}, {"fourth", "4th"}, {"fifth", "5th"},
      {"sixth", "6th"}, {"seventh", "7th"}, {"eighth", "8th"}, {"ninth", "9th"}, {"tenth", "10th"},
      {"twentieth", "20th"}, {"hundredth", "100th"}};
  return m;
}

int roman_value(std::string_view w) {
  if (w.empty() || w.size() > 6) return 0;
  int total = 0, prev = 0;
  for (auto it = w.rbegin(); it != w.rend(); ++it) {
    int v = *it == 'i' ? 1 : *it == 'v' ? 5 : *it == 'x' ? 10 : 0;
    if (!v) return 0;
    total += v < prev ? -v : v;
    prev = std::max(prev, v);
  }
  return total;
}

// Words that carry no content of their own (articles, possessives, light prepositions).
const std::unordered_set<std::string>& stopwords() {
  static const std::unordered_set<std::string> s = {
      "a", "an", "the", "my", "your", "our", "their", "its", "of", "for", "on", "at", "with", "by", "about",
      "it", "this", "that", "there", "these", "those", "be", "been", "being", "some", "any", "just", "really",
      "actually", "basically", "honestly", "please", "thanks", "thank", "hi", "hello", "hey", "um", "uh",
      "also", "exactly", "even", "ever", "kindly", "roughly", "approximately", "'s", "and", "or", "between"};
  return s;
}

// Phrase rewrites, applied longest first on the token sequence. "" removes the phrase.
const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>& phrases() {
  static const auto v = [] {
    std::vector<std::pair<std::string, std::string>> raw = {
        // politeness and filler
        {"sorry to bother you", ""}, {"excuse me", ""}, {"quick question", ""}, {"i was wondering", ""}, {"i wonder", ""},
        {"thank you", ""}, {"help me", ""}, {"i want to know", ""}, {"i need to know", ""},
        {"i would like to know", ""}, {"do you know", ""},
        // how-to frames
        {"how do i", "howto"}, {"how can i", "howto"}, {"how should i", "howto"}, {"how would i", "howto"},
        {"how do you", "howto"}, {"how does one", "howto"}, {"how can one", "howto"}, {"how to", "howto"},
        {"how is it possible to", "howto"}, {"what is the way to", "howto"}, {"what is the best way to", "howto"},
        {"what are the steps to", "howto"}, {"what steps do i take to", "howto"}, {"is there a way to", "howto"},
        {"show me how to", "howto"}, {"tell me how to", "howto"}, {"explain how to", "howto"},
        {"could you tell me how to", "howto"}, {"can you tell me how to", "howto"},
        {"could you explain how to", "howto"}, {"can you explain how to", "howto"},
        {"could you explain how i", "howto"}, {"can you explain how i", "howto"},
        {"could you show me how to", "howto"}, {"can you show me how to", "howto"},
        {"what should i do to", "howto"},
        // request frames
        {"could you please tell me", "what is"}, {"could you tell me", "what is"}, {"can you tell me", "what is"},
        {"please tell me", "what is"}, {"tell me", "what is"}, {"give me", "what is"},
        {"could you explain", ""}, {"can you explain", ""}, {"explain", ""}, {"is it possible to", "can i"},
        {"what are", "what is"}, {"which", "what"},
        // synonyms
        {"turn on", "enable"}, {"switch on", "enable"}, {"turn off", "disable"}, {"switch off", "disable"},
        {"get rid of", "remove"}, {"delete", "remove"}, {"erase", "remove"}, {"uninstall", "remove"},
        {"folder", "directory"}, {"application", "app"}, {"program", "app"}, {"begin", "start"},
        {"improve", "increase"}, {"united states of america", "unitedstates"}, {"united states", "unitedstates"},
        {"usa", "unitedstates"}, {"u.s.", "unitedstates"}, {"u.s", "unitedstates"},
        {"united kingdom", "unitedkingdom"}, {"uk", "unitedkingdom"}, {"soviet union", "sovietunion"},
        {"ussr", "sovietunion"}, {"gigabyte", "gb"}, {"gigabytes", "gb"}, {"megabyte", "mb"},
        {"megabytes", "mb"}, {"terabyte", "tb"}, {"terabytes", "tb"}, {"kilogram", "kg"}, {"kilograms", "kg"},
        {"kilometre", "km"}, {"kilometer", "km"}, {"kilometres", "km"}, {"kilometers", "km"},
        {"are", "is"}, {"am", "is"}, {"were", "was"}, {"does", "do"}, {"whom", "who"},
        {"yoghurt", "yogurt"}, {"grey", "gray"}, {"aluminium", "aluminum"}, {"cheque", "check"},
        {"tyre", "tire"}, {"programme", "app"}};
    std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> out;
    auto words = [](const std::string& s) {
      std::vector<std::string> w;
      size_t b = 0;
      while (b < s.size()) {
        size_t e = s.find(' ', b);
        if (e == std::string::npos) e = s.size();
        if (e > b) w.push_back(s.substr(b, e - b));
        b = e + 1;
      }
      return w;
    };
    for (auto& [a, b] : raw) out.emplace_back(words(a), words(b));
    std::stable_sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.first.size() > y.first.size(); });
    return out;
  }();
  return v;
}

std::string spelling(std::string w) {
  // British -> American for the regular patterns (colour, organise, centre, analyse).
  auto ends = [&](std::string_view s) { return w.size() > s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0; };
  if (w.size() >= 6 && ends("our") && w != "hour" && w != "your") w = w.substr(0, w.size() - 3) + "or";
  else if (w.size() >= 6 && ends("ours")) w = w.substr(0, w.size() - 4) + "ors";
  else if (w.size() >= 7 && (ends("ise") || ends("ised") || ends("ising") || ends("isation"))) {
    size_t p = w.rfind("is");
    static const std::set<std::string> keep = {"exercise", "advertise", "advertised", "advertising", "promise",
                                               "promised", "premise", "compromise", "surprise", "surprised",
                                               "surprising", "otherwise", "expertise", "supervise",
                                               "supervised", "supervising", "televise", "merchandise",
                                               "franchise", "enterprise", "concise", "precise", "revise",
                                               "revised", "revising", "devise", "disguise", "noise", "raise",
                                               "praise", "cruise", "bruise", "chemise"};
    if (!keep.count(w)) w.replace(p, 2, "iz");
  } else if (w.size() >= 7 && ends("yse")) w.replace(w.size() - 3, 3, "yze");
  else if (w.size() >= 5 && ends("tre") && w != "theatre") w.replace(w.size() - 3, 3, "ter");
  if (w == "theatre") w = "theater";
  return w;
}

std::string stem(std::string w) {
  if (w.size() <= 3 || is_digit(w[0])) return w;
  auto ends = [&](std::string_view s) { return w.size() > s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0; };
  if (ends("sses")) return w.substr(0, w.size() - 2);
  if (w.size() > 4 && ends("ies")) return w.substr(0, w.size() - 3) + "y";
  if (ends("ss") || ends("us") || ends("is") || ends("'s")) return w;
  if (ends("s")) return w.substr(0, w.size() - 1);
  return w;
}

// Tokens that are never content: direction markers are kept for the order check only.
bool is_marker(const std::string& w) {
  return w == "to" || w == "from" || w == "into" || w == "in" || w == "as" || w == "than" || w == "per" ||
         w == "by" || w == "for" || w == "over" || w == "onto" || w == "toward" || w == "towards";
}

bool is_negation(const std::string& w) {
  return w == "not" || w == "no" || w == "never" || w == "without" || w == "none" || w == "nothing" ||
         w == "nobody" || w == "neither" || w == "nor";
}

bool is_number(const std::string& w) { return !w.empty() && is_digit(static_cast<unsigned char>(w[0])); }

const std::unordered_set<std::string>& polarity_words() {
  static const std::unordered_set<std::string> s = {
      "on", "off", "enable", "disable", "increase", "decrease", "add", "remove", "before", "after", "with",
      "without", "import", "export", "upload", "download", "min", "max", "minimum", "maximum", "first", "last",
      "1st", "encrypt", "decrypt", "buy", "sell", "start", "stop", "open", "close", "win", "lose", "gain",
      "loss", "up", "down", "high", "low", "higher", "lower", "more", "less", "most", "least", "best", "worst",
      "hot", "cold", "warm", "cool", "lock", "unlock", "show", "hide", "undo", "redo", "push", "pull",
      "install", "mute", "unmute", "connect", "disconnect", "subscribe", "unsubscribe", "collapse", "found",
      "founded", "rise", "fall", "above", "below", "over", "under", "inside", "outside", "early", "late",
      "earlier", "later", "next", "previous", "old", "new", "oldest", "newest", "fast", "slow", "big", "small",
      "large", "long", "short", "zoom", "expand", "shrink", "compress", "decompress", "zip", "unzip",
      "ascending", "descending", "upper", "lowercase", "uppercase", "positive", "negative", "pro", "con",
      "advantage", "disadvantage", "benefit", "risk", "safe", "unsafe", "legal", "illegal"};
  return s;
}

int edit_kind(const std::string& a, const std::string& b) {
  // 1: adjacent transposition; 2: one insertion/deletion; 0: neither.
  if (a.size() == b.size()) {
    size_t i = 0;
    while (i < a.size() && a[i] == b[i]) ++i;
    if (i + 1 < a.size() && a[i] == b[i + 1] && a[i + 1] == b[i] && a.compare(i + 2, std::string::npos, b, i + 2) == 0)
      return 1;
    return 0;
  }
  const std::string& l = a.size() > b.size() ? a : b;
  const std::string& s = a.size() > b.size() ? b : a;
  if (l.size() != s.size() + 1) return 0;
  size_t i = 0;
  while (i < s.size() && l[i] == s[i]) ++i;
  return l.compare(i + 1, std::string::npos, s, i) == 0 ? 2 : 0;
}

bool typo_pair(const std::string& a, const std::string& b) {
  if (is_number(a) || is_number(b)) return false;
  int k = edit_kind(a, b);
  if (k == 1) return a.size() >= 6;
  if (k == 2) return std::min(a.size(), b.size()) >= 7;
  return false;
}

}  // namespace

normalised_question normalise_question(std::string_view text) {
  std::vector<raw_token> raw = split(text);
  // 1. contractions, hyphens, apostrophes, digits+units, numbers
  struct tok {
    std::string w;
    bool cap;
    bool filler;
  };
  std::vector<tok> t;
  for (size_t i = 0; i < raw.size(); ++i) {
    auto& r = raw[i];
    std::string w = r.text;
    // fillers: "so," "like," "well," "ok," "okay," anywhere; "so" opening a sentence
    bool after_interjection = i > 0 && (raw[i - 1].text == "hey" || raw[i - 1].text == "hi" ||
                                        raw[i - 1].text == "hello" || raw[i - 1].text == "oh" ||
                                        raw[i - 1].text == "well" || raw[i - 1].text == "ok");
    if ((r.comma || r.first || after_interjection) && (w == "so" || w == "like" || w == "well" || w == "ok" || w == "okay" || w == "anyway"))
      continue;
    if (auto c = contractions().find(w); c != contractions().end()) {
      for (auto& x : c->second) t.push_back({x, false, false});
      continue;
    }
    if (size_t ap = w.find('\''); ap != std::string::npos) {
      std::string head = w.substr(0, ap), tail = w.substr(ap + 1);
      if (tail == "t" && head.size() > 1 && head.back() == 'n') {
        std::string h = head.substr(0, head.size() - 1);
        if (h == "wo") h = "will";
        if (h == "ca") h = "can";
        if (h == "sha") h = "shall";
        t.push_back({h, false, false});
        t.push_back({"not", false, false});
        continue;
      }
      static const std::set<std::string> is_heads = {"what", "it", "that", "there", "here", "who", "where",
                                                      "how", "when", "why", "he", "she"};
      if (tail == "s") {
        t.push_back({head, r.cap, false});
        t.push_back({is_heads.count(head) ? "is" : "'s", false, false});  // "'s": possessive
        continue;
      }
      if (tail == "re") { t.push_back({head, r.cap, false}); t.push_back({"are", false, false}); continue; }
      if (tail == "ve") { t.push_back({head, r.cap, false}); t.push_back({"have", false, false}); continue; }
      if (tail == "ll") { t.push_back({head, r.cap, false}); t.push_back({"will", false, false}); continue; }
      if (tail == "d") { t.push_back({head, r.cap, false}); t.push_back({"would", false, false}); continue; }
      if (tail == "m") { t.push_back({head, r.cap, false}); t.push_back({"am", false, false}); continue; }
      w.erase(std::remove(w.begin(), w.end(), '\''), w.end());
    }
    if (w.find('-') != std::string::npos) w.erase(std::remove(w.begin(), w.end(), '-'), w.end());
    // 8gb -> 8 gb; keep ordinals (1st, 2nd) and decimals (3.5)
    if (is_digit(static_cast<unsigned char>(w[0]))) {
      size_t d = 0;
      while (d < w.size() && (is_digit(static_cast<unsigned char>(w[d])) || w[d] == '.' || w[d] == ',')) ++d;
      std::string num = w.substr(0, d), rest = w.substr(d);
      if (!rest.empty() && rest != "st" && rest != "nd" && rest != "rd" && rest != "th") {
        t.push_back({num, false, false});
        t.push_back({rest, false, false});
        continue;
      }
    }
    if (auto n = number_words().find(w); n != number_words().end()) {
      t.push_back({n->second, false, false});
      continue;
    }
    // roman numerals after a capitalised word ("World War II", "Elizabeth I", "Henry VIII")
    if (int rv = roman_value(w); rv > 0 && i > 0 && raw[i - 1].cap && r.cap) {
      t.push_back({std::to_string(rv), false, false});
      continue;
    }
    t.push_back({w, r.cap, false});
  }
  // 2. phrase rewrites (longest first, left to right)
  std::vector<tok> u;
  const auto& ph = phrases();
  for (size_t i = 0; i < t.size();) {
    bool matched = false;
    for (const auto& [from, to] : ph) {
      if (i + from.size() > t.size()) continue;
      bool eq = true;
      for (size_t j = 0; j < from.size() && eq; ++j) eq = t[i + j].w == from[j] || stem(t[i + j].w) == from[j];
      if (!eq) continue;
      // "US"/"UK" only as acronyms (upper case), never the pronoun "us"
      if (from.size() == 1 && (from[0] == "uk") && !t[i].cap) continue;
      for (auto& x : to) u.push_back({x, false, false});
      i += from.size();
      matched = true;
      break;
    }
    if (matched) continue;
    if (t[i].w == "us" && t[i].cap) {
      u.push_back({"unitedstates", false, false});
      ++i;
      continue;
    }
    u.push_back(t[i]);
    ++i;
  }
  // 3. spelling, stemming, stopwords
  normalised_question q;
  for (auto& x : u) {
    bool stop = stopwords().count(x.w) > 0;
    std::string w = stop ? x.w : stem(spelling(x.w));
    q.content.push_back(!stop && !is_marker(w));
    q.tokens.push_back(std::move(w));
    q.capitalised.push_back(x.cap);
  }
  return q;
}

std::string_view reject_reason_name(reject_reason r) noexcept {
  switch (r) {
    case reject_reason::none: return "none";
    case reject_reason::negation: return "negation";
    case reject_reason::number: return "number";
    case reject_reason::polarity: return "polarity";
    case reject_reason::entity: return "entity";
    case reject_reason::direction: return "direction";
    case reject_reason::word: return "word";
  }
  return "word";
}

reject_reason semantic_guard(std::string_view a_text, std::string_view b_text) {
  normalised_question a = normalise_question(a_text), b = normalise_question(b_text);
  // Content multisets (markers excluded).
  std::multiset<std::string> ca, cb;
  for (size_t i = 0; i < a.tokens.size(); ++i) if (a.content[i]) ca.insert(a.tokens[i]);
  for (size_t i = 0; i < b.tokens.size(); ++i) if (b.content[i]) cb.insert(b.tokens[i]);
  std::vector<std::string> only_a, only_b;
  std::set_difference(ca.begin(), ca.end(), cb.begin(), cb.end(), std::back_inserter(only_a));
  std::set_difference(cb.begin(), cb.end(), ca.begin(), ca.end(), std::back_inserter(only_b));
  // Pair up typos of long words.
  std::map<std::string, std::string> typo;  // b word -> a word
  for (auto ita = only_a.begin(); ita != only_a.end();) {
    auto itb = std::find_if(only_b.begin(), only_b.end(), [&](const std::string& w) { return typo_pair(*ita, w); });
    if (itb != only_b.end()) {
      typo[*itb] = *ita;
      only_b.erase(itb);
      ita = only_a.erase(ita);
    } else {
      ++ita;
    }
  }
  if (!only_a.empty() || !only_b.empty()) {
    std::vector<std::string> diff = only_a;
    diff.insert(diff.end(), only_b.begin(), only_b.end());
    auto any = [&](auto pred) { return std::any_of(diff.begin(), diff.end(), pred); };
    auto prefixed_negation = [&](const std::string& w) {
      for (const char* p : {"non", "un", "im", "in", "ir", "il", "dis"}) {
        std::string_view pv(p);
        if (w.size() > pv.size() + 2 && w.compare(0, pv.size(), pv) == 0) {
          std::string base = w.substr(pv.size());
          if (ca.count(base) || cb.count(base)) return true;
        }
      }
      return false;
    };
    if (any([](const std::string& w) { return is_negation(w); }) || any(prefixed_negation)) return reject_reason::negation;
    if (any([](const std::string& w) { return is_number(w); })) return reject_reason::number;
    if (any([](const std::string& w) { return polarity_words().count(w) > 0; })) return reject_reason::polarity;
    auto capitalised = [](const normalised_question& q, const std::string& w) {
      for (size_t i = 0; i < q.tokens.size(); ++i)
        if (q.tokens[i] == w && q.capitalised[i]) return true;
      return false;
    };
    for (auto& w : only_a) if (capitalised(a, w)) return reject_reason::entity;
    for (auto& w : only_b) if (capitalised(b, w)) return reject_reason::entity;
    return reject_reason::word;
  }
  // Same content: a reordering must not move content words across an order marker.
  std::vector<std::string> sa = a.tokens, sb = b.tokens;
  for (auto& w : sb) if (auto f = typo.find(w); f != typo.end()) w = f->second;
  if (sa == sb) return reject_reason::none;
  size_t p = 0;
  while (p < sa.size() && p < sb.size() && sa[p] == sb[p]) ++p;
  size_t ea = sa.size(), eb = sb.size();
  while (ea > p && eb > p && sa[ea - 1] == sb[eb - 1]) --ea, --eb;
  std::vector<std::string> wa, wb;
  for (size_t i = p; i < ea; ++i) if (a.content[i]) wa.push_back(sa[i]);
  for (size_t i = p; i < eb; ++i) if (b.content[i]) wb.push_back(sb[i]);
  if (wa == wb) return reject_reason::none;  // only function words differ
  {  // "why isn't my printer working" = "why is my printer not working": only "not" moved
    auto drop_not = [](std::vector<std::string> v) {
      v.erase(std::remove(v.begin(), v.end(), std::string("not")), v.end());
      return v;
    };
    if (drop_not(wa) == drop_not(wb)) return reject_reason::none;
  }
  // Content words moved. Accept only a swap around a symmetric connector ("7 times 8", "let and
  // const", "== or ===") or the possessive form ("complexity of quicksort" / "quicksort's
  // complexity"); never across an order marker ("cups to grams", "12 divided by 4").
  auto has = [](const std::vector<std::string>& v, size_t from, size_t to, auto pred) {
    for (size_t i = from; i < to; ++i) if (pred(v[i])) return true;
    return false;
  };
  // A fronted (or moved-back) adverbial clause moves as one block: "Before he became emperor,
  // what did Napoleon do?" = "What did Napoleon do before he became emperor?".
  {
    static const std::set<std::string> openers = {"during", "before", "after", "when", "while", "if", "since",
                                                   "until", "because", "in", "on", "at", "for"};
    auto keep = [](const std::string& w) { return !stopwords().count(w) || is_marker(w) || openers.count(w); };
    std::vector<std::string> xa, xb;  // the windows without articles and other function words
    for (size_t i = p; i < ea; ++i) if (keep(sa[i])) xa.push_back(sa[i]);
    for (size_t i = p; i < eb; ++i) if (keep(sb[i])) xb.push_back(sb[i]);
    if (xa.size() == xb.size() && xa.size() > 1) {
      for (size_t k = 1; k < xa.size(); ++k) {
        if (!std::equal(xa.begin() + k, xa.end(), xb.begin()) ||
            !std::equal(xa.begin(), xa.begin() + k, xb.begin() + (xa.size() - k)))
          continue;
        // xa = A B, xb = B A: one of the blocks must be an adverbial clause
        if (openers.count(xa[0]) || openers.count(xa[k])) return reject_reason::none;
      }
    }
  }
  if (has(sa, p, ea, is_marker) || has(sb, p, eb, is_marker)) return reject_reason::direction;
  auto symmetric = [](const std::string& w) {
    return w == "and" || w == "or" || w == "times" || w == "plus" || w == "vs" || w == "versus" ||
           w == "time" || w == "between" || w == "+" || w == "*";
  };
  if (has(sa, p, ea, symmetric) || has(sb, p, eb, symmetric)) return reject_reason::none;
  auto is_of = [](const std::string& w) { return w == "of"; };
  auto is_poss = [](const std::string& w) { return w == "'s"; };
  if ((has(sa, p, ea, is_of) && has(sb, p, eb, is_poss)) || (has(sb, p, eb, is_of) && has(sa, p, ea, is_poss)))
    return reject_reason::none;
  return reject_reason::direction;
}

// ---- embedders ----------------------------------------------------------------------------------

namespace {
uint64_t fnv1a(std::string_view s, uint64_t seed = 1469598103934665603ull) {
  uint64_t h = seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
void normalise(std::vector<float>& v) {
  double n = 0;
  for (float x : v) n += double(x) * x;
  n = std::sqrt(n);
  if (n > 0)
    for (float& x : v) x = static_cast<float>(x / n);
}
}  // namespace

std::vector<float> lexical_embedder::embed_now(std::string_view text) const {
  normalised_question q = normalise_question(text);
  std::vector<float> v(dim_, 0.0f);
  auto add = [&](std::string_view feature, float w) {
    uint64_t h = fnv1a(feature);
    v[h % dim_] += (h >> 63) ? w : -w;
  };
  std::vector<std::string> content;
  for (size_t i = 0; i < q.tokens.size(); ++i) if (q.content[i]) content.push_back(q.tokens[i]);
  for (auto& w : content) {
    add(w, 1.0f);
    std::string padded = "#" + w + "#";
    if (padded.size() >= 3) {
      float cw = 0.6f / static_cast<float>(padded.size() - 2);
      for (size_t i = 0; i + 3 <= padded.size(); ++i) add("3:" + padded.substr(i, 3), cw);
    }
  }
  for (size_t i = 0; i + 1 < content.size(); ++i) add("2:" + content[i] + " " + content[i + 1], 0.35f);
  normalise(v);
  return v;
}

boost::asio::awaitable<result<std::vector<float>>> lexical_embedder::embed(std::string_view text) {
  co_return embed_now(text);
}

boost::asio::awaitable<result<std::vector<float>>> function_embedder::embed(std::string_view text) {
  auto r = co_await f_(text);
  if (!r) co_return r;
  if (r->size() != dim_) co_return make_error(errc::internal, "embedder " + name_ + ": wrong dimension");
  normalise(*r);
  co_return r;
}

// ---- HNSW ---------------------------------------------------------------------------------------

struct semantic_index::scope_index {
  explicit scope_index(size_t dim) : space(dim), hnsw(&space, 64, 16, 100) {}
  hnswlib::InnerProductSpace space;
  hnswlib::HierarchicalNSW<float> hnsw;
  std::vector<record> records;  // by label
  std::unordered_map<std::string, size_t> by_target;
};

semantic_index::semantic_index(size_t dim, size_t max_entries) : dim_(dim), max_entries_(max_entries) {}
semantic_index::~semantic_index() = default;

bool semantic_index::add(const std::string& scope, const std::vector<float>& v, record r) {
  if (v.size() != dim_) return false;
  std::lock_guard lk(mu_);
  auto& s = scopes_[scope];
  if (!s) s = std::make_unique<scope_index>(dim_);
  if (auto f = s->by_target.find(r.target); f != s->by_target.end()) {  // refresh
    s->records[f->second] = std::move(r);
    s->hnsw.addPoint(v.data(), f->second);
    return true;
  }
  if (total_ >= max_entries_) return false;
  size_t label = s->records.size();
  if (label >= s->hnsw.max_elements_) s->hnsw.resizeIndex(s->hnsw.max_elements_ * 2);
  s->hnsw.addPoint(v.data(), label);
  s->by_target[r.target] = label;
  s->records.push_back(std::move(r));
  ++total_;
  return true;
}

std::vector<semantic_index::candidate> semantic_index::search(const std::string& scope, const std::vector<float>& v,
                                                              size_t k, double threshold, int64_t now_ms) {
  std::vector<candidate> out;
  if (v.size() != dim_) return out;
  std::lock_guard lk(mu_);
  auto f = scopes_.find(scope);
  if (f == scopes_.end() || f->second->records.empty()) return out;
  auto& s = *f->second;
  s.hnsw.setEf(std::max<size_t>(k * 4, 32));
  auto pq = s.hnsw.searchKnn(v.data(), std::min(k, s.records.size()));
  while (!pq.empty()) {
    auto [dist, label] = pq.top();
    pq.pop();
    double sim = 1.0 - dist;
    const record& r = s.records[label];
    if (sim >= threshold && r.expires_ms > now_ms) out.push_back({r, sim});
  }
  std::sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.similarity > y.similarity; });
  return out;
}

size_t semantic_index::size() const {
  std::lock_guard lk(mu_);
  return total_;
}

std::string semantic_index::encode(const record& r, const std::vector<float>& v) {
  std::string s;
  s.append(reinterpret_cast<const char*>(&r.expires_ms), 8);
  uint32_t n = static_cast<uint32_t>(v.size());
  s.append(reinterpret_cast<const char*>(&n), 4);
  s.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  uint32_t tl = static_cast<uint32_t>(r.target.size());
  s.append(reinterpret_cast<const char*>(&tl), 4);
  s.append(r.target);
  s.append(r.text);
  return s;
}

bool semantic_index::decode(std::string_view b, record& r, std::vector<float>& v) {
  if (b.size() < 12) return false;
  std::memcpy(&r.expires_ms, b.data(), 8);
  uint32_t n = 0;
  std::memcpy(&n, b.data() + 8, 4);
  b.remove_prefix(12);
  if (n > 65536 || b.size() < size_t(n) * 4 + 4) return false;
  v.resize(n);
  std::memcpy(v.data(), b.data(), size_t(n) * 4);
  b.remove_prefix(size_t(n) * 4);
  uint32_t tl = 0;
  std::memcpy(&tl, b.data(), 4);
  b.remove_prefix(4);
  if (b.size() < tl) return false;
  r.target = std::string(b.substr(0, tl));
  r.text = std::string(b.substr(tl));
  return true;
}

}  // namespace fp::cache
