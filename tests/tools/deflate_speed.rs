//! Measures deflate levels and strategies on a file: `cargo run --release --example
//! deflate_speed -- FILE` (how the default level was chosen; see README.md).
use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};

fn main() {
    let path = std::env::args().nth(1).expect("usage: deflate_speed FILE");
    let data = std::fs::read(path).expect("readable file");
    // (name, level, strategy): strategy 0 default, 2 huffman only, 3 RLE.
    for (name, level, strategy) in [
        ("huffman-only", 1, 2),
        ("rle", 1, 3),
        ("level 1", 1, 0),
        ("level 2", 2, 0),
        ("level 3", 3, 0),
        ("level 6", 6, 0),
    ] {
        let flags = create_comp_flags_from_zip_params(level, 15, strategy);
        let mut c = CompressorOxide::new(flags);
        let mut out = Vec::with_capacity(data.len());
        let t = std::time::Instant::now();
        let (status, _) = compress_to_output(&mut c, &data, TDEFLFlush::Finish, |chunk| {
            out.extend_from_slice(chunk);
            true
        });
        let dt = t.elapsed();
        assert!(matches!(
            status,
            miniz_oxide::deflate::core::TDEFLStatus::Done
        ));
        let t2 = std::time::Instant::now();
        let back = miniz_oxide::inflate::decompress_to_vec_zlib(&out).expect("round trip");
        assert_eq!(back.len(), data.len());
        println!(
            "{name:>13}: {} -> {} ({:.1}%) deflate {:.1} ms ({:.0} MB/s), inflate {:.1} ms",
            data.len(),
            out.len(),
            100.0 * out.len() as f64 / data.len() as f64,
            dt.as_secs_f64() * 1e3,
            data.len() as f64 / dt.as_secs_f64() / 1e6,
            t2.elapsed().as_secs_f64() * 1e3
        );
    }
}
