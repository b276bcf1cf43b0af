//! The CPU twin against straightforward f64 references, on odd sizes.

use super::*;

/// Naive triple loop in f64: the reference for the blocked, parallel matmul.
fn reference_matmul(a: &Mat, b: &Mat) -> Vec<f64> {
    let mut c = vec![0.0f64; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = 0.0f64;
            for k in 0..a.cols {
                s += f64::from(a.data[i * a.cols + k]) * f64::from(b.data[k * b.cols + j]);
            }
            c[i * b.cols + j] = s;
        }
    }
    c
}

fn assert_close(got: &[f32], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs() / scale;
        assert!(
            err <= rel,
            "{what}[{i}]: {g} vs {w} (rel err {err:e} > {rel:e})"
        );
    }
}

#[test]
fn blocked_matmul_matches_the_naive_product_on_odd_sizes() {
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (17, 300, 9),
        (33, 257, 65),
        (70, 13, 1),
    ] {
        let a = Mat::random(m, k, 1);
        let b = Mat::random(k, n, 2);
        let c = cpu::matmul(&a, &b).unwrap();
        assert_eq!((c.rows, c.cols), (m, n));
        assert_close(&c.data, &reference_matmul(&a, &b), 1e-5, "matmul");
    }
    assert!(matches!(
        cpu::matmul(&Mat::zeros(2, 3), &Mat::zeros(4, 2)),
        Err(ComputeError::Shape(_))
    ));
    let empty = cpu::matmul(&Mat::zeros(0, 3), &Mat::zeros(3, 4)).unwrap();
    assert_eq!((empty.rows, empty.cols, empty.data.len()), (0, 4, 0));
}

#[test]
fn row_kernels_match_their_definitions() {
    let x = Mat::random(7, 13, 3);
    let bias: Vec<f32> = (0..13).map(|i| i as f32 * 0.1 - 0.6).collect();
    let relu = cpu::bias_act(&x, &bias, Activation::Relu).unwrap();
    for (i, v) in relu.data.iter().enumerate() {
        assert_eq!(*v, (x.data[i] + bias[i % 13]).max(0.0));
    }
    let gelu = cpu::bias_act(&x, &bias, Activation::Gelu).unwrap();
    for (i, v) in gelu.data.iter().enumerate() {
        let y = f64::from(x.data[i] + bias[i % 13]);
        // Exact GELU with erf is within 1e-3 of the tanh form on this range.
        let exact = 0.5 * y * (1.0 + libm_erf(y / std::f64::consts::SQRT_2));
        assert!((f64::from(*v) - exact).abs() < 1e-3, "{v} vs {exact}");
    }
    let sm = cpu::softmax(&x, 1.0, None).unwrap();
    for row in sm.row_iter() {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5 && row.iter().all(|p| *p > 0.0));
    }
    let gamma = vec![2.0; 13];
    let beta = vec![0.5; 13];
    let ln = cpu::layernorm(&x, &gamma, &beta, 1e-5).unwrap();
    for row in ln.row_iter() {
        let mean = row.iter().map(|v| (v - 0.5) / 2.0).sum::<f32>() / 13.0;
        let var = row
            .iter()
            .map(|v| ((v - 0.5) / 2.0 - mean).powi(2))
            .sum::<f32>()
            / 13.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }
    let sums = cpu::row_sum(&x);
    let maxs = cpu::row_max(&x);
    let args = cpu::row_argmax(&x);
    for (i, row) in x.row_iter().enumerate() {
        assert!((sums[i] - row.iter().sum::<f32>()).abs() < 1e-6);
        assert_eq!(maxs[i], row[args[i] as usize]);
        assert!(row.iter().all(|v| *v <= maxs[i]));
    }
    let ce = cpu::cross_entropy(&x, &[0, 1, 2, 3, 4, 5, 12]).unwrap();
    for (i, row) in x.row_iter().enumerate() {
        let t = [0, 1, 2, 3, 4, 5, 12][i];
        let p = f64::from(sm.data[i * 13 + t]);
        assert!(
            (f64::from(ce[i]) + p.ln()).abs() < 1e-4,
            "row {i}: {} vs {}",
            ce[i],
            -p.ln()
        );
        assert!(row.len() == 13);
    }
    assert!(cpu::cross_entropy(&x, &[13; 7]).is_err());
    let cos = cpu::cosine(&x, &x).unwrap();
    assert!(cos.iter().all(|c| (c - 1.0).abs() < 1e-5));
    let neg = Mat::new(7, 13, x.data.iter().map(|v| -v).collect()).unwrap();
    assert!(cpu::cosine(&x, &neg)
        .unwrap()
        .iter()
        .all(|c| (c + 1.0).abs() < 1e-5));
    assert_eq!(
        cpu::cosine(&Mat::zeros(1, 3), &Mat::random(1, 3, 9)).unwrap(),
        vec![0.0]
    );
}

/// erf by its Taylor series (|x| < 3 here), so the GELU test needs no extra crate.
fn libm_erf(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    for n in 1..80 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn freivalds_accepts_honest_products_and_catches_one_wrong_element() {
    let a = Mat::random(129, 200, 5);
    let b = Mat::random(200, 77, 6);
    let c = cpu::matmul(&a, &b).unwrap();
    let v = freivalds::check(&a, &b, &c, 8, 42, freivalds::DEFAULT_TOLERANCE).unwrap();
    assert!(v.accepted && v.worst_ratio < 0.01, "{v:?}");
    // Entries of C are ~4.7 in size; 0.05 is about 1% of one.
    for (i, delta) in [(0usize, 0.05f32), (129 * 77 - 1, -0.05), (5_000, 1.0)] {
        let mut bad = c.clone();
        bad.data[i] += delta;
        let v = freivalds::check(&a, &b, &bad, 8, 7, freivalds::DEFAULT_TOLERANCE).unwrap();
        assert!(!v.accepted, "wrong element {i} by {delta} passed: {v:?}");
    }
    assert!(freivalds::check(&a, &b, &Mat::zeros(3, 3), 1, 0, 1e-4).is_err());
}

#[test]
fn scores_quantise_to_u16_predictably() {
    assert_eq!(score_to_u16(0.0), 0);
    assert_eq!(score_to_u16(1.0), 65_535);
    assert_eq!(score_to_u16(2.0), 65_535);
    assert_eq!(score_to_u16(-1.0), 0);
    assert_eq!(score_to_u16(f32::NAN), 0);
    assert_eq!(score_to_u16(0.5), 32_768);
}

/// The strided gemm against the definition written out index by index in f64, for the
/// batched, transposed, offset and scaled cases together.
#[test]
fn strided_gemm_matches_its_index_formula() {
    let (m, k, n, batch) = (5, 7, 3, 4);
    let g = Gemm {
        m,
        k,
        n,
        batch,
        trans_b: true,
        alpha: 0.5,
        a: View {
            offset: 3,
            ld: 9,
            batch_stride: 50,
        },
        b: View {
            offset: 1,
            ld: 8,
            batch_stride: 30,
        },
        c: View {
            offset: 2,
            ld: 4,
            batch_stride: 21,
        },
    };
    let a = Mat::random(1, 3 + 3 * 50 + 4 * 9 + 7, 81).data;
    let b = Mat::random(1, 1 + 3 * 30 + 2 * 8 + 7, 82).data;
    let mut c = vec![-7.0f32; 2 + 3 * 21 + 4 * 4 + 3];
    cpu::gemm(&g, &a, &b, &mut c).unwrap();
    let mut written = vec![false; c.len()];
    for z in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|kk| {
                        f64::from(a[3 + z * 50 + i * 9 + kk])
                            * f64::from(b[1 + z * 30 + j * 8 + kk])
                    })
                    .sum::<f64>()
                    * 0.5;
                let at = 2 + z * 21 + i * 4 + j;
                assert!((f64::from(c[at]) - want).abs() < 1e-5, "({z},{i},{j})");
                written[at] = true;
            }
        }
    }
    for (v, w) in c.iter().zip(&written) {
        assert!(*w || *v == -7.0, "wrote outside the view");
    }
    // One element short: refused, not a panic.
    assert!(cpu::gemm(&g, &a[..a.len() - 1], &b, &mut c).is_err());
    let mut overlapping = Gemm::dense(2, 3, 4);
    overlapping.c.ld = 3;
    assert!(cpu::gemm(&overlapping, &[0.0; 6], &[0.0; 12], &mut [0.0; 8]).is_err());
}

#[test]
fn causal_softmax_masks_the_future_per_block() {
    let x = Mat::random(8, 4, 91);
    let p = cpu::softmax(&x, 2.0, Some(4)).unwrap();
    for (i, row) in p.row_iter().enumerate() {
        let valid = i % 4 + 1;
        assert!(row[valid..].iter().all(|v| *v == 0.0), "row {i}: {row:?}");
        let s: f32 = row[..valid].iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        // Within the window it is the plain softmax of 2x over the visible columns.
        let xs = &x.data[i * 4..i * 4 + valid];
        let max = xs.iter().fold(f32::MIN, |m, v| m.max(2.0 * v));
        let z: f32 = xs.iter().map(|v| (2.0 * v - max).exp()).sum();
        for (pv, xv) in row[..valid].iter().zip(xs) {
            assert!((pv - (2.0 * xv - max).exp() / z).abs() < 1e-6);
        }
    }
    assert!(cpu::softmax(&x, 1.0, Some(0)).is_err());
    let sum = cpu::add(&x, &x).unwrap();
    assert!(sum.data.iter().zip(&x.data).all(|(s, v)| *s == 2.0 * v));
    assert!(cpu::add(&x, &Mat::zeros(4, 8)).is_err());
}
