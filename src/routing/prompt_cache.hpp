// Provider prompt caching helpers and the prefix key for replica affinity.
// Included through routing/routing.hpp.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace fp::routing {

struct prompt_cache_config {
  bool anthropic_cache_control = false;  // add cache_control breakpoints for Anthropic upstreams
  int64_t min_chars = 4096;  // only blocks at least this long (~1024 tokens, Anthropic's minimum)
};

// Adds `cache_control: {"type":"ephemeral"}` to the last tool and to the (last block of the)
// system prompt of an Anthropic Messages request body when they are long enough, keeping
// Anthropic's limit of 4 breakpoints. Returns how many breakpoints were added.
int add_anthropic_cache_control(boost::json::object& anthropic_body, const prompt_cache_config& c);
// The same on serialised JSON; returns the input unchanged when nothing was added or it does not
// parse.
std::string add_anthropic_cache_control(std::string_view anthropic_body_json,
                                        const prompt_cache_config& c, int* added = nullptr);

// Hash of the stable prefix of an OpenAI-shaped chat body: tools, then messages in order, cut
// after `prefix_bytes` bytes of content. Returns 0 (no affinity) when the prompt is shorter than
// `min_bytes`: short prompts gain nothing from a warm KV cache.
uint64_t prefix_key(const boost::json::object& openai_body, size_t prefix_bytes = 2048,
                    size_t min_bytes = 512);

}  // namespace fp::routing
