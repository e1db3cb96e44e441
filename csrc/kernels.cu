// CUDA kernels: masked float64 pooling and in-place injection.
//
// Pooling is deterministic without atomics: every partial sum has one owner and
// is added in a fixed order, and the launch shape depends only on the tensor
// shapes (not on the GPU model), so the same inputs give the same bits anywhere.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "kernels.h"

namespace mdf_guard {
namespace {

constexpr int kWarps = 8;             // warps per pooling block; they split the tokens
constexpr int kUnroll = 4;            // loads in flight per thread
constexpr int64_t kTargetBlocks = 1024;  // enough to fill an H100/H200 several times over

// VEC consecutive elements loaded or stored as one 16-byte (or smaller) access.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

// Grid: x = (row b, column tile), y = token split. Block: 32 lanes along H (VEC
// columns each, coalesced) x kWarps warps along tokens. Writes the float64 sum of
// the split's masked tokens to partial[b, split, h].
template <typename T, int VEC>
__global__ void __launch_bounds__(32 * kWarps)
pool_partial_kernel(const T* __restrict__ hidden, const bool* __restrict__ mask,
                    int64_t T_len, int64_t H, int64_t sB, int64_t sT, int64_t tiles,
                    int64_t t_per_split, double* __restrict__ partial) {
  const int lane = threadIdx.x, warp = threadIdx.y;
  const int64_t b = blockIdx.x / tiles;
  const int64_t col0 = (blockIdx.x % tiles) * 32 * VEC;
  const int64_t h0 = col0 + lane * VEC;
  const bool active = h0 < H;  // H % VEC == 0 whenever VEC > 1
  const int64_t t_begin = blockIdx.y * t_per_split;
  const int64_t t_end = min(T_len, t_begin + t_per_split);
  const bool* mrow = mask + b * T_len;
  const T* hrow = hidden + b * sB + h0;

  double acc[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) acc[i] = 0.0;

  // Warp w takes tokens w, w + kWarps, ... in ascending order; kUnroll of them
  // are loaded before any is added so that several loads are in flight.
  for (int64_t t = t_begin + warp; t < t_end; t += kWarps * kUnroll) {
    Pack<T, VEC> p[kUnroll];
    bool take[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t tt = t + u * kWarps;
      take[u] = active && tt < t_end && mrow[tt];
      if (take[u]) p[u] = *reinterpret_cast<const Pack<T, VEC>*>(hrow + tt * sT);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (!take[u]) continue;
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[i] += static_cast<double>(static_cast<float>(p[u].v[i]));
    }
  }

  // Combine the warps in warp order (fixed, so deterministic).
  __shared__ double red[kWarps][32 * VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) red[warp][lane * VEC + i] = acc[i];
  __syncthreads();
  double* out = partial + (b * gridDim.y + blockIdx.y) * H;
  for (int c = warp * 32 + lane; c < 32 * VEC; c += 32 * kWarps) {
    if (col0 + c >= H) break;
    double s = 0.0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += red[w][c];
    out[col0 + c] = s;
  }
}

// One thread per column: row sums from the splits, then the row means added to
// sums/sumsq in row order.
__global__ void pool_finish_kernel(const double* __restrict__ partial,
                                   const int64_t* __restrict__ counts, int64_t B, int64_t S,
                                   int64_t H, double* __restrict__ sums,
                                   double* __restrict__ sumsq) {
  const int64_t h = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (h >= H) return;
  double s1 = sums[h], s2 = sumsq[h];
  for (int64_t b = 0; b < B; ++b) {
    const int64_t c = counts[b];
    if (c == 0) continue;
    double row = 0.0;
    for (int64_t s = 0; s < S; ++s) row += partial[(b * S + s) * H + h];
    const double r = row / static_cast<double>(c);
    s1 += r;
    s2 += r * r;
  }
  sums[h] = s1;
  sumsq[h] = s2;
}

// Grid-stride over token rows (y), one VEC-wide column group per thread (x).
// float add and one rounding to T: bit-identical to torch's `hidden[mask] += delta`.
template <typename T, int VEC>
__global__ void inject_kernel(T* __restrict__ hidden, const bool* __restrict__ mask,
                              const T* __restrict__ delta, int64_t rows, int64_t T_len,
                              int64_t H, int64_t sB, int64_t sT) {
  const int64_t h0 = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * VEC;
  if (h0 >= H) return;
  const Pack<T, VEC> d = *reinterpret_cast<const Pack<T, VEC>*>(delta + h0);
  float df[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) df[i] = static_cast<float>(d.v[i]);
  for (int64_t r = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    if (mask != nullptr && !mask[r]) continue;
    const int64_t b = r / T_len, t = r - b * T_len;
    auto* p = reinterpret_cast<Pack<T, VEC>*>(hidden + b * sB + t * sT + h0);
    Pack<T, VEC> x = *p;
#pragma unroll
    for (int i = 0; i < VEC; ++i) x.v[i] = static_cast<T>(static_cast<float>(x.v[i]) + df[i]);
    *p = x;
  }
}

// 16-byte accesses need H, the used strides and the base pointer aligned to VEC.
template <typename T>
bool can_vectorise(const at::Tensor& hidden, int vec) {
  const auto ok = [&](int64_t dim) { return hidden.size(dim) <= 1 || hidden.stride(dim) % vec == 0; };
  return hidden.size(2) % vec == 0 && ok(0) && ok(1) &&
         reinterpret_cast<uintptr_t>(hidden.data_ptr()) % (sizeof(T) * vec) == 0;
}

// Tokens per split of a row: split only as far as needed to fill the GPU, keeping at
// least one full unrolled sweep of tokens per block. A function of the shape and dtype
// only (not of the GPU, nor of the pointer alignment that picks VEC), since the split
// decides the order of the float64 additions.
int64_t tokens_per_split(int64_t B, int64_t T_len, int64_t H, int64_t elem_size) {
  const int64_t cols = 32 * (16 / elem_size);
  const int64_t tiles = (H + cols - 1) / cols;
  const int64_t by_size = (T_len + kWarps * kUnroll - 1) / (kWarps * kUnroll);
  const int64_t by_grid = (kTargetBlocks + B * tiles - 1) / (B * tiles);
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>({by_size, by_grid, 65535}));
  return (T_len + splits - 1) / splits;
}

template <typename T, int VEC>
void launch_pool(const at::Tensor& hidden, const bool* mask, const at::Tensor& counts,
                 at::Tensor& sums, at::Tensor& sumsq, cudaStream_t stream) {
  const int64_t B = hidden.size(0), T_len = hidden.size(1), H = hidden.size(2);
  const int64_t tiles = (H + 32 * VEC - 1) / (32 * VEC);
  const int64_t t_per_split = tokens_per_split(B, T_len, H, sizeof(T));
  const int64_t splits = (T_len + t_per_split - 1) / t_per_split;
  at::Tensor partial = at::empty({B, splits, H}, hidden.options().dtype(at::kDouble));

  const dim3 grid(static_cast<unsigned>(B * tiles), static_cast<unsigned>(splits));
  const dim3 block(32, kWarps);
  pool_partial_kernel<T, VEC><<<grid, block, 0, stream>>>(
      hidden.data_ptr<T>(), mask, T_len, H, hidden.stride(0), hidden.stride(1), tiles,
      t_per_split, partial.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int threads = 256;
  pool_finish_kernel<<<static_cast<unsigned>((H + threads - 1) / threads), threads, 0, stream>>>(
      partial.data_ptr<double>(), counts.data_ptr<int64_t>(), B, splits, H,
      sums.data_ptr<double>(), sumsq.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int VEC>
void launch_inject(at::Tensor& hidden, const bool* mask, const at::Tensor& delta,
                   cudaStream_t stream) {
  const int64_t B = hidden.size(0), T_len = hidden.size(1), H = hidden.size(2);
  const int64_t rows = B * T_len, groups = H / VEC;
  // Narrow rows (small H) get several rows per block so that no lanes idle.
  const int bx = static_cast<int>(std::min<int64_t>(256, (groups + 31) / 32 * 32));
  const int by = 256 / bx;
  const dim3 block(bx, by);
  const dim3 grid(static_cast<unsigned>((groups + bx - 1) / bx),
                  static_cast<unsigned>(std::min<int64_t>((rows + by - 1) / by, 65535)));
  inject_kernel<T, VEC><<<grid, block, 0, stream>>>(hidden.data_ptr<T>(), mask,
                                                     delta.data_ptr<T>(), rows, T_len, H,
                                                     hidden.stride(0), hidden.stride(1));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void pool_dispatch(const at::Tensor& hidden, const bool* mask, const at::Tensor& counts,
                   at::Tensor& sums, at::Tensor& sumsq, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  if (can_vectorise<T>(hidden, kVec))
    launch_pool<T, kVec>(hidden, mask, counts, sums, sumsq, stream);
  else
    launch_pool<T, 1>(hidden, mask, counts, sums, sumsq, stream);
}

template <typename T>
void inject_dispatch(at::Tensor& hidden, const bool* mask, const at::Tensor& delta,
                     cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool delta_aligned = reinterpret_cast<uintptr_t>(delta.data_ptr()) % 16 == 0;
  if (can_vectorise<T>(hidden, kVec) && delta_aligned)
    launch_inject<T, kVec>(hidden, mask, delta, stream);
  else
    launch_inject<T, 1>(hidden, mask, delta, stream);
}

}  // namespace

int64_t pool_rows_cuda(const at::Tensor& hidden, const at::Tensor& mask_in, at::Tensor& sums,
                       at::Tensor& sumsq) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  const at::Tensor mask = mask_in.contiguous();
  const at::Tensor counts = mask.sum(1);         // int64 [B]
  const at::Tensor n_rows = counts.gt(0).sum();  // read back only at the end
  if (hidden.numel() > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const bool* m = mask.data_ptr<bool>();
    switch (hidden.scalar_type()) {
      case at::kFloat: pool_dispatch<float>(hidden, m, counts, sums, sumsq, stream); break;
      case at::kBFloat16: pool_dispatch<c10::BFloat16>(hidden, m, counts, sums, sumsq, stream); break;
      case at::kHalf: pool_dispatch<c10::Half>(hidden, m, counts, sums, sumsq, stream); break;
      default: TORCH_CHECK(false, "mdf_guard._kernels: unsupported dtype ", hidden.scalar_type());
    }
  }
  return n_rows.item<int64_t>();
}

void inject_cuda(at::Tensor& hidden, const std::optional<at::Tensor>& mask_in,
                 const at::Tensor& delta) {
  if (hidden.numel() == 0) return;
  const c10::cuda::CUDAGuard guard(hidden.device());
  at::Tensor mask;
  if (mask_in.has_value()) mask = mask_in->contiguous();
  const bool* m = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  switch (hidden.scalar_type()) {
    case at::kFloat: inject_dispatch<float>(hidden, m, delta, stream); break;
    case at::kBFloat16: inject_dispatch<c10::BFloat16>(hidden, m, delta, stream); break;
    case at::kHalf: inject_dispatch<c10::Half>(hidden, m, delta, stream); break;
    default: TORCH_CHECK(false, "mdf_guard._kernels: unsupported dtype ", hidden.scalar_type());
  }
}

}  // namespace mdf_guard
