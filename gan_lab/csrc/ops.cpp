// libtorch ops that tch does not expose, called from src/ops.rs. Each takes and returns the
// `at::Tensor*` handles tch uses; on failure it returns null and keeps the message for
// `gan_lab_last_error`.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <ATen/ops/_convolution_double_backward_native.h>
#include <ATen/ops/convolution_backward_native.h>
#include <ATen/ops/convolution_native.h>
#include <c10/util/Exception.h>
#include <torch/library.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

// libtorch's own oneDNN matrix product (ATen/native/mkldnn/Matmul.h, not among the installed
// headers): result = beta·result + alpha·mat1·mat2, plain or transposed operands read in place.
namespace at::native {
TORCH_API void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta, float alpha);
}

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

// One pass: each row (n, i, j) copies its 16 window pixels' channels (zeros where the window
// reaches into the padding) from the map in channels-last order, any dtype.
at::Tensor windows_of(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0,
              "windows: expected a [N, C, H, W] map with even H and W, got ", x.sizes());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2) / 2, w = x.size(3) / 2;
  const auto xs = x.permute({0, 2, 3, 1}).contiguous();  // no copy for a channels-last map
  auto out = at::empty({n * h * w, 16 * c}, x.options());
  const int64_t bytes = c * static_cast<int64_t>(x.element_size());
  const char* src = static_cast<const char*>(xs.const_data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  at::parallel_for(0, n * h, std::max<int64_t>(1, 16384 / (w * 16 * bytes)), [&](int64_t begin, int64_t end) {
    for (int64_t si = begin; si < end; ++si) {
      const int64_t s = si / h, i = si % h;
      for (int64_t j = 0; j < w; ++j) {
        char* row = dst + (si * w + j) * 16 * bytes;
        for (int64_t a = 0; a < 4; ++a) {
          const int64_t y = 2 * i - 1 + a;
          for (int64_t b = 0; b < 4; ++b, row += bytes) {
            const int64_t xx = 2 * j - 1 + b;
            if (y < 0 || y >= 2 * h || xx < 0 || xx >= 2 * w) {
              std::memset(row, 0, bytes);
            } else {
              const char* from = src + ((s * 2 * h + y) * 2 * w + xx) * bytes;
              if (bytes == 4)
                std::memcpy(row, from, 4);  // one float32 channel: a single move
              else
                std::memcpy(row, from, bytes);
            }
          }
        }
      }
    }
  });
  return out;
}

// dst[k] += src[k] for k < c (non-overlapping rows, so the loop vectorises without checks).
void add_row(float* __restrict__ dst, const float* __restrict__ src, int64_t c) {
  for (int64_t k = 0; k < c; ++k) dst[k] += src[k];
}

at::Tensor overlap_of(const at::Tensor& rows, int64_t n, int64_t h, int64_t w) {
  const int64_t c = rows.size(1) / 16;
  TORCH_CHECK(rows.dim() == 2 && rows.size(0) == n * h * w && rows.size(1) == 16 * c,
              "overlap: expected [", n * h * w, ", 16·C] rows, got ", rows.sizes());
  const auto r = rows.contiguous();
  if (r.scalar_type() != at::kFloat) {
    const auto v = r.view({n, h, w, 4, 4, c});
    auto padded = at::zeros({n, 2 * h + 2, 2 * w + 2, c}, rows.options());
    for (int64_t a = 0; a < 4; ++a)
      for (int64_t b = 0; b < 4; ++b)
        padded.slice(1, a, a + 2 * h, 2).slice(2, b, b + 2 * w, 2).add_(v.select(4, b).select(3, a));
    return padded.narrow(1, 1, 2 * h).narrow(2, 1, 2 * w).permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast);
  }
  // float32: each output pixel gathers its (up to four) window values in one pass, in the order
  // (a, b) of the window offsets, the order the loop above adds them in, so the same bits.
  auto out = at::empty({n, 2 * h, 2 * w, c}, rows.options());
  const float* rp = r.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n * 2 * h, std::max<int64_t>(1, 4096 / (2 * w * c)), [&](int64_t begin, int64_t end) {
    for (int64_t ny = begin; ny < end; ++ny) {
      const int64_t s = ny / (2 * h), y = ny % (2 * h);
      // Padded row y + 1 = 2i + a: a has y + 1's parity, and i must fall inside the map; likewise b.
      int64_t as[2], is[2], na = 0;
      for (int64_t a = (y + 1) % 2; a < 4; a += 2) {
        const int64_t i = (y + 1 - a) / 2;
        if (i >= 0 && i < h) as[na] = a, is[na++] = i;
      }
      for (int64_t x = 0; x < 2 * w; ++x) {
        int64_t offsets[4], m = 0;  // where this pixel's values start in `rows`, in (a, b) order
        for (int64_t p = 0; p < na; ++p) {
          for (int64_t b = (x + 1) % 2; b < 4; b += 2) {
            const int64_t j = (x + 1 - b) / 2;
            if (j >= 0 && j < w) offsets[m++] = ((s * h + is[p]) * w + j) * 16 * c + (as[p] * 4 + b) * c;
          }
        }
        float* dst = op + (ny * 2 * w + x) * c;
        if (c == 1) {  // an image's pixel: a scalar sum
          float acc = 0.f;
          for (int64_t q = 0; q < m; ++q) acc += rp[offsets[q]];
          *dst = acc;
        } else {
          std::fill(dst, dst + c, 0.f);
          for (int64_t q = 0; q < m; ++q) add_row(dst, rp + offsets[q], c);
        }
      }
    }
  });
  return out.permute({0, 3, 1, 2});  // [N, C, 2h, 2w], channels-last
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

// Whether an optional tensor argument was given (and holds a tensor).
bool given(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// Training-mode BatchNorm followed by ReLU (slope 0) or LeakyReLU(slope) as one op: two passes
// over the activations forward (statistics; normalisation and activation) and two backward, where
// libtorch's separate ops make five to eight. For a float32 map stored channels-last, or a [N, C]
// matrix: both are an [M, C] matrix in memory. Partial sums in float over blocks of rows, totals
// in double; the running statistics move as libtorch's do (momentum, unbiased variance).
bool fusable(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (x.scalar_type() != at::kFloat || !weight.defined() || !bias.defined() || x.numel() == 0) return false;
  if (x.dim() == 2) return x.is_contiguous() && x.size(0) > 1;
  return x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast) && x.numel() / x.size(1) > 1;
}

// x as the fused op takes it: a 4-D map in any layout is copied channels-last (a convolution of a
// one-channel image gives a plain [N, C, H, W] map; the copy costs less than the unfused ops).
at::Tensor fusable_layout(const at::Tensor& x) {
  return x.dim() == 4 && x.scalar_type() == at::kFloat ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

// libtorch's own BatchNorm: what its `batch_norm` runs, reached without the dispatcher's entry for
// `batch_norm`, which the fast backend takes over (`batch_norm_kernel`).
at::Tensor libtorch_batch_norm(const at::Tensor& x, const std::optional<at::Tensor>& weight,
                               const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& running_mean,
                               const std::optional<at::Tensor>& running_var, bool train, double momentum, double eps,
                               bool cudnn_enabled) {
  return std::get<0>(
      at::_batch_norm_impl_index(x, weight, bias, running_mean, running_var, train, momentum, eps, cudnn_enabled));
}

at::Tensor batch_norm_act_composite(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                    const at::Tensor& running_mean, const at::Tensor& running_var, bool train,
                                    double momentum, double eps, double slope) {
  auto y = libtorch_batch_norm(x, weight, bias, running_mean, running_var, train, momentum, eps, false);
  return slope == 1.0 ? y : slope == 0.0 ? at::relu(y) : at::leaky_relu(y, slope);
}

// The per-row loops over the c channels of one row: float arithmetic without branches and
// with non-aliasing pointers, so that the compiler vectorises them (across channels: each
// channel's sums keep their order, so the AVX2 version that the loader picks on x86-64 Linux
// CPUs that have it gives the same bits as the plain one).
#if defined(__x86_64__) && defined(__linux__)
#define GAN_LAB_ROW_LOOP __attribute__((noinline, target_clones("avx2", "default")))
#else
#define GAN_LAB_ROW_LOOP __attribute__((noinline))
#endif

// Each takes `rows` consecutive rows of c channels (one call per block of rows: a call per row of
// 32 channels cost more than its arithmetic).

// acc[j] += x[j] − k[j], acc2[j] += (x[j] − k[j])² (k: one value per channel, near the mean).
GAN_LAB_ROW_LOOP void row_moments(const float* __restrict__ x, const float* __restrict__ k, float* __restrict__ acc,
                                  float* __restrict__ acc2, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r, x += c) {
    for (int64_t j = 0; j < c; ++j) {
      const float v = x[j] - k[j];
      acc[j] += v;
      acc2[j] += v * v;
    }
  }
}

// out = act(x·scale + shift), act(y) = max(y, 0) + slope·min(y, 0): ReLU for slope 0, else LeakyReLU.
GAN_LAB_ROW_LOOP void row_forward(const float* __restrict__ x, const float* __restrict__ scale,
                                  const float* __restrict__ shift, float slope, float* __restrict__ out, int64_t rows,
                                  int64_t c) {
  for (int64_t r = 0; r < rows; ++r, x += c, out += c) {
    for (int64_t j = 0; j < c; ++j) {
      const float y = x[j] * scale[j] + shift[j];
      out[j] = std::max(y, 0.f) + slope * std::min(y, 0.f);
    }
  }
}

// d = dy·act'(out); acc[j] += d, acc2[j] += d·(x − mean).
GAN_LAB_ROW_LOOP void row_backward_sums(const float* __restrict__ x, const float* __restrict__ out,
                                        const float* __restrict__ dy, const float* __restrict__ mean, float slope,
                                        float* __restrict__ acc, float* __restrict__ acc2, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r, x += c, out += c, dy += c) {
    for (int64_t j = 0; j < c; ++j) {
      const float on = out[j] > 0.f;  // act'(y) = on + slope·(1 − on), as arithmetic so that it vectorises
      const float d = dy[j] * on + dy[j] * slope * (1.f - on);
      acc[j] += d;
      acc2[j] += d * (x[j] - mean[j]);
    }
  }
}

// dx = (d − mean(d) − (x − mean)·k)·w·invstd.
GAN_LAB_ROW_LOOP void row_backward(const float* __restrict__ x, const float* __restrict__ out,
                                   const float* __restrict__ dy, const float* __restrict__ mean,
                                   const float* __restrict__ mean_d, const float* __restrict__ k,
                                   const float* __restrict__ w_invstd, float slope, float* __restrict__ dx,
                                   int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r, x += c, out += c, dy += c, dx += c) {
    for (int64_t j = 0; j < c; ++j) {
      const float on = out[j] > 0.f;
      const float d = dy[j] * on + dy[j] * slope * (1.f - on);
      dx[j] = (d - mean_d[j] - (x[j] - mean[j]) * k[j]) * w_invstd[j];
    }
  }
}

// Two sums per channel over the rows of an [m, c] matrix: f(r, rows, acc, acc2) adds the terms of
// rows r..r + rows to float accumulators, which move into double every kBlock rows. Each thread sums its own share of
// the rows, so the result depends only on the thread count. Returns [sums, sums2] (2c doubles).
template <typename F>
std::vector<double> channel_sums(int64_t m, int64_t c, F f) {
  constexpr int64_t kBlock = 16;
  const int threads = at::get_num_threads();
  std::vector<double> partial(static_cast<size_t>(threads) * 2 * c, 0.0);
  at::parallel_for(0, m, std::max<int64_t>(kBlock, 32768 / c), [&](int64_t begin, int64_t end) {
    double* total = partial.data() + static_cast<size_t>(at::get_thread_num()) * 2 * c;
    std::vector<float> block(2 * c);
    for (int64_t r0 = begin; r0 < end; r0 += kBlock) {
      std::fill(block.begin(), block.end(), 0.f);
      f(r0, std::min(end, r0 + kBlock) - r0, block.data(), block.data() + c);
      for (int64_t j = 0; j < 2 * c; ++j) total[j] += block[j];
    }
  });
  std::vector<double> sums(2 * c, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int64_t j = 0; j < 2 * c; ++j) sums[j] += partial[static_cast<size_t>(t) * 2 * c + j];
  return sums;
}

// What a normalisation + activation op's backward needs: its tensors, the slope and eps.
void keep(AutogradContext* ctx, const variable_list& tensors, double slope, double eps) {
  ctx->save_for_backward(tensors);
  ctx->saved_data["slope"] = slope;
  ctx->saved_data["eps"] = eps;
}

struct BatchNormAct : torch::autograd::Function<BatchNormAct> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var,
                            double momentum, double eps, double slope) {
    const int64_t c = x.size(1), m = x.numel() / c;
    const float* xp = x.const_data_ptr<float>();
    // Sums of x − k and (x − k)² per channel, k the first row: the variance without the
    // cancellation of E[x²] − E[x]² when the mean is large.
    const float* k = xp;
    const auto sums =
        channel_sums(m, c, [&](int64_t r, int64_t rows, float* acc, float* acc2) {
          row_moments(xp + r * c, k, acc, acc2, rows, c);
        });
    auto mean = at::empty({c}, x.options());
    auto invstd = at::empty({c}, x.options());
    std::vector<float> scale(c), shift(c);
    const float* w = weight.const_data_ptr<float>();
    const float* b = bias.const_data_ptr<float>();
    {
      at::NoGradGuard no_grad;
      for (int64_t j = 0; j < c; ++j) {
        const double shifted = sums[j] / m;
        const double mu = k[j] + shifted;
        const double var = std::max(0.0, sums[c + j] / m - shifted * shifted);
        const double is = 1.0 / std::sqrt(var + eps);
        mean.data_ptr<float>()[j] = static_cast<float>(mu);
        invstd.data_ptr<float>()[j] = static_cast<float>(is);
        scale[j] = static_cast<float>(is) * w[j];
        shift[j] = b[j] - static_cast<float>(mu) * scale[j];
        if (running_mean.defined()) {
          float* rmp = running_mean.data_ptr<float>();
          float* rvp = running_var.data_ptr<float>();
          rmp[j] = static_cast<float>(momentum * mu + (1 - momentum) * rmp[j]);
          rvp[j] = static_cast<float>(momentum * var * m / (m - 1) + (1 - momentum) * rvp[j]);
        }
      }
    }
    auto out = at::empty_like(x);
    float* op = out.data_ptr<float>();
    const float s = static_cast<float>(slope);
    at::parallel_for(0, m, std::max<int64_t>(1, 32768 / c), [&](int64_t begin, int64_t end) {
      row_forward(xp + begin * c, scale.data(), shift.data(), s, op + begin * c, end - begin, c);
    });
    // With the identity for activation (slope 1) the backward needs no output: not kept.
    keep(ctx, {x, weight, bias, slope == 1.0 ? at::Tensor() : out, mean, invstd}, slope, eps);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &bias = saved[2], &out = saved[3], &mean = saved[4],
               &invstd = saved[5];
    const double slope = ctx->saved_data["slope"].toDouble();
    if (at::GradMode::is_enabled()) {
      // A gradient of this gradient is wanted: libtorch's own ops, which have one, on the saved
      // inputs themselves (so that it reaches what they were computed from).
      const auto differentiable = [](const at::Tensor& t) { return t.requires_grad() ? t : t.detach().requires_grad_(true); };
      auto xv = differentiable(x), wv = differentiable(weight), bv = differentiable(bias);
      auto y = batch_norm_act_composite(xv, wv, bv, at::Tensor(), at::Tensor(), true, 0.0,
                                        ctx->saved_data["eps"].toDouble(), slope);
      auto g = torch::autograd::grad({y}, {xv, wv, bv}, {grad[0]}, true, true);
      return {g[0], g[1], g[2], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const int64_t c = x.size(1), m = x.numel() / c;
    const auto dy = x.dim() == 4 ? grad[0].contiguous(at::MemoryFormat::ChannelsLast) : grad[0].contiguous();
    // Without an output (slope 1, act' = 1 everywhere) the loops read x in its place: the same
    // values, and no third stream through memory.
    const float *xp = x.const_data_ptr<float>(), *gp = dy.const_data_ptr<float>();
    const float* op = out.defined() ? out.const_data_ptr<float>() : xp;
    const float *mu = mean.const_data_ptr<float>(), *is = invstd.const_data_ptr<float>(), *w = weight.const_data_ptr<float>();
    const float s = static_cast<float>(slope);
    // Per channel: the sum of the gradient after the activation, and of it times (x − mean).
    const auto sums = channel_sums(m, c, [&](int64_t r, int64_t rows, float* acc, float* acc2) {
      row_backward_sums(xp + r * c, op + r * c, gp + r * c, mu, s, acc, acc2, rows, c);
    });
    auto grad_weight = at::empty({c}, weight.options());
    auto grad_bias = at::empty({c}, bias.options());
    std::vector<float> mean_d(c), k(c), wis(c);
    for (int64_t j = 0; j < c; ++j) {
      grad_bias.data_ptr<float>()[j] = static_cast<float>(sums[j]);
      grad_weight.data_ptr<float>()[j] = static_cast<float>(sums[c + j] * is[j]);
      mean_d[j] = static_cast<float>(sums[j] / m);
      k[j] = static_cast<float>(sums[c + j] / m * is[j] * is[j]);
      wis[j] = is[j] * w[j];
    }
    auto grad_x = at::empty_like(x);
    float* gx = grad_x.data_ptr<float>();
    at::parallel_for(0, m, std::max<int64_t>(1, 32768 / c), [&](int64_t begin, int64_t end) {
      row_backward(xp + begin * c, op + begin * c, gp + begin * c, mu, mean_d.data(), k.data(), wis.data(), s,
                   gx + begin * c, end - begin, c);
    });
    return {grad_x, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// LayerNorm over each sample's [C, H, W] (a WGAN-GP critic's) followed by LeakyReLU(slope), as
// one op whose gradient is itself an op with a gradient: the gradient penalty differentiates the
// critic's input gradient again, and libtorch's LayerNorm double backward is a chain of some
// twenty tensor ops. x is an [N, M] matrix in memory (a plain or channels-last map; M a multiple
// of 16), weight and bias M values in x's memory order. Two passes forward, two for the gradient
// and two for its gradient. Sums along a row in float over 16 lanes, moved into double every 256
// values; sums down the columns (the weight's and bias's gradients) as `channel_sums` makes them.
constexpr int64_t kLanes = 16, kFlush = 256;

// A channels-last map's samples are rows in memory too, in (row, column, channel) order: the fused
// op takes it with the weight and bias permuted to that order, and `rows_view` is the view of a
// tensor laid out like x whose logical order is its memory's.
bool channels_last_map(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor rows_view(const at::Tensor& t, bool channels_last) { return channels_last ? t.permute({0, 2, 3, 1}) : t; }

bool layer_norm_fusable(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double slope) {
  if (x.scalar_type() != at::kFloat || x.dim() < 2 || x.numel() == 0 || slope < 0) return false;
  if (!x.is_contiguous() && !channels_last_map(x)) return false;
  const int64_t m = x.numel() / x.size(0);
  if (m % kLanes != 0) return false;
  const auto ok = [&](const at::Tensor& t) {
    return t.defined() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == m;
  };
  return ok(weight) && ok(bias);
}

at::Tensor layer_norm_act_composite(const at::Tensor& x, at::IntArrayRef shape, const at::Tensor& weight,
                                    const at::Tensor& bias, double eps, double slope) {
  // libtorch's own LayerNorm: what its `layer_norm` runs, reached without the dispatcher's entry
  // for `layer_norm`, which the fast backend takes over (`layer_norm_kernel`).
  auto y = std::get<0>(at::native_layer_norm(x, shape, weight, bias, eps));
  return slope == 1.0 ? y : slope == 0.0 ? at::relu(y) : at::leaky_relu(y, slope);
}

// Eight floats, loaded and stored at any float alignment; a vector of the compiler's, so the
// loops below are vectorised as written (AVX2 registers in the AVX2 copy, two SSE ones otherwise;
// the same arithmetic lane by lane, so both give the same bits).
typedef float f8 __attribute__((vector_size(32)));
typedef float f8u __attribute__((vector_size(32), aligned(4)));
inline __attribute__((always_inline)) f8 load8(const float* p) { return *reinterpret_cast<const f8u*>(p); }
inline __attribute__((always_inline)) void store8(float* p, f8 v) { *reinterpret_cast<f8u*>(p) = v; }
inline __attribute__((always_inline)) f8 splat8(float v) { return f8{} + v; }

// act'(y) from the activation's output: 1 where it is positive, else slope.
inline __attribute__((always_inline)) f8 act_slope8(const float* out, f8 slope) {
  return load8(out) > f8{} ? splat8(1.f) : slope;
}

// K sums over a row of m values (m a multiple of 16): `term(j, acc)` adds the terms of values
// j..j+7 to acc[0..K); two sets of 8 lanes take alternate groups of 8, and their floats move into
// double every 256 values.
template <int K, typename F>
inline __attribute__((always_inline)) std::array<double, K> lane_sums(int64_t m, F term) {
  std::array<double, K> total{};
  for (int64_t j0 = 0; j0 < m; j0 += kFlush) {
    f8 a[K] = {}, b[K] = {};
    const int64_t end = std::min(m, j0 + kFlush);
    for (int64_t j = j0; j < end; j += kLanes) {
      term(j, a);
      term(j + 8, b);
    }
    for (int k = 0; k < K; ++k)
      for (int l = 0; l < 8; ++l) total[k] += static_cast<double>(a[k][l]) + static_cast<double>(b[k][l]);
  }
  return total;
}

// Σ(x − x[0]) and Σ(x − x[0])² over one row.
GAN_LAB_ROW_LOOP void ln_row_moments(const float* __restrict__ x, int64_t m, double* __restrict__ sums) {
  const f8 k = splat8(x[0]);
  const auto s = lane_sums<2>(m, [&](int64_t j, f8* acc) {
    const f8 v = load8(x + j) - k;
    acc[0] += v;
    acc[1] += v * v;
  });
  sums[0] = s[0];
  sums[1] = s[1];
}

// out = act((x − mean)·rstd·w + b).
GAN_LAB_ROW_LOOP void ln_row_forward(const float* __restrict__ x, const float* __restrict__ w,
                                     const float* __restrict__ b, float mean, float rstd, float slope,
                                     float* __restrict__ out, int64_t m) {
  for (int64_t j = 0; j < m; ++j) {
    const float y = (x[j] - mean) * rstd * w[j] + b[j];
    out[j] = std::max(y, 0.f) + slope * std::min(y, 0.f);
  }
}

// d = dy·act'(out), x̂ = (x − mean)·rstd: the columns' sums of d (bias) and d·x̂ (weight) grow by
// this row's; returns the row's Σ g and Σ g·x̂, g = d·w (the gradient at x̂).
GAN_LAB_ROW_LOOP void ln_row_backward_sums(const float* __restrict__ x, const float* __restrict__ out,
                                           const float* __restrict__ dy, const float* __restrict__ w, float mean,
                                           float rstd, float slope, float* __restrict__ acc_b,
                                           float* __restrict__ acc_w, int64_t m, double* __restrict__ sums) {
  const f8 mu = splat8(mean), rs = splat8(rstd), sl = splat8(slope);
  const auto s = lane_sums<2>(m, [&](int64_t j, f8* acc) {
    const f8 d = load8(dy + j) * act_slope8(out + j, sl);
    const f8 xh = (load8(x + j) - mu) * rs;
    store8(acc_b + j, load8(acc_b + j) + d);
    store8(acc_w + j, load8(acc_w + j) + d * xh);
    const f8 g = d * load8(w + j);
    acc[0] += g;
    acc[1] += g * xh;
  });
  sums[0] = s[0];
  sums[1] = s[1];
}

// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
GAN_LAB_ROW_LOOP void ln_row_backward(const float* __restrict__ x, const float* __restrict__ out,
                                      const float* __restrict__ dy, const float* __restrict__ w, float mean,
                                      float rstd, float slope, float mean_g, float mean_gx, float* __restrict__ dx,
                                      int64_t m) {
  for (int64_t j = 0; j < m; ++j) {
    const float on = out[j] > 0.f;
    const float g = (dy[j] * on + dy[j] * slope * (1.f - on)) * w[j];
    const float xh = (x[j] - mean) * rstd;
    dx[j] = rstd * (g - mean_g - xh * mean_gx);
  }
}

// For the gradient of dx along v: Σ v, Σ v·x̂ and Σ v·g over one row.
GAN_LAB_ROW_LOOP void ln_row_double_sums(const float* __restrict__ v, const float* __restrict__ x,
                                         const float* __restrict__ out, const float* __restrict__ dy,
                                         const float* __restrict__ w, float mean, float rstd, float slope, int64_t m,
                                         double* __restrict__ sums) {
  const f8 mu = splat8(mean), rs = splat8(rstd), sl = splat8(slope);
  const auto s = lane_sums<3>(m, [&](int64_t j, f8* acc) {
    const f8 g = load8(dy + j) * act_slope8(out + j, sl) * load8(w + j);
    const f8 vj = load8(v + j);
    acc[0] += vj;
    acc[1] += vj * ((load8(x + j) - mu) * rs);
    acc[2] += vj * g;
  });
  sums[0] = s[0];
  sums[1] = s[1];
  sums[2] = s[2];
}

// With P(u) = u − mean(u) − x̂·mean(u·x̂) (dx = rstd·P(g)): the gradient along v of dx with respect to
// dy is rstd·P(v)·act'·w, with respect to w (summed into acc_w) rstd·P(v)·d, and with respect to
// x −rstd²/M·(x̂·vᵀP(g) + (Σ v·x̂)·P(g)) − rstd²·mean(g·x̂)·P(v), from mean and rstd's dependence
// on x. k = {mean(v), mean(v·x̂), vᵀP(g), mean(g), mean(g·x̂)}.
GAN_LAB_ROW_LOOP void ln_row_double(const float* __restrict__ v, const float* __restrict__ x,
                                    const float* __restrict__ out, const float* __restrict__ dy,
                                    const float* __restrict__ w, float mean, float rstd, float slope,
                                    const float* __restrict__ k, float* __restrict__ acc_w, float* __restrict__ gdy,
                                    float* __restrict__ gx, int64_t m) {
  const float r2 = rstd * rstd;
  const f8 mu = splat8(mean), rs = splat8(rstd), sl = splat8(slope), k0 = splat8(k[0]), k1 = splat8(k[1]),
           k3 = splat8(k[3]), k4 = splat8(k[4]), c_pg = splat8(-r2 * k[1]),
           c_x = splat8(-r2 * k[2] / static_cast<float>(m)), c_pv = splat8(-r2 * k[4]);
  // Written with the vector type: GCC left the plain loop scalar.
  for (int64_t j = 0; j < m; j += 8) {
    const f8 act = act_slope8(out + j, sl), wj = load8(w + j), dyj = load8(dy + j);
    const f8 xh = (load8(x + j) - mu) * rs;
    const f8 pv = load8(v + j) - k0 - xh * k1;
    const f8 pg = dyj * act * wj - k3 - xh * k4;
    store8(gdy + j, rs * pv * act * wj);
    store8(acc_w + j, load8(acc_w + j) + rs * pv * dyj * act);
    store8(gx + j, xh * c_x + pg * c_pg + pv * c_pv);
  }
}

struct LayerNormActGrad : torch::autograd::Function<LayerNormActGrad> {
  // (dx, dweight, dbias) of LayerNormAct at dy.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& dy_in, const at::Tensor& x,
                               const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& out,
                               const at::Tensor& mean, const at::Tensor& rstd, double slope, double eps) {
    const int64_t n = x.size(0), m = x.numel() / n;
    const auto dy = dy_in.contiguous(x.suggest_memory_format());
    const float *xp = x.const_data_ptr<float>(), *op = out.const_data_ptr<float>(), *gp = dy.const_data_ptr<float>();
    const float *w = weight.const_data_ptr<float>(), *mu = mean.const_data_ptr<float>(),
                *rs = rstd.const_data_ptr<float>();
    const float s = static_cast<float>(slope);
    auto row_sums = at::empty({n, 2}, x.options().dtype(at::kDouble));
    double* rows = row_sums.data_ptr<double>();
    const auto columns = channel_sums(n, m, [&](int64_t r0, int64_t count, float* acc_b, float* acc_w) {
      for (int64_t r = r0; r < r0 + count; ++r)
        ln_row_backward_sums(xp + r * m, op + r * m, gp + r * m, w, mu[r], rs[r], s, acc_b, acc_w, m, rows + 2 * r);
    });
    auto grad_weight = at::empty_like(weight);
    auto grad_bias = at::empty_like(bias);
    float *gw = grad_weight.data_ptr<float>(), *gb = grad_bias.data_ptr<float>();
    for (int64_t j = 0; j < m; ++j) {
      gb[j] = static_cast<float>(columns[j]);
      gw[j] = static_cast<float>(columns[m + j]);
    }
    auto grad_x = at::empty_like(x);
    float* gx = grad_x.data_ptr<float>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        ln_row_backward(xp + r * m, op + r * m, gp + r * m, w, mu[r], rs[r], s, static_cast<float>(rows[2 * r] / m),
                        static_cast<float>(rows[2 * r + 1] / m), gx + r * m, m);
    });
    keep(ctx, {dy, x, weight, bias, out, mean, rstd, row_sums}, slope, eps);
    // Gradients along outputs nobody used stay undefined (not zeros): a penalty uses dx only.
    ctx->set_materialize_grads(false);
    return {grad_x, grad_weight, grad_bias};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto &dy = saved[0], &x = saved[1], &weight = saved[2], &bias = saved[3], &out = saved[4],
               &mean = saved[5], &rstd = saved[6], &row_sums = saved[7];
    const double slope = ctx->saved_data["slope"].toDouble();
    const auto none = at::Tensor();
    if (at::GradMode::is_enabled() || grad[1].defined() || grad[2].defined()) {
      // A third derivative, or one through the weight's gradient: libtorch's own ops on the saved
      // inputs, which have every derivative.
      const bool create = at::GradMode::is_enabled();
      at::AutoGradMode enable(true);
      const auto differentiable = [](const at::Tensor& t) { return t.requires_grad() ? t : t.detach().requires_grad_(true); };
      auto dyv = differentiable(dy), xv = differentiable(x), wv = differentiable(weight), bv = differentiable(bias);
      const bool cl = channels_last_map(x);
      auto y = layer_norm_act_composite(rows_view(xv, cl), rows_view(x, cl).sizes().slice(1), wv, bv,
                                        ctx->saved_data["eps"].toDouble(), slope);
      auto first = torch::autograd::grad({y}, {xv, wv, bv}, {rows_view(dyv, cl)}, true, true);
      variable_list outputs, along;
      for (size_t i = 0; i < 3; ++i) {
        if (grad[i].defined()) {
          outputs.push_back(first[i]);
          along.push_back(grad[i]);
        }
      }
      if (outputs.empty()) return {none, none, none, none, none, none, none, none, none};
      auto g = torch::autograd::grad(outputs, {dyv, xv, wv}, along, true, create, true);
      return {g[0], g[1], g[2], none, none, none, none, none, none};
    }
    if (!grad[0].defined()) return {none, none, none, none, none, none, none, none, none};
    const int64_t n = x.size(0), m = x.numel() / n;
    const auto v = grad[0].contiguous(x.suggest_memory_format());
    const float *vp = v.const_data_ptr<float>(), *xp = x.const_data_ptr<float>(), *op = out.const_data_ptr<float>(),
                *gp = dy.const_data_ptr<float>(), *w = weight.const_data_ptr<float>(),
                *mu = mean.const_data_ptr<float>(), *rs = rstd.const_data_ptr<float>();
    const double* rows = row_sums.const_data_ptr<double>();
    const float s = static_cast<float>(slope);
    std::vector<float> k(5 * n);
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        double sums[3];
        ln_row_double_sums(vp + r * m, xp + r * m, op + r * m, gp + r * m, w, mu[r], rs[r], s, m, sums);
        const double mean_g = rows[2 * r] / m, mean_gx = rows[2 * r + 1] / m;
        float* kr = k.data() + 5 * r;
        kr[0] = static_cast<float>(sums[0] / m);
        kr[1] = static_cast<float>(sums[1] / m);
        kr[2] = static_cast<float>(sums[2] - mean_g * sums[0] - mean_gx * sums[1]);
        kr[3] = static_cast<float>(mean_g);
        kr[4] = static_cast<float>(mean_gx);
      }
    });
    auto grad_dy = at::empty_like(x), grad_x = at::empty_like(x);
    float *gdy = grad_dy.data_ptr<float>(), *gx = grad_x.data_ptr<float>();
    const auto columns = channel_sums(n, m, [&](int64_t r0, int64_t count, float* acc_w, float*) {
      for (int64_t r = r0; r < r0 + count; ++r)
        ln_row_double(vp + r * m, xp + r * m, op + r * m, gp + r * m, w, mu[r], rs[r], s, k.data() + 5 * r, acc_w,
                      gdy + r * m, gx + r * m, m);
    });
    auto grad_weight = at::empty_like(weight);
    float* gw = grad_weight.data_ptr<float>();
    for (int64_t j = 0; j < m; ++j) gw[j] = static_cast<float>(columns[j]);
    return {grad_dy, grad_x, grad_weight, none, none, none, none, none, none};
  }
};

struct LayerNormAct : torch::autograd::Function<LayerNormAct> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, double eps, double slope) {
    const int64_t n = x.size(0), m = x.numel() / n;
    const float *xp = x.const_data_ptr<float>(), *w = weight.const_data_ptr<float>(), *b = bias.const_data_ptr<float>();
    auto mean = at::empty({n}, x.options());
    auto rstd = at::empty({n}, x.options());
    auto out = at::empty_like(x);
    float *mu = mean.data_ptr<float>(), *rs = rstd.data_ptr<float>(), *op = out.data_ptr<float>();
    const float s = static_cast<float>(slope);
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        // Moments about the row's first value: no cancellation when the mean is large.
        double sums[2];
        ln_row_moments(xp + r * m, m, sums);
        const double shifted = sums[0] / m;
        const double var = std::max(0.0, sums[1] / m - shifted * shifted);
        mu[r] = static_cast<float>(xp[r * m] + shifted);
        rs[r] = static_cast<float>(1.0 / std::sqrt(var + eps));
        ln_row_forward(xp + r * m, w, b, mu[r], rs[r], s, op + r * m, m);
      }
    });
    keep(ctx, {x, weight, bias, out, mean, rstd}, slope, eps);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto g = LayerNormActGrad::apply(grad[0], saved[0], saved[1], saved[2], saved[3], saved[4], saved[5],
                                           ctx->saved_data["slope"].toDouble(), ctx->saved_data["eps"].toDouble());
    return {g[0], g[1], g[2], at::Tensor(), at::Tensor()};
  }
};

// Times the faster form below ran on this thread (tests; a CPU backward runs on the thread that
// asks for it).
thread_local int64_t conv_double_backward_calls = 0;

// A convolution's gradient, differentiated again (a gradient penalty's second backward) with
// respect to the input's gradient: libtorch computes the weight's part as a dilated convolution
// of that gradient with the output's gradient, which oneDNN runs several times slower than the
// same sum as a weight-gradient kernel. For float32 2-d convolutions without groups, dilation or
// transposition, along the input's gradient only, this computes it with `convolution_backward`
// and the output's part as the forward convolution; both are differentiable ops, so further
// derivatives work. Everything else goes to libtorch's own function.
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_double_backward(
    const std::optional<at::Tensor>& ggI, const std::optional<at::Tensor>& ggW, const std::optional<at::Tensor>& ggb,
    const at::Tensor& gO, const at::Tensor& weight, const at::Tensor& input, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed, at::IntArrayRef output_padding,
    int64_t groups, std::array<bool, 3> output_mask) {
  const bool fast = given(ggI) && !given(ggW) && !given(ggb) && !transposed &&
                    groups == 1 && input.dim() == 4 &&
                    std::all_of(dilation.begin(), dilation.end(), [](int64_t d) { return d == 1; }) &&
                    input.scalar_type() == at::kFloat && gO.scalar_type() == at::kFloat &&
                    weight.scalar_type() == at::kFloat && ggI->scalar_type() == at::kFloat && input.device().is_cpu();
  if (!fast)
    return at::native::_convolution_double_backward(ggI, ggW, ggb, gO, weight, input, stride, padding, dilation,
                                                    transposed, output_padding, groups, output_mask);
  ++conv_double_backward_calls;
  at::Tensor ggO, gW;
  if (output_mask[0])
    ggO = at::convolution(*ggI, weight, std::nullopt, stride, padding, dilation, false, output_padding, groups);
  if (output_mask[2])
    gW = std::get<1>(at::convolution_backward(gO, *ggI, weight, std::nullopt, stride, padding, dilation, false,
                                              output_padding, groups, {false, true, false}));
  return {ggO, at::Tensor(), gW};
}

// Per-op wall times while profiling (`gan-lab bench --profile`): for each op and autograd node
// name, its calls, its time from start to end, and its self time (less the ops it ran inside).
// Only the thread that started the profile is timed (the training loop, autograd's backward on
// the CPU, the optimizers): other threads' work, tests running beside it, stays out.
struct OpTimes {
  int64_t calls = 0;
  double total_ms = 0, self_ms = 0;
};
std::mutex profile_mutex;
std::map<std::string, OpTimes> profile;
std::chrono::steady_clock::time_point profile_started;
std::optional<at::CallbackHandle> profile_handle;
struct Frame {
  std::chrono::steady_clock::time_point start;
  double children_ms = 0;
};
thread_local std::vector<Frame> frames;

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

thread_local bool profiling = false;

void range_start() {
  if (profiling) frames.push_back({std::chrono::steady_clock::now(), 0});
}

void range_end(const char* name) {
  if (!profiling || frames.empty()) return;
  const Frame frame = frames.back();
  frames.pop_back();
  const double ms = ms_since(frame.start);
  if (!frames.empty()) frames.back().children_ms += ms;
  std::lock_guard<std::mutex> lock(profile_mutex);
  auto& t = profile[name];
  ++t.calls;
  t.total_ms += ms;
  t.self_ms += ms - frame.children_ms;
}

// gan_lab's own work, timed as one op while profiling.
struct Range {
  const char* name;
  explicit Range(const char* name) : name(name) { range_start(); }
  ~Range() { range_end(name); }
};

// Times the image forms below ran on this thread (tests).
thread_local int64_t image_conv_backward_calls = 0, image_conv_forward_calls = 0;

// A k4 s2 p1 convolution of a one-channel float32 image (D's first layer, the VAE encoder's),
// and its transpose onto such an image (G's last layer in every family, the VAE decoder's):
// oneDNN ran D's, 1 → 32 channels at batch 64, at about 110 GFLOP/s, plus its weight reorders
// and set-up on each of a DCGAN step's three calls. Here each output pixel of the convolution is
// 16 products per channel, the weights of 16 channels held in registers while a row of pixels
// goes by; sums in the order of the window offsets (a, b), so the same bits run to run. The
// transposed convolution (the convolution's input gradient) adds each map position's 16 window
// values onto its image (`image_from_maps`). Each one's gradients are the other and the shared
// weight gradient below. Taken for C (the maps' channels) a multiple of 16 (every
// lesson's); the convolution's image gradient for any C; otherwise libtorch's own.
enum class ImageConv { none, conv, transposed };

// Which form `convolution(input, weight, ...)` is: the convolution of an image [N, 1, 2h, 2w]
// into maps [N, C, h, w], or the transposed one of such maps into the image (weight [C, 1, 4, 4]
// either way); `any_c` also takes the convolution for C not a multiple of 16.
ImageConv image_conv(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed, at::IntArrayRef output_padding,
                     int64_t groups, bool any_c = false) {
  const auto all = [](at::IntArrayRef v, int64_t x) {
    return v.size() == 2 && std::all_of(v.begin(), v.end(), [x](int64_t e) { return e == x; });
  };
  const bool k4s2p1 = groups == 1 && input.dim() == 4 && weight.dim() == 4 && weight.size(1) == 1 &&
                      weight.size(2) == 4 && weight.size(3) == 4 && all(stride, 2) && all(padding, 1) &&
                      all(dilation, 1) && input.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                      input.device().is_cpu();
  const bool c16 = weight.dim() == 4 && weight.size(0) % 16 == 0;
  if (k4s2p1 && !transposed && input.size(1) == 1 && input.size(2) % 2 == 0 && input.size(3) % 2 == 0 &&
      (c16 || any_c))
    return ImageConv::conv;
  if (k4s2p1 && transposed && input.size(1) == weight.size(0) && all(output_padding, 0) && c16)
    return ImageConv::transposed;
  return ImageConv::none;
}

// Vectors of L floats (the compiler's vector types), loaded and stored at any float alignment.
// (Spelled out per width: GCC drops a vector_size attribute that depends on a template argument.)
template <int L>
struct Lanes;
template <>
struct Lanes<8> {
  typedef float type __attribute__((vector_size(32)));
  typedef float unaligned __attribute__((vector_size(32), aligned(4)));
};
template <>
struct Lanes<16> {
  typedef float type __attribute__((vector_size(64)));
  typedef float unaligned __attribute__((vector_size(64), aligned(4)));
};
template <int L>
using vf = typename Lanes<L>::type;
template <int L>
inline __attribute__((always_inline)) vf<L> load(const float* p) {
  static_assert(sizeof(vf<L>) == 4 * L, "a vector of L floats");
  return *reinterpret_cast<const typename Lanes<L>::unaligned*>(p);
}
template <int L>
inline __attribute__((always_inline)) void store(float* p, vf<L> v) {
  *reinterpret_cast<typename Lanes<L>::unaligned*>(p) = v;
}

// The image kernels below are written once for vectors of L lanes and compiled three times: for
// AVX-512 (L = 16, the 16 window weights of 16 channels in registers beside the sum), for AVX2
// with FMA (L = 8, the 16 taps in two passes of 8, so that weights or sums stay in the 16
// registers instead of spilling), and for any x86-64 (SSE, the AVX2 arrangement). Each output's
// sum keeps the order of the window offsets in every copy; the copies differ only in FMA's single
// rounding (AVX-512 and AVX2 give the same bits). `wide_isa` picks one per process: the best the
// CPU has, capped by ATEN_CPU_CAPABILITY as libtorch's own kernels are ("avx2", "default").
enum class Isa { plain, avx2, avx512 };

Isa wide_isa() {
  static const Isa isa = [] {
#if defined(__x86_64__) && defined(__linux__)
    __builtin_cpu_init();
    Isa best = __builtin_cpu_supports("avx512f")                                    ? Isa::avx512
               : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? Isa::avx2
                                                                                   : Isa::plain;
    const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
    const std::string capped = cap ? cap : "";
    if (capped == "default") best = Isa::plain;
    if (capped == "avx2" && best == Isa::avx512) best = Isa::avx2;
    return best;
#else
    return Isa::plain;
#endif
  }();
  return isa;
}

#if defined(__x86_64__) && defined(__linux__)
#define GAN_LAB_AVX512 __attribute__((noinline, target("avx512f")))
#define GAN_LAB_AVX2 __attribute__((noinline, target("avx2,fma")))
#else
#define GAN_LAB_AVX512 __attribute__((noinline))
#define GAN_LAB_AVX2 __attribute__((noinline))
#endif

// Defines `name(params)` calling `name##_t<16, 1>`, `<8, 2>` or (plain) `<8, 2>` for `wide_isa`.
#define GAN_LAB_WIDE_KERNEL(name, params, args)                                    \
  GAN_LAB_AVX512 void name##_avx512 params { name##_t<16, 1> args; }             \
  GAN_LAB_AVX2 void name##_avx2 params { name##_t<8, 2> args; }                  \
  __attribute__((noinline)) void name##_plain params { name##_t<8, 2> args; }    \
  void name params {                                                             \
    switch (wide_isa()) {                                                        \
      case Isa::avx512: return name##_avx512 args;                               \
      case Isa::avx2: return name##_avx2 args;                                   \
      default: return name##_plain args;                                         \
    }                                                                            \
  }

// One output row: out[j, k] = start[k] + Σ_(a, b) rows[a][2j + b]·wt[4a + b, k] for j < w, k < c
// (c a multiple of 16); rows: the four zero-padded image rows the windows cover (2w + 2 values).
// In H passes over the row, each with 16/H of the taps' weights in registers (the second pass
// continues the sums the first stored).
template <int L, int H>
inline __attribute__((always_inline)) void image_conv_row_t(const float* const* rows, const float* __restrict__ wt,
                                                            const float* __restrict__ start,
                                                            float* __restrict__ out, int64_t w, int64_t c) {
  constexpr int T = 16 / H;
  for (int64_t k0 = 0; k0 < c; k0 += L) {
    for (int pass = 0; pass < H; ++pass) {
      vf<L> k[T];
      for (int t = 0; t < T; ++t) k[t] = load<L>(wt + (pass * T + t) * c + k0);
      for (int64_t j = 0; j < w; ++j) {
        vf<L> acc = load<L>(pass == 0 ? start + k0 : out + j * c + k0);
        for (int t = 0; t < T; ++t) acc += rows[(pass * T + t) / 4][2 * j + (pass * T + t) % 4] * k[t];
        store<L>(out + j * c + k0, acc);
      }
    }
  }
}
GAN_LAB_WIDE_KERNEL(image_conv_row,
                    (const float* const* rows, const float* __restrict__ wt, const float* __restrict__ start,
                     float* __restrict__ out, int64_t w, int64_t c),
                    (rows, wt, start, out, w, c))

// One output row's share of the weight's gradient: acc[4a + b, k] += Σ_j rows[a][2j + b]·g[j, k],
// 16/H of the taps' sums in registers per pass.
template <int L, int H>
inline __attribute__((always_inline)) void image_conv_row_grad_t(const float* const* rows,
                                                                 const float* __restrict__ g,
                                                                 float* __restrict__ acc, int64_t w, int64_t c) {
  constexpr int T = 16 / H;
  for (int64_t k0 = 0; k0 < c; k0 += L) {
    for (int pass = 0; pass < H; ++pass) {
      vf<L> s[T];
      for (int t = 0; t < T; ++t) s[t] = load<L>(acc + (pass * T + t) * c + k0);
      for (int64_t j = 0; j < w; ++j) {
        const vf<L> gj = load<L>(g + j * c + k0);
        for (int t = 0; t < T; ++t) s[t] += rows[(pass * T + t) / 4][2 * j + (pass * T + t) % 4] * gj;
      }
      for (int t = 0; t < T; ++t) store<L>(acc + (pass * T + t) * c + k0, s[t]);
    }
  }
}
GAN_LAB_WIDE_KERNEL(image_conv_row_grad,
                    (const float* const* rows, const float* __restrict__ g, float* __restrict__ acc, int64_t w,
                     int64_t c),
                    (rows, g, acc, w, c))

// For each output row (s, i) of an image [N, 1, 2h, 2w]: the four image rows its windows read,
// zero-padded on both sides (rows outside the image all zeros), in `pad` (4·(2w + 2) floats).
void padded_rows(const float* image, int64_t s, int64_t i, int64_t h, int64_t w, float* pad, const float** rows) {
  const int64_t width = 2 * w + 2;
  for (int a = 0; a < 4; ++a) {
    float* row = pad + a * width;
    const int64_t y = 2 * i - 1 + a;
    std::fill(row, row + width, 0.f);
    if (y >= 0 && y < 2 * h) std::memcpy(row + 1, image + (s * 2 * h + y) * 2 * w, 2 * w * sizeof(float));
    rows[a] = row;
  }
}

// The convolution, channels-last when the image or the weight is (as libtorch's would answer).
at::Tensor image_conv_forward(const at::Tensor& input, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias) {
  const Range range("gan_lab::image_conv");
  const int64_t n = input.size(0), c = weight.size(0), h = input.size(2) / 2, w = input.size(3) / 2;
  const auto x = input.contiguous();
  // wt[4a + b, k] = weight[k, 0, a, b]
  const auto wt = weight.reshape({c, 16}).t().contiguous();
  const auto start = bias.has_value() && bias->defined() ? bias->contiguous() : at::zeros({c}, x.options());
  auto out = at::empty({n, h, w, c}, x.options());
  const float *xp = x.const_data_ptr<float>(), *wp = wt.const_data_ptr<float>(), *sp = start.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n * h, std::max<int64_t>(1, 4096 / (w * c)), [&](int64_t begin, int64_t end) {
    std::vector<float> pad(4 * (2 * w + 2));
    const float* rows[4];
    for (int64_t si = begin; si < end; ++si) {
      padded_rows(xp, si / h, si % h, h, w, pad.data(), rows);
      image_conv_row(rows, wp, sp, op + si * w * c, w, c);
    }
  });
  auto y = out.permute({0, 3, 1, 2});
  const bool channels_last = input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
                             weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  return channels_last ? y : y.contiguous();
}

// The weight's gradient [C, 1, 4, 4] (in the weight's layout) of the convolution of `image` into
// `maps`, gradient or value: Σ maps[n, k, i, j]·image[n, 0, 2i − 1 + a, 2j − 1 + b]. Per-thread float
// sums over blocks of output rows, moved into double (`channel_sums`, its two halves read as one
// [16, C] table).
at::Tensor image_conv_weight_grad(const at::Tensor& maps, const at::Tensor& image, const at::Tensor& weight) {
  const Range range("gan_lab::image_conv_weight_grad");
  const int64_t n = image.size(0), c = weight.size(0), h = image.size(2) / 2, w = image.size(3) / 2;
  const auto x = image.contiguous();
  const auto g = maps.permute({0, 2, 3, 1}).contiguous();  // [N, h, w, C]
  const float *xp = x.const_data_ptr<float>(), *gp = g.const_data_ptr<float>();
  const auto sums = channel_sums(n * h, 8 * c, [&](int64_t begin, int64_t count, float* acc, float*) {
    std::vector<float> pad(4 * (2 * w + 2));
    const float* rows[4];
    for (int64_t si = begin; si < begin + count; ++si) {
      padded_rows(xp, si / h, si % h, h, w, pad.data(), rows);
      image_conv_row_grad(rows, gp + si * w * c, acc, w, c);
    }
  });
  // In (k, a, b) order: the weight's own strides when it is stored so (plain or channels-last:
  // its channel axis has one entry), else plain.
  const bool kab = weight.stride(0) == 16 && weight.stride(2) == 4 && weight.stride(3) == 1;
  auto gw = kab ? at::empty_strided(weight.sizes(), weight.strides(), weight.options())
                : at::empty_like(weight, at::MemoryFormat::Contiguous);
  float* out = gw.data_ptr<float>();
  for (int64_t k = 0; k < c; ++k)
    for (int64_t t = 0; t < 16; ++t) out[k * 16 + t] = static_cast<float>(sums[t * c + k]);
  return gw;
}

// One image's transposed convolution: for each map position (i, j), its 16 window values
// v[4a + b] = Σ_k maps[i, j, k]·wt[k, 4a + b] (four partial sums over k mod 4, each 16/L vectors),
// added onto the padded image `buf` ((2h + 2) × (2w + 2), zeroed) at rows 2i + a, columns 2j + b;
// positions in order, so each pixel's sum has a fixed order. (H is unused: the sums fit either way.)
template <int L, int H>
inline __attribute__((always_inline)) void image_from_maps_one_t(const float* __restrict__ maps,
                                                                 const float* __restrict__ wt,
                                                                 float* __restrict__ buf, int64_t h, int64_t w,
                                                                 int64_t c) {
  constexpr int P = 16 / L;
  const int64_t width = 2 * w + 2;
  for (int64_t i = 0; i < h; ++i) {
    for (int64_t j = 0; j < w; ++j) {
      const float* m = maps + (i * w + j) * c;
      vf<L> v[4][P] = {};
      for (int64_t k = 0; k < c; k += 4)
        for (int q = 0; q < 4; ++q)
          for (int p = 0; p < P; ++p) v[q][p] += m[k + q] * load<L>(wt + (k + q) * 16 + p * L);
      float sum[16];
      for (int p = 0; p < P; ++p) store<L>(sum + p * L, (v[0][p] + v[1][p]) + (v[2][p] + v[3][p]));
      for (int a = 0; a < 4; ++a) {
        float* dst = buf + (2 * i + a) * width + 2 * j;
        for (int b = 0; b < 4; ++b) dst[b] += sum[4 * a + b];
      }
    }
  }
}
GAN_LAB_WIDE_KERNEL(image_from_maps_one,
                    (const float* __restrict__ maps, const float* __restrict__ wt, float* __restrict__ buf,
                     int64_t h, int64_t w, int64_t c),
                    (maps, wt, buf, h, w, c))

// The transposed convolution of maps [N, C, h, w] onto an image [N, 1, 2h, 2w] (channels-last
// strides): per image as above for C a multiple of 16, else one matrix product, [N·h·w, C] ×
// [C, 16], whose rows `overlap_of` sums onto the image.
at::Tensor image_from_maps(const at::Tensor& maps, const at::Tensor& weight) {
  const Range range("gan_lab::image_from_maps");
  const int64_t n = maps.size(0), c = maps.size(1), h = maps.size(2), w = maps.size(3);
  if (c % 16 != 0) {
    const auto rows = maps.permute({0, 2, 3, 1}).reshape({n * h * w, c}).mm(weight.reshape({c, 16}));
    return overlap_of(rows, n, h, w);
  }
  const auto m = maps.permute({0, 2, 3, 1}).contiguous();  // [N, h, w, C]
  const auto wt = weight.reshape({c, 16}).contiguous();                     // wt[k, 4a + b] = weight[k, 0, a, b]
  auto out = at::empty({n, 2 * h, 2 * w, 1}, m.options());
  const float *mp = m.const_data_ptr<float>(), *wp = wt.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    const int64_t width = 2 * w + 2;
    std::vector<float> buf((2 * h + 2) * width);
    for (int64_t s = begin; s < end; ++s) {
      std::fill(buf.begin(), buf.end(), 0.f);
      image_from_maps_one(mp + s * h * w * c, wp, buf.data(), h, w, c);
      for (int64_t y = 0; y < 2 * h; ++y)
        std::memcpy(op + (s * 2 * h + y) * 2 * w, buf.data() + (y + 1) * width + 1, 2 * w * sizeof(float));
    }
  });
  return out.permute({0, 3, 1, 2});
}

// Times a convolution or its gradient took a dense form on this thread (tests).
thread_local int64_t dense_conv_calls = 0;

// Layers that are one matrix product over their weights: a convolution whose kernel covers its
// whole input (D's last layer, k4 s1 p0 on 4×4 maps: one output per image) and a transposed
// convolution of a single pixel (G's first layer, the latent vector to k×k maps). oneDNN's
// convolutions at these shapes took several times as long as the product. Both read and write
// the maps channels-last, (row, column, channel) order, the layout the fast backend trains in.
//
// And the k4 s2 p1 layers on small maps with many channels (down to 4×4 or below, up from 4×4
// or below, at least 16 channels each side: the cDCGAN's 256 → 512 and 512 → 256, the VAE's 128
// → 256 and 256 → 128): a convolution as one product over its input's 4×4 windows
// (`windows_of`), a transposed one as one product whose rows are summed onto the output's
// overlapping windows (`overlap_of`); each one's input gradient is the other's form. There
// oneDNN's kernels took longer than the product; on larger maps they are faster.
enum class DenseConv { none, whole, pixel, windows, overlap };

// Which dense form `convolution(input, weight, ...)` is, for float32 CPU tensors without dilation
// or groups.
DenseConv dense_conv(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
                     at::IntArrayRef output_padding, int64_t groups) {
  const auto all = [](at::IntArrayRef v, int64_t x) {
    return v.size() == 2 && std::all_of(v.begin(), v.end(), [x](int64_t e) { return e == x; });
  };
  if (groups != 1 || input.dim() != 4 || weight.dim() != 4 || input.scalar_type() != at::kFloat ||
      weight.scalar_type() != at::kFloat || !input.device().is_cpu() || !all(dilation, 1) ||
      input.size(1) != weight.size(transposed ? 0 : 1) || (transposed && !all(output_padding, 0)))
    return DenseConv::none;
  if (all(stride, 1) && all(padding, 0)) {
    if (!transposed && input.size(2) == weight.size(2) && input.size(3) == weight.size(3)) return DenseConv::whole;
    if (transposed && input.size(2) == 1 && input.size(3) == 1) return DenseConv::pixel;
    return DenseConv::none;
  }
  const bool k4s2p1 = all(stride, 2) && all(padding, 1) && weight.size(2) == 4 && weight.size(3) == 4;
  if (!k4s2p1 || weight.size(0) < 16 || weight.size(1) < 16) return DenseConv::none;
  const int64_t h = input.size(2), w = input.size(3);
  if (!transposed && h % 2 == 0 && w % 2 == 0 && h <= 8 && w <= 8) return DenseConv::windows;
  if (transposed && h <= 4 && w <= 4) return DenseConv::overlap;
  return DenseConv::none;
}

// The weight as a matrix: [out, k·k·C] for a convolution ([out, C, k, k]), [C, k·k·out] for a
// transposed one ([C, out, k, k]); (row, column, channel) order.
at::Tensor dense_weight(const at::Tensor& weight) {
  return weight.permute({0, 2, 3, 1}).reshape({weight.size(0), -1});
}

// Maps [N, C, H, W] as rows [N·H·W, C] (no copy for channels-last maps), and back.
at::Tensor map_rows(const at::Tensor& x) { return x.permute({0, 2, 3, 1}).reshape({-1, x.size(1)}); }
at::Tensor rows_map(const at::Tensor& rows, int64_t n, int64_t h, int64_t w) {
  return rows.view({n, h, w, -1}).permute({0, 3, 1, 2});
}

at::Tensor dense_forward(DenseConv form, const at::Tensor& input, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias) {
  const Range range("gan_lab::dense_conv");
  const int64_t n = input.size(0), h = input.size(2), w = input.size(3);
  const bool biased = bias.has_value() && bias->defined();
  switch (form) {
    case DenseConv::whole: {
      const auto rows = input.permute({0, 2, 3, 1}).reshape({n, -1});
      const auto wt = dense_weight(weight).t();
      return rows_map(biased ? at::addmm(*bias, rows, wt) : rows.mm(wt), n, 1, 1);
    }
    case DenseConv::windows: {
      const auto rows = windows_of(input), wt = dense_weight(weight).t();
      return rows_map(biased ? at::addmm(*bias, rows, wt) : rows.mm(wt), n, h / 2, w / 2);
    }
    default: {  // pixel, overlap: the input's rows times the weight, placed or summed onto the windows
      const int64_t out = weight.size(1), k = weight.size(2);
      const auto rows = map_rows(input).mm(dense_weight(weight));
      auto y = form == DenseConv::pixel ? rows.view({n, k, k, out}).permute({0, 3, 1, 2}) : overlap_of(rows, n, h, w);
      return biased ? y + bias->view({1, out, 1, 1}) : y;
    }
  }
}

// The dense forms' gradients: products with the same matrices.
std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_backward(DenseConv form, const at::Tensor& gO,
                                                              const at::Tensor& input, const at::Tensor& weight,
                                                              std::array<bool, 3> mask) {
  const Range range("gan_lab::dense_conv_backward");
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t kh = weight.size(2), kw = weight.size(3);
  at::Tensor gI, gW, gb;
  if (form == DenseConv::whole || form == DenseConv::windows) {
    const int64_t out = weight.size(0);
    const bool whole = form == DenseConv::whole;
    const auto g = map_rows(gO).reshape({-1, out});
    if (mask[0]) {
      const auto rows = g.mm(dense_weight(weight));
      gI = whole ? rows.view({n, kh, kw, c}).permute({0, 3, 1, 2}) : overlap_of(rows, n, h / 2, w / 2);
    }
    if (mask[1]) {
      const auto rows = whole ? input.permute({0, 2, 3, 1}).reshape({n, -1}) : windows_of(input);
      gW = g.t().mm(rows).view({out, kh, kw, c}).permute({0, 3, 1, 2});
    }
    if (mask[2]) gb = g.sum(0);
  } else {  // pixel, overlap: the output's windows are the rows
    const int64_t out = weight.size(1);
    const auto rows = form == DenseConv::pixel ? gO.permute({0, 2, 3, 1}).reshape({n, -1}) : windows_of(gO);
    if (mask[0]) gI = rows_map(rows.mm(dense_weight(weight).t()), n, h, w);
    if (mask[1]) gW = map_rows(input).t().mm(rows).view({c, kh, kw, out}).permute({0, 3, 1, 2});
    if (mask[2]) gb = gO.sum({0, 2, 3});
  }
  return {gI, gW, gb};
}

at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
                        at::IntArrayRef output_padding, int64_t groups) {
  // A bias the image forms can add: none, or one float32 value per output channel (libtorch's own
  // function names anything else).
  const auto bias_fits = [&](int64_t out) {
    return !bias.has_value() || !bias->defined() ||
           (bias->dim() == 1 && bias->size(0) == out && bias->scalar_type() == at::kFloat);
  };
  const auto dense = dense_conv(input, weight, stride, padding, dilation, transposed, output_padding, groups);
  if (dense != DenseConv::none && bias_fits(weight.size(transposed ? 1 : 0))) {
    ++dense_conv_calls;
    return dense_forward(dense, input, weight, bias);
  }
  const auto form = image_conv(input, weight, stride, padding, dilation, transposed, output_padding, groups);
  switch (bias_fits(form == ImageConv::conv ? weight.size(0) : 1) ? form : ImageConv::none) {
    case ImageConv::conv:
      ++image_conv_forward_calls;
      return image_conv_forward(input, weight, bias);
    case ImageConv::transposed: {
      ++image_conv_forward_calls;
      auto y = image_from_maps(input, weight);
      return bias.has_value() && bias->defined() ? y + bias->view({1, 1, 1, 1}) : y;
    }
    case ImageConv::none:
      break;
  }
  return at::native::convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups);
}

// A convolution's gradients: the image forms above where they apply (the input's gradient of a
// k4 s2 p1 convolution of a one-channel image is the transposed convolution of the output's
// gradient, which oneDNN's kernel for this shape ran at 17 GFLOP/s: 1 ms per call at batch 64,
// 32 channels), everything else libtorch's own function. Autograd's formula for this op's
// gradient (the double backward above) is unchanged.
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward(
    const at::Tensor& gO, const at::Tensor& input, const at::Tensor& weight, at::OptionalIntArrayRef bias_sizes,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
    at::IntArrayRef output_padding, int64_t groups, std::array<bool, 3> output_mask) {
  const auto dense = dense_conv(input, weight, stride, padding, dilation, transposed, output_padding, groups);
  if (dense != DenseConv::none && gO.scalar_type() == at::kFloat) {
    ++dense_conv_calls;
    return dense_backward(dense, gO, input, weight, output_mask);
  }
  const auto form = image_conv(input, weight, stride, padding, dilation, transposed, output_padding, groups, true);
  const bool sides = form != ImageConv::none && gO.dim() == 4 && gO.scalar_type() == at::kFloat &&
                     (form == ImageConv::conv ? gO.size(2) * 2 == input.size(2) && gO.size(3) * 2 == input.size(3)
                                              : input.size(2) * 2 == gO.size(2) && input.size(3) * 2 == gO.size(3));
  const bool own_weight_grad = sides && weight.size(0) % 16 == 0;
  if (!sides || (!output_mask[0] && !own_weight_grad))
    return at::native::convolution_backward(gO, input, weight, bias_sizes, stride, padding, dilation, transposed,
                                            output_padding, groups, output_mask);
  ++image_conv_backward_calls;
  // The image and the maps, and which of them gO is the gradient of.
  const bool conv = form == ImageConv::conv;
  const auto &image = conv ? input : gO, &maps = conv ? gO : input;
  at::Tensor gI, gW, gb;
  if (own_weight_grad) {
    if (output_mask[1]) gW = image_conv_weight_grad(maps, image, weight);
    if (output_mask[2]) gb = gO.sum({0, 2, 3}, false, at::kDouble).to(at::kFloat);  // totals in double
  } else if (output_mask[1] || output_mask[2]) {
    std::tie(std::ignore, gW, gb) = at::native::convolution_backward(
        gO, input, weight, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
        {false, output_mask[1], output_mask[2]});
  }
  if (output_mask[0]) gI = conv ? image_from_maps(gO, weight) : image_conv_forward(gO, weight, std::nullopt);
  return {gI, gW, gb};
}

// Times a matrix product took oneDNN's kernel on this thread (tests).
thread_local int64_t dnnl_matmul_calls = 0;

// Float32 matrix products. libtorch hands them to MKL's sgemm; oneDNN's matmul, also inside
// libtorch (its convolutions run on it), was more than twice as fast on the AMD AVX-512 CPUs
// measured (2 threads: 440–460 against 200–220 GFLOP/s at 2048×2048×2048, 450 against 200 at the
// cDCGAN's 4096×2048×256). Products of float32 CPU matrices with at least `dnnl_min_macs`
// multiply-adds and every side at least `dnnl_min_side` go to oneDNN (a single row plus a bias
// with a transposed weight corrupted memory in this libtorch's oneDNN); everything else, and every
// product on a CPU whose oneDNN refuses float32 matmuls, to libtorch's own kernel (the `out=`
// variants, not replaced here). Same sums up to rounding; for a given thread count, the same bits
// run to run.
constexpr int64_t dnnl_min_macs = int64_t{1} << 15, dnnl_min_side = 16;
std::atomic<bool> dnnl_matmul_usable{true};

bool dnnl_shapes(const at::Tensor& a, const at::Tensor& b) {
  return dnnl_matmul_usable && a.dim() == 2 && b.dim() == 2 && a.scalar_type() == at::kFloat &&
         b.scalar_type() == at::kFloat && a.layout() == at::kStrided && b.layout() == at::kStrided &&
         a.device().is_cpu() && b.device().is_cpu() && a.size(1) == b.size(0) &&
         a.size(0) * a.size(1) * b.size(1) >= dnnl_min_macs && a.size(0) >= dnnl_min_side &&
         a.size(1) >= dnnl_min_side && b.size(1) >= dnnl_min_side;
}

// result = beta·result + alpha·a·b by oneDNN; false (result untouched) where oneDNN refuses.
bool dnnl_product(const at::Tensor& a, const at::Tensor& b, const at::Tensor& result, float beta, float alpha) {
  try {
    at::native::mkldnn_matmul(a, b, result, beta, alpha);
    ++dnnl_matmul_calls;
    return true;
  } catch (const c10::Error&) {
    dnnl_matmul_usable = false;  // a CPU without what oneDNN's float32 matmul needs: never again
    return false;
  }
}

at::Tensor mm_kernel(const at::Tensor& a, const at::Tensor& b) {
  if (dnnl_shapes(a, b)) {
    auto out = at::empty({a.size(0), b.size(1)}, a.options());
    if (dnnl_product(a, b, out, 0.0f, 1.0f)) return out;
  }
  auto out = at::empty({a.size(0), b.size(1)}, a.options());
  return at::mm_out(out, a, b);
}

at::Tensor addmm_kernel(const at::Tensor& self, const at::Tensor& a, const at::Tensor& b, const at::Scalar& beta,
                        const at::Scalar& alpha) {
  // self + a·b (the dense layers' form); other scales go to libtorch.
  if (dnnl_shapes(a, b) && self.scalar_type() == at::kFloat && self.layout() == at::kStrided &&
      !beta.isComplex() && !alpha.isComplex() && beta.toDouble() == 1.0 && alpha.toDouble() == 1.0) {
    // A fresh matrix (oneDNN adds the product in place), never a view of the caller's tensor.
    auto out = at::empty({a.size(0), b.size(1)}, a.options());
    out.copy_(self.expand({a.size(0), b.size(1)}));
    if (dnnl_product(a, b, out, 1.0f, 1.0f)) return out;
  }
  auto out = at::empty({a.size(0), b.size(1)}, a.options().dtype(at::result_type(self, a)));
  return at::addmm_out(out, self, a, b, beta, alpha);
}

// Whether this thread holds gan_lab's seed lock (`train::with_seed`, which sets it), and the
// random draws from libtorch's global generator made without it, counted once
// `gan_lab_unseeded_draws` is first called (tests): such a draw, on any thread, can land between
// another thread's seeding and its draws, so that run is no longer determined by its seed.
thread_local bool seeded = false;
std::atomic<int64_t> unseeded_draws{0};

bool draws_from_the_generator(const char* name) {
  static const std::array<const char*, 22> ops = {
      "aten::rand",         "aten::randn",       "aten::randint",    "aten::randperm",     "aten::rand_like",
      "aten::randn_like",   "aten::randint_like", "aten::uniform_",  "aten::normal",       "aten::normal_",
      "aten::bernoulli",    "aten::bernoulli_",  "aten::random_",    "aten::multinomial",  "aten::exponential_",
      "aten::cauchy_",      "aten::log_normal_", "aten::geometric_", "aten::poisson",      "aten::native_dropout",
      "aten::rrelu_with_noise", "aten::binomial"};
  return std::any_of(ops.begin(), ops.end(), [name](const char* op) { return std::strcmp(op, name) == 0; });
}


// Puts gan_lab's kernels in libtorch's dispatcher (`gan_lab_register_kernels`, called once by the
// fast backend). libtorch warns when a kernel is replaced; that warning says nothing to a student,
// so it is not shown.
// Whether `mm` and `addmm` were replaced: gan_lab_register_kernels' choice, made per CPU by
// gan_lab::backend (oneDNN's products where they measured faster than libtorch's own).
std::atomic<bool> products_replaced{false};

// Times the fast backend's BatchNorm ran on this thread (tests).
thread_local int64_t batch_norm_calls = 0;

// libtorch's `batch_norm` (what tch's `nn::BatchNorm` runs) on the fast backend: in training, on
// float32 maps and [N, C] matrices, the two-pass BatchNorm above with the identity for activation
// (slope 1: max(y, 0) + min(y, 0) is y, bit for bit); libtorch's own otherwise (evaluation,
// bfloat16, a gradient of the gradient).
at::Tensor batch_norm_kernel(const at::Tensor& x, const std::optional<at::Tensor>& weight,
                             const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& running_mean,
                             const std::optional<at::Tensor>& running_var, bool train, double momentum, double eps,
                             bool cudnn_enabled) {
  const auto plain = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous(); };
  // Taken with running statistics, as every BatchNorm of the lessons keeps (libtorch's
  // `instance_norm`, which calls `batch_norm` without them, keeps libtorch's).
  if (train && x.device().is_cpu() && given(weight) && given(bias) && plain(*weight) && plain(*bias) &&
      given(running_mean) && given(running_var) && plain(*running_mean) && plain(*running_var)) {
    const auto xs = fusable_layout(x);
    if (fusable(xs, *weight, *bias)) {
      const Range range("gan_lab::batch_norm");
      ++batch_norm_calls;
      return BatchNormAct::apply(xs, *weight, *bias, *running_mean, *running_var, momentum, eps, 1.0);
    }
  }
  return libtorch_batch_norm(x, weight, bias, running_mean, running_var, train, momentum, eps, cudnn_enabled);
}

// Times the fast backend's LayerNorm ran on this thread (tests).
thread_local int64_t layer_norm_calls = 0;

// libtorch's `layer_norm` (what tch's `nn::LayerNorm` runs) on the fast backend: over each
// sample's [C, H, W] of a float32 map, plain or channels-last, a multiple of 16 values (a WGAN-GP
// critic's), the two-pass LayerNorm above with the identity for activation (slope 1), whose
// gradient and gradient's gradient are ops of two passes each; libtorch's own otherwise.
at::Tensor layer_norm_kernel(const at::Tensor& x, c10::SymIntArrayRef shape, const std::optional<at::Tensor>& weight,
                             const std::optional<at::Tensor>& bias, double eps, bool cudnn_enable) {
  const auto normalized = C10_AS_INTARRAYREF_SLOW(shape);
  if (x.device().is_cpu() && x.dim() >= 2 && normalized == x.sizes().slice(1) && given(weight) && given(bias)) {
    const bool cl = channels_last_map(x);
    const auto w = cl && weight->dim() == 3 ? weight->permute({1, 2, 0}).contiguous() : *weight;
    const auto b = cl && bias->dim() == 3 ? bias->permute({1, 2, 0}).contiguous() : *bias;
    if (layer_norm_fusable(x, w, b, 1.0)) {
      const Range range("gan_lab::layer_norm");
      ++layer_norm_calls;
      return LayerNormAct::apply(x, w, b, eps, 1.0);
    }
  }
  return std::get<0>(at::native_layer_norm(x, normalized, weight, bias, eps));
}

void register_kernels(bool products) {
  struct Quiet : c10::WarningHandler {
    void process(const c10::Warning&) override {}
  } quiet;
  c10::WarningUtils::WarningHandlerGuard guard(&quiet);
  static auto* library = new torch::Library(torch::Library::IMPL, "aten",
                                            c10::DispatchKey::CompositeImplicitAutograd, __FILE__, __LINE__);
  library->impl("_convolution_double_backward", TORCH_FN(conv_double_backward));
  library->impl("batch_norm", TORCH_FN(batch_norm_kernel));
  library->impl("layer_norm", TORCH_FN(layer_norm_kernel));
  static auto* explicit_autograd = new torch::Library(
      torch::Library::IMPL, "aten", c10::DispatchKey::CompositeExplicitAutograd, __FILE__, __LINE__);
  explicit_autograd->impl("convolution", TORCH_FN(conv_forward));
  explicit_autograd->impl("convolution_backward", TORCH_FN(conv_backward));
  static auto* cpu = new torch::Library(torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__, __LINE__);
  if (products) {
    cpu->impl("mm", TORCH_FN(mm_kernel));
    cpu->impl("addmm", TORCH_FN(addmm_kernel));
    products_replaced = true;
  }
}
}  // namespace

extern "C" {

// Registers the kernels above in libtorch's dispatcher, once (later calls do nothing); `mm` and
// `addmm` only when `products`.
void gan_lab_register_kernels(bool products) {
  static std::once_flag once;
  std::call_once(once, [products] { register_kernels(products); });
}

// Whether gan_lab_register_kernels replaced `mm` and `addmm`.
bool gan_lab_products_replaced() { return products_replaced; }

// The rate, in GFLOP/s, of float32 products [m, k]·[k, n] on libtorch's threads: by oneDNN's
// matmul as the replacement computes them (`dnnl`), or by libtorch's own kernel (`mm.out`, never
// replaced). Best of `reps` after one warm-up; 0 where oneDNN refuses the product.
double gan_lab_product_gflops(int64_t m, int64_t k, int64_t n, bool dnnl, int32_t reps) {
  try {
    // Fixed values, not random draws: measuring must not touch the global generator.
    const auto a = at::linspace(-1.0, 1.0, m * k, at::kFloat).reshape({m, k});
    const auto b = at::linspace(1.0, -1.0, k * n, at::kFloat).reshape({k, n});
    auto out = at::empty({m, n}, a.options());
    double best = 0.0;
    for (int32_t r = 0; r <= reps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      if (dnnl) {
        if (!dnnl_product(a, b, out, 0.0f, 1.0f)) return 0.0;
      } else {
        at::mm_out(out, a, b);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (r > 0 && (best == 0.0 || seconds < best)) best = seconds;
    }
    return best > 0.0 ? 2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n) / best / 1e9
                      : 0.0;
  } catch (const std::exception&) {
    return 0.0;
  }
}

// The message of this thread's last failed call, or null; valid until the next call.
const char* gan_lab_last_error() { return last_error.empty() ? nullptr : last_error.c_str(); }

void gan_lab_clear_error() { last_error.clear(); }

// LeakyReLU with any negative slope, with autograd (PyTorch's `F.leaky_relu(x, slope)`).
at::Tensor* gan_lab_leaky_relu(const at::Tensor* x, double slope) {
  return protect([&] { return at::leaky_relu(*x, slope); });
}

// The 4×4 windows of x [N, C, H, W] for a k4 s2 p1 convolution, [N·(H/2)·(W/2), 16·C], with autograd.
at::Tensor* gan_lab_windows_k4s2(const at::Tensor* x) {
  const Range range("gan_lab::windows_k4s2");
  return protect([&] { return Windows::apply(*x); });
}

// The sum of window rows [N·h·w, 16·C] onto a [N, C, 2h, 2w] map, with autograd.
at::Tensor* gan_lab_overlap_k4s2(const at::Tensor* rows, int64_t n, int64_t h, int64_t w) {
  const Range range("gan_lab::overlap_k4s2");
  return protect([&] { return Overlap::apply(*rows, n, h, w); });
}

// How many times a convolution's second derivative took the weight-gradient form on this thread
// (tests).
int64_t gan_lab_conv_double_backward_calls() { return conv_double_backward_calls; }

// How many times a one-channel image's gradient took the matrix-product form on this thread (tests).
int64_t gan_lab_image_conv_backward_calls() { return image_conv_backward_calls; }
int64_t gan_lab_image_conv_forward_calls() { return image_conv_forward_calls; }

// How many times the fast backend's BatchNorm ran on this thread (tests).
int64_t gan_lab_batch_norm_calls() { return batch_norm_calls; }

// How many times the fast backend's LayerNorm ran on this thread (tests).
int64_t gan_lab_layer_norm_calls() { return layer_norm_calls; }

// How many convolutions (or their gradients) took a dense form on this thread (tests).
int64_t gan_lab_dense_conv_calls() { return dense_conv_calls; }

// How many matrix products oneDNN's kernel computed on this thread (tests).
int64_t gan_lab_dnnl_matmul_calls() { return dnnl_matmul_calls; }

// Whether oneDNN has taken float32 products on this CPU so far (it refuses them on some AVX2 CPUs).
bool gan_lab_dnnl_matmul_usable() { return dnnl_matmul_usable; }

// Marks this thread as holding (or no longer holding) gan_lab's seed lock.
void gan_lab_seeded(bool on) { seeded = on; }

// Random draws from the global generator on threads not holding the seed lock since the first
// call (which starts watching every op: tests only).
int64_t gan_lab_unseeded_draws() {
  [[maybe_unused]] static const bool watching = [] {
    at::addGlobalCallback(at::RecordFunctionCallback([](const at::RecordFunction& fn)
                                                         -> std::unique_ptr<at::ObserverContext> {
                            if (!seeded && draws_from_the_generator(fn.name())) ++unseeded_draws;
                            return nullptr;
                          }).scopes({at::RecordScope::FUNCTION}));
    return true;
  }();
  return unseeded_draws.load();
}

// Runs f(ctx, begin, end) over [0, n) in chunks of at least `grain` on libtorch's thread pool (the
// threads its own kernels use, already awake between them).
void gan_lab_parallel_for(int64_t n, int64_t grain, void (*f)(void*, int64_t, int64_t), void* ctx) {
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) { f(ctx, begin, end); });
}

// Starts timing every op on this thread (see `profile`), from zero.
void gan_lab_profile_start() {
  std::lock_guard<std::mutex> lock(profile_mutex);
  profile.clear();
  frames.clear();
  profile_started = std::chrono::steady_clock::now();
  profiling = true;
  if (profile_handle) return;
  profile_handle = at::addGlobalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction&) -> std::unique_ptr<at::ObserverContext> {
            range_start();
            return nullptr;
          },
          [](const at::RecordFunction& fn, at::ObserverContext*) { range_end(fn.name()); })
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

// Starts and ends a named range of gan_lab's own work while profiling this thread.
void gan_lab_range_start() { range_start(); }
void gan_lab_range_end(const char* name) { range_end(name); }

// Stops timing ops (called on the thread that started) and returns a report, valid until the next
// call: a first line with the wall milliseconds since the start, then per op
// "calls total_ms self_ms name", most self time first.
const char* gan_lab_profile_stop() {
  static std::string report;
  profiling = false;
  std::lock_guard<std::mutex> lock(profile_mutex);
  if (profile_handle) at::removeCallback(*profile_handle);
  profile_handle.reset();
  std::vector<std::pair<std::string, OpTimes>> rows(profile.begin(), profile.end());
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.self_ms > b.second.self_ms; });
  report = std::to_string(ms_since(profile_started)) + "\n";
  for (const auto& [name, t] : rows)
    report += std::to_string(t.calls) + " " + std::to_string(t.total_ms) + " " + std::to_string(t.self_ms) + " " +
              name + "\n";
  return report.c_str();
}
}
