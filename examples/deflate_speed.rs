fn main() {
    let path = std::env::args().nth(1).expect("file");
    let data = std::fs::read(path).unwrap();
    for level in [1u8, 2, 3, 6] {
        let t = std::time::Instant::now();
        let z = rcc::compress::deflate(&data, level);
        let dt = t.elapsed();
        let t2 = std::time::Instant::now();
        let back = rcc::compress::inflate(&z, data.len() + 1).unwrap();
        assert_eq!(back.len(), data.len());
        println!(
            "level {level}: {} -> {} ({:.1}%) deflate {:?} inflate {:?}",
            data.len(),
            z.len(),
            100.0 * z.len() as f64 / data.len() as f64,
            dt,
            t2.elapsed()
        );
    }
}
