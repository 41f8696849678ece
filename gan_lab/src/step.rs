//! One training step of a GAN, as the lesson writes it: RDFIA practical 3-d, section 1 alternates
//! the two players' objectives, equations (6) and (7), and its "Implementation" list ends with
//! the code for training the networks. PyTorch's DCGAN example marks the same two parts
//! "(1) Update D network" and "(2) Update G network".
//! The lesson's DCGAN trains through [`train_step`]; the families with extra terms (class and
//! information losses, gradient penalty, weight clipping) add them in [`crate::train`].

use crate::losses::Objective;
use crate::optim::Optimizer;
use tch::{nn::ModuleT, Tensor};

/// The losses a step minimizes, from D's outputs. An [`Objective`] gives the lesson's (and
/// LSGAN's, and the hinge loss's).
pub trait Losses {
    /// D's loss from its outputs on a real batch and on fakes.
    fn discriminator(&self, on_real: &Tensor, on_fake: &Tensor) -> Tensor;
    /// G's loss from D's outputs on G's fakes.
    fn generator(&self, on_fake: &Tensor) -> Tensor;
}

impl Losses for Objective {
    fn discriminator(&self, on_real: &Tensor, on_fake: &Tensor) -> Tensor {
        self.discriminator_loss(on_real, on_fake)
    }

    fn generator(&self, on_fake: &Tensor) -> Tensor {
        self.generator_loss(on_fake)
    }
}

/// What one step computed, for the loss curves.
#[derive(Debug)]
pub struct Step {
    /// D's loss, in D's update.
    pub d_loss: Tensor,
    /// G's loss, in G's update.
    pub g_loss: Tensor,
    /// D's outputs on the real batch, in D's update.
    pub on_real: Tensor,
    /// D's outputs on the fakes, in D's update.
    pub on_fake: Tensor,
}

/// Exercise `dcgan.train_step`: one step of the lesson's algorithm on a batch of real images
/// `real` and latent vectors `z`, both networks in training mode (`forward_t(x, true)`):
///
/// 1. **Update D** on the real batch and on fakes G(z), with `losses.discriminator`. This update
///    is D's alone: nothing of it may flow back into G.
/// 2. **Update G** with `losses.generator`, scoring the fakes with D as (1) left it. The gradient
///    flows back through D into G, and only G moves.
///
/// Each update is PyTorch's three calls: `opt.zero_grad()` (`backward()` adds into the gradients,
/// so clear what the last update left), `loss.backward()`, `opt.step()`.
pub fn train_step(
    g: &dyn ModuleT,
    d: &dyn ModuleT,
    opt_g: &mut Optimizer,
    opt_d: &mut Optimizer,
    real: &Tensor,
    z: &Tensor,
    losses: &dyn Losses,
) -> Step {
    // BEGIN SOLUTION dcgan.train_step
    // (1) Update D: real images, and fakes detached from G's graph.
    opt_d.zero_grad();
    let fake = g.forward_t(z, true);
    let on_real = d.forward_t(real, true);
    let on_fake = d.forward_t(&fake.detach(), true);
    let d_loss = losses.discriminator(&on_real, &on_fake);
    d_loss.backward();
    opt_d.step();

    // (2) Update G: the same fakes, through the updated D.
    opt_g.zero_grad();
    let g_loss = losses.generator(&d.forward_t(&fake, true));
    g_loss.backward();
    opt_g.step();
    Step { d_loss, g_loss, on_real, on_fake }
    // END SOLUTION
}
