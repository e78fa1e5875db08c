//! One number measured under several seeds: mean, sample standard deviation and the Student-t
//! confidence interval of the mean (mean ± t₍₁₋α/₂, n−1₎ · s/√n).

/// A value across seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcrossSeeds {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one seed.
    pub std: f64,
    /// The interval of the mean; the mean itself for one seed (no interval can be given).
    pub low: f64,
    pub high: f64,
}

impl AcrossSeeds {
    /// `values` (at least one) with a `confidence` interval, e.g. 0.95.
    pub fn of(values: &[f64], confidence: f64) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Self {
                n,
                mean,
                std: 0.0,
                low: mean,
                high: mean,
            });
        }
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = variance.sqrt();
        let half =
            student_t_quantile(0.5 + confidence / 2.0, (n - 1) as f64) * std / (n as f64).sqrt();
        Some(Self {
            n,
            mean,
            std,
            low: mean - half,
            high: mean + half,
        })
    }
}

/// The `p`-quantile of Student's t with `df` degrees of freedom (p in (0.5, 1)), by bisection
/// on its distribution function.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while student_t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// P(T ≤ t) for t ≥ 0: 1 − I_x(df/2, 1/2)/2 with x = df/(df + t²).
fn student_t_cdf(t: f64, df: f64) -> f64 {
    1.0 - 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    // The fraction converges fast for x < (a + 1)/(a + b + 2); else by symmetry.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_equal_scipys() {
        // scipy.stats.t.ppf(0.975, df) and t.ppf(0.95, df).
        let cases = [
            (0.975, 1.0, 12.706204736174698),
            (0.975, 2.0, 4.302652729911275),
            (0.975, 5.0, 2.5705818366147395),
            (0.975, 30.0, 2.0422724563012373),
            (0.95, 9.0, 1.8331129326536335),
            (0.975, 1000.0, 1.9623390808264078),
        ];
        for (p, df, expected) in cases {
            let got = student_t_quantile(p, df);
            assert!(
                (got - expected).abs() < 1e-9 * expected,
                "t({p}, {df}) = {got}, scipy {expected}"
            );
        }
    }

    #[test]
    fn three_seeds_by_hand() {
        // mean 2, s = 1, half-width 4.302652729911275 / √3.
        let s = AcrossSeeds::of(&[1.0, 2.0, 3.0], 0.95).unwrap();
        assert_eq!((s.n, s.mean, s.std), (3, 2.0, 1.0));
        let half = 4.302652729911275 / 3f64.sqrt();
        assert!((s.low - (2.0 - half)).abs() < 1e-9 && (s.high - (2.0 + half)).abs() < 1e-9);
        let one = AcrossSeeds::of(&[0.5], 0.95).unwrap();
        assert_eq!((one.low, one.high, one.std), (0.5, 0.5, 0.0));
        assert_eq!(AcrossSeeds::of(&[], 0.95), None);
    }
}
