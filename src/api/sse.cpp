// Incremental Server-Sent-Events parser (WHATWG EventSource parsing rules, minus id/retry use).
#include "api/api.hpp"

#include <cstring>

namespace fp::api {

// Copies the unread rest of a feed_view()'s bytes into buf_ (the caller may drop them after).
void sse_parser::absorb() {
  if (!ext_on_) return;
  buf_.assign(ext_.substr(pos_));
  pos_ = 0;
  ext_ = {};
  ext_on_ = false;
}

bool sse_parser::feed_view(std::string_view bytes) {
  if (failed_) return false;
  if (ext_on_ || pos_ < buf_.size() || !bom_checked_) return feed(bytes);
  // Nothing buffered: read the caller's bytes in place (the same size limit as feed()).
  if (bytes.size() + cur_.data.size() + cur_.event.size() > max_event_bytes_) {
    failed_ = true;
    return false;
  }
  buf_.clear();
  pos_ = 0;
  ext_ = bytes;
  ext_on_ = true;
  return true;
}

bool sse_parser::feed(std::string_view bytes) {
  if (failed_) return false;
  absorb();
  // Compact: drop consumed bytes before appending, so the buffer never grows without bound.
  if (pos_ > 0 && (pos_ >= buf_.size() || pos_ > 4096)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
  if (!bom_checked_ && buf_.size() - pos_ >= 3) {
    if (buf_.compare(pos_, 3, "\xEF\xBB\xBF") == 0) pos_ += 3;
    bom_checked_ = true;
  }
  if (buf_.size() - pos_ + cur_.data.size() + cur_.event.size() > max_event_bytes_) {
    failed_ = true;
    return false;
  }
  return true;
}

bool sse_parser::next(sse_event& out) {
  if (failed_) return false;
  absorb();  // the line-by-line path works on buf_
  if (!bom_checked_) {
    // Fewer than 3 bytes seen: a partial BOM prefix must wait for more bytes.
    std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
    if (std::string_view("\xEF\xBB\xBF").substr(0, rest.size()) == rest) return false;
    bom_checked_ = true;
  }
  while (pos_ < buf_.size()) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (buf_[pos_] == '\n') {
        ++pos_;
        continue;
      }
    }
    // Find the end of the next line (memchr: vectorised, unlike a byte loop).
    const char* base = buf_.data();
    const char* nl = static_cast<const char*>(std::memchr(base + pos_, '\n', buf_.size() - pos_));
    const char* stop = nl ? nl : base + buf_.size();
    const char* cr = static_cast<const char*>(std::memchr(base + pos_, '\r', static_cast<size_t>(stop - (base + pos_))));
    if (cr) stop = cr;
    else if (!nl) return false;  // incomplete line
    size_t end = static_cast<size_t>(stop - base);
    std::string_view line(buf_.data() + pos_, end - pos_);
    if (buf_[end] == '\r') pending_cr_ = true;
    pos_ = end + 1;

    if (line.empty()) {
      // Dispatch.
      if (cur_has_data_) {
        // Swap, not move: both strings keep their buffers for the next events (no allocation).
        out.event.swap(cur_.event);
        out.data.swap(cur_.data);
        cur_.event.clear();
        cur_.data.clear();
        cur_has_data_ = false;
        return true;
      }
      cur_.event.clear();
      continue;
    }
    if (line[0] == ':') continue;  // comment
    std::string_view field = line, value;
    if (auto colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (cur_has_data_) cur_.data.push_back('\n');
      cur_.data.append(value);
      cur_has_data_ = true;
    } else if (field == "event") {
      cur_.event.assign(value);
    }
    // id, retry and unknown fields are ignored.
  }
  return false;
}

bool sse_parser::next(sse_event& storage, sse_event_view& out) {
  // Fast path: at the start of an event, a complete "data:<value>\n\n" with no '\r' in the line.
  if (!failed_ && bom_checked_ && !pending_cr_ && !cur_has_data_ && cur_.event.empty()) {
    std::string_view rest = ext_on_ ? ext_.substr(pos_) : std::string_view(buf_).substr(pos_);
    if (rest.size() > 6 && rest.starts_with("data:")) {
      const char* base = rest.data();
      const char* nl = static_cast<const char*>(std::memchr(base, '\n', rest.size()));
      if (nl && static_cast<size_t>(nl - base) + 1 < rest.size() && nl[1] == '\n' &&
          !std::memchr(base, '\r', static_cast<size_t>(nl - base))) {
        std::string_view value(base + 5, static_cast<size_t>(nl - base) - 5);
        if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
        out.event = {};
        out.data = value;
        pos_ += static_cast<size_t>(nl - base) + 2;
        return true;
      }
    }
  }
  if (!next(storage)) return false;
  out.event = storage.event;
  out.data = storage.data;
  return true;
}

void append_sse_data(std::string& out, std::string_view json) {
  out.reserve(out.size() + json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
}

}  // namespace fp::api
