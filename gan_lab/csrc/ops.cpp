// libtorch ops that tch does not expose, called from src/ops.rs. Each takes and returns the
// `at::Tensor*` handles tch uses; on failure it returns null and keeps the message for
// `gan_lab_last_error`.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <exception>
#include <string>

namespace {
thread_local std::string last_error;

template <typename F>
at::Tensor* protect(F f) {
  try {
    return new at::Tensor(f());
  } catch (const c10::Error& e) {
    last_error = e.what_without_backtrace();  // the message, without libtorch's C++ stack
    return nullptr;
  } catch (const std::exception& e) {
    last_error = e.what();
    return nullptr;
  }
}

// The 4×4 windows of a kernel-4, stride-2, padding-1 convolution, and their adjoint. For a map
// x [N, C, 2h, 2w], window (n, i, j) holds x[n, c, 2i+a-1, 2j+b-1] (0 outside the map) at column
// (a, b, c): `windows` gives them as the rows of a [N·h·w, 16·C] matrix, so the convolution is
// that matrix times the weights [out, 4, 4, C] (a channels-last weight, viewed). `overlap` sums
// such rows back onto a [N, C, 2h, 2w] map (channels-last): the transposed convolution's output
// after its matrix product, and the gradient of `windows`. Each is the other's backward, so
// gradients of gradients (a gradient penalty's) are these ops again.
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor windows_of(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0,
              "windows: expected a [N, C, H, W] map with even H and W, got ", x.sizes());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2) / 2, w = x.size(3) / 2;
  auto padded = at::zeros({n, 2 * h + 2, 2 * w + 2, c}, x.options());
  padded.narrow(1, 1, 2 * h).narrow(2, 1, 2 * w).copy_(x.permute({0, 2, 3, 1}));
  const auto s = padded.strides();
  return padded.as_strided({n, h, w, 4, 4, c}, {s[0], 2 * s[1], 2 * s[2], s[1], s[2], s[3]})
      .reshape({n * h * w, 16 * c});
}

at::Tensor overlap_of(const at::Tensor& rows, int64_t n, int64_t h, int64_t w) {
  const int64_t c = rows.size(1) / 16;
  TORCH_CHECK(rows.dim() == 2 && rows.size(0) == n * h * w && rows.size(1) == 16 * c,
              "overlap: expected [", n * h * w, ", 16·C] rows, got ", rows.sizes());
  const auto r = rows.contiguous().view({n, h, w, 4, 4, c});
  auto padded = at::zeros({n, 2 * h + 2, 2 * w + 2, c}, rows.options());
  for (int64_t a = 0; a < 4; ++a) {
    for (int64_t b = 0; b < 4; ++b) {
      padded.slice(1, a, a + 2 * h, 2).slice(2, b, b + 2 * w, 2).add_(r.select(4, b).select(3, a));
    }
  }
  return padded.narrow(1, 1, 2 * h).narrow(2, 1, 2 * w).permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast);
}

struct Windows : torch::autograd::Function<Windows> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x);
  static variable_list backward(AutogradContext* ctx, variable_list grad);
};

struct Overlap : torch::autograd::Function<Overlap> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& rows, int64_t n, int64_t h, int64_t w) {
    return overlap_of(rows, n, h, w);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    return {Windows::apply(grad[0]), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor Windows::forward(AutogradContext* ctx, const at::Tensor& x) {
  auto rows = windows_of(x);  // checks the shape first
  ctx->saved_data["n"] = x.size(0);
  ctx->saved_data["h"] = x.size(2) / 2;
  ctx->saved_data["w"] = x.size(3) / 2;
  return rows;
}

variable_list Windows::backward(AutogradContext* ctx, variable_list grad) {
  const auto& d = ctx->saved_data;
  return {Overlap::apply(grad[0], d.at("n").toInt(), d.at("h").toInt(), d.at("w").toInt())};
}
}  // namespace

extern "C" {

// The message of this thread's last failed call, or null; valid until the next call.
const char* gan_lab_last_error() { return last_error.empty() ? nullptr : last_error.c_str(); }

void gan_lab_clear_error() { last_error.clear(); }

// LeakyReLU with any negative slope, with autograd (PyTorch's `F.leaky_relu(x, slope)`).
at::Tensor* gan_lab_leaky_relu(const at::Tensor* x, double slope) {
  return protect([&] { return at::leaky_relu(*x, slope); });
}

// The 4×4 windows of x [N, C, H, W] for a k4 s2 p1 convolution, [N·(H/2)·(W/2), 16·C], with autograd.
at::Tensor* gan_lab_windows_k4s2(const at::Tensor* x) {
  return protect([&] { return Windows::apply(*x); });
}

// The sum of window rows [N·h·w, 16·C] onto a [N, C, 2h, 2w] map, with autograd.
at::Tensor* gan_lab_overlap_k4s2(const at::Tensor* rows, int64_t n, int64_t h, int64_t w) {
  return protect([&] { return Overlap::apply(*rows, n, h, w); });
}
}
