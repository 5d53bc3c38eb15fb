#if SLUICE_LIBFUZZER
import CLibFuzzer
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Built with `-sanitize=fuzzer` and `-DSLUICE_LIBFUZZER` (scripts/fuzz-http1.sh), this hands the
/// command line to libFuzzer: SwiftPM gives an executable's entry point its own name on Linux,
/// so libFuzzer's `main` cannot be the one that runs. Built plainly (as `swift build` does), it
/// checks each file named on the command line once, so a saved crash replays in a debug build.
@main
enum FuzzMain {
    static func main() {
        #if SLUICE_LIBFUZZER
        var argc = CommandLine.argc
        var argv = Optional(CommandLine.unsafeArgv)
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzHTTP1(data, size) })
        #else
        let paths = CommandLine.arguments.dropFirst()
        for path in paths {
            guard let input = read(path) else {
                print("sluice-http1-fuzz: cannot read \(path)")
                exit(2)
            }
            HTTP1Invariants.check(input)
        }
        print("sluice-http1-fuzz: \(paths.count) inputs hold every invariant")
        #endif
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return ferror(file) == 0 ? bytes : nil
    }
}
