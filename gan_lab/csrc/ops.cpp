// libtorch ops that tch does not expose, called from src/ops.rs. Each takes and returns the
// `at::Tensor*` handles tch uses; on failure it returns null and keeps the message for
// `gan_lab_last_error`.
#include <ATen/ATen.h>

#include <exception>
#include <string>

namespace {
thread_local std::string last_error;

template <typename F>
at::Tensor* protect(F f) {
  try {
    return new at::Tensor(f());
  } catch (const std::exception& e) {
    last_error = e.what();
    return nullptr;
  }
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
}
