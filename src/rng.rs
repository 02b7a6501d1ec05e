//! Random numbers: SplitMix64 and xoshiro256**, the one source of randomness every stage draws from.
//!
//! SplitMix64 (Steele, Lea and Flood, 2014; Vigna's reference `splitmix64.c`) is used two ways. As a
//! counter-based generator, draw `i` of the sequence for `seed` is [`at`]`(seed, i)`, a pure function of
//! the seed and the index: the negative sampler and the bootstrap draw in any order, over threads, and
//! resume from an index without replaying. As a stream ([`SplitMix64`]) it gives the fused step's dropout
//! masks. [`mix`] alone combines a seed with a number into an unrelated seed (one per epoch, per stream).
//!
//! xoshiro256** (Blackman and Vigna, 2018), seeded from SplitMix64 as its authors recommend, makes the
//! synthetic datasets, where long sequences of normals and shuffles are drawn from one state.

/// SplitMix64's increment: 2^64 divided by the golden ratio, odd.
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford's "Mix13" finaliser): the generator's `n`-th output for seed `s`
/// is `mix(s + n * GAMMA)`, counting from `n = 1`.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Draw `index` (from 0) of the SplitMix64 sequence for `seed`.
pub fn at(seed: u64, index: u64) -> u64 {
    mix(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// A seed for the `n`-th of a family of streams (an epoch, a run), unrelated to its neighbours'.
pub fn derive(seed: u64, n: u64) -> u64 {
    mix(seed ^ n.wrapping_mul(GAMMA))
}

/// The SplitMix64 sequence for a seed, one draw at a time: draw `i` equals [`at`]`(seed, i)`.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The position in the sequence: `SplitMix64::new(s.position())` continues exactly where `s` is.
    pub fn position(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 24 random bits: every value is an exact `f32`.
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

/// xoshiro256**, for long runs of draws from one state.
#[derive(Debug, Clone)]
pub struct Xoshiro256 {
    s: [u64; 4],
    /// Box–Muller makes normals in pairs; the second waits here.
    spare_normal: Option<f64>,
}

impl Xoshiro256 {
    /// The generator of stream `stream` for `seed`: its four words from SplitMix64.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut streams = SplitMix64::new(stream);
        let mut words = SplitMix64::new(seed ^ streams.next_u64());
        let s = [words.next_u64(), words.next_u64(), words.next_u64(), words.next_u64()];
        Xoshiro256 { s, spare_normal: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1], for logarithms.
    pub fn unit_open(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// Uniform in `0..n` by Lemire's multiply-shift; the bias, below n / 2^64, is far beneath any use here.
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u32
    }

    /// A standard normal, by Box–Muller.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let radius = (-2.0 * self.unit_open().ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// Fisher–Yates.
    pub fn shuffle(&mut self, values: &mut [u32]) {
        for i in (1..values.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            values.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_outputs() {
        // Vigna's splitmix64.c seeded with 0.
        let expected = [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F];
        let mut stream = SplitMix64::new(0);
        for (index, &want) in expected.iter().enumerate() {
            assert_eq!(at(0, index as u64), want, "draw {index}");
            assert_eq!(stream.next_u64(), want, "stream draw {index}");
        }
    }

    #[test]
    fn units_lie_in_their_intervals() {
        let mut splitmix = SplitMix64::new(5);
        let mut xoshiro = Xoshiro256::new(5, 1);
        for _ in 0..10_000 {
            assert!((0.0..1.0).contains(&splitmix.unit_f32()));
            assert!((0.0..1.0).contains(&xoshiro.unit()));
            assert!(xoshiro.unit_open() > 0.0);
            assert!(xoshiro.below(7) < 7);
        }
        assert_ne!(Xoshiro256::new(5, 1).next_u64(), Xoshiro256::new(5, 2).next_u64(), "streams differ");
    }
}
