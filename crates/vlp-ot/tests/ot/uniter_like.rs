//! UNITER-like batches (cosine costs of 768-d embeddings, 40 × 36 with
//! padding): IPOT with UNITER's defaults is within 2% of exact OT on both
//! paths, and the tensor wrapper of the exact solver agrees with the host one.

use crate::common::{embeddings, host1, tensor3, Rng};
use burn::backend::NdArray;
use vlp_ot::{
    cosine_cost, exact, exact_host, ipot, ipot_via_host, CostBatch, ExactConfig, IpotConfig,
    Padding,
};

type B = NdArray;

#[test]
fn ipot_is_within_two_percent_of_exact_ot() {
    let (bsz, m, n, d) = (4, 40, 36, 768);
    let (xlen, ylen) = ([40, 40, 22, 13], [36, 30, 36, 10]);
    let dev = Default::default();
    for (seed, structured) in [(1, false), (2, true)] {
        let mut rng = Rng::new(seed);
        let (x, y) = embeddings(&mut rng, bsz, m, n, d, structured);
        let cost = cosine_cost(
            tensor3::<B>(x, [bsz, m, d], &dev),
            tensor3::<B>(y, [bsz, n, d], &dev),
        )
        .unwrap();
        for padded in [false, true] {
            let pad = Padding::<B>::from_lengths(&xlen, m, &ylen, n, &dev).unwrap();
            let pad = padded.then_some(&pad);
            let truth = exact_host(
                &CostBatch::from_tensor(cost.clone(), pad).unwrap(),
                &ExactConfig::default(),
            )
            .unwrap()
            .distances;
            let via_tensor = host1(
                exact(cost.clone(), pad, &ExactConfig::default())
                    .unwrap()
                    .distance,
            );
            let cfg = IpotConfig::default();
            let host = host1(ipot_via_host(cost.clone(), pad, &cfg).unwrap().distance);
            let tens = host1(ipot(cost.clone(), pad, &cfg).unwrap().distance);
            for e in 0..bsz {
                let t = truth[e];
                assert!((via_tensor[e] - t).abs() < 1e-5, "exact wrapper {e}");
                for (what, v) in [("host", host[e]), ("tensor", tens[e])] {
                    assert!(
                        v >= t * (1.0 - 1e-5) && v <= t * 1.02,
                        "{what} seed {seed} padded {padded} example {e}: IPOT {v} vs exact {t}"
                    );
                }
            }
        }
    }
}
