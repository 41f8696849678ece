//! Pictures: the one grid function (tiling), loss curves, interpolation.

use gan_lab::history::{History, StepRecord};
use gan_lab::viz;
use tch::{Kind, Tensor};

/// Image k is filled with a value that encodes k, so every tile can be identified.
fn numbered_images(n: i64, c: i64, h: i64, w: i64) -> Tensor {
    let values = Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) * (2.0 / 255.0 * 10.0) - 1.0;
    values.view([n, 1, 1, 1]).expand([n, c, h, w], false).contiguous()
}

#[test]
fn grid_tiles_row_by_row_with_padding() {
    // 7 non-square images, 3 columns: rows [0 1 2] [3 4 5] [6 _ _].
    let (h, w) = (5i64, 4i64);
    let img = viz::grid(&numbered_images(7, 1, h, w), 3);
    let pad = viz::GRID_PADDING as i64;
    assert_eq!(img.width() as i64, 3 * (w + pad) + pad);
    assert_eq!(img.height() as i64, 3 * (h + pad) + pad);
    for k in 0..7i64 {
        let (row, col) = (k / 3, k % 3);
        let expected = (k * 10) as u8;
        // Check every pixel of the tile, so a transposed or shifted tiling fails.
        for y in 0..h {
            for x in 0..w {
                let px = img.get_pixel((pad + col * (w + pad) + x) as u32, (pad + row * (h + pad) + y) as u32);
                assert_eq!(px.0, [expected; 3], "tile {k} pixel ({x}, {y})");
            }
        }
    }
    // Padding and the empty cells stay black.
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(img.get_pixel((pad + 2 * (w + pad)) as u32, (pad + 2 * (h + pad)) as u32).0, [0, 0, 0]);
}

#[test]
fn grid_keeps_colour_channels_apart() {
    let x = Tensor::full([1, 3, 2, 2], -1.0, (Kind::Float, tch::Device::Cpu));
    let _ = x.get(0).get(0).fill_(1.0); // red
    let img = viz::grid(&x, 1);
    let p = viz::GRID_PADDING;
    assert_eq!(img.get_pixel(p, p).0, [255, 0, 0]);
}

#[test]
fn interpolation_runs_from_z1_to_z2() {
    let z1 = Tensor::from_slice(&[0.0f32, 2.0]);
    let z2 = Tensor::from_slice(&[4.0f32, -2.0]);
    let zs = gan_lab::explore::interpolate(&z1, &z2, 5);
    assert_eq!(zs.size(), [5, 2]);
    let v: Vec<f32> = Vec::try_from(zs.view([-1])).unwrap();
    assert_eq!(v, vec![0.0, 2.0, 1.0, 1.0, 2.0, 0.0, 3.0, -1.0, 4.0, -2.0]);
}

#[test]
fn loss_curves_render_as_svg_and_png() {
    let history = History {
        steps: (0..50)
            .map(|i| StepRecord {
                step: i,
                d_loss: 1.0 / (1.0 + i as f64),
                g_loss: 2.0,
                g_updates: 1,
                d_real: 0.5,
                d_fake: 0.5,
                wasserstein: None,
                penalty: None,
                class_loss: None,
                information: None,
                mutual_information: None,
            })
            .collect(),
        ..Default::default()
    };
    let svg = viz::loss_curves_svg(&history).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("D loss") && svg.contains("G loss"));
    assert!(svg.matches("<polyline").count() >= 2, "one line per loss");
    let mut info = history.clone();
    info.steps.iter_mut().for_each(|r| (r.information, r.mutual_information) = (Some(0.3), Some(2.0)));
    let svg = viz::loss_curves_svg(&info).unwrap();
    assert!(svg.contains("G information loss") && svg.contains("MI lower bound"), "InfoGAN's curves are drawn");
    assert!(svg.matches("<polyline").count() >= 4, "one line per series");
    let png = viz::loss_curves_image(&history).unwrap();
    // Not blank: the orange G curve is drawn.
    assert!(png.pixels().any(|p| p.0 == [255, 127, 14]));
    let dir = tempfile::tempdir().unwrap();
    let msg = format!("{:#}", viz::save_loss_curves(&history, &dir.path().join("x.gif")).unwrap_err());
    assert!(msg.contains("x.gif") && msg.contains(".svg or .png"), "{msg}");
}

#[test]
fn screen_space_blend_mixes_pixels() {
    let a = Tensor::full([1, 2, 2], -1.0, (Kind::Float, tch::Device::Cpu));
    let b = Tensor::full([1, 2, 2], 1.0, (Kind::Float, tch::Device::Cpu));
    let frames = gan_lab::explore::blend(&a, &b, 3);
    assert_eq!(frames.size(), [3, 1, 2, 2]);
    let means: Vec<f64> = (0..3).map(|i| frames.get(i).mean(Kind::Float).double_value(&[])).collect();
    assert_eq!(means, vec![-1.0, 0.0, 1.0]);
}

/// The attention picture: a query's weights land on the position they name (bright there, dark
/// elsewhere), the query pixel is marked in cyan, and the first tile is the image itself.
#[test]
fn attention_tiles_light_up_where_the_query_looks() {
    let images = Tensor::zeros([1, 1, 32, 32], (Kind::Float, tch::Device::Cpu));
    let beta = Tensor::zeros([1, 256, 256], (Kind::Float, tch::Device::Cpu));
    // Query pixel (8, 16) is position (4, 8) of the 16×16 maps, j = 72; it looks at (2, 3), i = 35.
    let _ = beta.get(0).get(72).get(35).fill_(1.0);
    let tiles = viz::attention_tiles(&images, &beta, &[(8, 16)]).unwrap();
    assert_eq!(tiles.size(), [2, 3, 32, 32], "the image, then one tile per query");
    assert!(tiles.get(0).abs().max().double_value(&[]) < 1e-6, "mid-grey image shown as itself");
    let heat = tiles.get(1);
    let at = |c: i64, y: i64, x: i64| heat.double_value(&[c, y, x]);
    for (y, x) in [(4, 6), (5, 7)] {
        assert!((0..3).all(|c| at(c, y, x) > 0.6), "the attended position (rows 4-5, columns 6-7) is white");
    }
    assert!((0..3).all(|c| at(c, 20, 20) < -0.6), "a position with no weight stays dark");
    assert_eq!([at(0, 8, 16), at(1, 8, 16), at(2, 8, 16)], [-1.0, 1.0, 1.0], "the query pixel in cyan");

    // Bad input: a line naming what was expected, not a libtorch panic.
    let err = |r: anyhow::Result<Tensor>| r.map(|_| ()).unwrap_err().to_string();
    let outside = err(viz::attention_tiles(&images, &beta, &[(8, 32)]));
    assert!(outside.contains("query pixel (8, 32) is outside the 32×32 images"), "{outside}");
    let wrong = Tensor::zeros([2, 256, 256], (Kind::Float, tch::Device::Cpu));
    let count = err(viz::attention_tiles(&images, &wrong, &[(8, 16)]));
    assert!(count.contains("expected beta [1, N, N]") && count.contains("[2, 256, 256]"), "{count}");
    let not_square = Tensor::zeros([1, 200, 200], (Kind::Float, tch::Device::Cpu));
    assert!(err(viz::attention_tiles(&images, &not_square, &[(8, 16)])).contains("N = side²"));
}

/// Grouped bars: the scores chart names its models and series; the class accuracy chart draws
/// through the same code.
#[test]
fn bar_charts_name_their_groups_and_series() {
    let score = |is: f64| gan_lab::metrics::Scores {
        inception: gan_lab::metrics::Score { mean: is, std: 0.1 },
        mode: gan_lab::metrics::Score { mean: is - 0.5, std: 0.1 },
        fid: 10.0,
        sharpness: 0.0,
        n: 100,
    };
    let svg = viz::chart_svg(&viz::Bars::scores(&[("DCGAN", score(3.5)), ("real", score(9.5))])).unwrap();
    for text in ["DCGAN", "real", "Inception score", "Mode score"] {
        assert!(svg.contains(text), "{text} missing from the chart");
    }
    // The bars (wide filled rectangles, not the background): per colour, heights in data order.
    let bars = |fill: &str| -> Vec<f64> {
        svg.split("<rect ")
            .skip(1)
            .filter(|r| r.contains(&format!("fill=\"{fill}\"")) && !r.contains("width=\"12\""))
            .map(|r| r.split("height=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap())
            .collect()
    };
    let (is, mode) = (bars("#1F77B4"), bars("#FF7F0E"));
    assert_eq!((is.len(), mode.len()), (2, 2), "one bar per model and score");
    assert!((is[0] / is[1] - 3.5 / 9.5).abs() < 0.02, "bar heights follow the scores: {is:?}");
    assert!((mode[0] / mode[1] - 3.0 / 9.0).abs() < 0.02, "{mode:?}");
}
