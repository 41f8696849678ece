//! Course tooling: the exercises and their points, the solution and hidden-test markers, the
//! student edition, and grading.
//!
//! The repository is the instructors' master. A solution region in a source file or notebook
//! code cell sits between `// BEGIN SOLUTION <exercise id>` and `// END SOLUTION` (nbgrader's
//! markers); hidden tests between `// BEGIN HIDDEN TESTS` and `// END HIDDEN TESTS`. The student
//! edition replaces each solution region by `todo!("exercise <id>: <summary>")` and drops hidden
//! tests. Each exercise's tests are named `<function>__<check>` in `tests/exercises_<lesson>.rs`.

pub mod autograde;
pub mod grade;
pub mod gradescope;
pub mod markers;
pub mod notebooks;
pub mod release;
pub mod sandbox;

/// One exercise: a function (or a few) whose body the student writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exercise {
    /// `<lesson>.<name>`; tests for it are `tests/exercises_<lesson>.rs::<name>__*`.
    pub id: &'static str,
    pub points: u32,
    /// One line for the stub's `todo!` message: the task, never its answer (no formula that a
    /// lesson's question asks for).
    pub summary: &'static str,
}

impl Exercise {
    pub fn lesson(&self) -> &'static str {
        self.id.split_once('.').map_or(self.id, |(lesson, _)| lesson)
    }

    pub fn name(&self) -> &'static str {
        self.id.split_once('.').map_or(self.id, |(_, name)| name)
    }
}

/// Every exercise of the course.
pub const EXERCISES: &[Exercise] = &[
    Exercise { id: "dcgan.sample_prior", points: 1, summary: "draw n latent vectors from the lesson's prior" },
    Exercise {
        id: "dcgan.init",
        points: 1,
        summary: "the DCGAN paper's initialisation of convolution and BatchNorm weights",
    },
    Exercise {
        id: "dcgan.generator",
        points: 3,
        summary: "the lesson's generator, layer by layer as the course text lists it",
    },
    Exercise {
        id: "dcgan.discriminator",
        points: 3,
        summary: "the lesson's discriminator, layer by layer as the course text lists it; it returns logits",
    },
    Exercise {
        id: "dcgan.discriminator_loss",
        points: 2,
        summary: "D's loss on the logits of a real and a generated batch",
    },
    Exercise {
        id: "dcgan.generator_loss_non_saturating",
        points: 2,
        summary: "the non-saturating generator loss, on D's logits",
    },
    Exercise {
        id: "dcgan.generator_loss_saturating",
        points: 2,
        summary: "the saturating (minimax) generator loss, on D's logits",
    },
    Exercise {
        id: "dcgan.train_step",
        points: 3,
        summary: "one training step: update D, then update G, as the lesson's algorithm alternates them",
    },
    Exercise {
        id: "dcgan.interpolate",
        points: 1,
        summary: "steps latent vectors on the segment from z1 to z2, ends included",
    },
    Exercise {
        id: "metrics.inception_score",
        points: 2,
        summary: "the Inception score of the evaluator's class probabilities",
    },
    Exercise {
        id: "metrics.mode_score",
        points: 2,
        summary: "the Mode score of the class probabilities against the real data's class marginal",
    },
    Exercise {
        id: "metrics.frechet_distance",
        points: 3,
        summary: "the Fréchet distance between two Gaussians (sqrt_psd is there to help)",
    },
    Exercise {
        id: "conditional.label_map",
        points: 1,
        summary: "the labels as one constant plane per class, [B, classes, size, size]",
    },
    Exercise {
        id: "conditional.fusion",
        points: 3,
        summary: "the two input branches of cG and cD, joined along the channels",
    },
    Exercise { id: "conditional.class_loss", points: 2, summary: "the auxiliary classifier's loss on class logits" },
    Exercise { id: "losses.wasserstein_critic", points: 1, summary: "the WGAN critic's loss on its raw scores" },
    Exercise {
        id: "losses.wasserstein_generator",
        points: 1,
        summary: "the WGAN generator's loss on the critic's raw scores",
    },
    Exercise { id: "losses.clip_weights", points: 1, summary: "WGAN's clipping of every critic weight to [-c, c]" },
    Exercise {
        id: "losses.gradient_penalty",
        points: 3,
        summary: "WGAN-GP's gradient penalty at points between real and generated images",
    },
    Exercise {
        id: "losses.power_iteration",
        points: 2,
        summary: "one power-iteration step and the largest singular value it estimates",
    },
    Exercise {
        id: "losses.attention",
        points: 2,
        summary: "SAGAN's attention map: for each position, weights over the positions it attends to",
    },
    Exercise {
        id: "losses.sagan",
        points: 3,
        summary: "the SAGAN generator and discriminator, layer by layer as the IISc final project lists them",
    },
    Exercise { id: "infogan.sample_codes", points: 2, summary: "draw InfoGAN's categorical and continuous codes" },
    Exercise {
        id: "infogan.information_loss",
        points: 3,
        summary: "InfoGAN's information term for the categorical and the continuous codes",
    },
    Exercise {
        id: "vae.reparameterize",
        points: 1,
        summary: "draw z from q(z|x) so that gradients reach mu and log_variance",
    },
    Exercise {
        id: "vae.kl_divergence",
        points: 2,
        summary: "KL(q(z|x) || N(0, I)) from mu and log_variance, averaged",
    },
    Exercise {
        id: "vae.vae_loss",
        points: 2,
        summary: "the VAE's loss: a reconstruction term and the weighted KL term",
    },
];

/// The exercise with this id.
pub fn exercise(id: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.id == id)
}

/// The checkout (master or student edition) this gan_lab was compiled from: its datasets,
/// notebooks and exercise tests.
pub fn checkout() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The exercises of the chosen lessons (all lessons when none is chosen), in course order; an
/// unknown lesson is an error naming the lessons.
pub fn chosen(wanted: &[String]) -> anyhow::Result<Vec<&'static Exercise>> {
    for l in wanted {
        anyhow::ensure!(lessons().contains(&l.as_str()), "--lesson {l}: expected one of {}", lessons().join(", "));
    }
    Ok(EXERCISES.iter().filter(|e| wanted.is_empty() || wanted.iter().any(|l| l == e.lesson())).collect())
}

/// The lessons that have exercises, in course order.
pub fn lessons() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for e in EXERCISES {
        if !out.contains(&e.lesson()) {
            out.push(e.lesson());
        }
    }
    out
}
