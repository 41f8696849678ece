//! The course's frozen evaluator: a LeNet-style classifier (LeCun et al., 1998) for 32×32
//! images in [-1, 1], grey digits by default (any channels and classes for other sets). It judges generated digits ("does this look like a 7?") and, through
//! its penultimate features, feeds the metrics of [`crate::metrics`].

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// Size of the penultimate feature vector.
pub const FEATURES: i64 = 128;

#[derive(Debug)]
pub struct Classifier {
    channels: i64,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Classifier {
    /// The classifier of `channels`-channel images into `classes` classes (MNIST: 1 and 10).
    pub fn new(p: &nn::Path, channels: i64, classes: i64) -> Classifier {
        Classifier {
            channels,
            conv1: nn::conv2d(p / "conv1", channels, 32, 5, Default::default()),
            conv2: nn::conv2d(p / "conv2", 32, 64, 5, Default::default()),
            fc1: nn::linear(p / "fc1", 64 * 5 * 5, FEATURES, Default::default()),
            fc2: nn::linear(p / "fc2", FEATURES, classes, Default::default()),
        }
    }

    /// Images `[B, C, 32, 32]` → penultimate features `[B, 128]`.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let b = x.size()[0];
        let c = self.channels;
        assert_eq!(x.size()[1..], [c, 32, 32], "classifier input: expected [batch, {c}, 32, 32]");
        let h = self.conv1.forward(x).relu().max_pool2d_default(2); // [B, 32, 14, 14]
        let h = self.conv2.forward(&h).relu().max_pool2d_default(2); // [B, 64, 5, 5]
        let h = h.reshape([b, 64 * 5 * 5]).dropout(0.25, train);
        self.fc1.forward(&h).relu() // [B, 128]
    }

    /// Images → class logits `[B, classes]`.
    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        self.fc2.forward(&self.features(x, train).dropout(0.25, train))
    }
}

impl ModuleT for Classifier {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.logits(x, train)
    }
}
