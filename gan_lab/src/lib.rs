//! gan_lab: a course kit for generative adversarial networks on tch (libtorch).

pub mod backend;
pub mod bench;
pub mod builders;
pub mod checkpoint;
pub mod cli;
pub mod course;
pub mod data;
pub mod files;
pub mod losses;
pub mod metrics;
pub mod models;
pub mod notebook;
pub mod optim;
pub mod step;
pub mod train;
pub mod tsne;
pub mod vae;
pub mod viz;

/// The error type of every fallible call, for notebooks that write their own helpers.
pub use anyhow;
pub use builders::{Acgan, Cdcgan, Dcgan, Infogan, Sagan};
pub use data::{Dataset, Source, Split};
/// The tch version gan_lab is built on, for notebooks that work with tensors directly.
pub use tch;
pub use train::{Gan, History};
pub use vae::{Vae, VaeModel};
