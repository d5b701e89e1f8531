//! Small numeric helpers of the host kernels: a branch-free `exp` (std's
//! `exp` is an opaque libm call per element; this one inlines and
//! vectorises) and CPU feature detection for the SIMD kernels.
//!
//! `e^x = 2^n · e^r` with `n = round(x / ln 2)` (found with the 1.5·2^k
//! "magic number" rounding trick), `r = x − n ln 2` split Cody–Waite style,
//! and a Taylor polynomial for `e^r` on `|r| ≤ ln2/2`; `2^n` is assembled
//! directly in the exponent bits. Inputs below the smallest normal result
//! give `0`, NaN gives NaN (never a panic). Relative error: a few ulp.

const LOG2E: f32 = std::f32::consts::LOG2_E;

/// `e^x` in `f32`, ≤ 2 ulp from std's `f32::exp` on normal results; `0`
/// for `x < -87.3`, saturates at `e^88.7` above.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.3, 88.7);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // The low mantissa bits of `t` hold n; add the bias and shift into the exponent.
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    let y = p * scale;
    if x < -87.3 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// Whether the explicitly vectorised x86-64 kernels (AVX2 + FMA) can run
/// on this CPU; the portable kernels are used otherwise.
pub(crate) fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_matches_std() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.00731;
        }
        assert!(
            worst < 3.0 * f32::EPSILON as f64,
            "worst relative error {worst}"
        );
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
