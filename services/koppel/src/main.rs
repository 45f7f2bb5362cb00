//! The `koppel` binary: parses the command line and hands over to the library.

/// mimalloc instead of glibc's malloc: in the delivery benchmark's profile glibc's allocator
/// (malloc, free, consolidation) took about 30% of the CPU, mimalloc about half of that, and
/// the deliverer's CPU per event fell by about a fifth (docs/benchmarks.md). The benches that
/// run the workers in process set the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    koppel::main()
}
