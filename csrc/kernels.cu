// CUDA kernels: masked float64 pooling and in-place injection.
//
// Pooling is one kernel launch and deterministic without float atomics: every float64
// partial sum has one owner and is added in a fixed order; the work partition depends
// only on the shape and dtype (not on the GPU model, nor on the pointer alignment that
// picks vector or scalar loads) and on the mask, so the same inputs give the same bits
// on any GPU. The only atomics are integer tickets that elect which block does the
// (fixed-order) final reduction of a column tile.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "kernels.h"

namespace mdf_guard {
namespace {

// VEC consecutive elements loaded or stored as one 16-byte (or smaller) access.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

// ---------------------------------------------------------------------------------
// Pooling
//
// Work unit = one block = (row b, token chunk k, column tile c) of 64 columns; c varies
// fastest so that the blocks in flight read whole token rows. Inside a block, kLanes
// threads cover the tile's 64 columns of one token (16 bytes each: 8 bf16/fp16 or 4
// fp32 columns) and kTokenLanes such groups take the chunk's masked tokens: the block
// first compacts the chunk's mask into a list of positions (ascending) in shared
// memory, then token lane j sums the tokens of rank j, j + kTokenLanes, ... in that
// order, with kLoads 16-byte loads in flight per thread and no dependence on the mask
// in the load path. The lanes are combined in a fixed order and the tile's float64
// partial (64 doubles) and token count are written out. The last block of a column tile
// to finish (integer ticket) sums that tile's partials chunk by chunk and row by row,
// divides by the row counts, and adds the row means to sums/sumsq in row order; the
// last block of tile 0 also writes the number of non-empty rows.

constexpr int kThreads = 256;           // 8 warps; the mask compaction assumes it
constexpr int kTileCols = 64;           // columns per block
constexpr int kSeg = 4 * kThreads;      // mask positions compacted per pass
constexpr int64_t kWaveSMs = 128;       // rows are split into token chunks up to about one
                                        // wave of blocks on a 132-SM H100/H200 ...
constexpr int64_t kMinChunk = 128;      // ... but not below this many token positions
static_assert(kThreads / 32 * (kSeg / kThreads) == 32, "one warp scans the (pass, warp) counts");

template <typename T>
struct PoolLayout {
  static constexpr int kVec = 16 / sizeof(T);                 // columns per thread
  static constexpr int kLanes = kTileCols / kVec;             // threads per token
  static constexpr int kTokenLanes = kThreads / kLanes;       // tokens in flight per block
  // 16-byte loads in flight per thread, and blocks per SM that the registers allow. The
  // compiler converts all loaded values to float64 before adding them (to hide the
  // conversions' latency), so registers grow with kLoads * kVec.
  static constexpr int kLoads = sizeof(T) == 4 ? 8 : 4;
  static constexpr int kMinBlocks = sizeof(T) == 4 ? 4 : 3;
  static_assert(kTokenLanes % 4 == 0, "the lane reduction takes 4 groups");
};

struct PoolParams {
  int64_t B, T, H, sB, sT;
  int64_t tiles, chunks, chunk;  // column tiles; token chunks per row and their length
  const bool* mask;              // [B, T] contiguous
  double* partial;               // [units, 64]
  int* counts;                   // [units]
  int* tickets;                  // [tiles], zero on entry, left zero on exit
  double* sums;
  double* sumsq;
  int64_t* n_rows;               // written once, by the last block of tile 0
};

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

template <typename T, int VEC, bool kVector>
__device__ __forceinline__ void load_pack(Pack<T, VEC>& p, const T* ptr, int64_t h0, int64_t H) {
  if (kVector) {
    p = *reinterpret_cast<const Pack<T, VEC>*>(ptr);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) p.v[i] = h0 + i < H ? ptr[i] : T(0.0f);
  }
}

template <typename T, bool kVector>
__global__ void __launch_bounds__(kThreads, PoolLayout<T>::kMinBlocks)
pool_kernel(const T* __restrict__ hidden, const PoolParams p) {
  using Layout = PoolLayout<T>;
  constexpr int VEC = Layout::kVec, L = Layout::kLanes, J = Layout::kTokenLanes;
  constexpr int kLoads = Layout::kLoads;
  __shared__ int pos[kSeg];              // compacted masked positions of a segment
  __shared__ int seg_counts[32];         // masked positions per (pass, warp)
  __shared__ double red[J][kTileCols];   // per token lane; reused by the final reduction
  __shared__ double red4[4][kTileCols];
  __shared__ int row_counts[J];
  __shared__ bool last;

  const int tid = threadIdx.x, lane = tid % L, j = tid / L;
  const int warp = tid >> 5, wl = tid & 31;
  const int64_t unit = blockIdx.x;
  const int64_t c = unit % p.tiles, bk = unit / p.tiles;
  const int64_t k = bk % p.chunks, b = bk / p.chunks;
  const int64_t t_begin = k * p.chunk, t_end = imin(p.T, t_begin + p.chunk);
  const int64_t h0 = c * kTileCols + lane * VEC;
  const bool active = h0 < p.H;
  const T* hrow = hidden + b * p.sB + (active ? h0 : 0);
  const bool* mrow = p.mask + b * p.T;

  double acc[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) acc[i] = 0.0;
  int count = 0;

  for (int64_t seg = t_begin; seg < t_end; seg += kSeg) {
    // Compact this segment's masked positions, in ascending order, into pos[]. Thread
    // tid looks at positions q * kThreads + tid (q < 4): 32 (pass, warp) ballots, one
    // warp-wide scan of their counts.
    const int n_pos = static_cast<int>(imin(kSeg, t_end - seg));
    bool m[4];
    unsigned ballot[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int i = q * kThreads + tid;
      m[q] = i < n_pos && mrow[seg + i];
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) ballot[q] = __ballot_sync(0xffffffffu, m[q]);
    if (wl == 0) {
#pragma unroll
      for (int q = 0; q < 4; ++q) seg_counts[q * 8 + warp] = __popc(ballot[q]);
    }
    __syncthreads();
    const int v = seg_counts[wl];
    int incl = v;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const int o = __shfl_up_sync(0xffffffffu, incl, d);
      if (wl >= d) incl += o;
    }
    const int total = __shfl_sync(0xffffffffu, incl, 31);
    const int excl = incl - v;
    const unsigned below = (1u << wl) - 1u;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int off = __shfl_sync(0xffffffffu, excl, q * 8 + warp);
      if (m[q]) pos[off + __popc(ballot[q] & below)] = q * kThreads + tid;
    }
    __syncthreads();

    // Sum: token lane j takes ranks j, j + J, ... (ascending positions).
    const T* hseg = hrow + seg * p.sT;
#pragma unroll 1
    for (int r0 = j; r0 < total; r0 += J * kLoads) {
      Pack<T, VEC> x[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        const int r = r0 + u * J;
        if (active && r < total) load_pack<T, VEC, kVector>(x[u], hseg + pos[r] * p.sT, h0, p.H);
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        if (!(active && r0 + u * J < total)) continue;
#pragma unroll
        for (int i = 0; i < VEC; ++i) acc[i] += static_cast<double>(static_cast<float>(x[u].v[i]));
      }
    }
    count += total;
    __syncthreads();  // pos and seg_counts are rewritten by the next segment
  }

  // Combine the token lanes in a fixed order: 4 groups of J/4 lanes each in lane order,
  // then the 4 groups in order.
#pragma unroll
  for (int i = 0; i < VEC; ++i) red[j][lane * VEC + i] = acc[i];
  __syncthreads();
  {
    const int col = tid % kTileCols, g = tid / kTileCols;
    double s = 0.0;
#pragma unroll
    for (int jj = 0; jj < J / 4; ++jj) s += red[g * (J / 4) + jj][col];
    red4[g][col] = s;
  }
  __syncthreads();
  if (tid < kTileCols)
    p.partial[unit * kTileCols + tid] = ((red4[0][tid] + red4[1][tid]) + red4[2][tid]) + red4[3][tid];
  if (tid == 0) p.counts[unit] = count;

  // Ticket: the last block of this column tile to get here does the final reduction. The
  // barrier orders the block's writes before thread 0's acq_rel add (cumulative release),
  // and its acquire plus the next barrier orders the other blocks' partials before the
  // reads below: no separate fences.
  __syncthreads();
  if (tid == 0) {
    int before;
    asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;" : "=r"(before) : "l"(p.tickets + c) : "memory");
    last = before == static_cast<int>(p.B * p.chunks - 1);
  }
  __syncthreads();
  if (!last) return;

  // Final reduction of tile c, J rows per pass: thread (g, col) forms the means of rows
  // b0 + g, b0 + g + 4, ... (chunks added in order), then one thread per column adds them
  // to sums/sumsq in row order.
  constexpr int kRowsPerThread = J / 4;
  const int col = tid % kTileCols, g = tid / kTileCols;
  const int64_t h = c * kTileCols + col;
  double s1 = 0.0, s2 = 0.0;
  int64_t n_rows = 0;
  if (tid < kTileCols && h < p.H) {
    s1 = p.sums[h];
    s2 = p.sumsq[h];
  }
  for (int64_t b0 = 0; b0 < p.B; b0 += J) {
    double rs[kRowsPerThread];
    int rc[kRowsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      rs[i] = 0.0;
      rc[i] = 0;
    }
    for (int64_t kk = 0; kk < p.chunks; ++kk) {
      // All loads of a pass first, then the adds: loads interleaved with their adds ran
      // one L2 round trip at a time (10 us of tail at 64 rows). Rows past the end are
      // clamped to the last row and left out below.
      double part[kRowsPerThread];
      int cnt[kRowsPerThread];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        const int64_t u = (imin(b0 + g + 4 * i, p.B - 1) * p.chunks + kk) * p.tiles + c;
        part[i] = __ldcg(p.partial + u * kTileCols + col);
        cnt[i] = __ldcg(p.counts + u);
      }
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        rs[i] += part[i];
        rc[i] += cnt[i];
      }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int64_t row = b0 + g + 4 * i;
      if (row >= p.B) continue;
      const int local = g + 4 * i;
      red[local][col] = rc[i] > 0 ? rs[i] / static_cast<double>(rc[i]) : 0.0;
      if (col == 0) row_counts[local] = rc[i];
    }
    __syncthreads();
    if (tid < kTileCols) {
      const int n = static_cast<int>(imin(J, p.B - b0));
      for (int local = 0; local < n; ++local) {
        if (row_counts[local] == 0) continue;
        const double r = red[local][tid];
        s1 += r;
        s2 += r * r;
        ++n_rows;
      }
    }
    __syncthreads();
  }
  if (tid < kTileCols && h < p.H) {
    p.sums[h] = s1;
    p.sumsq[h] = s2;
  }
  if (tid == 0) {
    if (c == 0) {
      *p.n_rows = n_rows;
      __threadfence_system();
    }
    p.tickets[c] = 0;  // ready for the next launch on this stream
  }
}

// Tiles and token chunks: a function of the shape and dtype only (the chunking decides
// the order of the float64 additions, so it must not depend on the GPU or the alignment).
// Small problems are latency-bound: one wave of blocks, each with one or two rounds of
// loads, beats more, shorter blocks.
struct PoolPlan {
  int64_t tiles, chunks, chunk;
};

template <typename T>
PoolPlan pool_plan(int64_t B, int64_t T_len, int64_t H) {
  PoolPlan plan;
  plan.tiles = (H + kTileCols - 1) / kTileCols;
  const int64_t by_grid = kWaveSMs * PoolLayout<T>::kMinBlocks / (B * plan.tiles);
  const int64_t by_size = (T_len + kMinChunk - 1) / kMinChunk;
  const int64_t chunks = std::max<int64_t>(1, std::min(by_grid, by_size));
  plan.chunk = (T_len + chunks - 1) / chunks;
  plan.chunks = (T_len + plan.chunk - 1) / plan.chunk;
  return plan;
}

// The per-tile tickets live in a buffer per (device, stream) that each launch leaves at
// zero, so no memset is needed per call; launches on one stream never overlap, and the
// lock keeps the buffer lookup and the launch in one order when threads share a stream.
std::mutex tickets_mutex;

int* tile_tickets(int device, cudaStream_t stream, int64_t tiles) {
  // Never destroyed (freeing CUDA memory during static destruction is unsafe), and a
  // grown buffer keeps the old one alive: an earlier launch may still use it.
  static auto* buffers = new std::map<std::pair<int, cudaStream_t>, std::vector<at::Tensor>>();
  auto& held = (*buffers)[{device, stream}];
  if (held.empty() || held.back().numel() < tiles) {
    const int64_t n = std::max<int64_t>(tiles, 4096);
    const auto options = at::TensorOptions().dtype(at::kInt).device(
        at::kCUDA, static_cast<c10::DeviceIndex>(device));
    held.push_back(at::zeros({n}, options));
  }
  return held.back().data_ptr<int>();
}

// The row count comes back through mapped, pinned host memory that the kernel writes:
// no device-to-host copy after the kernel, only the stream sync that returning an int
// needs. One slot per host thread (a thread has one call in flight at a time; the slot
// is never freed, like the thread's other CUDA state). Where mapped memory is not
// available, a device int64 and .item() instead.
std::atomic<bool> mapped_ok{true};

struct MappedSlot {
  int64_t* host = nullptr;
  int64_t* device = nullptr;
  bool tried = false;
};

MappedSlot* mapped_slot() {
  thread_local MappedSlot slot;
  if (!slot.tried) {
    slot.tried = true;
    void* h = nullptr;
    void* d = nullptr;
    if (cudaHostAlloc(&h, 64, cudaHostAllocMapped | cudaHostAllocPortable) == cudaSuccess) {
      if (cudaHostGetDevicePointer(&d, h, 0) == cudaSuccess) {
        slot.host = static_cast<int64_t*>(h);
        slot.device = static_cast<int64_t*>(d);
      } else {
        (void)cudaGetLastError();
        (void)cudaFreeHost(h);
      }
    } else {
      (void)cudaGetLastError();
    }
  }
  return slot.host != nullptr && mapped_ok.load(std::memory_order_relaxed) ? &slot : nullptr;
}

// 16-byte accesses need H, the used strides and the base pointer aligned to VEC.
template <typename T>
bool can_vectorise(const at::Tensor& hidden, int vec) {
  const auto ok = [&](int64_t dim) { return hidden.size(dim) <= 1 || hidden.stride(dim) % vec == 0; };
  return hidden.size(2) % vec == 0 && ok(0) && ok(1) &&
         reinterpret_cast<uintptr_t>(hidden.data_ptr()) % (sizeof(T) * vec) == 0;
}

template <typename T>
void launch_pool(const at::Tensor& hidden, PoolParams p, int64_t units, cudaStream_t stream) {
  constexpr int kVec = PoolLayout<T>::kVec;
  if (can_vectorise<T>(hidden, kVec))
    pool_kernel<T, true><<<static_cast<unsigned>(units), kThreads, 0, stream>>>(hidden.data_ptr<T>(), p);
  else
    pool_kernel<T, false><<<static_cast<unsigned>(units), kThreads, 0, stream>>>(hidden.data_ptr<T>(), p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// ---------------------------------------------------------------------------------
// Injection

constexpr int kInjectThreads = 256;
constexpr int kInjectRows = 4;  // token rows per thread, their loads in flight together

// Block: bx column groups (VEC columns each) x by tokens of one row b (grid z); each
// thread takes kInjectRows tokens spaced by the grid's token extent. float add and one
// rounding to T: bit-identical to torch's `hidden[mask] += delta`.
template <typename T, int VEC>
__global__ void __launch_bounds__(kInjectThreads, 3)
inject_kernel(T* __restrict__ hidden, const bool* __restrict__ mask, const T* __restrict__ delta,
              int64_t B, int64_t T_len, int64_t H, int64_t sB, int64_t sT) {
  const int64_t h0 = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * VEC;
  if (h0 >= H) return;
  const Pack<T, VEC> d = *reinterpret_cast<const Pack<T, VEC>*>(delta + h0);
  float df[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) df[i] = static_cast<float>(d.v[i]);
  const int64_t step = static_cast<int64_t>(gridDim.y) * blockDim.y;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z) {
    T* row = hidden + b * sB + h0;
    const bool* mrow = mask == nullptr ? nullptr : mask + b * T_len;
    for (int64_t t0 = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y; t0 < T_len;
         t0 += step * kInjectRows) {
      bool take[kInjectRows];
#pragma unroll
      for (int u = 0; u < kInjectRows; ++u) {
        const int64_t t = t0 + u * step;
        take[u] = t < T_len && (mrow == nullptr || mrow[t]);
      }
      auto* p0 = reinterpret_cast<Pack<T, VEC>*>(row + t0 * sT);
      const int64_t pstep = step * sT / VEC;  // in packs; sT % VEC == 0 whenever VEC > 1
      Pack<T, VEC> x[kInjectRows];
#pragma unroll
      for (int u = 0; u < kInjectRows; ++u)
        if (take[u]) x[u] = p0[u * pstep];
#pragma unroll
      for (int u = 0; u < kInjectRows; ++u) {
        if (!take[u]) continue;
#pragma unroll
        for (int i = 0; i < VEC; ++i) x[u].v[i] = static_cast<T>(static_cast<float>(x[u].v[i]) + df[i]);
        p0[u * pstep] = x[u];
      }
    }
  }
}

template <typename T, int VEC>
void launch_inject(at::Tensor& hidden, const bool* mask, const at::Tensor& delta,
                   cudaStream_t stream) {
  const int64_t B = hidden.size(0), T_len = hidden.size(1), H = hidden.size(2);
  const int64_t groups = H / VEC;
  // As few column blocks as the thread limit allows, evenly filled; narrow rows (small
  // H) get several tokens per block, so that no lanes idle.
  const int64_t col_blocks = (groups + kInjectThreads - 1) / kInjectThreads;
  const int bx = static_cast<int>((groups + col_blocks - 1) / col_blocks);
  const int by = std::max(1, kInjectThreads / bx);
  const int64_t token_blocks = (T_len + by * kInjectRows - 1) / (by * kInjectRows);
  const dim3 grid(static_cast<unsigned>(col_blocks),
                  static_cast<unsigned>(std::min<int64_t>(token_blocks, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(B, 65535)));
  inject_kernel<T, VEC><<<grid, dim3(bx, by), 0, stream>>>(hidden.data_ptr<T>(), mask,
                                                          delta.data_ptr<T>(), B, T_len, H,
                                                          hidden.stride(0), hidden.stride(1));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
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
  if (hidden.numel() == 0) return mask.any(1).sum().item<int64_t>();  // nothing to add

  const int64_t B = hidden.size(0), T_len = hidden.size(1), H = hidden.size(2);
  const auto dtype = hidden.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf,
              "mdf_guard._kernels: unsupported dtype ", dtype);
  const PoolPlan plan = dtype == at::kFloat ? pool_plan<float>(B, T_len, H)
                                            : pool_plan<c10::Half>(B, T_len, H);  // bf16 alike
  const int64_t units = B * plan.chunks * plan.tiles;
  TORCH_CHECK(units <= INT32_MAX && B * plan.chunks <= INT32_MAX,
              "pool_rows: too many rows for the CUDA kernel: ", hidden.sizes());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // One allocation: the partials (units x 64 doubles), then the counts (units ints).
  at::Tensor work = at::empty({units * kTileCols + (units + 1) / 2}, sums.options());
  MappedSlot* slot = mapped_slot();
  at::Tensor n_rows_dev;
  if (slot == nullptr) n_rows_dev = at::empty({1}, sums.options().dtype(at::kLong));

  PoolParams p;
  p.B = B;
  p.T = T_len;
  p.H = H;
  p.sB = hidden.stride(0);
  p.sT = hidden.stride(1);
  p.tiles = plan.tiles;
  p.chunks = plan.chunks;
  p.chunk = plan.chunk;
  p.mask = mask.data_ptr<bool>();
  p.partial = work.data_ptr<double>();
  p.counts = reinterpret_cast<int*>(p.partial + units * kTileCols);
  p.sums = sums.data_ptr<double>();
  p.sumsq = sumsq.data_ptr<double>();
  p.n_rows = slot != nullptr ? slot->device : n_rows_dev.data_ptr<int64_t>();
  if (slot != nullptr) *slot->host = -1;
  {
    const std::lock_guard<std::mutex> lock(tickets_mutex);
    p.tickets = tile_tickets(static_cast<int>(hidden.get_device()), stream, plan.tiles);
    if (dtype == at::kFloat)
      launch_pool<float>(hidden, p, units, stream);
    else if (dtype == at::kBFloat16)
      launch_pool<c10::BFloat16>(hidden, p, units, stream);
    else
      launch_pool<c10::Half>(hidden, p, units, stream);
  }
  if (slot == nullptr) return n_rows_dev.item<int64_t>();
  c10::cuda::stream_synchronize(stream);
  const int64_t n = *static_cast<volatile int64_t*>(slot->host);
  if (n >= 0) return n;
  // The kernel's write did not reach host memory: stop using mapped memory.
  mapped_ok.store(false);
  TORCH_WARN_ONCE("mdf_guard._kernels: mapped host memory does not work here; "
                  "pool_rows reads its row count back with a copy instead");
  return mask.any(1).sum().item<int64_t>();
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
