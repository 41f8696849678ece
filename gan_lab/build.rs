//! gan_lab finds the course's datasets and notebooks through the path of the checkout it was built
//! from. Every clone on a machine shares one target directory (scripts/setup.sh), and cargo would
//! reuse one clone's build in another whose files are older; scripts/setup.sh names the checkout
//! in GAN_LAB_CHECKOUT, so a build from another checkout compiles gan_lab again (its dependencies
//! stay shared).
//!
//! With the `fast-kernels` feature (on by default) it also compiles csrc/ops.cpp, the fast
//! backend's kernels (`gan_lab::backend`), against the same libtorch torch-sys found (torch-sys
//! passes its library directory as DEP_TCH_LIBTORCH_LIB), where they build: x86-64 Linux, with a
//! compiler that takes OpenMP. The build then sets `cfg(gan_lab_kernels)`; elsewhere gan_lab runs
//! on stock libtorch alone.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/ops.cpp");
    println!("cargo:rerun-if-env-changed=GAN_LAB_CHECKOUT");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib =
        PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys names libtorch's library directory"));
    let root = lib.parent().expect("libtorch's lib directory has a parent").to_path_buf();
    println!("cargo::rustc-check-cfg=cfg(gan_lab_kernels)");
    // gan-lab, the tests and the examples find libtorch by themselves: `cargo run` and `cargo test`
    // do not reliably pass `.cargo/config.toml`'s LD_LIBRARY_PATH on, and the grader copies test
    // binaries out of the target directory.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if std::env::var_os("CARGO_FEATURE_FAST_KERNELS").is_none() {
        return;
    }
    let target = (
        std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default(),
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default(),
    );
    if target != ("linux".to_owned(), "x86_64".to_owned()) {
        println!(
            "cargo:warning=gan_lab: the fast kernels build on x86-64 Linux only; this build ({}, {}) runs on stock libtorch",
            target.0, target.1
        );
        return;
    }
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    let mut build = cc::Build::new();
    if !build.cpp(true).is_flag_supported("-fopenmp").unwrap_or(false) {
        println!("cargo:warning=gan_lab: the C++ compiler does not take -fopenmp; this build runs on stock libtorch");
        return;
    }
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // at::parallel_for is a header template: without OpenMP here its loops run on one thread.
        .flag("-fopenmp")
        // GCC's note on the AVX-512 helpers' calling convention says nothing to a user.
        .flag_if_supported("-Wno-psabi")
        .file("csrc/ops.cpp")
        .compile("gan_lab_ops");
    println!("cargo:rustc-cfg=gan_lab_kernels");
    // The OpenMP runtime libtorch itself loads (from the same directory), not a second one.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib:+verbatim=libgomp.so.1");
}
