// Shared declarations of the mdf-guard kernels (see csrc/README.md).
//
// Callers (bindings.cpp) have already checked shapes, dtypes and devices; these
// functions assume: hidden [B,T,H] bf16/fp16/fp32 with stride(2) == 1, mask [B,T]
// bool on the same device, sums/sumsq/delta contiguous [H].
#pragma once

#include <ATen/core/Tensor.h>  // not ATen.h: it triples the compile time

#include <optional>

namespace mdf_guard {

// sums += r_b, sumsq += r_b^2 for every row b with >= 1 masked token, where r_b is
// the float64 mean of the masked activations of row b. Returns that row count.
int64_t pool_rows_cpu(const at::Tensor& hidden, const at::Tensor& mask,
                      at::Tensor& sums, at::Tensor& sumsq);

// hidden[b,t,:] += delta where mask[b,t] (everywhere without a mask), in
// hidden's dtype with a single rounding, like torch's own add.
void inject_cpu(at::Tensor& hidden, const std::optional<at::Tensor>& mask,
                const at::Tensor& delta);

#ifdef MDF_GUARD_WITH_CUDA
int64_t pool_rows_cuda(const at::Tensor& hidden, const at::Tensor& mask,
                       at::Tensor& sums, at::Tensor& sumsq);
void inject_cuda(at::Tensor& hidden, const std::optional<at::Tensor>& mask,
                 const at::Tensor& delta);
#endif

}  // namespace mdf_guard
