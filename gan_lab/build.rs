//! gan_lab finds the course's datasets and notebooks through the path of the checkout it was built
//! from. Every clone on a machine shares one target directory (scripts/setup.sh), and cargo would
//! reuse one clone's build in another whose files are older; scripts/setup.sh names the checkout
//! in GAN_LAB_CHECKOUT, so a build from another checkout compiles gan_lab again (its dependencies
//! stay shared).
//!
//! It also compiles csrc/ops.cpp, the libtorch ops tch does not expose, against the
//! same libtorch torch-sys found (torch-sys passes its library directory as DEP_TCH_LIBTORCH_LIB).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/ops.cpp");
    println!("cargo:rerun-if-env-changed=GAN_LAB_CHECKOUT");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib =
        PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys names libtorch's library directory"));
    let root = lib.parent().expect("libtorch's lib directory has a parent").to_path_buf();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
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
        .file("csrc/ops.cpp")
        .compile("gan_lab_ops");
    // The OpenMP runtime libtorch itself loads (from the same directory), not a second one.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib:+verbatim=libgomp.so.1");
    // gan-lab, the tests and the examples find libtorch by themselves: `cargo run` and `cargo test`
    // do not reliably pass `.cargo/config.toml`'s LD_LIBRARY_PATH on, and the grader copies test
    // binaries out of the target directory.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
