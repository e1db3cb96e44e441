// Python bindings of mdf_guard._kernels: argument checks and device dispatch.
// The Python wrapper (mdf_guard/kernels.py) decides whether to call us at all; the
// checks here guard against misuse of the raw module.
#include <ATen/MemoryOverlap.h>
// Only the Tensor <-> Python casters; torch/extension.h (the whole C++ frontend)
// would make this file take minutes to compile.
#include <torch/csrc/utils/pybind.h>

#include "kernels.h"

namespace py = pybind11;

// Stringified at compile time from -DMDF_GUARD_TORCH_VERSION=<torch.__version__>,
// so that the wrapper can refuse a module built against another torch.
#define MDF_GUARD_STR2(x) #x
#define MDF_GUARD_STR(x) MDF_GUARD_STR2(x)
#ifndef MDF_GUARD_TORCH_VERSION
#define MDF_GUARD_TORCH_VERSION unknown
#endif

namespace {

void check_hidden(const at::Tensor& hidden, const char* fn) {
  TORCH_CHECK(hidden.dim() == 3, fn, ": hidden must be [B, T, H], got ", hidden.sizes());
  const auto dt = hidden.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf, fn,
              ": hidden must be float32, bfloat16 or float16, got ", dt);
  TORCH_CHECK(hidden.stride(2) == 1 || hidden.size(2) <= 1, fn,
              ": hidden must be contiguous along H (stride(2) == 1)");
}

void check_mask(const at::Tensor& mask, const at::Tensor& hidden, const char* fn) {
  TORCH_CHECK(mask.scalar_type() == at::kBool, fn, ": mask must be bool");
  TORCH_CHECK(mask.dim() == 2 && mask.size(0) == hidden.size(0) && mask.size(1) == hidden.size(1),
              fn, ": mask must be [B, T] = ", hidden.sizes().slice(0, 2), ", got ", mask.sizes());
  TORCH_CHECK(mask.device() == hidden.device(), fn, ": mask and hidden on different devices");
}

void check_vector(const at::Tensor& v, const at::Tensor& hidden, at::ScalarType dt,
                  const char* what) {
  TORCH_CHECK(v.dim() == 1 && v.size(0) == hidden.size(2), what, " must be [H] = [",
              hidden.size(2), "], got ", v.sizes());
  TORCH_CHECK(v.scalar_type() == dt, what, " must be ", dt, ", got ", v.scalar_type());
  TORCH_CHECK(v.is_contiguous(), what, " must be contiguous");
  TORCH_CHECK(v.device() == hidden.device(), what, " and hidden on different devices");
}

// What every in-place torch op does: autograd then notices if the tensor was saved for
// backward, and an inference tensor outside inference mode is refused before any write.
void bump_version(const at::Tensor& t) { t.unsafeGetTensorImpl()->bump_version(); }

int64_t pool_rows(const at::Tensor& hidden, const at::Tensor& mask, at::Tensor sums,
                  at::Tensor sumsq) {
  check_hidden(hidden, "pool_rows");
  check_mask(mask, hidden, "pool_rows");
  check_vector(sums, hidden, at::kDouble, "pool_rows: sums");
  check_vector(sumsq, hidden, at::kDouble, "pool_rows: sumsq");
  bump_version(sums);
  bump_version(sumsq);
  if (hidden.is_cuda()) {
#ifdef MDF_GUARD_WITH_CUDA
    return mdf_guard::pool_rows_cuda(hidden, mask, sums, sumsq);
#else
    TORCH_CHECK(false, "pool_rows: mdf_guard._kernels was built without CUDA");
#endif
  }
  TORCH_CHECK(hidden.is_cpu(), "pool_rows: unsupported device ", hidden.device());
  return mdf_guard::pool_rows_cpu(hidden, mask, sums, sumsq);
}

void inject(at::Tensor hidden, const std::optional<at::Tensor>& mask, const at::Tensor& delta) {
  check_hidden(hidden, "inject_");
  if (mask.has_value()) check_mask(*mask, hidden, "inject_");
  check_vector(delta, hidden, hidden.scalar_type(), "inject_: delta");
  at::assert_no_internal_overlap(hidden);  // an expanded tensor would get the add twice
  bump_version(hidden);
  if (hidden.is_cuda()) {
#ifdef MDF_GUARD_WITH_CUDA
    return mdf_guard::inject_cuda(hidden, mask, delta);
#else
    TORCH_CHECK(false, "inject_: mdf_guard._kernels was built without CUDA");
#endif
  }
  TORCH_CHECK(hidden.is_cpu(), "inject_: unsupported device ", hidden.device());
  mdf_guard::inject_cpu(hidden, mask, delta);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // Our checks raise c10::Error; show its message without the C++ backtrace.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  m.doc() = "mdf-guard kernels: masked float64 pooling and in-place injection";
  // The GIL is released: these only touch tensor memory.
  m.def("pool_rows", &pool_rows, py::arg("hidden"), py::arg("mask"), py::arg("sums"),
        py::arg("sumsq"), py::call_guard<py::gil_scoped_release>(),
        "sums += r_b, sumsq += r_b**2 over rows b with masked tokens; returns their count");
  m.def("inject_", &inject, py::arg("hidden"), py::arg("mask"), py::arg("delta"),
        py::call_guard<py::gil_scoped_release>(),
        "hidden[mask] += delta in place (delta already in hidden's dtype)");
#ifdef MDF_GUARD_WITH_CUDA
  m.attr("has_cuda") = true;
#else
  m.attr("has_cuda") = false;
#endif
  m.attr("torch_version") = MDF_GUARD_STR(MDF_GUARD_TORCH_VERSION);
}
