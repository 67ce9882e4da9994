// Portable C++ forward pass: the CPU platform's implementation of every
// feature, with float32 math. Single-threaded and simple by design: it serves
// models jitted on machines without a GPU and lets CI exercise the FFI layer.
#pragma once

#include "kernels/params.h"

namespace jax_fa3 {

void AttentionForwardCpu(const AttentionParams& params);

}  // namespace jax_fa3
