fn main() {
    std::process::exit(gan_lab::cli::main());
}
