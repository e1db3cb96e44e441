// CPU helpers shared by pooling.cpp and inject.cpp.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

// The wheel must run on any x86-64, so the baseline build is SSE2. The hot loops
// are additionally compiled for AVX2 and picked at load time (an ifunc); they contain
// no FMA-able expressions whose rounding could differ between the two versions.
// -DMDF_GUARD_NO_SIMD_DISPATCH builds the portable code only (to test it on x86).
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute) && \
    !defined(MDF_GUARD_NO_SIMD_DISPATCH)
#if __has_attribute(target_clones)
#define MDF_GUARD_X86 1
#endif
#endif

#if defined(MDF_GUARD_X86)
#include <immintrin.h>
#define MDF_GUARD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MDF_GUARD_X86 0
#define MDF_GUARD_CLONES
#endif

namespace mdf_guard {

#if defined(__GNUC__) || defined(__clang__)
#define MDF_GUARD_INLINE inline __attribute__((always_inline))
#else
#define MDF_GUARD_INLINE inline
#endif

// Exact widening to float, on raw bits so that the compiler can vectorise it
// (c10's operator float() only vectorises when the whole build targets F16C).
MDF_GUARD_INLINE float to_float(float x) { return x; }
MDF_GUARD_INLINE float to_float(c10::BFloat16 x) { return c10::detail::f32_from_bits(x.x); }
MDF_GUARD_INLINE float to_float(c10::Half x) { return c10::detail::fp16_ieee_to_fp32_value(x.x); }

// Round-to-nearest-even narrowing, the same conversion torch's own kernels use.
template <typename T> MDF_GUARD_INLINE T from_float(float x);
template <> MDF_GUARD_INLINE float from_float<float>(float x) { return x; }
template <> MDF_GUARD_INLINE c10::BFloat16 from_float<c10::BFloat16>(float x) {
  return c10::BFloat16(c10::detail::round_to_nearest_even(x), c10::BFloat16::from_bits());
}
template <> MDF_GUARD_INLINE c10::Half from_float<c10::Half>(float x) {
  return c10::Half(c10::detail::fp16_ieee_from_fp32_value(x), c10::Half::from_bits());
}

#if MDF_GUARD_X86
// float16 has no bit trick the compiler vectorises: the x86 paths use the F16C
// instructions (exact widening, round-to-nearest-even narrowing: the same numbers as
// c10's scalar conversions) when the CPU has them.
inline bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return has;
}
#define MDF_GUARD_F16C __attribute__((target("avx2,f16c")))
#endif

}  // namespace mdf_guard
