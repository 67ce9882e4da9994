// Switches read from the environment at each call, so that tests and
// benchmarks can compare both settings in one process.
#pragma once

#include <cstdlib>
#include <cstring>

namespace jax_fa3 {

// Set, non-empty and not "0".
inline bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

}  // namespace jax_fa3
