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
    /// One line for the stub's `todo!` message.
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
    Exercise { id: "dcgan.sample_prior", points: 1, summary: "draw n vectors from N(0, I) in latent_dim dimensions" },
    Exercise {
        id: "dcgan.init",
        points: 1,
        summary: "DCGAN init: conv N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0",
    },
    Exercise {
        id: "dcgan.generator",
        points: 3,
        summary: "the lesson's generator: convT blocks with BatchNorm and ReLU, tanh",
    },
    Exercise {
        id: "dcgan.discriminator",
        points: 3,
        summary: "the lesson's discriminator: conv blocks with BatchNorm and LeakyReLU(0.2), logits",
    },
    Exercise {
        id: "dcgan.discriminator_loss",
        points: 2,
        summary: "BCE of real logits against 1 plus fake logits against 0",
    },
    Exercise { id: "dcgan.generator_loss_non_saturating", points: 2, summary: "-E[log D(G(z))] on logits" },
    Exercise { id: "dcgan.generator_loss_saturating", points: 2, summary: "E[log(1 - D(G(z)))] on logits" },
    Exercise { id: "dcgan.interpolate", points: 1, summary: "steps rows (1 - a) z1 + a z2 for a evenly from 0 to 1" },
    Exercise {
        id: "metrics.inception_score",
        points: 2,
        summary: "exp of the mean KL(p(y|x) || p(y)), p(y) the mean of the rows",
    },
    Exercise { id: "metrics.mode_score", points: 2, summary: "exp(mean KL(p(y|x) || p(y)) - KL(p(y) || p(y*)))" },
    Exercise {
        id: "metrics.frechet_distance",
        points: 3,
        summary: "|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), via sqrt_psd",
    },
    Exercise {
        id: "conditional.label_map",
        points: 1,
        summary: "one-hot labels expanded to [B, classes, size, size] planes",
    },
    Exercise {
        id: "conditional.fusion",
        points: 3,
        summary: "the two branches of cG and cD, concatenated along the channels",
    },
    Exercise {
        id: "conditional.class_loss",
        points: 2,
        summary: "cross-entropy of class logits against labels (no softmax first)",
    },
    Exercise { id: "losses.wasserstein_critic", points: 1, summary: "E[f(G(z))] - E[f(x)] on raw critic scores" },
    Exercise { id: "losses.wasserstein_generator", points: 1, summary: "-E[f(G(z))]" },
    Exercise { id: "losses.clip_weights", points: 1, summary: "clamp every critic weight into [-c, c]" },
    Exercise {
        id: "losses.gradient_penalty",
        points: 3,
        summary: "lambda E[(|grad f(x_hat)| - 1)^2] at x_hat = a x + (1 - a) x_fake, with create_graph",
    },
    Exercise {
        id: "losses.power_iteration",
        points: 2,
        summary: "v = W^T u / |W^T u|, u' = W v / |W v|, sigma = u'^T W v (no gradient into u', v)",
    },
    Exercise { id: "losses.attention", points: 2, summary: "beta[b, j, i] = softmax over i of f(x_i) . g(x_j)" },
    Exercise {
        id: "infogan.sample_codes",
        points: 2,
        summary: "one-hot rows of uniform categorical values, then continuous codes from U(-1, 1)",
    },
    Exercise {
        id: "infogan.information_loss",
        points: 3,
        summary: "cross-entropy of Q's logits (no softmax first) and Gaussian NLL of the continuous codes",
    },
    Exercise { id: "vae.reparameterize", points: 1, summary: "z = mu + exp(log_variance / 2) * eps, eps ~ N(0, I)" },
    Exercise {
        id: "vae.kl_divergence",
        points: 2,
        summary: "0.5 * mean(exp(log_variance) + mu^2 - 1 - log_variance) over dimensions and batch",
    },
    Exercise {
        id: "vae.vae_loss",
        points: 2,
        summary: "reconstruction (MSE, or BCE on (x + 1) / 2) + lambda_kl * KL, both averaged",
    },
];

/// The exercise with this id.
pub fn exercise(id: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.id == id)
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
