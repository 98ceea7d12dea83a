#include "metrics/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

namespace fp::metrics {

void gauge::add(double d) noexcept {
  double cur = v_.load(std::memory_order_relaxed);
  while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

struct histogram::shard {
  explicit shard(size_t n) : buckets(new std::atomic<uint64_t>[n]) {
    for (size_t i = 0; i < n; ++i) buckets[i].store(0, std::memory_order_relaxed);
  }
  std::unique_ptr<std::atomic<uint64_t>[]> buckets;
  std::atomic<double> sum{0};
};

namespace {
// Small per-process thread numbers for shard indexes (threads that never observe take none).
size_t thread_number() noexcept {
  static std::atomic<size_t> next{0};
  thread_local const size_t n = next.fetch_add(1, std::memory_order_relaxed);
  return n;
}
}  // namespace

histogram::histogram(std::span<const double> upper_bounds)
    : bounds_(upper_bounds.begin(), upper_bounds.end()),
      shards_(new std::atomic<shard*>[max_shards]),
      shared_(std::make_unique<shard>(upper_bounds.size() + 1)) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i < max_shards; ++i) shards_[i].store(nullptr, std::memory_order_relaxed);
}

histogram::~histogram() {
  for (size_t i = 0; i < max_shards; ++i) delete shards_[i].load(std::memory_order_relaxed);
}

histogram::shard* histogram::own_shard() noexcept {
  const size_t t = thread_number();
  if (t >= max_shards) return nullptr;
  shard* s = shards_[t].load(std::memory_order_acquire);
  if (!s) {
    s = new (std::nothrow) shard(bounds_.size() + 1);
    if (s) shards_[t].store(s, std::memory_order_release);  // only this thread writes slot t
  }
  return s;
}

void histogram::observe(double v) noexcept {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  if (shard* s = own_shard()) {  // the only writer of its shard: plain load + store
    auto& b = s->buckets[i];
    b.store(b.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    s->sum.store(s->sum.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    return;
  }
  shared_->buckets[i].fetch_add(1, std::memory_order_relaxed);
  double cur = shared_->sum.load(std::memory_order_relaxed);
  while (!shared_->sum.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

uint64_t histogram::bucket(size_t i) const noexcept {
  uint64_t n = shared_->buckets[i].load(std::memory_order_relaxed);
  for (size_t t = 0; t < max_shards; ++t)
    if (const shard* s = shards_[t].load(std::memory_order_acquire)) n += s->buckets[i].load(std::memory_order_relaxed);
  return n;
}

uint64_t histogram::count() const noexcept {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += bucket(i);
  return n;
}

double histogram::sum() const noexcept {
  double v = shared_->sum.load(std::memory_order_relaxed);
  for (size_t t = 0; t < max_shards; ++t)
    if (const shard* s = shards_[t].load(std::memory_order_acquire)) v += s->sum.load(std::memory_order_relaxed);
  return v;
}

double histogram::quantile(double q) const noexcept {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += bucket(i);
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();
  double rank = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    uint64_t b = bucket(i);
    if (b > 0 && static_cast<double>(seen + b) >= rank) {
      if (i == bounds_.size()) return bounds_.empty() ? 0.0 : bounds_.back();
      double lo = i == 0 ? 0.0 : bounds_[i - 1];
      double hi = bounds_[i];
      double frac = (rank - static_cast<double>(seen)) / static_cast<double>(b);
      return lo + (hi - lo) * std::clamp(frac, 0.0, 1.0);
    }
    seen += b;
  }
  return bounds_.empty() ? 0.0 : bounds_.back();
}

namespace {

enum class kind { counter, gauge, histogram };

struct family {
  kind k;
  std::string help;
  // Children keyed by their rendered label set ("{a=\"b\"}" or "").
  std::map<std::string, std::unique_ptr<counter>> counters;
  std::map<std::string, std::unique_ptr<gauge>> gauges;
  std::map<std::string, std::unique_ptr<histogram>> histograms;
};

struct registry {
  std::mutex mu;
  std::map<std::string, family, std::less<>> families;
};

registry& reg() {
  static registry* r = new registry();  // never destroyed: metrics may be touched during exit
  return *r;
}

void escape_into(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

std::string render_labels(const labels& l) {
  if (l.empty()) return {};
  std::string s = "{";
  for (size_t i = 0; i < l.size(); ++i) {
    if (i) s += ',';
    s += l[i].first;
    s += "=\"";
    escape_into(s, l[i].second);
    s += '"';
  }
  s += '}';
  return s;
}

family& get_family(registry& r, std::string_view name, std::string_view help, kind k) {
  auto it = r.families.find(name);
  if (it == r.families.end()) {
    it = r.families.emplace(std::string(name), family{k, std::string(help), {}, {}, {}}).first;
  }
  return it->second;
}

// Inserts an extra label (le="...") into a rendered label set.
std::string with_le(const std::string& ls, std::string_view le) {
  if (ls.empty()) return fmt::format("{{le=\"{}\"}}", le);
  return fmt::format("{},le=\"{}\"}}", std::string_view(ls).substr(0, ls.size() - 1), le);
}

std::string fmt_double(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

}  // namespace

counter& get_counter(std::string_view name, std::string_view help, const labels& l) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  auto& f = get_family(r, name, help, kind::counter);
  auto& p = f.counters[render_labels(l)];
  if (!p) p = std::make_unique<counter>();
  return *p;
}

gauge& get_gauge(std::string_view name, std::string_view help, const labels& l) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  auto& f = get_family(r, name, help, kind::gauge);
  auto& p = f.gauges[render_labels(l)];
  if (!p) p = std::make_unique<gauge>();
  return *p;
}

std::span<const double> latency_buckets_seconds() {
  static const double b[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                             50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0, 30.0, 60.0};
  return b;
}

histogram& get_histogram(std::string_view name, std::string_view help, const labels& l,
                         std::span<const double> buckets) {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  auto& f = get_family(r, name, help, kind::histogram);
  auto& p = f.histograms[render_labels(l)];
  if (!p) p = std::make_unique<histogram>(buckets);
  return *p;
}

std::string render_prometheus() {
  auto& r = reg();
  std::lock_guard lk(r.mu);
  std::string out;
  out.reserve(4096);
  for (auto& [name, f] : r.families) {
    const char* type = f.k == kind::counter ? "counter" : f.k == kind::gauge ? "gauge" : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type);
    for (auto& [ls, c] : f.counters) out += fmt::format("{}{} {}\n", name, ls, c->value());
    for (auto& [ls, g] : f.gauges) out += fmt::format("{}{} {}\n", name, ls, fmt_double(g->value()));
    for (auto& [ls, h] : f.histograms) {
      uint64_t cum = 0;
      auto bounds = h->bounds();
      for (size_t i = 0; i < bounds.size(); ++i) {
        cum += h->bucket(i);
        out += fmt::format("{}_bucket{} {}\n", name, with_le(ls, fmt_double(bounds[i])), cum);
      }
      cum += h->bucket(bounds.size());
      out += fmt::format("{}_bucket{} {}\n", name, with_le(ls, "+Inf"), cum);
      out += fmt::format("{}_sum{} {}\n", name, ls, fmt_double(h->sum()));
      out += fmt::format("{}_count{} {}\n", name, ls, cum);  // = the +Inf bucket, by construction
    }
  }
  return out;
}

}  // namespace fp::metrics
