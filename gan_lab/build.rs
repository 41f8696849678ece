//! gan_lab finds the course's datasets and notebooks through the path of the checkout it was built
//! from. Every clone on a machine shares one target directory (scripts/setup.sh), and cargo would
//! reuse one clone's build in another whose files are older; scripts/setup.sh names the checkout
//! in GAN_LAB_CHECKOUT, so a build from another checkout compiles gan_lab again (its dependencies
//! stay shared).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GAN_LAB_CHECKOUT");
}
