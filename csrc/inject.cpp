// In-place injection on CPU: hidden[b,t,:] += delta at masked positions.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu_util.h"
#include "kernels.h"

namespace mdf_guard {
namespace {

// One add in float and one rounding back to T: exactly what torch's add does for
// bf16/fp16 (float opmath) and fp32, so the result is bit-identical to
// `hidden[mask] += delta`.
template <typename T>
MDF_GUARD_INLINE void add_row(T* h, const T* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = from_float<T>(to_float(h[i]) + to_float(d[i]));
}
MDF_GUARD_CLONES void add_row_f32(float* h, const float* d, int64_t n) { add_row(h, d, n); }
MDF_GUARD_CLONES void add_row_bf16(c10::BFloat16* h, const c10::BFloat16* d, int64_t n) { add_row(h, d, n); }
MDF_GUARD_CLONES void add_row_f16(c10::Half* h, const c10::Half* d, int64_t n) { add_row(h, d, n); }

#if MDF_GUARD_X86
// float16 with F16C, 8 at a time: exact widening, float add, one RNE rounding.
MDF_GUARD_F16C void add_row_f16c(c10::Half* h, const c10::Half* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    auto* p = reinterpret_cast<__m128i*>(h + i);
    const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(p));
    const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i)));
    _mm_storeu_si128(p, _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  if (i < n) add_row_f16(h + i, d + i, n - i);
}
#endif

inline void add_row_any(float* h, const float* d, int64_t n) { add_row_f32(h, d, n); }
inline void add_row_any(c10::BFloat16* h, const c10::BFloat16* d, int64_t n) { add_row_bf16(h, d, n); }
inline void add_row_any(c10::Half* h, const c10::Half* d, int64_t n) {
#if MDF_GUARD_X86
  if (cpu_has_f16c()) return add_row_f16c(h, d, n);
#endif
  add_row_f16(h, d, n);
}

template <typename T>
void inject_impl(at::Tensor& hidden, const std::optional<at::Tensor>& mask_in,
                 const at::Tensor& delta) {
  const int64_t B = hidden.size(0), T_len = hidden.size(1), H = hidden.size(2);
  const int64_t sB = hidden.stride(0), sT = hidden.stride(1);
  const T* d = delta.data_ptr<T>();
  T* base = hidden.data_ptr<T>();
  const auto add_at = [&](int64_t p) {
    add_row_any(base + (p / T_len) * sB + (p % T_len) * sT, d, H);
  };
  // Rows are independent, so any split between threads gives the same bits. The
  // grain counts rows that are actually written (a last-token mask writes B rows).
  const int64_t grain_rows = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(H, 1));
  if (!mask_in.has_value()) {
    at::parallel_for(0, B * T_len, grain_rows, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) add_at(p);
    });
    return;
  }
  const at::Tensor mask = mask_in->contiguous();
  const bool* m = mask.data_ptr<bool>();
  std::vector<int64_t> selected;
  for (int64_t p = 0; p < B * T_len; ++p)
    if (m[p]) selected.push_back(p);
  at::parallel_for(0, static_cast<int64_t>(selected.size()), grain_rows,
                   [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) add_at(selected[k]);
  });
}

}  // namespace

void inject_cpu(at::Tensor& hidden, const std::optional<at::Tensor>& mask,
                const at::Tensor& delta) {
  if (hidden.numel() == 0) return;
  switch (hidden.scalar_type()) {
    case at::kFloat: return inject_impl<float>(hidden, mask, delta);
    case at::kBFloat16: return inject_impl<c10::BFloat16>(hidden, mask, delta);
    case at::kHalf: return inject_impl<c10::Half>(hidden, mask, delta);
    default: TORCH_CHECK(false, "mdf_guard._kernels: unsupported dtype ", hidden.scalar_type());
  }
}

}  // namespace mdf_guard
