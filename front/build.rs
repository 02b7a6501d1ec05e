//! Build script of the front binary: marks src/main.rs as built for `prnn` (the compiler half without libtorch).

fn main() {
    println!("cargo:rustc-cfg=prnn_front");
}
