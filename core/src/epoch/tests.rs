use proptest::prelude::*;

use super::*;

const E: u64 = 1_000_000_000;
const MAX: u16 = u16::MAX;

/// n neurons, all with previous permits, active, registered at 0, weights set at 100.
fn base(n: usize) -> EpochInput {
    EpochInput {
        n,
        stake: vec![0; n],
        validator_permit: vec![true; n],
        max_allowed_validators: 64,
        weights: vec![Vec::new(); n],
        bonds: vec![Vec::new(); n],
        kappa: defaults::KAPPA,
        bonds_moving_avg: defaults::BONDS_MOVING_AVG,
        bonds_penalty: defaults::BONDS_PENALTY,
        stake_threshold: 0,
        emission_rao: E,
        current_block: 100,
        activity_cutoff: 5_000,
        last_update: vec![100; n],
        block_at_registration: vec![0; n],
        last_tempo: 50,
        yuma3: false,
        liquid_alpha: false,
        alpha_low: defaults::ALPHA_LOW,
        alpha_high: defaults::ALPHA_HIGH,
        alpha_sigmoid_steepness: defaults::ALPHA_SIGMOID_STEEPNESS,
        owner_uid: None,
    }
}

/// Validators 0 and 1 with equal stake both put all weight on miner 2 (miner 3 idle).
fn two_validators_one_miner(yuma3: bool) -> EpochInput {
    let mut x = base(4);
    x.stake = vec![E, E, 0, 0];
    x.weights[0] = vec![(2, MAX)];
    x.weights[1] = vec![(2, MAX)];
    x.yuma3 = yuma3;
    x
}

#[test]
fn single_neuron_gets_everything_through_the_stake_fallback() {
    let mut x = base(1);
    x.stake = vec![5 * E];
    let out = run_epoch(&x);
    assert_eq!(out.incentive, vec![0]);
    assert_eq!(out.dividends, vec![0]);
    assert_eq!(out.stake_weight, vec![MAX]);
    assert_eq!(out.validator_emission, vec![E]);
    assert_eq!(out.emission, vec![E]);
    assert_eq!(out.server_emission, vec![0]);
    assert_eq!(out.validator_permit, vec![true]);
}

#[test]
fn zero_weights_pay_validators_by_active_stake() {
    let mut x = base(3);
    x.stake = vec![E, E, 2 * E];
    let out = run_epoch(&x);
    assert_eq!(out.incentive, vec![0, 0, 0]);
    assert_eq!(out.validator_emission, vec![E / 4, E / 4, E / 2]);
    assert_eq!(out.server_emission, vec![0, 0, 0]);
    // Nobody active with a permit: fall back to plain stake.
    x.validator_permit = vec![false; 3];
    let out = run_epoch(&x);
    assert_eq!(out.validator_emission, vec![E / 4, E / 4, E / 2]);
}

#[test]
fn original_yuma_by_hand() {
    let out = run_epoch(&two_validators_one_miner(false));
    assert_eq!(out.consensus, vec![0, 0, MAX, 0]);
    assert_eq!(out.incentive, vec![0, 0, MAX, 0]);
    assert_eq!(out.validator_trust, vec![MAX, MAX, 0, 0]);
    assert_eq!(out.dividends, vec![32_767, 32_767, 0, 0]);
    assert_eq!(out.server_emission, vec![0, 0, E / 2, 0]);
    assert_eq!(out.validator_emission, vec![E / 4, E / 4, 0, 0]);
    // Bonds: delta 0.5 each, EMA 0.05 each, column max-upscaled to 1 for storage.
    assert_eq!(bond_row(&out, 0), vec![0, 0, MAX, 0]);
    assert_eq!(bond_row(&out, 1), vec![0, 0, MAX, 0]);
    assert_eq!(out.validator_permit, vec![true, true, false, false]);
}

#[test]
fn yuma3_by_hand() {
    let out = run_epoch(&two_validators_one_miner(true));
    // B = 0.1 * W_b (old bonds 0): stored floor(0.1 * 65535) = 6553.
    assert_eq!(bond_row(&out, 0)[2], 6_553);
    assert_eq!(bond_row(&out, 1)[2], 6_553);
    assert_eq!(out.dividends, vec![32_767, 32_767, 0, 0]);
    assert_eq!(out.incentive, vec![0, 0, MAX, 0]);
    // A second epoch from those bonds: 0.9 * 0.1 + 0.1 = 0.19.
    let mut x = two_validators_one_miner(true);
    x.bonds = out.bonds.clone();
    let out = run_epoch(&x);
    let b = bond_row(&out, 0)[2];
    assert!((12_450..=12_452).contains(&b), "{b}");
}

/// Row `i` of the output bonds as a dense vector of length `n`.
fn bond_row(out: &EpochOutput, i: usize) -> Vec<u16> {
    let mut row = vec![0u16; out.bonds.len()];
    for (j, v) in &out.bonds[i] {
        row[*j as usize] = *v;
    }
    row
}

fn dense_to_sparse(row: &[u16]) -> Vec<(u16, u16)> {
    row.iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .map(|(j, v)| (j as u16, *v))
        .collect()
}

#[test]
fn consensus_clips_a_minority_weight() {
    // A (stake 3) backs miner 2, B (stake 1) backs miner 3: kappa 0.5 keeps only miner 2.
    let mut x = base(4);
    x.stake = vec![3 * E, E, 0, 0];
    x.weights[0] = vec![(2, MAX)];
    x.weights[1] = vec![(3, MAX)];
    let out = run_epoch(&x);
    assert_eq!(out.consensus, vec![0, 0, MAX, 0]);
    assert_eq!(out.validator_trust, vec![MAX, 0, 0, 0]);
    assert_eq!(out.incentive, vec![0, 0, MAX, 0]);
    assert_eq!(out.dividends, vec![MAX, 0, 0, 0]);
    // With kappa near 0 (minority 1) every column takes its largest weight instead.
    x.kappa = 1;
    let out = run_epoch(&x);
    assert_eq!(out.consensus[3], MAX);
    assert_eq!(out.incentive[2], 49_151); // 0.75 of rank
}

#[test]
fn self_weights_and_outdated_weights_are_removed() {
    let mut x = base(3);
    x.stake = vec![E, 0, 0];
    x.weights[0] = vec![(0, MAX), (1, MAX), (2, MAX)];
    // Miner 2 re-registered at block 100: validator 0's weight (set at 100) predates it.
    x.block_at_registration[2] = 100;
    let out = run_epoch(&x);
    assert_eq!(out.incentive, vec![0, MAX, 0]);
    // As owner, uid 0 keeps its self-weight.
    x.owner_uid = Some(0);
    let out = run_epoch(&x);
    assert_eq!(out.incentive, vec![32_767, 32_767, 0]);
}

#[test]
fn inactive_validators_lose_dividends() {
    let mut x = two_validators_one_miner(false);
    x.current_block = 10_000;
    x.last_update = vec![9_000, 1_000, 9_000, 9_000]; // validator 1 silent for 9000 blocks > 5000
    let out = run_epoch(&x);
    assert_eq!(out.active, vec![true, false, true, true]);
    assert_eq!(out.dividends, vec![MAX, 0, 0, 0]);
    assert_eq!(out.validator_emission[1], 0);
}

#[test]
fn stake_threshold_zeroes_small_stake_except_the_owner() {
    let mut x = base(3);
    x.stake = vec![10 * E, E, E];
    x.stake_threshold = 2 * E;
    let out = run_epoch(&x);
    assert_eq!(out.stake_weight, vec![MAX, 0, 0]);
    x.owner_uid = Some(2);
    let out = run_epoch(&x);
    assert!(out.stake_weight[2] > 0);
    assert!(out.validator_permit[2]);
}

#[test]
fn permits_are_top_k_and_lost_permits_clear_bonds() {
    let mut x = two_validators_one_miner(false);
    x.stake = vec![2 * E, E, 0, 0];
    x.max_allowed_validators = 1;
    x.bonds[1] = vec![(2, 30_000)];
    let out = run_epoch(&x);
    assert_eq!(out.validator_permit, vec![true, false, false, false]);
    assert!(
        out.bonds[1].is_empty(),
        "a validator that lost its permit keeps no bonds"
    );
    // Its weights still counted this epoch: permits mask by the *previous* epoch.
    assert!(out.dividends[1] > 0);
    // Next epoch, without the old permit, its weights and stake no longer count.
    x.validator_permit = out.validator_permit.clone();
    x.bonds = out.bonds.clone();
    let out = run_epoch(&x);
    assert_eq!(out.dividends[1], 0);
    assert_eq!(out.validator_trust[1], 0);
}

#[test]
fn a_new_registrations_bond_column_is_reset() {
    let mut x = two_validators_one_miner(false);
    x.bonds[0] = vec![(2, MAX), (3, MAX)];
    x.bonds[1] = vec![(3, 1_000)];
    x.block_at_registration[3] = 60; // registered after last_tempo (50): old bonds on uid 3 belong to the previous owner
    let out = run_epoch(&x);
    assert_eq!(bond_row(&out, 0)[3], 0);
    assert_eq!(bond_row(&out, 1)[3], 0);
}

#[test]
fn bonds_converge_over_epochs() {
    // Yuma3: bonds approach the (clipped) weight, 1 - 0.9^k.
    let mut x = two_validators_one_miner(true);
    for _ in 0..60 {
        let out = run_epoch(&x);
        x.bonds = out.bonds.clone();
    }
    let b = x.bonds[0].iter().find(|(j, _)| *j == 2).unwrap().1;
    assert!(b > 65_400, "{b}");
    // Original Yuma: a validator that joins later catches up to its stake share of bonds.
    let mut x = two_validators_one_miner(false);
    x.weights[1].clear();
    for epoch in 0..80 {
        if epoch == 10 {
            x.weights[1] = vec![(2, MAX)];
        }
        let out = run_epoch(&x);
        x.bonds = out.bonds.clone();
        if epoch == 79 {
            assert!(out.dividends[1] > 32_000, "{:?}", out.dividends);
        }
    }
}

#[test]
fn liquid_alpha_changes_bond_speed_within_its_bounds() {
    let mut x = two_validators_one_miner(true);
    x.liquid_alpha = true;
    let out = run_epoch(&x);
    // alpha in [0.7, 0.9] instead of 0.1: the first epoch's bond is at least 0.7.
    let b = bond_row(&out, 0)[2];
    assert!((45_874..=58_982).contains(&b), "{b}");
}

#[test]
fn json_input_errors_name_the_field() {
    let ok = serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 1], [1, 0]]});
    assert!(parse_input(&ok).is_ok());
    assert!(parse_input(&serde_json::json!({"input": ok})).is_ok());
    let cases = [
        (serde_json::json!({"n": 0, "stake": [], "weights": []}), "n"),
        (
            serde_json::json!({"n": 2, "stake": [1], "weights": [[0, 1], [1, 0]]}),
            "stake",
        ),
        (
            serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 1], [1]]}),
            "weights[1]",
        ),
        (
            serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 70000], [1, 0]]}),
            "weights[0][1]",
        ),
        (
            serde_json::json!({"n": 2, "stake": [1, -2], "weights": [[0, 1], [1, 0]]}),
            "stake[1]",
        ),
        (
            serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 1], [1, 0]], "kappa": 65536}),
            "kappa",
        ),
        (
            serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 1], [1, 0]], "colour": 1}),
            "colour",
        ),
        (
            serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 1], [1, 0]], "yuma3": "yes"}),
            "yuma3",
        ),
        (serde_json::json!({"n": 2, "stake": [1, 2]}), "weights"),
        (
            serde_json::json!({"n": 2, "stake": [1, 2], "weights": [[0, 1], [1, 0]], "validator_permit": [true, 1]}),
            "validator_permit[1]",
        ),
    ];
    for (input, field) in cases {
        let e = parse_input(&input).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

/// Deterministic pseudo-random numbers for the scenario tests (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Honest validators score miners whose quality drifts every epoch; a copier submits the
/// previous epoch's consensus. Over the run the copier earns less dividend per stake.
#[test]
fn a_consensus_copier_earns_less_than_honest_validators() {
    for yuma3 in [false, true] {
        let (v, m) = (4usize, 12usize);
        let n = v + m;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut x = base(n);
        x.yuma3 = yuma3;
        x.stake = (0..n).map(|i| if i < v { 10 * E } else { 0 }).collect();
        let mut quality: Vec<f64> = (0..m).map(|_| rng.unit()).collect();
        let mut last_consensus = vec![0u16; n];
        let (mut honest, mut copier) = (0u128, 0u128);
        for epoch in 0..120u64 {
            x.current_block = 1_000 + epoch * 360;
            x.last_tempo = x.current_block - 359;
            x.last_update = vec![x.current_block - 1; n];
            for q in quality.iter_mut() {
                *q = (*q + (rng.unit() - 0.5) * 0.6).clamp(0.01, 1.0);
            }
            for i in 0..v - 1 {
                x.weights[i] = (0..m)
                    .map(|j| {
                        (
                            u16::try_from(v + j).unwrap(),
                            (quality[j] * (0.9 + 0.2 * rng.unit()) * 50_000.0) as u16 + 1,
                        )
                    })
                    .collect();
            }
            x.weights[v - 1] = dense_to_sparse(&last_consensus);
            let out = run_epoch(&x);
            x.bonds = out.bonds.clone();
            x.validator_permit = out.validator_permit.clone();
            last_consensus = out.consensus.clone();
            if epoch >= 20 {
                honest += (0..v - 1)
                    .map(|i| u128::from(out.validator_emission[i]))
                    .sum::<u128>()
                    / (v as u128 - 1);
                copier += u128::from(out.validator_emission[v - 1]);
            }
        }
        assert!(
            copier < honest,
            "yuma3={yuma3}: copier {copier} vs honest mean {honest}"
        );
    }
}

fn arb_input() -> impl Strategy<Value = EpochInput> {
    (2usize..9).prop_flat_map(|n| {
        (
            proptest::collection::vec(0u64..1_000_000_000_000, n),
            proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(0u16), any::<u16>()], n),
                n,
            ),
            proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(0u16), any::<u16>()], n),
                n,
            ),
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(0u64..200, n),
            any::<bool>(),
            1u64..u64::from(u32::MAX),
        )
            .prop_map(move |(stake, w, b, permit, reg, yuma3, emission)| {
                let mut x = base(n);
                x.stake = stake;
                x.weights = w.iter().map(|r| dense_to_sparse(r)).collect();
                x.bonds = b.iter().map(|r| dense_to_sparse(r)).collect();
                x.validator_permit = permit;
                x.block_at_registration = reg;
                x.current_block = 300;
                x.last_update = vec![250; n];
                x.last_tempo = 150;
                x.yuma3 = yuma3;
                x.emission_rao = emission;
                x
            })
    })
}

fn permute(x: &EpochInput, p: &[usize]) -> EpochInput {
    // New uid k is old uid p[k].
    let inv: Vec<usize> = (0..p.len())
        .map(|old| p.iter().position(|&q| q == old).unwrap())
        .collect();
    let remap = |rows: &Vec<Vec<(u16, u16)>>| -> Vec<Vec<(u16, u16)>> {
        p.iter()
            .map(|&old| {
                let mut r: Vec<(u16, u16)> = rows[old]
                    .iter()
                    .map(|(j, v)| (inv[*j as usize] as u16, *v))
                    .collect();
                r.sort();
                r
            })
            .collect()
    };
    let mut y = x.clone();
    y.stake = p.iter().map(|&o| x.stake[o]).collect();
    y.validator_permit = p.iter().map(|&o| x.validator_permit[o]).collect();
    y.block_at_registration = p.iter().map(|&o| x.block_at_registration[o]).collect();
    y.last_update = p.iter().map(|&o| x.last_update[o]).collect();
    y.weights = remap(&x.weights);
    y.bonds = remap(&x.bonds);
    y
}

fn close(a: &[u16], b: &[u16], tol: u16) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= tol)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn shares_sum_to_one_and_emission_is_bounded(x in arb_input()) {
        let out = run_epoch(&x);
        let n = x.n as u64;
        let inc: u64 = out.incentive.iter().map(|v| u64::from(*v)).sum();
        let div: u64 = out.dividends.iter().map(|v| u64::from(*v)).sum();
        if inc > 0 {
            prop_assert!(inc <= 65_535 && inc + n + 1 >= 65_535, "incentive sums to {inc}");
        }
        if div > 0 {
            prop_assert!(div <= 65_535 && div + n + 1 >= 65_535, "dividends sum to {div}");
        }
        let total: u128 = out.emission.iter().map(|v| u128::from(*v)).sum();
        let split: u128 = out.server_emission.iter().chain(&out.validator_emission).map(|v| u128::from(*v)).sum();
        prop_assert!(total <= u128::from(x.emission_rao));
        prop_assert!(split <= u128::from(x.emission_rao));
        prop_assert_eq!(out.bonds.len(), x.n);
    }

    #[test]
    fn outputs_do_not_depend_on_uid_order(x in arb_input(), seed in any::<u64>()) {
        // Distinct stakes and room for every validator avoid the documented index tie-breaks.
        let mut x = x;
        for (i, s) in x.stake.iter_mut().enumerate() { *s = *s / 64 * 64 + i as u64 + 1; }
        x.max_allowed_validators = 64;
        let mut p: Vec<usize> = (0..x.n).collect();
        let mut r = Rng(seed | 1);
        for i in (1..p.len()).rev() { p.swap(i, (r.next() % (i as u64 + 1)) as usize); }
        let a = run_epoch(&x);
        let b = run_epoch(&permute(&x, &p));
        let back = |v: &[u16]| -> Vec<u16> { (0..x.n).map(|old| v[p.iter().position(|&q| q == old).unwrap()]).collect() };
        prop_assert!(close(&a.incentive, &back(&b.incentive), 2), "{:?} vs {:?}", a.incentive, b.incentive);
        prop_assert!(close(&a.dividends, &back(&b.dividends), 2));
        prop_assert!(close(&a.consensus, &back(&b.consensus), 2));
        prop_assert!(close(&a.validator_trust, &back(&b.validator_trust), 2));
        prop_assert!(close(&a.stake_weight, &back(&b.stake_weight), 2));
    }
}

#[test]
fn a_single_staker_decides_consensus_and_takes_all_dividends() {
    // Only validator 0 has stake; validator 1 (no stake) votes the opposite way.
    let mut x = base(5);
    x.stake = vec![7 * E, 0, 0, 0, 0];
    x.weights[0] = vec![(2, 40_000), (3, 20_000)];
    x.weights[1] = vec![(4, MAX)];
    let out = run_epoch(&x);
    assert_eq!(out.validator_permit, vec![true, false, false, false, false]);
    // Its normalised weights become the consensus: 2/3 and 1/3 (I32F32 truncates 2/3 to
    // just below it, so floor(x * 65535) gives 43689 rather than the exact 43690).
    assert_eq!(out.consensus, vec![0, 0, 43_689, 21_844, 0]);
    assert_eq!(out.incentive, vec![0, 0, 43_689, 21_844, 0]);
    assert_eq!(out.dividends, vec![MAX, 0, 0, 0, 0]);
    assert_eq!(out.validator_emission, vec![E / 2, 0, 0, 0, 0]);
    let miners: u64 = out.server_emission.iter().sum();
    assert!(miners <= E / 2 && miners + 2 >= E / 2);
}
