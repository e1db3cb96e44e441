// Streaming masked pooling on CPU: one pass over the selected activations,
// float64 accumulation, results independent of the thread count.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu_util.h"
#include "kernels.h"

namespace mdf_guard {
namespace {

// acc[i] += x_0[i]; acc[i] += x_1[i]; ... for K tokens at once: the additions happen in
// the same order as one token at a time (so the same bits), but acc makes one trip
// through the cache instead of K. The only loop that touches activations.
template <int K, typename T>
MDF_GUARD_INLINE void add_tokens(double* __restrict__ acc, const T* __restrict__ x0,
                                 const T* __restrict__ x1, const T* __restrict__ x2,
                                 const T* __restrict__ x3, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double a = acc[i] + static_cast<double>(to_float(x0[i]));
    if (K > 1) a += static_cast<double>(to_float(x1[i]));
    if (K > 2) a += static_cast<double>(to_float(x2[i]));
    if (K > 3) a += static_cast<double>(to_float(x3[i]));
    acc[i] = a;
  }
}
// One plain function per dtype: target_clones does not apply to templates.
#define MDF_GUARD_ADD_TOKENS(T, name)                                               \
  MDF_GUARD_CLONES void name(double* acc, const T* const* x, int k, int64_t n) {    \
    switch (k) {                                                                    \
      case 4: return add_tokens<4>(acc, x[0], x[1], x[2], x[3], n);                 \
      case 3: return add_tokens<3>(acc, x[0], x[1], x[2], x[2], n);                 \
      case 2: return add_tokens<2>(acc, x[0], x[1], x[1], x[1], n);                 \
      default: return add_tokens<1>(acc, x[0], x[0], x[0], x[0], n);                \
    }                                                                               \
  }
MDF_GUARD_ADD_TOKENS(float, add_tokens_f32)
MDF_GUARD_ADD_TOKENS(c10::BFloat16, add_tokens_bf16)
MDF_GUARD_ADD_TOKENS(c10::Half, add_tokens_f16_generic)
#undef MDF_GUARD_ADD_TOKENS

#if MDF_GUARD_X86
// add_tokens for float16 with F16C, 8 columns at a time; same order of additions.
MDF_GUARD_F16C void add_tokens_f16c(double* acc, const c10::Half* const* x, int k, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256d lo = _mm256_loadu_pd(acc + i), hi = _mm256_loadu_pd(acc + i + 4);
    for (int j = 0; j < k; ++j) {
      const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[j] + i)));
      lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
      hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    }
    _mm256_storeu_pd(acc + i, lo);
    _mm256_storeu_pd(acc + i + 4, hi);
  }
  if (i < n) {
    const c10::Half* rest[4] = {};
    for (int j = 0; j < k; ++j) rest[j] = x[j] + i;
    add_tokens_f16_generic(acc + i, rest, k, n - i);
  }
}
#endif

inline void add_tokens_any(double* acc, const float* const* x, int k, int64_t n) {
  add_tokens_f32(acc, x, k, n);
}
inline void add_tokens_any(double* acc, const c10::BFloat16* const* x, int k, int64_t n) {
  add_tokens_bf16(acc, x, k, n);
}
inline void add_tokens_any(double* acc, const c10::Half* const* x, int k, int64_t n) {
#if MDF_GUARD_X86
  if (cpu_has_f16c()) return add_tokens_f16c(acc, x, k, n);
#endif
  add_tokens_f16_generic(acc, x, k, n);
}

constexpr int kTokensPerPass = 4;
// Columns per task at least this wide: each token is then read as >= 2 KiB of
// contiguous memory, which the hardware prefetcher follows (1 KiB pieces at an 8 KiB
// stride ran at half the speed).
constexpr int64_t kMinChunk = 1024;
// Roughly the element count below which a thread hand-off costs more than it saves.
constexpr int64_t kMinWorkPerThread = 1 << 16;

template <typename T>
int64_t pool_rows_impl(const at::Tensor& hidden, const at::Tensor& mask_in,
                       at::Tensor& sums, at::Tensor& sumsq) {
  const int64_t B = hidden.size(0), T_len = hidden.size(1), H = hidden.size(2);
  const int64_t sB = hidden.stride(0), sT = hidden.stride(1);
  const at::Tensor mask = mask_in.contiguous();
  const bool* m = mask.data_ptr<bool>();

  // Compact the masked token positions per row (B*T bytes, cheap) so that the
  // workers read only selected activations: last-token pooling reads B rows.
  std::vector<int64_t> rows, offsets, pos;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = static_cast<int64_t>(pos.size());
    for (int64_t t = 0; t < T_len; ++t)
      if (m[b * T_len + t]) pos.push_back(t);
    if (static_cast<int64_t>(pos.size()) > start) {
      rows.push_back(b);
      offsets.push_back(start);
    }
  }
  offsets.push_back(static_cast<int64_t>(pos.size()));
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n == 0 || H == 0) return n;

  // means[i, :] = r_{rows[i]}. A task is (row, column chunk). Every float64 result
  // is produced by one task adding the row's tokens in ascending order, so the numbers
  // do not depend on the thread count or on the chunking (which may therefore adapt).
  std::vector<double> means(static_cast<size_t>(n * H), 0.0);
  const int64_t want = (2 * at::get_num_threads() + n - 1) / n;  // chunks per row
  const int64_t n_chunks = std::max<int64_t>(1, std::min(want, H / kMinChunk));
  const int64_t chunk = ((H + n_chunks - 1) / n_chunks + 15) / 16 * 16;
  const int64_t work_per_task = std::max<int64_t>(1, static_cast<int64_t>(pos.size()) / n * chunk);
  const T* base = hidden.data_ptr<T>();

  at::parallel_for(0, n * n_chunks, std::max<int64_t>(1, kMinWorkPerThread / work_per_task),
                   [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / n_chunks;
      const int64_t h0 = (task % n_chunks) * chunk;
      if (h0 >= H) continue;
      const int64_t width = std::min(chunk, H - h0);
      double* acc = means.data() + i * H + h0;
      const T* row = base + rows[i] * sB + h0;
      const T* x[kTokensPerPass];
      for (int64_t k = offsets[i]; k < offsets[i + 1]; k += kTokensPerPass) {
        const int m = static_cast<int>(std::min<int64_t>(kTokensPerPass, offsets[i + 1] - k));
        for (int j = 0; j < m; ++j) x[j] = row + pos[k + j] * sT;
        add_tokens_any(acc, x, m, width);
      }
      // Divide (not multiply by a reciprocal): the same rounding as the torch reference.
      const double count = static_cast<double>(offsets[i + 1] - offsets[i]);
      for (int64_t h = 0; h < width; ++h) acc[h] /= count;
    }
  });

  // Add the row means in row order; threads own disjoint column ranges.
  double* s = sums.data_ptr<double>();
  double* q = sumsq.data_ptr<double>();
  at::parallel_for(0, H, std::max<int64_t>(256, kMinWorkPerThread / n),
                   [&](int64_t begin, int64_t end) {
    for (int64_t i = 0; i < n; ++i) {
      const double* r = means.data() + i * H;
      for (int64_t h = begin; h < end; ++h) {
        s[h] += r[h];
        q[h] += r[h] * r[h];
      }
    }
  });
  return n;
}

}  // namespace

int64_t pool_rows_cpu(const at::Tensor& hidden, const at::Tensor& mask,
                      at::Tensor& sums, at::Tensor& sumsq) {
  switch (hidden.scalar_type()) {
    case at::kFloat: return pool_rows_impl<float>(hidden, mask, sums, sumsq);
    case at::kBFloat16: return pool_rows_impl<c10::BFloat16>(hidden, mask, sums, sumsq);
    case at::kHalf: return pool_rows_impl<c10::Half>(hidden, mask, sums, sumsq);
    default: TORCH_CHECK(false, "mdf_guard._kernels: unsupported dtype ", hidden.scalar_type());
  }
}

}  // namespace mdf_guard
