//! A pipeline package as uploaded: YAML, JSON, or an archive, under any file name. Reading and
//! validating must refuse bad input with an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the name the upload claims, which decides how the bytes are read.
    let (name, body) = match data.split_first() {
        Some((b, rest)) => (["p.yaml", "p.json", "p.zip", "p.tar.gz", "p.tgz", "p"][*b as usize % 6], rest),
        None => ("p.yaml", data),
    };
    if let Ok(package) = weir_spec::read_package(name, body) {
        let _ = weir_spec::validate(&package.pipeline_spec);
        let _ = weir_spec::ir::PipelineSpec::parse(&package.pipeline_spec);
    }
});
