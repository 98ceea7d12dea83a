// make_provider: dispatch on the configured kind. The mock and local providers are written by
// other engineers in this directory; their factories are declared in their own headers.
#include <fmt/format.h>

#include "providers/providers.hpp"

#if __has_include("providers/mock.hpp")
#include "providers/mock.hpp"
#define FP_HAVE_MOCK 1
#endif
#if __has_include("providers/local.hpp") && defined(FP_HAVE_ENGINE)
#include "providers/local.hpp"
#define FP_HAVE_LOCAL 1
#endif

namespace fp::providers {

bool provider_kind_available(std::string_view kind) noexcept {
  if (kind == "openai" || kind == "anthropic") return true;
#ifdef FP_HAVE_MOCK
  if (kind == "mock") return true;
#endif
#ifdef FP_HAVE_LOCAL
  if (kind == "local") return true;
#endif
  return false;
}

result<std::unique_ptr<provider>> make_provider(const deployment_spec& s) {
  if (s.kind == "openai") return make_openai_provider(s);
  if (s.kind == "anthropic") return make_anthropic_provider(s);
#ifdef FP_HAVE_MOCK
  if (s.kind == "mock") return make_mock_provider(s);
#endif
#ifdef FP_HAVE_LOCAL
  if (s.kind == "local") return make_local_provider(s);
#endif
  return make_error(errc::invalid_request,
                    fmt::format("providers[{}].kind: unknown or unavailable kind '{}' (openai, anthropic, mock, local)",
                                s.name, s.kind));
}

}  // namespace fp::providers
