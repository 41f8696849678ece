//! ACGAN (Odena et al., 2017, arXiv:1610.09585) as DLCV HW4 problem 3 builds it
//! from its GAN: the generator's input is the noise with the class appended (one-hot), and the
//! discriminator gets one more dense output layer that classifies its input. Both networks are the
//! DCGAN lesson's, so `ngf`, `ndf`, the init and 64×64 images work as there.

use super::dcgan::{self, DcganConfig};
use super::{one_hot, DiscriminatorNet, GeneratorNet, Judgement};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

/// The architecture's hyperparameters: the DCGAN's, plus the number of classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcganConfig {
    /// The DCGAN networks; `latent_dim` is the noise's dimension, without the class.
    #[serde(flatten)]
    pub dcgan: DcganConfig,
    pub classes: i64,
}

impl Default for AcganConfig {
    fn default() -> Self {
        Self::mnist32()
    }
}

impl AcganConfig {
    /// The DCGAN lesson's networks on 32×32 digits, 10 classes.
    pub fn mnist32() -> Self {
        AcganConfig { dcgan: DcganConfig::mnist32(), classes: 10 }
    }
}

/// G(z, c): the DCGAN generator fed `[z, one_hot(c)]`.
#[derive(Debug)]
pub struct Generator {
    classes: i64,
    net: dcgan::Generator,
}

impl Generator {
    pub fn new(p: &nn::Path, c: &AcganConfig) -> Generator {
        let widened = DcganConfig { latent_dim: c.dcgan.latent_dim + c.classes, ..c.dcgan.clone() };
        Generator { classes: c.classes, net: dcgan::Generator::new(p, &widened) }
    }
}

impl GeneratorNet for Generator {
    fn generate(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor {
        let labels = labels.expect("the ACGAN generator needs labels");
        self.net.forward_t(&Tensor::cat(&[z.shallow_clone(), one_hot(labels, self.classes)], 1), train)
    }
}

/// The DCGAN discriminator with a dense class head on its last feature maps.
#[derive(Debug)]
pub struct Discriminator {
    net: dcgan::Discriminator,
    classify: nn::Linear,
}

impl Discriminator {
    pub fn new(p: &nn::Path, c: &AcganConfig) -> Discriminator {
        let features = c.dcgan.widths(c.dcgan.ndf)[0] * 4 * 4;
        Discriminator {
            net: dcgan::Discriminator::new(p, &c.dcgan),
            classify: dcgan::dense(p / "classify", features, c.classes, c.dcgan.init, true),
        }
    }
}

impl DiscriminatorNet for Discriminator {
    /// The real/fake logit from the DCGAN head, and class logits `[B, classes]` from the dense head.
    fn judge(&self, x: &Tensor, _labels: Option<&Tensor>, train: bool) -> Judgement {
        let h = self.net.features(x, train);
        let classes = self.classify.forward(&h.flatten(1, -1));
        Judgement { score: self.net.head(&h), classes: Some(classes), codes: None }
    }
}
